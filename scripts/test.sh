#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need,
# then format check, clippy (warnings are errors) and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast

#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need,
# starts PostgreSQL, then format check, clippy (warnings are errors) and
# every test (SQLite and PostgreSQL, anvil for the NFT gate).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
# The PostgreSQL path runs against a real server (Debian's, started here).
SG_TEST_POSTGRES="$(scripts/postgres.sh)"
export SG_TEST_POSTGRES
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast

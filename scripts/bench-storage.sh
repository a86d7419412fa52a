#!/usr/bin/env bash
# The object-storage benchmark in one command: builds release binaries,
# publishes one asset into a local root and into a Garage bucket, and
# compares cold misses, warm hits and warm-hit CPU per request; records the
# tables in docs/benchmarks.md. Extra arguments go to `streamgate-bench storage`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || scripts/setup.sh --bench
command -v garage >/dev/null || scripts/setup.sh --tests
cargo build --release -q -p streamgate -p streamgate-bench
exec target/release/streamgate-bench storage --markdown docs/benchmarks.md "$@"

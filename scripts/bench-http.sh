#!/usr/bin/env bash
# The HTTP origin benchmark in one command: builds release binaries, runs
# streamgate engine against nginx with wrk, and records the table in
# docs/benchmarks.md. Extra arguments go to `streamgate-bench http`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null && [ -x /usr/sbin/nginx ] || scripts/setup.sh --bench
cargo build --release -q -p streamgate -p streamgate-bench
exec target/release/streamgate-bench http --markdown docs/benchmarks.md "$@"

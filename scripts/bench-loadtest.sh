#!/usr/bin/env bash
# The load harness's own benchmarks in one command: its efficiency against
# wrk on the same nginx, the stalling-server honesty check, and 10 000
# viewers against the engine; each table recorded in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null && [ -x /usr/sbin/nginx ] || scripts/setup.sh --bench
cargo build --release -q -p streamgate -p streamgate-bench
target/release/streamgate-bench loadgen --rounds 5 --duration 5 --connections 32 --markdown docs/benchmarks.md
target/release/streamgate-bench honesty --markdown docs/benchmarks.md
target/release/streamgate-bench viewers --viewers 10000 --duration 120 --ramp 30 --markdown docs/benchmarks.md

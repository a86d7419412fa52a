#!/usr/bin/env bash
# TLS and HTTP/2 against nginx + OpenSSL in one command (wrk over HTTPS,
# h2load, openssl s_time), recorded in docs/benchmarks.md. Extra arguments
# go to `streamgate-bench tls`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null && command -v h2load >/dev/null && [ -x /usr/sbin/nginx ] || scripts/setup.sh --bench
cargo build --release -q -p streamgate -p streamgate-bench
exec target/release/streamgate-bench tls --markdown docs/benchmarks.md "$@"

#!/usr/bin/env bash
# The ingest benchmark in one command: builds release binaries, uploads the
# same file with `streamgate ingest` and with curl to nginx's WebDAV PUT,
# and records the table in docs/benchmarks.md. Extra arguments go to
# `streamgate-bench ingest` (e.g. --rounds 5 --mib 512).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/sbin/nginx ] && command -v curl >/dev/null || scripts/setup.sh --bench
cargo build --release -q -p streamgate -p streamgate-bench
exec target/release/streamgate-bench ingest --markdown docs/benchmarks.md "$@"

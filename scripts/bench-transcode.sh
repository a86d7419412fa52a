#!/usr/bin/env bash
# The transcode benchmark in one command: streamgate transcode against the
# ffmpeg CLI (same ladder, preset, rate control, GOP), wall time and PSNR,
# recorded in docs/benchmarks.md. Extra arguments go to
# `streamgate-bench transcode`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -q -p streamgate -p streamgate-bench
exec target/release/streamgate-bench transcode --markdown docs/benchmarks.md "$@"

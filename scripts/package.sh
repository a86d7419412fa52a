#!/usr/bin/env bash
# Builds the release .deb (target/debian/streamgate_<version>_amd64.deb):
# the binary, the three systemd units, sysusers.d/tmpfiles.d, the annotated
# config as a conffile, the docs. See docs/operations.md to install it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(cargo deb --version 2>/dev/null)" = "cargo-deb 3.8.0" ] || cargo install --locked cargo-deb --version 3.8.0
exec cargo deb "$@"

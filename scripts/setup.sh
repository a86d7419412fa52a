#!/usr/bin/env bash
# Installs what StreamGate needs on Debian 12, idempotently (quick when
# everything is present). Run as root or with sudo available.
#   scripts/setup.sh          build dependencies (FFmpeg libraries, clang)
#   scripts/setup.sh --tests  also PostgreSQL, Node.js, and the test chain
#                             (npm: anvil + solc; contracts compiled here;
#                             tus-js-client for the ingest interop test);
#                             nginx and openssl (the load harness's HTTP/2
#                             and TLS peer, self-signed), python3-jsonschema
#                             (its report schema); systemd (systemd-analyze
#                             for the units), strace (their syscall filter),
#                             dpkg-dev and binutils with cargo-deb from
#                             crates.io (the .deb test), pebble (the test
#                             ACME CA), Debian's chromium with
#                             playwright-core from npm (the pages' tests),
#                             Garage from crates.io (the S3 server the
#                             object-storage tests run; about 13 minutes to
#                             build on 2 cores, once: kept in ~/.cargo/bin)
#   scripts/setup.sh --bench  also nginx, wrk and h2load (nghttp2-client) for bench/
#   scripts/setup.sh --run    what scripts/run.sh needs (same as the default)
set -euo pipefail

# FFmpeg's libraries for the transcoder (ffmpeg-next: bindgen needs clang),
# and the ffmpeg/ffprobe CLIs the tests use to make and check clips.
want=(pkg-config curl clang libclang-dev ffmpeg
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev libavdevice-dev)
# Node.js from Debian unless one is already on the PATH: npm fetches the
# pages' player library (and, for the tests, their JavaScript peers).
command -v npm >/dev/null || want+=(nodejs npm)
tests=0
for arg in "$@"; do
  case "$arg" in
    --tests)
      tests=1
      want+=(postgresql nginx-light openssl python3-jsonschema systemd strace dpkg-dev binutils pebble chromium)
      ;;
    --bench) want+=(nginx-light wrk nghttp2-client openssl) ;;
    --run) ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup.sh: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts nginx on install; the benchmarks and tests run their own.
  if [[ " ${missing[*]} " == *" nginx-light "* ]]; then
    $sudo systemctl disable --now nginx >/dev/null 2>&1 || $sudo service nginx stop >/dev/null 2>&1 || true
  fi
fi

if ! command -v cargo >/dev/null; then
  echo "setup.sh: cargo not found; install Rust (rustup) first" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup.sh: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# The pages' player and uploader (hls.js, tus-js-client) from npm, pinned in web/package-lock.json;
# the engine serves it from web/node_modules (and the .deb ships it).
web="$(dirname "$0")/../web"
if [ ! -f "$web/node_modules/hls.js/dist/hls.mjs" ] || [ ! -f "$web/node_modules/tus-js-client/dist/tus.min.js" ] \
  || [ ! -f "$web/node_modules/shaka-player/dist/shaka-player.compiled.js" ]; then
  echo "setup.sh: installing hls.js, Shaka Player and tus-js-client from npm"
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ "$tests" -eq 1 ] && [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb 3.8.0" ]; then
  # Pinned: the .deb test builds from the debug binary (--profile dev),
  # which later releases may refuse.
  echo "setup.sh: installing cargo-deb"
  cargo install --locked cargo-deb --version 3.8.0
fi

if [ "$tests" -eq 1 ] && ! garage --version 2>/dev/null | grep -q "cargo:2.5.0"; then
  # A real S3 server, run by the tests as a separate process (AGPL: never
  # linked). Pinned; the lean feature set: SQLite metadata (bundled), no
  # LMDB, no K2V, no metrics exporter.
  echo "setup.sh: building Garage 2.5.0 from crates.io (once; about 13 minutes on 2 cores)"
  cargo install --locked garage --version 2.5.0 --no-default-features --features bundled-libs,sqlite
fi

if [ "$tests" -eq 1 ]; then
  # A real EVM node and the Solidity compiler, pinned in package-lock.json;
  # then the test contracts, compiled offline by that compiler.
  chain="$(dirname "$0")/../tests/chain"
  if [ ! -x "$chain/node_modules/.bin/anvil" ] || [ ! -d "$chain/node_modules/solc" ]; then
    echo "setup.sh: installing anvil and solc from npm"
    (cd "$chain" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  node "$chain/build.js" >/dev/null
  # playwright-core, which drives Debian's chromium (no browser download).
  webtests="$(dirname "$0")/../tests/web"
  if [ ! -d "$webtests/node_modules/playwright-core" ]; then
    echo "setup.sh: installing playwright-core from npm"
    (cd "$webtests" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  # tus-js-client (the tus client inside Uppy), for the ingest interop test.
  tus="$(dirname "$0")/../tests/tus"
  if [ ! -d "$tus/node_modules/tus-js-client" ]; then
    echo "setup.sh: installing tus-js-client from npm"
    (cd "$tus" && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi

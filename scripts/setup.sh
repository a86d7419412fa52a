#!/usr/bin/env bash
# Installs what StreamGate needs on Debian 12, idempotently (quick when
# everything is present). Run as root or with sudo available.
#   scripts/setup.sh          build + test dependencies
#   scripts/setup.sh --bench  also nginx and wrk for bench/
#   scripts/setup.sh --run    what scripts/run.sh needs (same as the default)
set -euo pipefail

# FFmpeg's libraries for the transcoder (ffmpeg-next: bindgen needs clang),
# and the ffmpeg/ffprobe CLIs the tests use to make and check clips.
want=(pkg-config curl clang libclang-dev ffmpeg
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev libavdevice-dev)
for arg in "$@"; do
  case "$arg" in
    --bench) want+=(nginx-light wrk) ;;
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
  # Debian starts nginx on install; the benchmark runs its own.
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

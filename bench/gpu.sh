#!/usr/bin/env bash
# The GPU checks of issue 15, as one script for a lent GPU machine (the
# `device` tool: no network there, so everything it needs travels with the
# working tree). Prepare here:
#   cargo build --release -p streamgate
#   bench/gpu.sh --prepare     # writes bench/out/gpu/fixture.mp4 (10 s 1080p H.264)
# then on the device machine, carrying target/release/streamgate and
# bench/out/gpu:
#   bench/gpu.sh               # prints one report; exit 1 on a failed check
#
# What it checks and measures (each line says PASS, FAIL or INFO):
#  1. `streamgate gpu info --json`: a CUDA device context opens; which
#     *_cuvid decoders FFmpeg has; whether NVENC opens (H100/H200: it must
#     not, and the probe must say why).
#  2. NVDEC decodes the fixture bit-exactly: framemd5 of `ffmpeg -hwaccel
#     cuda` (frames downloaded) equals libavcodec's (needs the ffmpeg CLI on
#     the machine; INFO when it is absent).
#  3. Decode fps, NVDEC against the CPU (target ≥ 3×).
#  4. The whole ladder: `streamgate transcode --gpu auto` against `--gpu
#     off`, wall time (target ≤ 0.5× once NVDEC and scale_cuda are stages
#     of the pipeline; this build decodes and scales on the CPU, so expect
#     about 1× on a card without NVENC), and both outputs decode cleanly.
set -uo pipefail
cd "$(dirname "$0")/.."
out=bench/out/gpu
bin=${STREAMGATE:-target/release/streamgate}
mkdir -p "$out"

if [ "${1:-}" = "--prepare" ]; then
  ffmpeg -v error -y -f lavfi -i "testsrc2=size=1920x1080:rate=30:duration=10" \
    -c:v libx264 -preset veryfast -g 60 -pix_fmt yuv420p "$out/fixture.mp4"
  echo "prepared $out/fixture.mp4 ($(du -h "$out/fixture.mp4" | cut -f1))"
  exit 0
fi

fail=0
say() { echo "$1 $2"; [ "$1" = FAIL ] && fail=1; return 0; }

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
missing=$(ldd "$bin" 2>/dev/null | grep "not found" || true)
[ -z "$missing" ] && say INFO "every library $bin links is here" || say FAIL "missing libraries: $missing"

echo "== 1. probe"
info=$("$bin" gpu info --json)
echo "$info"
echo "$info" | grep -q '"usable": true' && say PASS "a CUDA device context opens" || say FAIL "no CUDA device context"
if echo "$info" | grep -q '"nvenc_unusable": null'; then
  say INFO "NVENC opens: the encode stage runs on the GPU"
else
  say INFO "NVENC does not open (expected on H100/H200): $(echo "$info" | grep nvenc_unusable)"
fi

fixture=$out/fixture.mp4
if command -v ffmpeg >/dev/null; then
  echo "== 2. NVDEC bit-exact"
  # NVDEC's frames come down as NV12: both sides as planar 4:2:0 (a
  # lossless rearrangement) before hashing.
  ffmpeg -v error -i "$fixture" -vf format=yuv420p -f framemd5 "$out/cpu.framemd5"
  if ! ffmpeg -v error -hwaccel cuda -i "$fixture" -vf format=yuv420p -f framemd5 "$out/nvdec.framemd5"; then
    say FAIL "NVDEC could not decode the fixture"
  elif cmp -s <(grep -v '^#' "$out/cpu.framemd5") <(grep -v '^#' "$out/nvdec.framemd5"); then
    say PASS "NVDEC frames equal libavcodec's ($(grep -vc '^#' "$out/cpu.framemd5") frames)"
  else
    say FAIL "NVDEC frames differ from libavcodec's"
  fi
  echo "== 3. decode fps"
  fps() { local t0 t1; t0=$(date +%s.%N); ffmpeg -v error "$@" -i "$fixture" -f null - || return 1; t1=$(date +%s.%N); echo "scale=1; 300 / ($t1 - $t0)" | bc; }
  cpu=$(fps -threads 0)
  if gpu=$(fps -hwaccel cuda); then
    say INFO "decode fps: CPU $cpu, NVDEC $gpu (ratio $(echo "scale=2; $gpu / $cpu" | bc)x; target >= 3x)"
  else
    say FAIL "decode fps: NVDEC could not decode (CPU $cpu fps)"
  fi
else
  say INFO "no ffmpeg CLI here: checks 2 and 3 not run"
fi

echo "== 4. the ladder"
wall() { local t0 t1; t0=$(date +%s.%N); "$bin" transcode "$fixture" --out "$1" --gpu "$2" >/dev/null 2>"$1.log" || return 1; t1=$(date +%s.%N); echo "scale=2; $t1 - $t0" | bc; }
rm -rf "$out/off" "$out/auto"
off=$(wall "$out/off" off) || say FAIL "CPU ladder failed: $(cat "$out/off.log")"
auto=$(wall "$out/auto" auto) || say FAIL "auto ladder failed: $(cat "$out/auto.log")"
say INFO "ladder wall: --gpu off ${off}s, --gpu auto ${auto}s (ratio $(echo "scale=2; $auto / $off" | bc); target <= 0.5)"
say INFO "auto said: $(grep -h 'transcode:' "$out/auto.log" | head -1)"
for dir in off auto; do
  [ -f "$out/$dir/master.m3u8" ] && [ -f "$out/$dir/manifest.mpd" ] \
    && say PASS "$dir: HLS and DASH published" || say FAIL "$dir: manifests missing"
done
exit $fail

#!/usr/bin/env bash
# The main job in one command: install what is missing, build, make a sample
# clip, transcode it into HLS + DASH (CMAF, 720/480/360 + audio), serve it
# with the engine and print the URLs. Ctrl-C drains and stops. Safe to run
# again.
#
# Until `streamgate serve` with ingest (issue 5) lands, the clip is made by
# the ffmpeg CLI, packaged by `streamgate transcode`, and the engine runs
# with --open.
set -euo pipefail
cd "$(dirname "$0")/.."

LISTEN=${STREAMGATE_ENGINE__LISTEN:-127.0.0.1:8080}
ADMIN=${STREAMGATE_ENGINE__ADMIN:-127.0.0.1:9100}
DATA=${STREAMGATE_DATA_DIR:-./var}
ASSETS="$DATA/assets"
ID=sample

scripts/setup.sh --run
cargo build --release -q -p streamgate

mkdir -p "$ASSETS"
if [ ! -f "$ASSETS/$ID/manifest.mpd" ]; then
  echo "run.sh: making a 12 s sample clip and transcoding it into $ASSETS/$ID"
  mkdir -p "$DATA/sources"
  [ -f "$DATA/sources/sample.mp4" ] || ffmpeg -hide_banner -loglevel error -nostdin -y \
    -f lavfi -i "testsrc2=size=1280x720:rate=30" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 12 \
    -c:v libx264 -preset veryfast -crf 18 -pix_fmt yuv420p -c:a aac -b:a 192k -shortest \
    "$DATA/sources/sample.mp4"
  # The transcoder builds beside the root under a dot name (never served)
  # and renames into place: a half-written asset is never visible.
  target/release/streamgate transcode "$DATA/sources/sample.mp4" --out "$ASSETS/$ID" \
    --ladder 720,480,360 --segment-seconds 2
fi

cat <<MSG

  StreamGate engine on http://$LISTEN  (metrics: http://$ADMIN/metrics)

  HLS:   http://$LISTEN/v/$ID/master.m3u8
  DASH:  http://$LISTEN/v/$ID/manifest.mpd

  Try:   ffprobe -hide_banner http://$LISTEN/v/$ID/master.m3u8
         curl -sI http://$LISTEN/v/$ID/720p/1.m4s

  Gating by NFT arrives with the control plane (issue 4); this engine runs
  with --open, so every asset is public. Ctrl-C stops it cleanly.

MSG
exec target/release/streamgate engine --root "$ASSETS" --listen "$LISTEN" --admin "$ADMIN" --open

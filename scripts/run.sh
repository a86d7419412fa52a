#!/usr/bin/env bash
# The main job in one command: install what is missing, build, make a sample
# HLS + DASH clip (CMAF, two video rungs + audio), serve it with the engine
# and print the URLs. Ctrl-C drains and stops. Safe to run again.
#
# Until the transcoder (issue 3) and `streamgate serve` (issue 5) land, the
# sample is packaged by the ffmpeg CLI and the engine runs with --open.
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
  echo "run.sh: packaging a 12 s sample clip into $ASSETS/$ID"
  # Built beside the root under a dot name (never served), then renamed
  # into place: a half-written asset is never visible.
  stage=$(mktemp -d "$ASSETS/.staging-XXXXXX")
  trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage/r0" "$stage/r1" "$stage/r2"  # the dash muxer does not create them
  ffmpeg -hide_banner -loglevel error -nostdin \
    -f lavfi -i "testsrc2=size=1280x720:rate=30" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 12 \
    -map 0:v -map 0:v -map 1:a \
    -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p \
    -g 60 -keyint_min 60 -sc_threshold 0 \
    -filter:v:0 scale=1280:720 -b:v:0 2800k -maxrate:v:0 3000k -bufsize:v:0 5600k \
    -filter:v:1 scale=640:360 -b:v:1 800k -maxrate:v:1 900k -bufsize:v:1 1600k \
    -c:a aac -b:a 128k -ac 2 \
    -f dash -seg_duration 2 -use_template 1 -use_timeline 1 \
    -adaptation_sets "id=0,streams=v id=1,streams=a" \
    -hls_playlist 1 -hls_master_name master.m3u8 \
    -init_seg_name 'r$RepresentationID$/init.mp4' \
    -media_seg_name 'r$RepresentationID$/$Number$.m4s' \
    "$stage/manifest.mpd"
  chmod 755 "$stage"
  mv -T "$stage" "$ASSETS/$ID"
  trap - EXIT
fi

cat <<MSG

  StreamGate engine on http://$LISTEN  (metrics: http://$ADMIN/metrics)

  HLS:   http://$LISTEN/v/$ID/master.m3u8
  DASH:  http://$LISTEN/v/$ID/manifest.mpd

  Try:   ffprobe -hide_banner http://$LISTEN/v/$ID/master.m3u8
         curl -sI http://$LISTEN/v/$ID/r0/1.m4s

  Gating by NFT arrives with the control plane (issue 4); this engine runs
  with --open, so every asset is public. Ctrl-C stops it cleanly.

MSG
exec target/release/streamgate engine --root "$ASSETS" --listen "$LISTEN" --admin "$ADMIN" --open

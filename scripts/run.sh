#!/usr/bin/env bash
# The main job in one command: install what is missing, build, start the
# appliance (`streamgate serve`: control plane + engine + job runner on the
# embedded SQLite under ./var), make a sample clip, ingest it over tus,
# wait for the transcode, print the HLS and DASH URLs and how to gate the
# asset behind an NFT. Ctrl-C drains and stops. Safe to run again: the
# sample asset is reused once it is ready.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${STREAMGATE_DATA_DIR:-./var}
LISTEN=${STREAMGATE_ENGINE__LISTEN:-127.0.0.1:8080}
ADMIN=${STREAMGATE_ENGINE__ADMIN:-127.0.0.1:9100}
export STREAMGATE_DATA_DIR="$DATA" STREAMGATE_ENGINE__LISTEN="$LISTEN" STREAMGATE_ENGINE__ADMIN="$ADMIN"
ID=sample
SG="${CARGO_TARGET_DIR:-target}/release/streamgate"

scripts/setup.sh --run
cargo build --release -q -p streamgate

"$SG" serve &
serve=$!
stop() { kill -TERM "$serve" 2>/dev/null || true; wait "$serve" 2>/dev/null || true; }
trap stop EXIT
trap 'exit 130' INT TERM
for _ in $(seq 1 100); do
  curl -sf "http://$ADMIN/readyz" >/dev/null && break
  kill -0 "$serve" 2>/dev/null || { echo "run.sh: streamgate serve did not start (port $LISTEN or 50051/8081 busy?)" >&2; exit 1; }
  sleep 0.1
done

mkdir -p "$DATA/sources"
if [ ! -f "$DATA/sources/sample.mp4" ]; then
  echo "run.sh: making a 12 s 720p sample clip"
  ffmpeg -hide_banner -loglevel error -nostdin -y \
    -f lavfi -i "testsrc2=size=1280x720:rate=30" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 12 \
    -c:v libx264 -preset veryfast -crf 18 -pix_fmt yuv420p -c:a aac -b:a 192k -shortest \
    "$DATA/sources/sample.mp4.tmp.mp4"
  mv "$DATA/sources/sample.mp4.tmp.mp4" "$DATA/sources/sample.mp4"
fi

ingest() {
  "$SG" ingest "$DATA/sources/sample.mp4" --server "http://$LISTEN" --id "$ID" --title "StreamGate sample" >/dev/null
}
status() { "$SG" asset show "$ID" 2>/dev/null | awk '/^status:/ {print $2}' || true; }
start_over() {
  echo "run.sh: asset $ID is '$1' from an earlier run; starting it over"
  "$SG" asset delete "$ID" >/dev/null
  ingest
}
case "$(status)" in
  ready)
    echo "run.sh: asset $ID is already ingested and ready" ;;
  "")
    echo "run.sh: ingesting the sample (tus upload, then transcode)"
    ingest ;;
  uploading)
    # An earlier run was stopped mid-upload: tus resumes where it stopped.
    echo "run.sh: resuming the upload of $ID from an earlier run"
    ingest || start_over uploading ;;
  queued | transcoding)
    # Stopped mid-transcode: the job runner requeued the job at this start.
    echo "run.sh: asset $ID was being transcoded when the last run stopped; waiting for it"
    while :; do
      now=$(status)
      case "$now" in
        ready) break ;;
        failed | "") start_over "${now:-gone}"; break ;;
      esac
      sleep 1
    done ;;
  *)
    start_over "$(status)" ;;
esac

cat <<MSG

  StreamGate on http://$LISTEN   (metrics: http://$ADMIN/metrics)

  Catalog: http://$LISTEN/            Watch: http://$LISTEN/watch/$ID

  HLS:   http://$LISTEN/v/$ID/master.m3u8
  DASH:  http://$LISTEN/v/$ID/manifest.mpd

  Try:   ffprobe -hide_banner http://$LISTEN/v/$ID/master.m3u8
         $SG asset list
         $SG ingest YOUR_VIDEO.mp4

  Gate it behind an NFT (add [chains.<id>] rpc = ["https://…"] to a config
  file and pass --config to serve and the CLI):
         $SG asset gate $ID --chain 1 --erc721 0xYourCollection --token-id 1
  Viewers then sign in with their browser wallet on http://$LISTEN/watch/$ID
  and play tokenized /p/<token>/$ID/… URLs; /v/$ID/ stops serving.

  Ctrl-C stops it cleanly.

MSG
wait "$serve"

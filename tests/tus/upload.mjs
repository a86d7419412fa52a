// Uploads a file to a StreamGate engine with tus-js-client, the tus client
// inside Uppy, so the suite proves the server speaks what browser uploaders
// speak (tests/ingest.rs runs it).
//
// node upload.mjs FILE ENDPOINT TOKEN ASSET_ID [--during-creation]
// Prints {"url", "bytes", "created_offset"} on success (created_offset: the
// Upload-Offset the creating POST answered, null without one); exits 1 with
// the error.
import fs from "node:fs";
import path from "node:path";
import * as tus from "tus-js-client";

const [file, endpoint, token, id, ...flags] = process.argv.slice(2);
if (!id) {
  console.error("usage: node upload.mjs FILE ENDPOINT TOKEN ASSET_ID [--during-creation]");
  process.exit(2);
}
const data = fs.readFileSync(file);
let createdOffset = null;
const upload = new tus.Upload(data, {
  endpoint,
  headers: { Authorization: `Bearer ${token}` },
  metadata: { filename: path.basename(file), filetype: "video/mp4", id },
  // Several PATCH requests, so a cut connection lands mid-upload.
  chunkSize: 64 * 1024,
  uploadDataDuringCreation: flags.includes("--during-creation"),
  retryDelays: [0, 200, 500, 1000, 2000],
  onAfterResponse(req, res) {
    if (req.getMethod() === "POST") {
      createdOffset = res.getHeader("Upload-Offset") ?? null;
    }
  },
  onError(error) {
    console.error(`tus-js-client: ${error.message}`);
    process.exit(1);
  },
  onSuccess() {
    console.log(
      JSON.stringify({ url: upload.url, bytes: data.length, created_offset: createdOffset }),
    );
  },
});
upload.start();

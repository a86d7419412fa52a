//! What each tus request does to an upload: creation (with or without its
//! first chunk), `HEAD`, `PATCH`, termination.

use std::io::Read;

use base64::Engine as _;
use streamgate_api::v1::AssetStatus;
use streamgate_api::ErrorCode;
use streamgate_token::is_asset_id;

use super::expiry::{self, unix_now};
use super::receive::{receive, Received};
use super::store::Upload;
use super::wire::{chunk_checksum, field, metadata, with_expiry, Answer, OFFSET_STREAM};
use super::Ingest;
use crate::telemetry;

/// `POST /upload/`: registers the asset (`uploading`) and the upload; with
/// creation-with-upload its body is the first chunk.
pub(super) fn create(ingest: &Ingest, head: &[u8], body_len: u64, stream: &mut dyn Read) -> Answer {
    let Some(length) = field(head, "Upload-Length").and_then(|v| v.parse::<u64>().ok()) else {
        // Upload-Defer-Length is not offered.
        return Answer::new(400);
    };
    if length == 0 {
        // No video is empty; an upload that could never finish would only
        // leave an asset stuck in `uploading`.
        return Answer::new(400);
    }
    if length > ingest.config.max_bytes {
        return Answer::new(413).with("Tus-Max-Size", ingest.config.max_bytes);
    }
    if body_len > length {
        return Answer::new(413);
    }
    // Checked before anything is registered, like the rest of the request.
    let checksum = match chunk_checksum(head) {
        Ok(c) => c,
        Err(answer) => return answer,
    };
    let raw = field(head, "Upload-Metadata")
        .unwrap_or_default()
        .to_string();
    let Ok(meta) = metadata(&raw) else {
        return Answer::new(400);
    };
    let get = |key: &str| meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let filename = get("filename").unwrap_or_default();
    let sha256 = get("sha256").map(|h| h.to_ascii_lowercase());
    if sha256
        .as_ref()
        .is_some_and(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Answer::new(400);
    }
    let wanted = get("id").unwrap_or_default();
    if !wanted.is_empty() && !is_asset_id(&wanted) {
        return Answer::new(400);
    }
    let title = get("title").unwrap_or_else(|| filename.clone());
    let asset = match ingest
        .control
        .create_asset(&wanted, &title, AssetStatus::Uploading)
    {
        Ok(id) => id,
        Err(e) if e.code() == Some(ErrorCode::AssetExists) => {
            return Answer::new(409); // the asset id is taken
        }
        Err(e) => {
            tracing::warn!(error = %e, "ingest: registering the asset");
            return Answer::new(503).with("Retry-After", 5);
        }
    };
    let id = new_upload_id();
    let mut upload = Upload {
        length,
        offset: 0,
        asset: asset.clone(),
        metadata: raw,
        filename,
        sha256,
        complete: false,
        expires: expiry::from_now(ingest),
    };
    if let Err(e) = ingest.store.create(&id, &upload) {
        tracing::error!(upload = id, error = %e, "ingest: creating the upload");
        let _ = ingest.control.delete_asset(&asset);
        return Answer::new(500);
    }
    telemetry::upload("created");
    let created = Answer::new(201)
        .with("Location", format!("/upload/{id}"))
        .with("StreamGate-Asset", asset);
    if body_len == 0 {
        return with_expiry(created, &upload);
    }
    // creation-with-upload: the body is the first chunk, checked as a PATCH
    // at offset 0 would be.
    let Some(received) = ingest.claimed(&id, || {
        receive(
            ingest,
            &id,
            &mut upload,
            body_len,
            checksum.as_deref(),
            stream,
        )
    }) else {
        // The id was made a moment ago and is known to no one else.
        tracing::error!(upload = id, "ingest: a new upload was already claimed");
        return Answer::new(500).closing();
    };
    let (close, refusal) = match received {
        Received::ServerError => return Answer::new(500).closing(),
        Received::Kept(answer) => (answer.close, None),
        Received::Refused(answer) => (answer.close, Some(answer)),
    };
    match ingest.store.load(&id) {
        // Created, with whatever of the body was kept (nothing if it did
        // not verify): the client goes on from Upload-Offset with PATCH.
        Some(stored) => {
            let created = with_expiry(created.with("Upload-Offset", stored.offset), &stored);
            if close {
                created.closing()
            } else {
                created
            }
        }
        // Refused as a whole file (checksum, deleted asset): the upload is
        // gone, and the refusal is the answer.
        None => refusal.unwrap_or_else(|| {
            tracing::error!(upload = id, "ingest: a new upload vanished");
            Answer::new(500).closing()
        }),
    }
}

/// An upload that is still there: 404 for one never made (or removed),
/// 410 for one past its expiry (the sweeper removes it soon).
fn live_upload(ingest: &Ingest, id: &str) -> Result<Upload, Answer> {
    let upload = ingest.store.load(id).ok_or_else(|| Answer::new(404))?;
    if upload.expired(unix_now()) {
        return Err(Answer::new(410));
    }
    Ok(upload)
}

/// `HEAD`: where the upload stands.
pub(super) fn status(ingest: &Ingest, id: &str) -> Answer {
    let u = match live_upload(ingest, id) {
        Ok(u) => u,
        Err(answer) => return answer,
    };
    let mut a = Answer::new(200)
        .with("Upload-Offset", u.offset)
        .with("Upload-Length", u.length)
        .with("StreamGate-Asset", &u.asset);
    if !u.metadata.is_empty() {
        a = a.with("Upload-Metadata", &u.metadata);
    }
    with_expiry(a, &u)
}

/// `DELETE`: removes the upload, and its asset if it never completed.
pub(super) fn terminate(ingest: &Ingest, id: &str) -> Answer {
    ingest
        .claimed(id, || match live_upload(ingest, id) {
            Ok(upload) => {
                ingest.discard(id, &upload);
                telemetry::upload("terminated");
                Answer::new(204)
            }
            Err(answer) => answer,
        })
        .unwrap_or_else(|| Answer::new(423))
}

/// `PATCH`: the next chunk, at the acknowledged offset.
pub(super) fn patch(
    ingest: &Ingest,
    id: &str,
    head: &[u8],
    body_len: u64,
    stream: &mut dyn Read,
) -> Answer {
    if field(head, "Content-Type") != Some(OFFSET_STREAM) {
        return Answer::new(415).closing();
    }
    // Claim before reading the state: a PATCH that finished between our
    // read and our claim would otherwise leave us a stale offset.
    let claimed = ingest.claimed(id, || {
        let mut upload = match live_upload(ingest, id) {
            Ok(u) => u,
            Err(answer) => return answer.closing(),
        };
        if upload.complete {
            return Answer::new(409)
                .with("Upload-Offset", upload.offset)
                .closing();
        }
        let given = field(head, "Upload-Offset").and_then(|v| v.parse::<u64>().ok());
        if given != Some(upload.offset) {
            return Answer::new(409)
                .with("Upload-Offset", upload.offset)
                .closing();
        }
        if upload.offset + body_len > upload.length {
            return Answer::new(413).closing();
        }
        let checksum = match chunk_checksum(head) {
            Ok(c) => c,
            Err(answer) => return answer,
        };
        receive(
            ingest,
            id,
            &mut upload,
            body_len,
            checksum.as_deref(),
            stream,
        )
        .into_answer()
    });
    claimed.unwrap_or_else(|| Answer::new(423).closing())
}

fn new_upload_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

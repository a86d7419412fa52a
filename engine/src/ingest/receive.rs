//! A chunk's bytes to disk — streamed, verified, synced, and only then
//! acknowledged — and, after the last one, the whole-file check and the
//! transcode job.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use streamgate_api::v1::AssetStatus;
use streamgate_api::ErrorCode;

use super::expiry;
use super::store::Upload;
use super::wire::{with_expiry, Answer};
use super::Ingest;
use crate::telemetry;

/// Read size while streaming a body to disk.
const CHUNK: usize = 256 << 10;

/// The SHA-256 of each upload's acknowledged bytes so far, kept while the
/// process lives, so that the last chunk need not read the whole file back
/// to check it (for a large file that took long enough to time clients
/// out). After a restart the state is gone and the check reads the file.
#[derive(Default)]
pub(super) struct RunningHashes(Mutex<HashMap<String, (u64, Sha256)>>);

impl RunningHashes {
    /// The hash of the first `at` bytes, if it is known.
    fn at(&self, id: &str, at: u64) -> Option<Sha256> {
        if at == 0 {
            return Some(Sha256::new());
        }
        let map = self.0.lock().ok()?;
        map.get(id)
            .filter(|(offset, _)| *offset == at)
            .map(|(_, hash)| hash.clone())
    }

    fn keep(&self, id: &str, at: u64, hash: Sha256) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(id.to_string(), (at, hash));
        }
    }

    /// Takes an upload's hash out (it is finished or gone).
    pub(super) fn take(&self, id: &str) -> Option<(u64, Sha256)> {
        self.0.lock().ok()?.remove(id)
    }
}

/// How receiving a chunk ended.
pub(super) enum Received {
    /// On disk and acknowledged; the answer says the new offset (or, for a
    /// connection that broke mid-body, closes it: what arrived is kept).
    Kept(Answer),
    /// Not kept, for a reason the client caused: a checksum mismatch, a
    /// checksummed chunk cut short, a whole file that does not verify, an
    /// asset deleted during its upload.
    Refused(Answer),
    /// The server failed to store it (disk, hashing, queueing); logged.
    /// Nothing beyond the previous offset is acknowledged.
    ServerError,
}

impl Received {
    /// The answer to send.
    pub(super) fn into_answer(self) -> Answer {
        match self {
            Self::Kept(answer) | Self::Refused(answer) => answer,
            Self::ServerError => Answer::new(500).closing(),
        }
    }
}

/// Streams the body to the data file at the upload's offset.
pub(super) fn receive(
    ingest: &Ingest,
    id: &str,
    upload: &mut Upload,
    body_len: u64,
    checksum: Option<&[u8]>,
    stream: &mut dyn Read,
) -> Received {
    let file = match ingest.store.data_file(id) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(upload = id, error = %e, "ingest: opening the upload");
            return Received::ServerError;
        }
    };
    let start = upload.offset;
    let mut written = 0u64;
    // This chunk's hash, for its Upload-Checksum; the whole file's so far,
    // for the metadata's sha256.
    let mut hash = checksum.map(|_| Sha256::new());
    let mut whole = upload
        .sha256
        .as_ref()
        .and_then(|_| ingest.running.at(id, start));
    let mut chunk = vec![0u8; CHUNK];
    let mut broken = false;
    while written < body_len {
        let want = ((body_len - written) as usize).min(CHUNK);
        let n = match stream.read(&mut chunk[..want]) {
            Ok(0) | Err(_) => {
                broken = true;
                break;
            }
            Ok(n) => n,
        };
        if let Err(e) = file.write_all_at(&chunk[..n], start + written) {
            tracing::error!(upload = id, error = %e, "ingest: writing");
            let _ = file.set_len(start);
            return Received::ServerError;
        }
        for h in [hash.as_mut(), whole.as_mut()].into_iter().flatten() {
            h.update(&chunk[..n]);
        }
        written += n as u64;
    }
    if broken && checksum.is_some() {
        // A checksummed chunk that did not arrive whole cannot be verified.
        let _ = file.set_len(start);
        return Received::Refused(Answer::new(400).closing());
    }
    if let (Some(expected), Some(hash)) = (checksum, hash) {
        if hash.finalize()[..] != *expected {
            let _ = file.set_len(start);
            telemetry::upload("chunk_checksum_mismatch");
            return Received::Refused(Answer::new(460).with("Upload-Offset", start));
        }
    }
    // Acknowledge only what is on disk.
    if let Err(e) = file.sync_data() {
        tracing::error!(upload = id, error = %e, "ingest: syncing");
        let _ = file.set_len(start);
        return Received::ServerError;
    }
    upload.offset = start + written;
    // Progress keeps an upload alive.
    upload.expires = expiry::from_now(ingest);
    if let Err(e) = ingest.store.save(id, upload) {
        tracing::error!(upload = id, error = %e, "ingest: recording the offset");
        let _ = file.set_len(start);
        return Received::ServerError;
    }
    if let Some(whole) = whole {
        ingest.running.keep(id, upload.offset, whole);
    }
    telemetry::upload_bytes(written);
    if broken {
        // Kept; nobody is listening for the answer anyway.
        return Received::Kept(Answer::new(400).closing());
    }
    if upload.offset == upload.length {
        if let Err(refused) = finish(ingest, id, upload) {
            return refused;
        }
    }
    Received::Kept(with_expiry(
        Answer::new(204).with("Upload-Offset", upload.offset),
        upload,
    ))
}

/// The last byte arrived: verify the whole file, queue the transcode.
fn finish(ingest: &Ingest, id: &str, upload: &mut Upload) -> Result<(), Received> {
    let data = ingest.store.data_path(id);
    if let Some(expected) = &upload.sha256 {
        let actual = match ingest.running.take(id) {
            Some((at, hash)) if at == upload.length => hex(&hash.finalize()),
            _ => file_sha256(&data).map_err(|e| {
                tracing::error!(upload = id, error = %e, "ingest: hashing");
                Received::ServerError
            })?,
        };
        if &actual != expected {
            // Nothing is queued: the asset fails with the reason and the
            // bytes are dropped.
            let _ = ingest.control.update_status(
                &upload.asset,
                AssetStatus::Failed,
                0,
                "upload checksum mismatch (sha256 of the received file differs from the metadata)",
            );
            ingest.store.remove(id, upload);
            telemetry::upload("checksum_mismatch");
            return Err(Received::Refused(Answer::new(460)));
        }
    }
    // Queued before the job exists, so that an asset deleted while its
    // upload ran is noticed here and never published. An unreachable
    // control plane does not stop the upload: the job reporter tells it
    // later.
    match ingest
        .control
        .update_status(&upload.asset, AssetStatus::Queued, 0, "")
    {
        Ok(()) => {}
        Err(e) if e.code() == Some(ErrorCode::NotFound) => {
            tracing::info!(
                asset = upload.asset,
                "ingest: the asset was deleted during its upload; dropped"
            );
            ingest.store.remove(id, upload);
            telemetry::upload("asset_deleted");
            return Err(Received::Refused(Answer::new(410)));
        }
        Err(e) => tracing::warn!(asset = upload.asset, error = %e, "ingest: reporting queued"),
    }
    let source = ingest.store.source_path(id, upload);
    std::fs::rename(&data, &source).map_err(|e| {
        tracing::error!(upload = id, error = %e, "ingest: keeping the source");
        Received::ServerError
    })?;
    if let Err(e) = ingest.queue(&source, upload) {
        tracing::error!(asset = upload.asset, error = %e, "ingest: queueing the transcode");
        let _ = std::fs::rename(&source, &data);
        let _ = ingest.control.update_status(
            &upload.asset,
            AssetStatus::Failed,
            0,
            &format!("the transcode could not be queued: {e}"),
        );
        return Err(Received::ServerError);
    }
    upload.complete = true;
    let _ = ingest.store.save(id, upload);
    telemetry::upload("completed");
    Ok(())
}

fn file_sha256(path: &std::path::Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hash = Sha256::new();
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        hash.update(&chunk[..n]);
    }
    Ok(hex(&hash.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

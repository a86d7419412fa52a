//! Resumable ingest at `/upload/` on the engine's listener: the tus 1.0
//! protocol (core, creation, creation-with-upload, checksum with sha256,
//! termination, expiration), which tus clients and Uppy speak.
//!
//! Uploads are rare and heavy, and writing to disk would stall a serving
//! core, so a worker that sees a request for `/upload` hands the whole
//! connection (a duplicate of its descriptor and the bytes already read) to
//! a thread of its own here, with plain blocking I/O. The serving cores
//! never touch upload bodies.
//!
//! An unfinished upload expires `upload_expiry` after its last accepted
//! chunk (tus `expiration`, see `expiry`).
//!
//! Life of an upload: `POST` registers the asset (`uploading`) with the
//! control plane and creates `<uploads>/<id>.part`; each `PATCH` appends at
//! the acknowledged offset (a per-request `Upload-Checksum` is verified
//! before the chunk is kept; without one, whatever arrived before a broken
//! connection is kept and `HEAD` tells the client where to resume); the last
//! chunk triggers the whole-file SHA-256 check (metadata `sha256`), then the
//! asset becomes `queued` and a transcode job is submitted. Nothing is
//! queued or published from an upload that does not verify.

mod expiry;
mod methods;
mod receive;
mod store;
mod tus;
mod wire;

use std::collections::HashSet;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use streamgate_transcode_gpu::jobs::Spool;

use crate::config::{EngineConfig, IngestConfig};
use crate::control::ControlClient;
use crate::telemetry;
use store::Store;

/// Upload connections handled at once; more get 503.
const MAX_CONNECTIONS: usize = 32;

/// The ingest service shared by every worker.
pub struct Ingest {
    config: IngestConfig,
    store: Store,
    control: Arc<ControlClient>,
    spool: Arc<Spool>,
    root: PathBuf,
    limits: streamgate_net::http1::request::Limits,
    idle_timeout: std::time::Duration,
    send_timeout: std::time::Duration,
    /// Uploads with a PATCH in progress (one at a time per upload).
    busy: Claims,
    /// Whole-file hashes of uploads in progress.
    running: receive::RunningHashes,
    active: AtomicUsize,
}

impl Ingest {
    /// Opens the upload directory and starts sweeping expired uploads.
    pub fn start(
        engine: &EngineConfig,
        config: IngestConfig,
        control: Arc<ControlClient>,
        spool: Arc<Spool>,
    ) -> std::io::Result<Arc<Self>> {
        let ingest = Arc::new(Self {
            store: Store::open(config.dir.clone())?,
            config,
            control,
            spool,
            root: engine.root.clone(),
            limits: engine.limits,
            idle_timeout: engine.idle_timeout,
            send_timeout: engine.send_timeout,
            busy: Claims::default(),
            running: receive::RunningHashes::default(),
            active: AtomicUsize::new(0),
        });
        expiry::start_sweeper(&ingest)?;
        Ok(ingest)
    }

    /// Runs `work` with the upload `id` marked as being worked on (a PATCH,
    /// a DELETE, the sweeper); `None` when someone else already is.
    fn claimed<T>(&self, id: &str, work: impl FnOnce() -> T) -> Option<T> {
        let _claim = self.busy.claim(id)?;
        Some(work())
    }

    /// Removes an upload's files and, if it never completed, its asset
    /// (nothing stands behind it). The caller holds the claim.
    fn discard(&self, id: &str, upload: &store::Upload) {
        self.store.remove(id, upload);
        self.running.take(id);
        if !upload.complete {
            if let Err(e) = self.control.delete_asset(&upload.asset) {
                tracing::warn!(asset = upload.asset, error = %e, "ingest: removing the asset");
            }
        }
    }

    /// Takes over a connection whose next request is for `/upload`:
    /// `stream` is a blocking duplicate of the worker's socket, `buffered`
    /// the bytes the worker read and did not consume.
    pub fn take_over(self: &Arc<Self>, stream: TcpStream, buffered: Vec<u8>) {
        let open = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        if open > MAX_CONNECTIONS {
            self.active.fetch_sub(1, Ordering::SeqCst);
            wire::refuse_busy(stream);
            return;
        }
        telemetry::upload_connections(open);
        let ingest = Arc::clone(self);
        // Kept to answer 503 on if no thread can be made.
        let Ok(spare) = stream.try_clone() else {
            self.closed();
            wire::refuse_busy(stream);
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("sg-ingest".into())
            .spawn(move || {
                tus::serve(&ingest, stream, buffered);
                ingest.closed();
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "ingest: no thread for an upload connection");
            self.closed();
            wire::refuse_busy(spare);
        }
    }

    /// An ingest connection ended.
    fn closed(&self) {
        let open = self.active.fetch_sub(1, Ordering::SeqCst) - 1;
        telemetry::upload_connections(open);
    }
}

/// The uploads being worked on. A claim is a guard: however the work ends,
/// a panic included, dropping it releases the upload (else it would answer
/// 423 Locked until the engine restarts).
#[derive(Default)]
struct Claims(Mutex<HashSet<String>>);

/// One upload claimed; released on drop.
struct Claim<'c> {
    claims: &'c Claims,
    id: String,
}

impl Claims {
    /// Claims `id`; `None` when it is already claimed.
    fn claim(&self, id: &str) -> Option<Claim<'_>> {
        let mut busy = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        busy.insert(id.to_string()).then(|| Claim {
            claims: self,
            id: id.to_string(),
        })
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut busy = self
            .claims
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        busy.remove(&self.id);
    }
}

/// Whether a request target is for the ingest endpoint.
pub fn is_upload_target(target: &[u8]) -> bool {
    target == b"/upload" || target.starts_with(b"/upload/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_exclusive_and_released_even_by_a_panic() {
        let claims = Claims::default();
        let first = claims.claim("u1").expect("free");
        assert!(claims.claim("u1").is_none(), "one PATCH at a time");
        assert!(claims.claim("u2").is_some(), "other uploads are free");
        drop(first);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _claim = claims.claim("u1").expect("released");
            panic!("a bug while receiving");
        }));
        assert!(panicked.is_err());
        assert!(
            claims.claim("u1").is_some(),
            "the panic released the upload"
        );
    }
}

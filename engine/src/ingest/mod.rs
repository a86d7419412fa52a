//! Resumable ingest at `/upload/` on the engine's listener: the tus 1.0
//! protocol (core, creation, creation-with-upload, checksum with sha256,
//! termination, expiration), which tus clients and Uppy speak.
//!
//! Uploads are rare and heavy, and writing to disk would stall a serving
//! core, so each request for `/upload` is answered on a thread of its own
//! here, with plain blocking I/O: the connection's worker relays the body
//! into a socket pair and waits, through its ring, for the answer, which it
//! sends like any other response. The connection never leaves its worker,
//! so the same holds for any protocol the worker speaks.
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
pub mod relay;
mod store;
mod tus;
mod wire;

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use crate::config::{EngineConfig, IngestConfig};
use crate::control::ControlClient;
use crate::telemetry;
use store::Store;
use streamgate_net::http1::request::Method;
pub use tus::body_length;
pub use wire::Answer;

/// Upload requests handled at once; more get 503.
const MAX_REQUESTS: usize = 32;

/// The ingest service shared by every worker.
pub struct Ingest {
    config: IngestConfig,
    store: Store,
    control: Arc<ControlClient>,
    jobs: crate::queue::JobSink,
    root: PathBuf,
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
        jobs: crate::queue::JobSink,
    ) -> std::io::Result<Arc<Self>> {
        let ingest = Arc::new(Self {
            store: Store::open(config.dir.clone())?,
            config,
            control,
            jobs,
            root: engine.root.clone(),
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

    /// Queues the transcode of upload `upload`'s source at `source`, with
    /// the configured ladder and segment length.
    fn queue(&self, source: &std::path::Path, upload: &store::Upload) -> Result<(), String> {
        self.jobs.submit(
            source,
            &upload.asset,
            &self.root.join(&upload.asset),
            &self.config.ladder,
            self.config.segment_seconds,
        )
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

    /// Starts answering one request for `/upload…` on an ingest thread:
    /// the caller (the connection's worker) writes the body into
    /// [`UploadCall::body`] and takes the answer from
    /// [`UploadCall::answer`]. A busy service (or one that cannot make a
    /// thread) answers 503 at once.
    pub fn start_request(
        self: &Arc<Self>,
        method: Method,
        target: String,
        head: Vec<u8>,
    ) -> Result<UploadCall, Answer> {
        let open = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        if open > MAX_REQUESTS {
            self.active.fetch_sub(1, Ordering::SeqCst);
            return Err(Answer::busy());
        }
        telemetry::upload_connections(open);
        let started = self.spawn_request(method, target, head);
        if started.is_err() {
            self.closed();
        }
        started
    }

    fn spawn_request(
        self: &Arc<Self>,
        method: Method,
        target: String,
        head: Vec<u8>,
    ) -> Result<UploadCall, Answer> {
        let busy = |e: std::io::Error| {
            tracing::warn!(error = %e, "ingest: cannot start an upload request");
            Answer::busy()
        };
        let (worker_end, mut ingest_end) = UnixStream::pair().map_err(busy)?;
        let _ = ingest_end.set_read_timeout(Some(self.idle_timeout));
        let _ = ingest_end.set_write_timeout(Some(self.send_timeout));
        let (tx, rx) = mpsc::sync_channel(1);
        let ingest = Arc::clone(self);
        std::thread::Builder::new()
            .name("sg-ingest".into())
            .spawn(move || {
                let answer = tus::answer(&ingest, method, &target, &head, &mut ingest_end);
                let _ = tx.send(answer);
                // Wakes the worker: the answer is ready.
                let _ = ingest_end.write_all(&[1]);
                ingest.closed();
            })
            .map_err(busy)?;
        Ok(UploadCall {
            body: worker_end,
            answer: rx,
        })
    }

    /// An upload request ended.
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

/// One upload request being answered on an ingest thread.
pub struct UploadCall {
    /// The worker's end of the body socket: the request's body goes in;
    /// one byte (or the end of the stream) comes back once the answer is
    /// ready, so the worker can wait for it through its ring.
    pub body: UnixStream,
    /// The answer, once the body socket says it is there.
    pub answer: mpsc::Receiver<Answer>,
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

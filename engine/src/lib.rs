//! The StreamGate data plane: a thread-per-core origin on io_uring.
//!
//! [`Engine::start`] spawns one worker thread per core. Each worker pins
//! itself to its core, runs its own monoio runtime (one io_uring ring) and
//! accepts on its own `SO_REUSEPORT` listener, so connections never migrate
//! between cores and the hit path takes no cross-core lock.
//!
//! Module map:
//! - [`config`]: the explicit configuration struct;
//! - `worker`: per-core runtime, listener and accept loop;
//! - `connection`: one HTTP/1.1 connection (keep-alive, pipelining, timeouts);
//! - `serve`: from a parsed request to a response (routing, files, Range,
//!   304, cache headers, CORS);
//! - `fs`: opening files strictly beneath the root (`openat2`);
//! - `cache`: the per-core hot-segment cache;
//! - `gate`: playback tokens for `/p/<token>/<asset>/…` and open assets for
//!   `/v/`, decided per core;
//! - `sync`: pulls keys, revocations and open assets from the control plane;
//! - `telemetry`: per-core counters flushed to the Prometheus recorder;
//! - `admin`: `/metrics`, `/healthz`, `/readyz`, `/jobs`;
//! - `jobs`: the transcode job runner (spool in `streamgate-transcode-gpu`),
//!   reporting asset status to the control plane;
//! - `ingest`: resumable uploads (tus 1.0) at `/upload/`, off the serving cores;
//! - `control`: operator calls to the control plane (register, status);
//! - `shutdown`: draining on SIGTERM.

pub mod config;

mod admin;
mod cache;
mod connection;
mod control;
mod engine;
mod fs;
mod gate;
mod ingest;
mod jobs;
mod serve;
mod shutdown;
mod sync;
mod telemetry;
mod worker;

pub use config::{AccessPolicy, EngineConfig, IngestConfig, JobsConfig};
pub use engine::{Engine, EngineError};
pub use shutdown::{block_termination_signals, wait_for_termination_signal};

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
//! - `context`: what one core's tasks share (site, counters, buffer and
//!   pipe pools);
//! - `http1`: one HTTP/1.1 connection (keep-alive, pipelining, timeouts);
//! - `deadline`: idle and header timeouts as one ordered map per core,
//!   fired by the housekeeping tick;
//! - `park`: keep-alive connections idle a while wait in one epoll set per
//!   core instead of a task each;
//! - `transport`: the bytes under the protocol (plain TCP: readiness reads,
//!   zero-copy file bodies);
//! - `serve`: from a request to a protocol-neutral response (routing, files,
//!   Range, 304, cache headers, CORS);
//! - `fs`: reading a cached body (files are opened through
//!   `streamgate-assets`);
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

pub mod acme;
mod admin;
mod cache;
mod context;
mod control;
mod deadline;
mod engine;
mod fs;
mod gate;
mod http1;
mod http2;
mod ingest;
mod jobs;
pub mod ktls;
pub mod liveness;
mod park;
pub mod queue;
pub mod reload;
mod serve;
mod shutdown;
mod storage;
mod sync;
mod telemetry;
pub mod tls;
mod transport;
pub mod web;
mod worker;

pub use config::{
    AccessPolicy, BucketStorage, ClientIdentity, ControlEndpoint, EngineConfig, H2Limits,
    IngestConfig, JobsConfig, TlsConfig,
};
pub use control::Replicas;
pub use engine::{Engine, EngineError, Health as EngineHealth};
pub use shutdown::{
    block_termination_signals, wait_for_termination_signal, wait_for_termination_signal_or,
};

//! The bundled load-test harness behind `streamgate loadtest`.
//!
//! [`run`] drives one origin over HTTP/1.1 keep-alive connections or
//! HTTP/2 streams, plain or over TLS, closed loop (as fast as the server
//! answers) or open loop at a fixed rate, where each request's latency
//! counts from the moment it was *meant* to be sent: a server that stalls
//! makes every request scheduled behind the stall late, and the tail shows
//! it (coordinated omission corrected; the raw figure, from the actual
//! send, is reported beside it). [`viewers`] simulates players of an HLS
//! or DASH stream: a playback buffer, an ABR rule, a slow link if asked,
//! and what a viewer lives through (startup, stalls, switches, bitrate).
//! Latencies go into HdrHistograms, so memory stays flat however long the
//! run; work runs thread-per-core ([`cores`]), a connection or a viewer
//! being a task.
//!
//! Modules: [`target`] (what may be loaded, and where), [`urls`] (a list
//! of requests with weights, or an access log), [`client`] (HTTP/1.1 and
//! HTTP/2 over TCP or TLS), [`run`] (the schedule and the lanes),
//! [`viewers`] (the players), [`report`] and [`html`] (the figures, as a
//! table, as JSON — see `docs/loadtest.md` — and as a page of plots).
//!
//! [`Report::merge`] and [`ViewersReport::merge`] combine runs made at the
//! same time on several load machines (the histograms travel in the JSON).

pub mod client;
pub mod cores;
mod error;
pub mod html;
pub mod report;
pub mod run;
pub mod target;
pub mod urls;
pub mod viewers;

pub use client::Protocol;
pub use error::LoadError;
pub use report::Report;
pub use run::{run, RunOptions, Status};
pub use target::Target;
pub use viewers::{ViewersOptions, ViewersReport};

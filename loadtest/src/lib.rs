//! The bundled load-test harness behind `streamgate loadtest`.
//!
//! [`run`] drives one URL over HTTP/1.1 keep-alive connections, closed loop
//! (as fast as the server answers) or open loop at a fixed rate, where each
//! request's latency counts from the moment it was *meant* to be sent: a
//! server that stalls makes every request scheduled behind the stall late,
//! and the tail shows it (coordinated omission corrected; the raw figure,
//! from the actual send, is reported beside it). Latencies go into
//! HdrHistograms, so memory stays flat however long the run.
//!
//! Modules: [`target`] (what may be loaded, and where), [`urls`] (a list
//! of requests with weights, or an access log), [`run`] (the
//! schedule and the connections), [`report`] (the figures, as a table and
//! as JSON, see `docs/loadtest.md`).
//!
//! [`Report::merge`] combines runs made at the same time on several load
//! machines (the histograms travel in the JSON).
//!
//! Still to come (issue 10): `viewers` (simulated players), HTTP/2 and TLS,
//! HTML plots.

mod error;
pub mod report;
pub mod run;
pub mod target;
pub mod urls;

pub use error::LoadError;
pub use report::Report;
pub use run::{run, RunOptions, Status};
pub use target::Target;

//! The admin listener: `/metrics`, `/healthz` (503 while a worker's loop
//! is stuck), `/readyz`, `/jobs`, `POST /tls/reload` (what `streamgate tls
//! reload` calls; SIGHUP does the same), `POST /tls/renew` (ACME now),
//! and, with `[engine]
//! fault_injection`, `POST /debug/stall?worker=N&seconds=S`; `GET /config`
//! shows the keys read only at start (what `streamgate config check`
//! compares a changed file with).
//!
//! It runs on its own plain thread, off the worker cores' rings: scrapes are
//! rare, and a slow scraper must never take a serving core's time.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use streamgate_net::http1::request::{self, Limits, Method, Parsed};
use streamgate_net::http1::write_head;
use streamgate_net::response::{DateCache, ResponseHead};

use crate::jobs::Runner;
use crate::shutdown::Drain;

/// Binds the admin address and serves it on a background thread.
pub fn start(addr: SocketAddr, metrics: PrometheusHandle, state: State) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    let state = Served { metrics, state };
    std::thread::Builder::new()
        .name("sg-admin".into())
        .spawn(move || {
            let mut dates = DateCache::default();
            for stream in listener.incoming().flatten() {
                let _ = handle(stream, &state, &mut dates);
            }
        })?;
    Ok(())
}

/// What the admin endpoints read.
pub struct State {
    /// Every worker listens.
    pub ready: Arc<AtomicBool>,
    /// The process-wide drain flag.
    pub drain: Drain,
    /// The job runner, for `/jobs` and the job gauges.
    pub jobs: Option<Arc<Runner>>,
    /// The TLS certificates, for `/tls/reload`.
    pub certs: Option<Arc<crate::tls::CertStore>>,
    /// The workers' heartbeats, for `/healthz` and `/debug/stall`.
    pub liveness: Arc<crate::liveness::Liveness>,
    /// Whether `/debug/stall` exists.
    pub fault_injection: bool,
    /// The start-time keys the engine runs with (`GET /config`).
    pub start_time_keys: std::collections::BTreeMap<&'static str, String>,
    /// The ACME renewal thread, for `POST /tls/renew`.
    pub renewer: Option<crate::acme::Renewer>,
    /// The local copy of the bucket, for its metrics.
    pub read_through: Option<Arc<streamgate_assets::ReadThrough>>,
}

/// A worker whose loop has not turned this long is stuck.
const STUCK_AFTER: Duration = Duration::from_secs(2);

struct Served {
    metrics: PrometheusHandle,
    state: State,
}

fn handle(mut stream: TcpStream, served: &Served, dates: &mut DateCache) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let limits = Limits::default();
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let (status, content_type, body) = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        match request::parse(&buf, &limits) {
            Ok(Parsed::Partial) => continue,
            Ok(Parsed::Complete { request, .. }) => break route(&request, served),
            Err(e) => break (e.status(), "text/plain", "bad request\n".to_string()),
        }
    };
    let mut head = ResponseHead::default();
    head.reset(status)
        .header("Content-Type", content_type)
        .header("Content-Length", body.len())
        .header("Cache-Control", "no-store");
    let mut out = Vec::new();
    write_head(&head, dates.now(), true, &mut out);
    stream.write_all(&out)?;
    stream.write_all(body.as_bytes())
}

fn route(req: &request::Request<'_>, served: &Served) -> (u16, &'static str, String) {
    let state = &served.state;
    let path = req.target.split(|&b| b == b'?').next().unwrap_or_default();
    if req.method == Method::Post && path == b"/debug/stall" {
        if !state.fault_injection {
            return (
                404,
                "text/plain",
                "fault injection is off ([engine] fault_injection = true turns it on)\n".into(),
            );
        }
        return stall(req.target, &state.liveness);
    }
    if req.method == Method::Post && req.target == b"/tls/renew" {
        return match &state.renewer {
            Some(renewer) if renewer.renew_now() => (
                202,
                "text/plain",
                "renewal started (see the log and metrics)\n".into(),
            ),
            _ => (404, "text/plain", "no [engine.acme]\n".into()),
        };
    }
    if req.method == Method::Post && req.target == b"/tls/reload" {
        return match &state.certs {
            None => (404, "text/plain", "no TLS listener\n".into()),
            Some(certs) => match certs.reload() {
                Ok(()) => {
                    tracing::info!("TLS certificate reloaded (admin)");
                    (200, "text/plain", "reloaded\n".into())
                }
                Err(e) => (
                    422,
                    "text/plain",
                    format!("{e}; keeping the loaded certificate\n"),
                ),
            },
        };
    }
    if !matches!(req.method, Method::Get | Method::Head) {
        return (405, "text/plain", "method not allowed\n".into());
    }
    let ready = state.ready.load(Ordering::SeqCst) && !state.drain.is_triggered();
    match path {
        b"/metrics" => {
            if let Some(jobs) = &state.jobs {
                jobs.export_metrics();
            }
            if let Some(copy) = &state.read_through {
                crate::storage::export_metrics(copy);
            }
            served.metrics.run_upkeep();
            (200, "text/plain; version=0.0.4", served.metrics.render())
        }
        b"/config" => {
            let json = serde_json::to_string_pretty(&state.start_time_keys)
                .unwrap_or_else(|_| "{}".into());
            (200, "application/json", json + "\n")
        }
        b"/healthz" => {
            let stalled = state.liveness.stalled(STUCK_AFTER);
            if stalled.is_empty() {
                (200, "text/plain", "ok\n".into())
            } else {
                (503, "text/plain", format!("stuck workers: {stalled:?}\n"))
            }
        }
        b"/readyz" if ready => (200, "text/plain", "ready\n".into()),
        b"/readyz" => (503, "text/plain", "not ready\n".into()),
        b"/jobs" => match &state.jobs {
            Some(jobs) => (200, "text/plain", jobs.listing()),
            None => (404, "text/plain", "no job runner\n".into()),
        },
        _ => (404, "text/plain", "not found\n".into()),
    }
}

/// `POST /debug/stall?worker=N&seconds=S`: blocks worker N's thread for S
/// seconds (at most 600) at its next tick.
fn stall(target: &[u8], liveness: &crate::liveness::Liveness) -> (u16, &'static str, String) {
    let query = std::str::from_utf8(target)
        .ok()
        .and_then(|t| t.split_once('?'))
        .map_or("", |(_, q)| q);
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.parse::<u64>().ok())
    };
    match (param("worker"), param("seconds")) {
        (Some(worker), Some(seconds)) if seconds <= 600 => {
            let index = usize::try_from(worker).unwrap_or(usize::MAX);
            if liveness.request_stall(index, seconds) {
                tracing::warn!(worker, seconds, "fault injection requested (admin)");
                (
                    200,
                    "text/plain",
                    format!("worker {worker} stalls {seconds}s\n"),
                )
            } else {
                (404, "text/plain", "no such worker\n".into())
            }
        }
        _ => (
            400,
            "text/plain",
            "want ?worker=N&seconds=S (S at most 600)\n".into(),
        ),
    }
}

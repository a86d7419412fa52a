//! The admin listener: `/metrics`, `/healthz`, `/readyz`, `/jobs`, and
//! `POST /tls/reload` (what `streamgate tls reload` calls; SIGHUP does the
//! same).
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
pub fn start(
    addr: SocketAddr,
    metrics: PrometheusHandle,
    ready: Arc<AtomicBool>,
    drain: Drain,
    jobs: Option<Arc<Runner>>,
    certs: Option<Arc<crate::tls::CertStore>>,
) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    let state = State {
        metrics,
        ready,
        drain,
        jobs,
        certs,
    };
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
struct State {
    metrics: PrometheusHandle,
    ready: Arc<AtomicBool>,
    drain: Drain,
    jobs: Option<Arc<Runner>>,
    certs: Option<Arc<crate::tls::CertStore>>,
}

fn handle(mut stream: TcpStream, state: &State, dates: &mut DateCache) -> io::Result<()> {
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
            Ok(Parsed::Complete { request, .. }) => break route(&request, state),
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

fn route(req: &request::Request<'_>, state: &State) -> (u16, &'static str, String) {
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
    let path = req.target.split(|&b| b == b'?').next().unwrap_or_default();
    let ready = state.ready.load(Ordering::SeqCst) && !state.drain.is_triggered();
    match path {
        b"/metrics" => {
            if let Some(jobs) = &state.jobs {
                jobs.export_metrics();
            }
            state.metrics.run_upkeep();
            (200, "text/plain; version=0.0.4", state.metrics.render())
        }
        b"/healthz" => (200, "text/plain", "ok\n".into()),
        b"/readyz" if ready => (200, "text/plain", "ready\n".into()),
        b"/readyz" => (503, "text/plain", "not ready\n".into()),
        b"/jobs" => match &state.jobs {
            Some(jobs) => (200, "text/plain", jobs.listing()),
            None => (404, "text/plain", "no job runner\n".into()),
        },
        _ => (404, "text/plain", "not found\n".into()),
    }
}

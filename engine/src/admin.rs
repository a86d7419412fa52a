//! The admin listener: `/metrics`, `/healthz`, `/readyz`.
//!
//! It runs on its own plain thread, off the worker cores' rings: scrapes are
//! rare, and a slow scraper must never take a serving core's time.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use streamgate_net::request::{self, Limits, Method, Parsed};
use streamgate_net::response::{DateCache, HeadWriter};

use crate::shutdown::Drain;

/// Binds the admin address and serves it on a background thread.
pub fn start(
    addr: SocketAddr,
    metrics: PrometheusHandle,
    ready: Arc<AtomicBool>,
    drain: Drain,
) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    std::thread::Builder::new()
        .name("sg-admin".into())
        .spawn(move || {
            let mut dates = DateCache::default();
            for stream in listener.incoming().flatten() {
                let _ = handle(stream, &metrics, &ready, &drain, &mut dates);
            }
        })?;
    Ok(())
}

fn handle(
    mut stream: TcpStream,
    metrics: &PrometheusHandle,
    ready: &AtomicBool,
    drain: &Drain,
    dates: &mut DateCache,
) -> io::Result<()> {
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
            Ok(Parsed::Complete { request, .. }) => break route(&request, metrics, ready, drain),
            Err(e) => break (e.status(), "text/plain", "bad request\n".to_string()),
        }
    };
    let mut head = Vec::new();
    let mut w = HeadWriter::new(&mut head, status, dates.now());
    w.header("Content-Type", content_type)
        .header("Content-Length", body.len())
        .header("Cache-Control", "no-store")
        .header("Connection", "close");
    w.finish();
    stream.write_all(&head)?;
    stream.write_all(body.as_bytes())
}

fn route(
    req: &request::Request<'_>,
    metrics: &PrometheusHandle,
    ready: &AtomicBool,
    drain: &Drain,
) -> (u16, &'static str, String) {
    if !matches!(req.method, Method::Get | Method::Head) {
        return (405, "text/plain", "method not allowed\n".into());
    }
    let path = req.target.split(|&b| b == b'?').next().unwrap_or_default();
    match path {
        b"/metrics" => {
            metrics.run_upkeep();
            (200, "text/plain; version=0.0.4", metrics.render())
        }
        b"/healthz" => (200, "text/plain", "ok\n".into()),
        b"/readyz" if ready.load(Ordering::SeqCst) && !drain.is_triggered() => {
            (200, "text/plain", "ready\n".into())
        }
        b"/readyz" => (503, "text/plain", "not ready\n".into()),
        _ => (404, "text/plain", "not found\n".into()),
    }
}

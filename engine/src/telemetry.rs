//! Metrics: per-core counters on the hot path, flushed to the process-wide
//! Prometheus recorder a few times a second.
//!
//! Recording straight into `metrics` handles would bounce their atomics
//! between cores on every request; plain per-worker integers cost nothing and
//! the exporter only needs them as fresh as a scrape.

use std::collections::HashMap;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Metric names, shared by the recorder setup and the flush.
mod name {
    pub const REQUESTS: &str = "streamgate_http_requests_total";
    pub const BYTES_SENT: &str = "streamgate_http_response_bytes_total";
    pub const DURATION: &str = "streamgate_http_request_duration_seconds";
    pub const OPEN_CONNECTIONS: &str = "streamgate_http_open_connections";
    pub const PARKED_CONNECTIONS: &str = "streamgate_http_parked_connections";
    pub const REJECTED: &str = "streamgate_http_connections_rejected_total";
    pub const CACHE_HITS: &str = "streamgate_cache_hits_total";
    pub const CACHE_MISSES: &str = "streamgate_cache_misses_total";
    pub const CACHE_BYTES: &str = "streamgate_cache_bytes";
    pub const TOKENS_REJECTED: &str = "streamgate_tokens_rejected_total";
    pub const UPLOADS: &str = "streamgate_uploads_total";
    pub const UPLOAD_BYTES: &str = "streamgate_upload_bytes_total";
    pub const UPLOAD_CONNECTIONS: &str = "streamgate_upload_connections";
    pub const TLS_CONNECTIONS: &str = "streamgate_tls_connections_total";
    pub const TLS_HANDSHAKE_FAILURES: &str = "streamgate_tls_handshake_failures_total";
    pub const KTLS: &str = "streamgate_ktls_available";
    pub const KTLS_CONNECTIONS: &str = "streamgate_ktls_connections_total";
    pub const ACME: &str = "streamgate_acme_issuances_total";
    pub const CERTIFICATE_EXPIRY: &str = "streamgate_tls_certificate_expiry_timestamp_seconds";
    pub const H2_GOAWAYS: &str = "streamgate_h2_goaways_total";
    pub const H2_CONNECTION_ERRORS: &str = "streamgate_h2_connection_errors_total";
}

/// Installs the global Prometheus recorder (once per process) and returns
/// the handle the admin listener renders from.
pub fn install() -> Result<PrometheusHandle, String> {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let buckets = [
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    // Histograms, not summaries: Prometheus aggregates buckets across
    // nodes (histogram_quantile); the control plane's RPC latency too,
    // which this recorder holds inside `serve`.
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(name::DURATION.into()),
            &buckets,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full("streamgate_rpc_latency_seconds".into()),
                &buckets,
            )
        })
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    describe_counter!(
        name::REQUESTS,
        "HTTP requests answered, by method, status and protocol (http1, h2)"
    );
    describe_counter!(
        name::BYTES_SENT,
        Unit::Bytes,
        "Response bytes written, heads included"
    );
    describe_histogram!(
        name::DURATION,
        Unit::Seconds,
        "Time from a complete request head to the last byte written"
    );
    describe_gauge!(name::OPEN_CONNECTIONS, "Client connections currently open");
    describe_gauge!(
        name::PARKED_CONNECTIONS,
        "Open connections idle long enough to wait without a task (in the epoll set)"
    );
    describe_counter!(
        name::REJECTED,
        "Connections refused with 503 at the connection cap"
    );
    describe_counter!(
        name::CACHE_HITS,
        "Responses served from the hot-segment cache"
    );
    describe_counter!(
        name::CACHE_MISSES,
        "File responses not served from the hot-segment cache"
    );
    describe_gauge!(
        name::CACHE_BYTES,
        Unit::Bytes,
        "Bytes held by the hot-segment caches"
    );
    describe_counter!(
        name::UPLOADS,
        "Upload events (tus): created, completed, checksum_mismatch (whole file), \
         chunk_checksum_mismatch, terminated, expired, asset_deleted"
    );
    describe_counter!(
        name::UPLOAD_BYTES,
        Unit::Bytes,
        "Upload bytes written to disk and acknowledged"
    );
    describe_gauge!(
        name::UPLOAD_CONNECTIONS,
        "Connections the ingest threads are serving"
    );
    describe_counter!(
        name::TLS_CONNECTIONS,
        "TLS connections whose handshake completed, by the protocol ALPN chose (h2, http1) and TLS version"
    );
    describe_counter!(
        name::TLS_HANDSHAKE_FAILURES,
        "TLS handshakes that failed, by reason (timeout, closed, alert_received, no_alpn, no_certificate: \
         a name no SNI certificate has under strict_sni, …)"
    );
    describe_counter!(
        name::H2_GOAWAYS,
        "Graceful HTTP/2 GOAWAYs sent, by reason (idle, draining)"
    );
    describe_counter!(
        name::H2_CONNECTION_ERRORS,
        "HTTP/2 connections ended by an error, by what ended them (enhance_your_calm, protocol_error, \
         compression_error, frame_size_error: a GOAWAY we sent; io: the flood guard or the socket; peer: \
         the client's GOAWAY or reset)"
    );
    describe_gauge!(
        name::CERTIFICATE_EXPIRY,
        "When each TLS certificate (by file) expires, in Unix seconds: alert on it minus time()"
    );
    describe_gauge!(
        name::KTLS,
        "1 when HTTP/1.1 TLS connections go to kernel TLS after the handshake (the kernel has kTLS and \
         [engine.tls] ktls is on)"
    );
    describe_counter!(
        name::ACME,
        "ACME issuances and renewals, by result (issued, failed)"
    );
    describe_counter!(
        name::KTLS_CONNECTIONS,
        "HTTP/1.1 TLS connections by where their records went while kTLS is on (kernel; userspace: the \
         session could not be handed over; failed: the kernel refused the keys)"
    );
    // Publish every unlabelled series at zero so dashboards and alerts see
    // them before the first request.
    for metric in [
        name::BYTES_SENT,
        name::REJECTED,
        name::CACHE_HITS,
        name::CACHE_MISSES,
        name::UPLOAD_BYTES,
    ] {
        counter!(metric).absolute(0);
    }
    gauge!(name::OPEN_CONNECTIONS).set(0.0);
    gauge!(name::PARKED_CONNECTIONS).set(0.0);
    gauge!(name::UPLOAD_CONNECTIONS).set(0.0);
    gauge!(name::CACHE_BYTES).set(0.0);
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// A TLS connection past its handshake (rare next to requests: straight
/// to the recorder).
pub fn tls_connection(protocol: &'static str, version: &'static str) {
    counter!(name::TLS_CONNECTIONS, "protocol" => protocol, "version" => version).increment(1);
}

/// A failed TLS handshake.
pub fn handshake_failed(reason: &'static str) {
    counter!(name::TLS_HANDSHAKE_FAILURES, "reason" => reason).increment(1);
}

/// A graceful GOAWAY sent.
pub fn goaway(reason: &'static str) {
    counter!(name::H2_GOAWAYS, "reason" => reason).increment(1);
}

/// An HTTP/2 connection ended by an error.
pub fn h2_connection_error(why: &'static str) {
    counter!(name::H2_CONNECTION_ERRORS, "why" => why).increment(1);
}

/// When the certificate in `file` expires (Unix seconds).
pub fn certificate_expiry(file: &str, unix_seconds: f64) {
    gauge!(name::CERTIFICATE_EXPIRY, "cert" => file.to_string()).set(unix_seconds);
}

/// Where a TLS HTTP/1.1 connection's records went, kTLS on.
pub fn ktls_connection(outcome: &'static str) {
    counter!(name::KTLS_CONNECTIONS, "outcome" => outcome).increment(1);
}

/// An ACME issuance ended.
pub fn acme(result: &'static str) {
    counter!(name::ACME, "result" => result).increment(1);
}

/// Whether kTLS is in use.
pub fn ktls(available: bool) {
    gauge!(name::KTLS).set(if available { 1.0 } else { 0.0 });
}

/// An upload event (ingest threads: rare, so straight to the recorder).
pub fn upload(result: &'static str) {
    counter!(name::UPLOADS, "result" => result).increment(1);
}

/// Upload bytes acknowledged.
pub fn upload_bytes(bytes: u64) {
    counter!(name::UPLOAD_BYTES).increment(bytes);
}

/// Upload requests now being answered on ingest threads.
pub fn upload_connections(open: usize) {
    gauge!(name::UPLOAD_CONNECTIONS).set(open as f64);
}

/// One worker's counters since the last flush.
#[derive(Default)]
pub struct WorkerStats {
    requests: HashMap<(&'static str, &'static str, u16), u64>,
    bytes_sent: u64,
    durations: Vec<f64>,
    open_connections: i64,
    flushed_open: i64,
    rejected: u64,
    cache_hits: u64,
    cache_misses: u64,
    cache_bytes: usize,
    flushed_cache_bytes: usize,
    parked: usize,
    flushed_parked: usize,
    tokens_rejected: HashMap<&'static str, u64>,
}

impl WorkerStats {
    /// Records one answered request (`protocol`: `http1` or `h2`).
    pub fn request(
        &mut self,
        protocol: &'static str,
        method: &'static str,
        status: u16,
        bytes: u64,
        seconds: f64,
    ) {
        *self.requests.entry((protocol, method, status)).or_default() += 1;
        self.bytes_sent += bytes;
        self.durations.push(seconds);
    }

    /// A connection opened (+1) or closed (-1).
    pub fn connection(&mut self, delta: i64) {
        self.open_connections += delta;
    }

    /// Connections parked on this worker now.
    pub fn parked(&mut self, now: usize) {
        self.parked = now;
    }

    /// Open connections on this worker.
    pub fn open_connections(&self) -> i64 {
        self.open_connections
    }

    /// A connection refused at the cap.
    pub fn rejected(&mut self) {
        self.rejected += 1;
    }

    /// A cache lookup's outcome.
    pub fn cache(&mut self, hit: bool) {
        if hit {
            self.cache_hits += 1;
        } else {
            self.cache_misses += 1;
        }
    }

    /// A playback token refused, by reason.
    pub fn token_rejected(&mut self, reason: &'static str) {
        *self.tokens_rejected.entry(reason).or_default() += 1;
    }

    /// The worker cache's current size.
    pub fn cache_bytes(&mut self, bytes: usize) {
        self.cache_bytes = bytes;
    }

    /// Moves everything recorded so far into the global recorder.
    pub fn flush(&mut self) {
        for ((protocol, method, status), n) in self.requests.drain() {
            counter!(
                name::REQUESTS,
                "method" => method,
                "status" => status.to_string(),
                "protocol" => protocol
            )
            .increment(n);
        }
        for (reason, n) in self.tokens_rejected.drain() {
            counter!(name::TOKENS_REJECTED, "reason" => reason).increment(n);
        }
        add(name::BYTES_SENT, &mut self.bytes_sent);
        add(name::REJECTED, &mut self.rejected);
        add(name::CACHE_HITS, &mut self.cache_hits);
        add(name::CACHE_MISSES, &mut self.cache_misses);
        if !self.durations.is_empty() {
            let h = histogram!(name::DURATION);
            for d in self.durations.drain(..) {
                h.record(d);
            }
        }
        // Gauges are shared by all workers: apply this worker's change only.
        let open_delta = self.open_connections - self.flushed_open;
        if open_delta != 0 {
            gauge!(name::OPEN_CONNECTIONS).increment(open_delta as f64);
            self.flushed_open = self.open_connections;
        }
        let parked_delta = self.parked as f64 - self.flushed_parked as f64;
        if parked_delta != 0.0 {
            gauge!(name::PARKED_CONNECTIONS).increment(parked_delta);
            self.flushed_parked = self.parked;
        }
        let cache_delta = self.cache_bytes as f64 - self.flushed_cache_bytes as f64;
        if cache_delta != 0.0 {
            gauge!(name::CACHE_BYTES).increment(cache_delta);
            self.flushed_cache_bytes = self.cache_bytes;
        }
    }
}

fn add(metric: &'static str, value: &mut u64) {
    if *value > 0 {
        counter!(metric).increment(std::mem::take(value));
    }
}

/// Which transcode stages can run on the GPU here (probed once at start):
/// `streamgate_gpu_stage_usable{stage}` 1 or 0.
pub(crate) fn gpu_stages(caps: &streamgate_transcode_gpu::stages::Capabilities) {
    use streamgate_transcode_gpu::stages::GpuPath;
    for (stage, path) in [
        ("decode", &caps.decode),
        ("scale", &caps.scale),
        ("encode", &caps.encode),
    ] {
        metrics::gauge!("streamgate_gpu_stage_usable", "stage" => stage)
            .set(if *path == GpuPath::Usable { 1.0 } else { 0.0 });
    }
}

//! Engine configuration: every knob the data plane reads, in one struct.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use streamgate_net::http1::request::Limits;

/// Who may fetch assets under `/v/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessPolicy {
    /// `--open`: every asset is served without a token.
    Open,
    /// No asset is served under `/v/` until the control plane says which are
    /// open. Without a control plane the engine fails closed.
    Closed,
}

/// Configuration of the data plane.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Directory holding `<asset-id>/…` (Contract 2).
    pub root: PathBuf,
    /// Public HTTP listener.
    pub listen: SocketAddr,
    /// Admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub admin: SocketAddr,
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
    /// Access policy for `/v/`.
    pub access: AccessPolicy,
    /// Request-head limits (414 / 431).
    pub limits: Limits,
    /// Longest wait for a complete request head once its first byte arrived
    /// (slowloris defence).
    pub header_timeout: Duration,
    /// Longest wait for the next request on a kept-alive connection.
    pub idle_timeout: Duration,
    /// Longest stall while the peer does not drain a response.
    pub send_timeout: Duration,
    /// Open connections allowed across all workers; past it new ones get 503.
    pub max_connections: usize,
    /// Hot-cache memory across all workers, in bytes, for small bodies.
    pub cache_bytes: usize,
    /// Largest body kept in memory; larger files are cached as open
    /// descriptors and spliced (zero copy).
    pub cache_max_object: usize,
    /// Hot-cache entries across all workers (bounds open descriptors);
    /// 0 disables the cache.
    pub cache_open_files: usize,
    /// `max-age` for playlists, MPDs and unknown types, in seconds.
    pub manifest_max_age: u32,
    /// Allowed CORS origins; `["*"]` allows any.
    pub cors_origins: Vec<String>,
    /// How long SIGTERM waits for in-flight responses.
    pub shutdown_grace: Duration,
    /// `POST /debug/stall` on the admin listener blocks a worker's thread
    /// for a while: for operators checking that the watchdog restarts a
    /// stuck engine. Off by default.
    pub fault_injection: bool,
    /// The viewer and operator pages (`[engine] web_root`).
    pub web: Option<crate::web::WebConfig>,
    /// Certificates from an ACME CA for the TLS listener (`[engine.acme]`).
    pub acme: Option<crate::acme::AcmeConfig>,
    /// Share of requests written to the log, one line each (0, the
    /// default: none; 0.01: one in a hundred). Reloadable.
    pub access_log_sample: f64,
    /// The transcode job runner; `None` runs no jobs.
    pub jobs: Option<JobsConfig>,
    /// The control plane's gRPC endpoint, polled for public keys,
    /// revocations and open assets; `None` refuses every `/p/` request and
    /// serves `/v/` only with [`AccessPolicy::Open`].
    pub control: Option<ControlEndpoint>,
    /// How often the control plane is polled.
    pub control_poll: Duration,
    /// Resumable uploads at `/upload/` (needs `control` and `jobs`).
    pub ingest: Option<IngestConfig>,
    /// The TLS listener (`[engine] listen_tls`), with its certificate.
    pub tls: Option<TlsConfig>,
    /// HTTP/2 with prior knowledge (h2c) on the plain listener.
    pub h2c: bool,
    /// HTTP/2 limits, on TLS and h2c alike.
    pub h2: H2Limits,
    /// Assets kept in object storage (`[storage] kind = "s3"`): served
    /// from a local read-through copy, published there by the job runner.
    /// `None` serves `root` (the one-box default).
    pub storage: Option<BucketStorage>,
}

/// Assets in a bucket, read through a local copy.
#[derive(Debug, Clone)]
pub struct BucketStorage {
    /// The bucket.
    pub bucket: streamgate_assets::BucketConfig,
    /// The local copy (`<data_dir>/cache`).
    pub cache_dir: PathBuf,
    /// Bytes of objects the copy may hold (`[engine] cache_dir_max_bytes`).
    pub cache_max_bytes: u64,
    /// How long an asset's index is trusted before it is checked against
    /// the bucket again (`[storage] revalidate_after`).
    pub revalidate_after: Duration,
    /// Where the job runner builds assets before uploading them.
    pub scratch: PathBuf,
}

/// Where the control plane's gRPC listener is, and how to trust it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlEndpoint {
    /// `http://host:port`, or `https://host:port` when `[control.tls]` is set.
    pub url: String,
    /// More control planes, replicas of the first on one PostgreSQL
    /// (`[control] urls`): calls are spread over those that answer, so a
    /// replica going down costs at most the calls in flight to it.
    pub also: Vec<String>,
    /// The CA (PEM) that signed the control plane's certificate
    /// (`[control.tls] ca`); without it, the system's roots.
    pub ca: Option<PathBuf>,
    /// A client certificate to present (`[control.tls] client_cert` and
    /// `client_key`): a control plane with `client_ca` then takes this
    /// node as an operator without the operator token (mTLS).
    pub identity: Option<ClientIdentity>,
}

/// A client certificate chain and key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The chain, leaf first.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

impl ControlEndpoint {
    /// A channel endpoint for it (TLS verified by `ca`, with the client
    /// certificate when there is one).
    pub fn channel(&self) -> Result<tonic::transport::Endpoint, String> {
        let identity = self
            .identity
            .as_ref()
            .map(|i| (i.cert.as_path(), i.key.as_path()));
        streamgate_api::control_endpoint(&self.url, self.ca.as_deref(), identity)
    }

    /// Endpoints for every control plane, the first one first.
    pub fn endpoints(&self) -> Result<Vec<tonic::transport::Endpoint>, String> {
        let identity = self
            .identity
            .as_ref()
            .map(|i| (i.cert.as_path(), i.key.as_path()));
        std::iter::once(&self.url)
            .chain(&self.also)
            .map(|url| streamgate_api::control_endpoint(url, self.ca.as_deref(), identity))
            .collect()
    }
}

impl std::fmt::Display for ControlEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// The TLS listener.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Where it listens.
    pub listen: SocketAddr,
    /// PEM certificate chain (leaf first).
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// More certificates, chosen by the name the client asks for (SNI);
    /// `cert`/`key` answer every other name.
    pub sni: Vec<SniCert>,
    /// Refuse the handshake when the client asks for a name no SNI
    /// certificate has (rather than answering with `cert`).
    pub strict_sni: bool,
    /// Hand HTTP/1.1 connections to kernel TLS after the handshake where
    /// the kernel has it (`crate::ktls`).
    pub ktls: bool,
    /// Longest wait for a client to finish its handshake.
    pub handshake_timeout: Duration,
}

/// A certificate for some names (`[[engine.tls.sni]]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SniCert {
    /// DNS names, or `*.` and one (matching one label).
    pub names: Vec<String>,
    /// PEM certificate chain (leaf first).
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// HTTP/2 defences: `net`'s, configured under `[engine.h2]`.
pub use streamgate_net::http2::Limits as H2Limits;

/// Resumable ingest (tus 1.0) at `/upload/`.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Upload directory (`<data_dir>/uploads`): partial and finished files.
    pub dir: PathBuf,
    /// Largest upload accepted (413 beyond).
    pub max_bytes: u64,
    /// The operator token file that authorizes uploads.
    pub operator_token: PathBuf,
    /// Ladder for the transcode job (`--ladder` syntax).
    pub ladder: String,
    /// Segment length for the transcode job.
    pub segment_seconds: u32,
    /// How long an unfinished upload lives after its last accepted chunk
    /// (tus `expiration`); then its bytes and its `uploading` asset go.
    pub expiry: std::time::Duration,
}

/// The job runner: workers taking transcode jobs from a durable spool.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Spool directory (`<data_dir>/jobs`).
    pub spool: PathBuf,
    /// Concurrent jobs.
    pub workers: usize,
    /// Attempts before a job is marked failed.
    pub max_attempts: u32,
    /// x264 preset.
    pub preset: String,
    /// How long finished jobs stay in the spool (and in `/jobs`).
    pub retention: std::time::Duration,
    /// The lease a shared-queue runner holds a job under (renewed every
    /// third of it); a runner that dies loses the job this long after.
    pub lease: std::time::Duration,
}

impl EngineConfig {
    /// Defaults from Contract 6, serving `root`.
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin: SocketAddr::from(([127, 0, 0, 1], 9100)),
            threads: 0,
            access: AccessPolicy::Closed,
            limits: Limits::default(),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            cache_bytes: 256 << 20,
            cache_max_object: 16 << 10,
            cache_open_files: 4096,
            manifest_max_age: 2,
            cors_origins: vec!["*".into()],
            shutdown_grace: Duration::from_secs(10),
            fault_injection: false,
            access_log_sample: 0.0,
            acme: None,
            web: None,
            jobs: None,
            control: None,
            control_poll: Duration::from_secs(1),
            ingest: None,
            tls: None,
            h2c: true,
            h2: H2Limits::default(),
            storage: None,
        }
    }

    /// The number of workers `threads` resolves to on this machine.
    pub fn worker_count(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

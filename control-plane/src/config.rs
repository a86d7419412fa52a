//! Control-plane configuration: every knob it reads, in one struct.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// RPC access to one EVM chain (`[chains.<id>]`).
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// JSON-RPC URLs, tried in order of health.
    pub rpc: Vec<String>,
    /// Longest wait for one RPC answer before failing over.
    pub timeout: Duration,
    /// Consecutive failures that open a URL's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker skips its URL before one trial call.
    pub breaker_open: Duration,
}

/// Configuration of the control plane.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// Signing keys and the operator token live here.
    pub data_dir: PathBuf,
    /// Assets root (`asset import` moves directories here; delete removes).
    pub assets_root: PathBuf,
    /// Assets in a bucket instead (`[storage] kind = "s3"`): import uploads
    /// there, delete removes there.
    pub bucket: Option<streamgate_assets::BucketConfig>,
    /// Claims a shared-queue job gets before it fails (`[engine]
    /// job_attempts`).
    pub job_attempts: u32,
    /// gRPC listener.
    pub grpc: SocketAddr,
    /// JSON API listener for browsers.
    pub http: SocketAddr,
    /// `sqlite://…` or `postgres://…`.
    pub database: String,
    /// The engine's public URL: SIWE domain and URI, CORS origin, and the
    /// base of playback URLs.
    pub public_url: String,
    /// Chains by id.
    pub chains: BTreeMap<u64, ChainConfig>,
    /// How long a positive NFT answer is reused.
    pub nft_cache_ttl: Duration,
    /// How long a negative NFT answer is reused.
    pub nft_negative_ttl: Duration,
    /// How long a sign-in challenge may wait for its signature.
    pub challenge_ttl: Duration,
    /// Unanswered, unexpired challenges one wallet address may hold; more
    /// get 429 (the endpoint is public: this bounds what a flood writes).
    pub challenge_limit_per_address: u32,
    /// Unanswered, unexpired challenges in all.
    pub challenge_limit: u32,
    /// Session lifetime.
    pub session_ttl: Duration,
    /// Default playback-token lifetime.
    pub playback_ttl: Duration,
    /// Longest playback-token lifetime a caller may ask for; also how long
    /// a retired signing key stays published.
    pub playback_max_ttl: Duration,
    /// Install a metrics recorder and serve `/metrics` on the HTTP listener.
    /// Off inside `streamgate serve`, where the engine's admin listener
    /// serves one recorder for the whole process.
    pub own_metrics: bool,
    /// TLS for both listeners (`[control.tls]`): the certificate chain and
    /// key, PEM.
    pub tls: Option<TlsFiles>,
}

/// A certificate chain and its key (PEM files).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The chain, leaf first.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
    /// Client certificates this CA signed make their holder an operator
    /// on gRPC (mTLS); without it no client certificate is asked for.
    pub client_ca: Option<PathBuf>,
}

impl ControlConfig {
    /// Defaults from Contract 6 under `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        let database = format!("sqlite://{}", data_dir.join("streamgate.db").display());
        Self {
            assets_root: data_dir.join("assets"),
            bucket: None,
            job_attempts: 3,
            data_dir,
            grpc: SocketAddr::from(([127, 0, 0, 1], 50051)),
            http: SocketAddr::from(([127, 0, 0, 1], 8081)),
            database,
            public_url: "http://127.0.0.1:8080".into(),
            chains: BTreeMap::new(),
            nft_cache_ttl: Duration::from_secs(15),
            nft_negative_ttl: Duration::from_secs(5),
            challenge_ttl: Duration::from_secs(300),
            challenge_limit_per_address: 5,
            challenge_limit: 10_000,
            session_ttl: Duration::from_secs(3600),
            playback_ttl: Duration::from_secs(4 * 3600),
            playback_max_ttl: Duration::from_secs(24 * 3600),
            own_metrics: true,
            tls: None,
        }
    }

    /// The operator token file (mode 0600).
    pub fn operator_token_path(&self) -> PathBuf {
        self.data_dir.join("operator.token")
    }

    /// This node's signing keys.
    pub fn keys_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }
}

//! The configuration file (Contract 6): TOML, overridden by `STREAMGATE_…`
//! environment variables, overridden in turn by command-line flags.
//!
//! One file serves every subcommand: `[engine]` builds the engine's
//! [`EngineConfig`], `[control]`, `[chains.<id>]` and `[nft]` the control
//! plane's [`ControlConfig`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use streamgate_assets::{BucketConfig, CredentialSource};
use streamgate_control_plane::{ChainConfig, ControlConfig, TlsFiles};
use streamgate_engine::{
    AccessPolicy, BucketStorage, ClientIdentity, ControlEndpoint, EngineConfig, H2Limits,
    IngestConfig, JobsConfig, TlsConfig,
};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// SQLite db, keys, operator token, job spool; assets under `assets/`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `[engine]`
    #[serde(default)]
    pub engine: EngineSection,
    /// `[control]`
    #[serde(default)]
    pub control: ControlSection,
    /// `[chains.<id>]`
    #[serde(default)]
    pub chains: BTreeMap<String, ChainSection>,
    /// `[nft]`
    #[serde(default)]
    pub nft: NftSection,
    /// `[log]`
    #[serde(default)]
    pub log: LogSection,
    /// `[storage]`
    #[serde(default)]
    pub storage: StorageSection,
}

/// `[storage]`: where packaged assets live. `local` (the default) keeps
/// them under `[engine] root`; `s3` in an S3-compatible bucket, shared by
/// every node, with each engine serving from a local copy.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    kind: Option<String>,
    endpoint: Option<String>,
    bucket: Option<String>,
    region: Option<String>,
    /// Path-style requests (default true: what self-hosted servers want).
    path_style: Option<bool>,
    prefix: Option<String>,
    /// A TOML file with `access_key_id` and `secret_access_key` (mode 600);
    /// without it, the environment (`STREAMGATE_S3_ACCESS_KEY_ID`, …).
    credentials_file: Option<PathBuf>,
    request_timeout: Option<ConfigDuration>,
    revalidate_after: Option<ConfigDuration>,
}

/// `[log]`: what is logged (reloadable).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `error`, `warn`, `info` (default), `debug`, `trace` or `off`;
    /// `STREAMGATE_LOG` overrides it.
    pub level: Option<String>,
}

impl FileConfig {
    /// The log level this file asks for (`STREAMGATE_LOG` first).
    pub fn log_level(&self) -> Result<tracing_subscriber::filter::LevelFilter, String> {
        let text = std::env::var("STREAMGATE_LOG")
            .ok()
            .or_else(|| self.log.level.clone())
            .unwrap_or_else(|| "info".into());
        text.parse()
            .map_err(|_| format!("log level {text:?}: want error, warn, info, debug, trace or off"))
    }
}

/// `[control]`: every key optional; defaults from [`ControlConfig::new`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlSection {
    grpc: Option<SocketAddr>,
    http: Option<SocketAddr>,
    database: Option<String>,
    public_url: Option<String>,
    challenge_ttl: Option<ConfigDuration>,
    challenge_limit_per_address: Option<u32>,
    challenge_limit: Option<u32>,
    session_ttl: Option<ConfigDuration>,
    playback_ttl: Option<ConfigDuration>,
    playback_max_ttl: Option<ConfigDuration>,
    tls: Option<ControlTlsSection>,
    /// Where nodes reach the control planes (several replicas on one
    /// PostgreSQL: calls go to those that answer). Default: `grpc`.
    urls: Option<Vec<String>>,
}

/// `[control.tls]`: the control plane's certificate (both listeners), and
/// the CA its clients (engines, the CLI) verify it with.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlTlsSection {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
    /// The control plane takes a client certificate this CA signed as an
    /// operator (mTLS: engines without the operator token).
    client_ca: Option<PathBuf>,
    /// The certificate this node presents to the control plane.
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

/// `[chains.<id>]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSection {
    rpc: Vec<String>,
    timeout: Option<ConfigDuration>,
    breaker_failures: Option<u32>,
    breaker_open: Option<ConfigDuration>,
}

/// `[nft]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NftSection {
    cache_ttl: Option<ConfigDuration>,
    negative_ttl: Option<ConfigDuration>,
}

/// `[engine]`: every key optional; defaults come from [`EngineConfig::new`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    listen: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    threads: Option<usize>,
    root: Option<PathBuf>,
    open: Option<bool>,
    header_timeout: Option<ConfigDuration>,
    idle_timeout: Option<ConfigDuration>,
    send_timeout: Option<ConfigDuration>,
    shutdown_grace: Option<ConfigDuration>,
    fault_injection: Option<bool>,
    access_log_sample: Option<f64>,
    /// The pages' directory (`web/`); `serve` finds the packaged one.
    web_root: Option<PathBuf>,
    /// Where the pages' scripts reach the JSON API (default: the control
    /// plane's `http` address).
    web_api: Option<String>,
    max_connections: Option<usize>,
    cache_bytes: Option<usize>,
    cache_max_object: Option<usize>,
    cache_open_files: Option<usize>,
    manifest_max_age: Option<u32>,
    cors_origins: Option<Vec<String>>,
    max_request_line: Option<usize>,
    max_head_bytes: Option<usize>,
    job_workers: Option<usize>,
    job_attempts: Option<u32>,
    job_preset: Option<String>,
    job_retention: Option<ConfigDuration>,
    /// The shared queue's lease (default 30 s).
    job_lease: Option<ConfigDuration>,
    upload_max_bytes: Option<u64>,
    upload_ladder: Option<String>,
    upload_segment_seconds: Option<u32>,
    upload_expiry: Option<ConfigDuration>,
    /// Bytes the local copy of the bucket may hold (`[storage] kind = "s3"`).
    cache_dir_max_bytes: Option<u64>,
    /// The TLS listener's address (needs `[engine.tls]`).
    listen_tls: Option<SocketAddr>,
    /// HTTP/2 with prior knowledge on the plain listener (default on).
    h2c: Option<bool>,
    tls: Option<EngineTlsSection>,
    h2: Option<H2Section>,
    acme: Option<AcmeSection>,
}

/// `[engine.acme]`: certificates for `listen_tls` from an ACME CA.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeSection {
    domains: Vec<String>,
    email: Option<String>,
    /// Default: Let's Encrypt.
    directory: Option<String>,
    /// A PEM root for the directory's own certificate (a private CA).
    ca: Option<PathBuf>,
    renew_before: Option<ConfigDuration>,
}

/// `[engine.tls]`: the certificate of `listen_tls`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineTlsSection {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    handshake_timeout: Option<ConfigDuration>,
    /// `[[engine.tls.sni]]`: more certificates, by name.
    #[serde(default)]
    sni: Vec<streamgate_engine::config::SniCert>,
    strict_sni: Option<bool>,
    /// Use kernel TLS where the kernel has it (default true).
    ktls: Option<bool>,
}

/// `[engine.h2]`: HTTP/2 limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct H2Section {
    max_concurrent_streams: Option<u32>,
    max_header_list_size: Option<u32>,
    max_pending_accept_reset_streams: Option<usize>,
    max_local_error_reset_streams: Option<usize>,
    max_control_frames_per_second: Option<u32>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./var")
}

impl FileConfig {
    /// Reads `path` (or starts empty), applies the environment, validates.
    pub fn load(path: Option<&Path>) -> Result<Self, String> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                text.parse::<toml::Table>()
                    .map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut table, std::env::vars())?;
        let config: Self = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| format!("invalid configuration: {e}"))?;
        config.engine_config()?; // surface bad values now
        config.control_config()?;
        Ok(config)
    }

    /// The operator token (`<data_dir>/operator.token`).
    pub fn operator_token_path(&self) -> PathBuf {
        ControlConfig::new(self.data_dir.clone()).operator_token_path()
    }

    /// Where clients reach the control plane's gRPC listener.
    pub fn control_endpoint(&self) -> Result<ControlEndpoint, String> {
        let mut addr = self
            .control
            .grpc
            .unwrap_or_else(|| ControlConfig::new(self.data_dir.clone()).grpc);
        if addr.ip().is_unspecified() {
            addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        let tls = self.control.tls.as_ref();
        // Any TLS key here means the control plane speaks TLS: its own
        // certificate (same node), or a CA or client certificate to reach
        // it with (another node).
        let scheme =
            if tls.is_some_and(|t| t.cert.is_some() || t.ca.is_some() || t.client_cert.is_some()) {
                "https"
            } else {
                "http"
            };
        let identity = match tls.map(|t| (&t.client_cert, &t.client_key)) {
            None | Some((None, None)) => None,
            Some((Some(cert), Some(key))) => Some(ClientIdentity {
                cert: cert.clone(),
                key: key.clone(),
            }),
            Some(_) => return Err("control.tls needs both client_cert and client_key".into()),
        };
        let (url, also) = match self.control.urls.as_deref() {
            Some([first, rest @ ..]) => (first.clone(), rest.to_vec()),
            Some([]) => return Err("control.urls is empty".into()),
            None => (format!("{scheme}://{addr}"), Vec::new()),
        };
        Ok(ControlEndpoint {
            url,
            also,
            ca: tls.and_then(|t| t.ca.clone()),
            identity,
        })
    }

    /// The pages at `root`, their scripts pointed at the JSON API.
    pub fn web_config(&self, root: PathBuf) -> streamgate_engine::web::WebConfig {
        let api = self.engine.web_api.clone().unwrap_or_else(|| {
            let http = self
                .control
                .http
                .unwrap_or_else(|| ControlConfig::new(self.data_dir.clone()).http);
            let scheme = if self.control.tls.as_ref().is_some_and(|t| t.cert.is_some()) {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{http}")
        });
        streamgate_engine::web::WebConfig { root, api }
    }

    /// The control plane's configuration.
    pub fn control_config(&self) -> Result<ControlConfig, String> {
        let mut c = ControlConfig::new(self.data_dir.clone());
        c.assets_root = self.engine_root();
        c.bucket = self.bucket_config()?;
        c.job_attempts = self.engine.job_attempts.unwrap_or(3).max(1);
        let s = &self.control;
        c.tls = match s.tls.as_ref().map(|t| (&t.cert, &t.key)) {
            None | Some((None, None)) => None,
            Some((Some(cert), Some(key))) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: s.tls.as_ref().and_then(|t| t.client_ca.clone()),
            }),
            Some(_) => return Err("control.tls needs both cert and key".into()),
        };
        if let Some(v) = s.grpc {
            c.grpc = v;
        }
        if let Some(v) = s.http {
            c.http = v;
        }
        if let Some(v) = &s.database {
            if !(v.starts_with("sqlite:")
                || v.starts_with("postgres://")
                || v.starts_with("postgresql://"))
            {
                return Err(format!(
                    "control.database: {v:?} is neither sqlite://… nor postgres://…"
                ));
            }
            c.database = v.clone();
        }
        if let Some(n) = s.challenge_limit_per_address {
            c.challenge_limit_per_address = n.max(1);
        }
        if let Some(n) = s.challenge_limit {
            c.challenge_limit = n.max(1);
        }
        c.public_url = match &s.public_url {
            Some(v) => v.clone(),
            // Unset: the engine's own listener, as seen from this host.
            None => {
                let mut listen = self.engine_config()?.listen;
                if listen.ip().is_unspecified() {
                    listen.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
                }
                format!("http://{listen}")
            }
        };
        for (value, slot) in [
            (s.challenge_ttl, &mut c.challenge_ttl),
            (s.session_ttl, &mut c.session_ttl),
            (s.playback_ttl, &mut c.playback_ttl),
            (s.playback_max_ttl, &mut c.playback_max_ttl),
            (self.nft.cache_ttl, &mut c.nft_cache_ttl),
            (self.nft.negative_ttl, &mut c.nft_negative_ttl),
        ] {
            if let Some(ConfigDuration(d)) = value {
                *slot = d;
            }
        }
        for (id, chain) in &self.chains {
            let chain_id: u64 = id
                .parse()
                .map_err(|_| format!("[chains.{id}]: the section name must be a chain id"))?;
            if chain.rpc.is_empty() {
                return Err(format!("[chains.{id}]: rpc needs at least one URL"));
            }
            c.chains.insert(
                chain_id,
                ChainConfig {
                    rpc: chain.rpc.clone(),
                    timeout: ConfigDuration::or_secs(chain.timeout, 3),
                    breaker_failures: chain.breaker_failures.unwrap_or(3).max(1),
                    breaker_open: ConfigDuration::or_secs(chain.breaker_open, 10),
                },
            );
        }
        Ok(c)
    }

    /// The bucket, when `[storage] kind = "s3"`; `None` for local storage.
    pub fn bucket_config(&self) -> Result<Option<BucketConfig>, String> {
        let s = &self.storage;
        match s.kind.as_deref().unwrap_or("local") {
            "local" => return Ok(None),
            "s3" => {}
            other => return Err(format!("storage.kind {other:?}: want \"local\" or \"s3\"")),
        }
        let bucket = s
            .bucket
            .clone()
            .ok_or("storage.bucket is needed with kind = \"s3\"")?;
        let credentials = match &s.credentials_file {
            Some(path) => CredentialSource::File(path.clone()),
            None => CredentialSource::Environment,
        };
        Ok(Some(BucketConfig {
            endpoint: s.endpoint.clone(),
            bucket,
            region: s.region.clone().unwrap_or_else(|| "us-east-1".into()),
            path_style: s.path_style.unwrap_or(true),
            prefix: s.prefix.clone().unwrap_or_default(),
            credentials,
            request_timeout: ConfigDuration::or_secs(s.request_timeout, 30),
        }))
    }

    /// The assets root: `[engine] root`, or `<data_dir>/assets`.
    pub fn engine_root(&self) -> PathBuf {
        self.engine
            .root
            .clone()
            .unwrap_or_else(|| self.data_dir.join("assets"))
    }

    /// The transcode job spool: `<data_dir>/jobs`.
    pub fn spool_dir(&self) -> PathBuf {
        self.data_dir.join("jobs")
    }

    /// The engine's configuration (before command-line overrides).
    pub fn engine_config(&self) -> Result<EngineConfig, String> {
        let e = &self.engine;
        let mut c = EngineConfig::new(self.engine_root());
        if let Some(v) = e.listen {
            c.listen = v;
        }
        if let Some(v) = e.admin {
            c.admin = v;
        }
        if let Some(v) = e.threads {
            c.threads = v;
        }
        if e.open == Some(true) {
            c.access = AccessPolicy::Open;
        }
        for (value, slot) in [
            (e.header_timeout, &mut c.header_timeout),
            (e.idle_timeout, &mut c.idle_timeout),
            (e.send_timeout, &mut c.send_timeout),
            (e.shutdown_grace, &mut c.shutdown_grace),
        ] {
            if let Some(ConfigDuration(d)) = value {
                *slot = d;
            }
        }
        if let Some(v) = e.max_connections {
            c.max_connections = v;
        }
        if let Some(v) = e.fault_injection {
            c.fault_injection = v;
        }
        c.web = e.web_root.clone().map(|root| self.web_config(root));
        if let Some(v) = e.access_log_sample {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("engine.access_log_sample {v}: want 0 to 1"));
            }
            c.access_log_sample = v;
        }
        if let Some(v) = e.cache_bytes {
            c.cache_bytes = v;
        }
        if let Some(v) = e.cache_max_object {
            c.cache_max_object = v;
        }
        if let Some(v) = e.cache_open_files {
            c.cache_open_files = v;
        }
        if let Some(v) = e.manifest_max_age {
            c.manifest_max_age = v;
        }
        if let Some(v) = &e.cors_origins {
            c.cors_origins = v.clone();
        }
        if let Some(v) = e.max_request_line {
            c.limits.max_request_line = v;
        }
        if let Some(v) = e.max_head_bytes {
            c.limits.max_head_bytes = v;
        }
        c.acme = match &e.acme {
            None => None,
            Some(a) if a.domains.is_empty() => {
                return Err("engine.acme needs at least one of domains".into())
            }
            Some(a) => Some(streamgate_engine::acme::AcmeConfig {
                domains: a.domains.clone(),
                email: a.email.clone(),
                directory: a
                    .directory
                    .clone()
                    .unwrap_or_else(|| "https://acme-v02.api.letsencrypt.org/directory".into()),
                ca: a.ca.clone(),
                dir: self.data_dir.join("acme"),
                renew_before: ConfigDuration::or_secs(a.renew_before, 30 * 86_400),
            }),
        };
        // With ACME, the TLS listener's certificate is the one it keeps.
        let acme_files = c.acme.as_ref().map(|a| (a.cert_path(), a.key_path()));
        let acme_tls;
        let tls_section = match (&e.tls, &acme_files) {
            (Some(t), Some(_)) if t.cert.is_some() || t.key.is_some() => {
                return Err(
                    "engine.acme provides the certificate: leave [engine.tls] cert and key out"
                        .into(),
                )
            }
            (Some(t), Some((cert, key))) => {
                acme_tls = EngineTlsSection {
                    cert: Some(cert.clone()),
                    key: Some(key.clone()),
                    handshake_timeout: t.handshake_timeout,
                    sni: t.sni.clone(),
                    strict_sni: t.strict_sni,
                    ktls: t.ktls,
                };
                Some(&acme_tls)
            }
            (None, Some((cert, key))) => {
                acme_tls = EngineTlsSection {
                    cert: Some(cert.clone()),
                    key: Some(key.clone()),
                    ..EngineTlsSection::default()
                };
                Some(&acme_tls)
            }
            (t, None) => t.as_ref(),
        };
        if c.acme.is_some() && e.listen_tls.is_none() {
            return Err("engine.acme needs engine.listen_tls (the listener it certifies)".into());
        }
        c.tls = match (e.listen_tls, tls_section) {
            (None, None) => None,
            (Some(listen), Some(t)) => match (&t.cert, &t.key) {
                (Some(cert), Some(key)) => Some(TlsConfig {
                    listen,
                    cert: cert.clone(),
                    key: key.clone(),
                    sni: t.sni.clone(),
                    strict_sni: t.strict_sni.unwrap_or(false),
                    ktls: t.ktls.unwrap_or(true),
                    handshake_timeout: ConfigDuration::or_secs(t.handshake_timeout, 10),
                }),
                _ => return Err("engine.tls needs both cert and key".into()),
            },
            (Some(_), None) => {
                return Err("engine.listen_tls needs [engine.tls] cert and key".into())
            }
            (None, Some(_)) => return Err("[engine.tls] needs engine.listen_tls".into()),
        };
        if let Some(v) = e.h2c {
            c.h2c = v;
        }
        if let Some(h) = &e.h2 {
            let d = H2Limits::default();
            c.h2 = H2Limits {
                max_concurrent_streams: h
                    .max_concurrent_streams
                    .unwrap_or(d.max_concurrent_streams),
                max_header_list_size: h.max_header_list_size.unwrap_or(d.max_header_list_size),
                max_pending_accept_reset_streams: h
                    .max_pending_accept_reset_streams
                    .unwrap_or(d.max_pending_accept_reset_streams),
                max_local_error_reset_streams: h
                    .max_local_error_reset_streams
                    .unwrap_or(d.max_local_error_reset_streams),
                max_control_frames_per_second: h
                    .max_control_frames_per_second
                    .unwrap_or(d.max_control_frames_per_second),
            };
        }
        c.control = Some(self.control_endpoint()?);
        c.storage = self.bucket_config()?.map(|bucket| BucketStorage {
            bucket,
            cache_dir: self.data_dir.join("cache"),
            cache_max_bytes: e.cache_dir_max_bytes.unwrap_or(50 << 30),
            revalidate_after: ConfigDuration::or_secs(self.storage.revalidate_after, 30),
            scratch: self.data_dir.join("staging"),
        });
        if let Some(ladder) = &e.upload_ladder {
            streamgate_transcode_gpu::ladder::parse(ladder)
                .map_err(|err| format!("engine.upload_ladder: {err}"))?;
        }
        c.ingest = Some(IngestConfig {
            dir: self.data_dir.join("uploads"),
            max_bytes: e.upload_max_bytes.unwrap_or(20 << 30),
            operator_token: self.operator_token_path(),
            ladder: e
                .upload_ladder
                .clone()
                .unwrap_or_else(|| "1080,720,480,360".into()),
            segment_seconds: e.upload_segment_seconds.unwrap_or(4).clamp(1, 30),
            expiry: ConfigDuration::or_secs(e.upload_expiry, 24 * 3600),
        });
        let workers = e.job_workers.unwrap_or(1);
        let retention = ConfigDuration::or_secs(e.job_retention, 7 * 86_400);
        c.jobs = (workers > 0).then(|| JobsConfig {
            spool: self.spool_dir(),
            workers,
            max_attempts: e.job_attempts.unwrap_or(3),
            preset: e.job_preset.clone().unwrap_or_else(|| "veryfast".into()),
            retention,
            lease: ConfigDuration::or_secs(e.job_lease, 30).max(std::time::Duration::from_secs(1)),
        });
        Ok(c)
    }
}

/// Applies `STREAMGATE_KEY` and `STREAMGATE_SECTION__KEY` variables. A value
/// that parses as a TOML value (number, bool, array) is taken as one;
/// anything else is a string.
fn apply_env(
    table: &mut toml::Table,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<(), String> {
    for (name, raw) in vars {
        let Some(path) = name.strip_prefix("STREAMGATE_") else {
            continue;
        };
        // The file's own path (`--config`), and the bucket's credentials
        // (read by `Credentials::from_env`, never config keys): not keys.
        if matches!(path, "CONFIG" | "S3_ACCESS_KEY_ID" | "S3_SECRET_ACCESS_KEY") {
            continue;
        }
        let path = path.to_ascii_lowercase();
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        let mut parts: Vec<&str> = path.split("__").collect();
        let key = parts.pop().unwrap_or_default();
        let mut slot = &mut *table;
        for section in parts {
            let entry = slot
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            slot = entry
                .as_table_mut()
                .ok_or_else(|| format!("{name}: `{section}` is not a section"))?;
        }
        slot.insert(key.to_string(), value);
    }
    Ok(())
}

/// A duration in the file or the environment: `250ms`, `10s`, `5m`, `24h`,
/// `7d`, or a bare number of seconds (`idle_timeout = 90`). A bad value
/// fails the load with the key's name (TOML's error says where).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    /// The configured duration, or `default_secs` when the key is absent.
    fn or_secs(value: Option<Self>, default_secs: u64) -> Duration {
        value.map_or(Duration::from_secs(default_secs), |d| d.0)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ConfigDuration;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration like 10s, 250ms, 5m, 24h, 7d, or seconds")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                parse_duration(text).map(ConfigDuration).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Self::Value, E> {
                u64::try_from(n)
                    .map(|s| ConfigDuration(Duration::from_secs(s)))
                    .map_err(|_| E::custom(format!("{n} is not a duration")))
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Self::Value, E> {
                Ok(ConfigDuration(Duration::from_secs(n)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Parses `250ms`, `10s`, `5m`, `1h`, `7d` (a bare number means seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 10s or 250ms"))?;
    let secs = |m: u64| n.checked_mul(m).map(Duration::from_secs);
    match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "" | "s" => Some(Duration::from_secs(n)),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => None,
    }
    .ok_or_else(|| format!("`{text}` is not a duration like 10s or 250ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("10 parsecs").is_err());
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut table: toml::Table = "[engine]\nlisten = \"127.0.0.1:1\"\nthreads = 4\n"
            .parse()
            .unwrap();
        let vars = [
            (
                "STREAMGATE_ENGINE__LISTEN".to_string(),
                "127.0.0.1:2".to_string(),
            ),
            ("STREAMGATE_ENGINE__OPEN".to_string(), "true".to_string()),
            ("STREAMGATE_DATA_DIR".to_string(), "/srv/sg".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        apply_env(&mut table, vars.into_iter()).unwrap();
        let config: FileConfig = toml::Value::Table(table).try_into().unwrap();
        let engine = config.engine_config().unwrap();
        assert_eq!(engine.listen, "127.0.0.1:2".parse().unwrap());
        assert_eq!(engine.threads, 4);
        assert_eq!(engine.access, AccessPolicy::Open);
        assert_eq!(engine.root, PathBuf::from("/srv/sg/assets"));
    }

    #[test]
    fn durations_in_the_file_name_their_key_when_bad() {
        let load = |text: &str| {
            toml::Value::Table(text.parse::<toml::Table>().unwrap()).try_into::<FileConfig>()
        };
        let config = load("[engine]\nidle_timeout = \"2m\"\nsend_timeout = 90\n").unwrap();
        let engine = config.engine_config().unwrap();
        assert_eq!(engine.idle_timeout, Duration::from_secs(120));
        assert_eq!(engine.send_timeout, Duration::from_secs(90));
        let err = load("[chains.1]\nrpc = [\"http://x\"]\ntimeout = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("timeout") && err.contains("soon"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let table: toml::Table = "[engine]\nlisten_port = 1\n".parse().unwrap();
        assert!(toml::Value::Table(table).try_into::<FileConfig>().is_err());
    }
}

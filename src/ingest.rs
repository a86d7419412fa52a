//! `streamgate ingest FILE [--server URL]`: uploads a file to a running
//! appliance with tus 1.0 (creation, checksum, resume), then follows the
//! asset through transcoding and prints its playback URLs.
//!
//! Every chunk carries its SHA-256 (`Upload-Checksum`) and the whole file's
//! hash travels in the metadata, so the server verifies both. A broken
//! connection is retried with backoff: the client asks the server where the
//! upload stands (`HEAD`) and goes on from there. An interrupted `ingest`
//! run resumes the same upload when started again with the same file: the
//! upload URL is kept under `<data_dir>/ingest/` until it completes.

use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use clap::Args;
use sha2::{Digest, Sha256};
use streamgate_api::v1::{AssetStatus, GetAssetRequest};
use streamgate_net::client::{Connection, Reply};

use crate::client::Operator;
use crate::config::FileConfig;
use crate::progress::Bar;

/// `streamgate ingest`
#[derive(Args)]
pub struct IngestArgs {
    /// The video file to upload.
    file: PathBuf,
    /// The appliance's engine URL (default: the engine listener in the config).
    #[arg(long)]
    server: Option<String>,
    /// Asset id (default: one is picked).
    #[arg(long)]
    id: Option<String>,
    /// Title (default: the file name).
    #[arg(long)]
    title: Option<String>,
    /// Bytes per PATCH request.
    #[arg(long, default_value_t = 8 << 20)]
    chunk_size: usize,
    /// Return once uploaded, without waiting for the transcode.
    #[arg(long)]
    no_wait: bool,
    /// Configuration file (finds the operator token and the control plane).
    #[arg(long, env = "STREAMGATE_CONFIG")]
    config: Option<PathBuf>,
}

/// Attempts per chunk before giving up.
const MAX_RETRIES: u32 = 8;

/// Why a round of the upload loop failed.
enum Failure {
    /// Worth another try from the server's offset: a broken connection, a
    /// 5xx, a chunk the server discarded (460).
    Transient(String),
    /// The server no longer has the upload (404, or 410 once it expired):
    /// retrying cannot help.
    Gone(u16),
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Transient(e)
    }
}

impl From<&str> for Failure {
    fn from(e: &str) -> Self {
        Failure::Transient(e.into())
    }
}

struct Server {
    addr: SocketAddr,
    base: String,
    token: String,
}

impl Server {
    fn connect(&self) -> Result<Connection, String> {
        Connection::open(self.addr).map_err(|e| format!("cannot connect to {}: {e}", self.base))
    }

    fn headers(&self, extra: &[String]) -> Vec<String> {
        let mut h = vec![
            "Tus-Resumable: 1.0.0".to_string(),
            format!("Authorization: Bearer {}", self.token),
        ];
        h.extend_from_slice(extra);
        h
    }
}

/// Runs `ingest`.
pub fn run(args: IngestArgs) -> Result<(), String> {
    let file_config = FileConfig::load(args.config.as_deref())?;
    let token = std::fs::read_to_string(file_config.operator_token_path())
        .map_err(|e| {
            format!(
                "cannot read the operator token {}: {e} (pass the --config that `streamgate serve` uses)",
                file_config.operator_token_path().display()
            )
        })?
        .trim()
        .to_string();
    let base = match &args.server {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!("http://{}", file_config.engine_config()?.listen),
    };
    let authority = base.strip_prefix("http://").ok_or_else(|| {
        format!("{base}: only http:// is spoken here (put TLS in front of the appliance)")
    })?;
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{base}: {e}"))?
        .next()
        .ok_or_else(|| format!("{base}: no address"))?;
    let server = Server { addr, base, token };

    let file = File::open(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let length = file.metadata().map_err(|e| e.to_string())?.len();
    if length == 0 {
        return Err(format!(
            "{} is empty: nothing to ingest",
            args.file.display()
        ));
    }
    eprintln!(
        "ingest: hashing {} ({} MB)",
        args.file.display(),
        length / 1_000_000
    );
    let digest = sha256_file(&args.file)?;
    let state_dir = file_config.data_dir.join("ingest");
    let state_file = state_dir.join(format!("{digest}.url"));

    let (location, asset) = resume_or_create(&server, &args, length, &digest, &state_file)?;
    upload(&server, &file, length, &location, args.chunk_size.max(1))?;
    let _ = std::fs::remove_file(&state_file);
    eprintln!("ingest: uploaded; asset {asset}");
    if args.no_wait {
        println!("{asset}");
        return Ok(());
    }
    follow(&file_config, &server, &asset)
}

fn sha256_file(path: &Path) -> Result<String, String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The upload to continue: the one recorded for this file's hash if the
/// server still has it, else a new one.
fn resume_or_create(
    server: &Server,
    args: &IngestArgs,
    length: u64,
    digest: &str,
    state_file: &Path,
) -> Result<(String, String), String> {
    if let Ok(location) = std::fs::read_to_string(state_file) {
        let location = location.trim().to_string();
        if let Ok(reply) = server.connect().and_then(|mut c| {
            c.send("HEAD", &location, &server.headers(&[]), &[])
                .map_err(|e| e.to_string())
        }) {
            if reply.status == 200 {
                let asset = reply
                    .header("StreamGate-Asset")
                    .unwrap_or_default()
                    .to_string();
                eprintln!("ingest: resuming {location} (asset {asset})");
                return Ok((location, asset));
            }
        }
    }
    let filename = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut meta = vec![
        format!("filename {}", B64.encode(&filename)),
        format!("sha256 {}", B64.encode(digest)),
        format!(
            "title {}",
            B64.encode(args.title.as_deref().unwrap_or(&filename))
        ),
    ];
    if let Some(id) = &args.id {
        meta.push(format!("id {}", B64.encode(id)));
    }
    let headers = server.headers(&[
        format!("Upload-Length: {length}"),
        format!("Upload-Metadata: {}", meta.join(",")),
    ]);
    let reply = server
        .connect()?
        .send("POST", "/upload/", &headers, &[])
        .map_err(|e| format!("creating the upload: {e}"))?;
    match reply.status {
        201 => {}
        413 => {
            return Err(format!(
                "the server refuses files this large ({length} bytes; 413)"
            ))
        }
        409 => return Err("that asset id is taken (409)".into()),
        401 => return Err("the server refused the operator token (401)".into()),
        // The engine only offers /upload/ with a job runner and a control
        // plane (`streamgate serve`, or `engine` with job_workers > 0).
        404 | 405 => {
            return Err(format!(
                "the server does not take uploads (HTTP {}): is it `streamgate serve`, or an \
                 engine with job_workers > 0 and a control plane?",
                reply.status
            ))
        }
        s => return Err(format!("creating the upload: HTTP {s}")),
    }
    let location = reply
        .header("Location")
        .ok_or("the server sent no Location")?
        .to_string();
    let asset = reply
        .header("StreamGate-Asset")
        .unwrap_or_default()
        .to_string();
    if let Some(dir) = state_file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(state_file, &location);
    Ok((location, asset))
}

/// PATCHes from the server's offset to the end, resuming after failures.
fn upload(
    server: &Server,
    file: &File,
    length: u64,
    location: &str,
    chunk_size: usize,
) -> Result<(), String> {
    let mut bar = Bar::new("upload");
    let started = Instant::now();
    let mut connection: Option<Connection> = None;
    let mut offset = None;
    let mut failures = 0u32;
    let mut chunk = vec![0u8; chunk_size];
    loop {
        let result = (|| -> Result<u64, Failure> {
            let conn = match connection.as_mut() {
                Some(c) => c,
                None => connection.insert(server.connect()?),
            };
            let at = match offset {
                Some(at) => at,
                None => {
                    let reply = conn
                        .send("HEAD", location, &server.headers(&[]), &[])
                        .map_err(|e| e.to_string())?;
                    expect(&reply, 200)?;
                    reply
                        .header("Upload-Offset")
                        .and_then(|v| v.parse().ok())
                        .ok_or("no Upload-Offset")?
                }
            };
            if at >= length {
                return Ok(at);
            }
            let n = ((length - at) as usize).min(chunk_size);
            file.read_exact_at(&mut chunk[..n], at)
                .map_err(|e| e.to_string())?;
            let sum = B64.encode(Sha256::digest(&chunk[..n]));
            let headers = server.headers(&[
                "Content-Type: application/offset+octet-stream".into(),
                format!("Upload-Offset: {at}"),
                format!("Upload-Checksum: sha256 {sum}"),
            ]);
            let reply = conn
                .send("PATCH", location, &headers, &chunk[..n])
                .map_err(|e| e.to_string())?;
            expect(&reply, 204)?;
            reply
                .header("Upload-Offset")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| "no Upload-Offset".into())
        })();
        match result {
            Ok(at) => {
                failures = 0;
                offset = Some(at);
                let mb = at as f64 / 1e6;
                let rate = mb / started.elapsed().as_secs_f64().max(1e-3);
                bar.show(
                    Some(at as f64 * 100.0 / length.max(1) as f64),
                    &format!("{mb:.1}/{:.1} MB  {rate:.1} MB/s", length as f64 / 1e6),
                );
                if at >= length {
                    bar.finish();
                    return Ok(());
                }
            }
            Err(Failure::Gone(status)) => {
                bar.finish();
                return Err(format!(
                    "the server no longer has this upload (HTTP {status}: it expired after a \
                     long pause, or was removed); run the command again to start a new one"
                ));
            }
            Err(Failure::Transient(e)) => {
                failures += 1;
                bar.finish();
                if failures > MAX_RETRIES {
                    return Err(format!("upload failed: {e}"));
                }
                let wait = Duration::from_millis(250 << failures.min(5));
                eprintln!(
                    "ingest: {e}; resuming in {:.1}s (attempt {failures}/{MAX_RETRIES})",
                    wait.as_secs_f64()
                );
                std::thread::sleep(wait);
                // Start over from what the server acknowledged.
                connection = None;
                offset = None;
            }
        }
    }
}

fn expect(reply: &Reply, status: u16) -> Result<(), Failure> {
    if reply.status == status {
        return Ok(());
    }
    Err(match reply.status {
        404 | 410 => Failure::Gone(reply.status),
        460 => Failure::Transient("checksum mismatch (460): the server discarded the chunk".into()),
        s => Failure::Transient(format!("HTTP {s}")),
    })
}

/// Waits until the engine serves `path` (it learns about a newly ready
/// asset on its next poll of the control plane, within about a second).
fn wait_served(server: &Server, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let served = server
            .connect()
            .and_then(|mut c| c.send("HEAD", path, &[], &[]).map_err(|e| e.to_string()))
            .is_ok_and(|r| r.status == 200);
        if served {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls the asset until it is ready (prints its URLs) or failed.
fn follow(config: &FileConfig, server: &Server, asset: &str) -> Result<(), String> {
    let base = &server.base;
    let operator = Operator::connect(config)?;
    let mut bar = Bar::new("transcode");
    let mut last = String::new();
    loop {
        let a = operator.call(
            operator
                .assets()
                .get_asset(operator.request(GetAssetRequest {
                    id: asset.to_string(),
                })),
        )?;
        let status = AssetStatus::try_from(a.status).unwrap_or(AssetStatus::Unspecified);
        match status {
            AssetStatus::Ready => {
                bar.finish();
                if a.rules.is_empty() {
                    wait_served(server, &format!("/v/{asset}/master.m3u8"));
                }
                println!("HLS:  {base}/v/{asset}/master.m3u8");
                println!("DASH: {base}/v/{asset}/manifest.mpd");
                if !a.rules.is_empty() {
                    eprintln!(
                        "ingest: the asset is gated: viewers get tokenized URLs from the JSON API"
                    );
                }
                return Ok(());
            }
            AssetStatus::Failed => {
                bar.finish();
                return Err(format!("asset {asset} failed: {}", a.error));
            }
            AssetStatus::Transcoding => {
                bar.show(Some(f64::from(a.progress_percent)), "transcoding")
            }
            other => {
                let name = other
                    .as_str_name()
                    .trim_start_matches("ASSET_STATUS_")
                    .to_ascii_lowercase();
                if name != last {
                    bar.show(Some(0.0), &name);
                    last = name;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

//! Test harness: runs the real `streamgate` binary on loopback ports and
//! talks raw HTTP/1.1 to it over real sockets.

#![allow(dead_code)]

pub mod nginx;
pub mod postgres;
#[macro_use]
pub mod wire;
#[allow(unused_imports)]
pub use streamgate_testkit::{chain, wallet};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Makes a 25 fps clip with the ffmpeg CLI (with a 44.1 kHz tone when
/// `audio`), through the shared maker in `streamgate-testkit`.
pub fn clip(dir: &Path, name: &str, size: &str, seconds: u32, audio: bool) -> PathBuf {
    let mut clip = streamgate_testkit::clip::Clip::new(size, seconds);
    if audio {
        clip = clip.audio(44_100);
    }
    clip.make(&dir.join(name)).unwrap()
}

/// Runs `streamgate transcode INPUT --out OUT` with the tests' fast
/// settings (no GPU, x264 ultrafast, 2-second segments) and `extra`.
pub fn transcode(input: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .arg("transcode")
        .arg(input)
        .arg("--out")
        .arg(out)
        .args([
            "--gpu",
            "off",
            "--preset",
            "ultrafast",
            "--segment-seconds",
            "2",
        ])
        .args(extra)
        .output()
        .unwrap()
}

/// [`transcode`], which must succeed.
pub fn transcoded(input: &Path, out: &Path, extra: &[&str]) {
    let output = transcode(input, out, extra);
    assert!(
        output.status.success(),
        "transcode failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `streamgate loadtest merge` of `reports` into `into`, read back.
pub fn loadtest_merge(reports: &[&Path], into: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .args(["loadtest", "merge"])
        .args(reports)
        .arg("--json")
        .arg(into)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(into).unwrap()).unwrap()
}

/// Has ffmpeg decode `target` with `-map <map>` to the end, and asserts it
/// succeeded with nothing on stderr at `-v error`; returns ffmpeg's
/// `-progress` report.
fn decode(target: &str, map: &str) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i", target, "-map", map])
        .args(["-f", "null", "-", "-progress", "pipe:1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg failed on {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// ffmpeg decodes every stream to the end; stderr at `-v error` stays empty.
pub fn decodes_cleanly(target: &str) {
    decode(target, "0");
}

/// Frames of the first video stream, decoded cleanly to the end.
pub fn decoded_video_frames(target: &str) -> u32 {
    decode(target, "0:v:0")
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .filter_map(|v| v.trim().parse().ok())
        .next_back()
        .unwrap_or(0)
}

/// A small packaged asset (Contract 2) with the real shape — master and
/// media playlists, MPD, init and segments, relative URIs — and synthetic
/// bytes: enough to follow every URI through the token path.
pub fn packaged_asset(dir: &Path, seed: u8) {
    write(
        &dir.join("master.m3u8"),
        b"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
          #EXT-X-STREAM-INF:BANDWIDTH=500000,CODECS=\"avc1.64001e\",RESOLUTION=640x360\n360p/index.m3u8\n",
    );
    write(
        &dir.join("360p/index.m3u8"),
        b"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n\
          #EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.000,\n0.m4s\n#EXTINF:2.000,\n1.m4s\n#EXT-X-ENDLIST\n",
    );
    write(
        &dir.join("manifest.mpd"),
        b"<?xml version=\"1.0\"?><MPD/>\n",
    );
    write(&dir.join("360p/init.mp4"), &pattern(700, seed));
    write(
        &dir.join("360p/0.m4s"),
        &pattern(90_000, seed.wrapping_add(1)),
    );
    write(
        &dir.join("360p/1.m4s"),
        &pattern(70_000, seed.wrapping_add(2)),
    );
}

/// A packaged asset with a ladder of synthetic renditions (exact
/// bitrates), through the shared maker in `streamgate-testkit`.
pub fn ladder_asset(dir: &Path, rungs: &[(&str, u64)], segments: usize, seconds: f64) {
    streamgate_testkit::ladder::write(dir, rungs, segments, seconds).unwrap();
}

/// Follows an HLS master through its media playlists to every segment,
/// relative to `base_path` (e.g. `/p/<token>/movie/`), and checks each
/// body against the file under `asset_dir`. Returns how many were fetched.
pub fn fetch_every_uri(e: &Engine, base_path: &str, asset_dir: &Path) -> usize {
    let mut fetched = 0;
    let mut queue = vec!["master.m3u8".to_string()];
    while let Some(relative) = queue.pop() {
        let r = e.get(&format!("{base_path}{relative}"), "");
        assert_eq!(r.status, 200, "{base_path}{relative}");
        assert_eq!(
            r.body,
            std::fs::read(asset_dir.join(&relative)).unwrap(),
            "{relative}"
        );
        fetched += 1;
        if relative.ends_with(".m3u8") {
            let dir = relative.rsplit_once('/').map_or("", |(d, _)| d);
            let text = String::from_utf8(r.body).unwrap();
            for line in text.lines() {
                let uri = if let Some(rest) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
                    rest.split('"').next().unwrap()
                } else if line.is_empty() || line.starts_with('#') {
                    continue;
                } else {
                    line
                };
                queue.push(if dir.is_empty() {
                    uri.to_string()
                } else {
                    format!("{dir}/{uri}")
                });
            }
        }
    }
    fetched
}

/// Polls `ok` every 100 ms until it holds; panics naming `what` once
/// `limit` has passed.
pub fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Bytes of the files under `dir` (an origin's read-through copy), hidden
/// names — indexes, staging — left out, as the copy's bound leaves them out.
pub fn copy_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => copy_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sg-test-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a file, creating parent directories.
pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Deterministic non-trivial bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(seed as u32 % 31) as u8
                ^ seed
        })
        .collect()
}

/// A free loopback port (released before the server binds it), taken
/// below the kernel's ephemeral range: port 0 would hand out ports that
/// the outgoing connections of other tests (curl, clients) also draw from,
/// and one of them could take it before the server binds it.
pub fn free_addr() -> SocketAddr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (low, span) = (10_000u32, ephemeral_start.saturating_sub(10_000).max(1000));
    // Test processes run side by side: start each one somewhere else. The
    // seed is drawn once per process, so that successive calls walk one
    // sequence and never hand the same port out twice (a fresh seed per
    // call once gave a test's engine and control plane one port).
    static SEED: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        std::process::id().wrapping_mul(2_654_435_761)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
    });
    for _ in 0..span {
        let port = low + (seed.wrapping_add(NEXT.fetch_add(1, Ordering::SeqCst)) % span);
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port as u16)) {
            return listener.local_addr().unwrap();
        }
    }
    panic!("no free port below {ephemeral_start}");
}

/// A running engine (`streamgate engine --open`) or, when not open, the
/// whole appliance (`streamgate serve`: control plane + engine).
pub struct Engine {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// Control plane gRPC (serve mode).
    pub grpc: SocketAddr,
    /// Control plane JSON API (serve mode).
    pub http: SocketAddr,
    pub scratch: Scratch,
    pub root: PathBuf,
    /// The TLS listener, when started with [`Options::tls`].
    pub tls: Option<TlsListener>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    wrapper: Vec<String>,
}

/// The engine's TLS listener and the CA that verifies it (its
/// self-signed certificate).
pub struct TlsListener {
    pub addr: SocketAddr,
    pub ca: PathBuf,
}

fn spawn_engine(args: &[String], env: &[(String, String)], wrapper: &[String]) -> Child {
    let binary = env!("CARGO_BIN_EXE_streamgate");
    let mut command = match wrapper.split_first() {
        Some((program, wrapper_args)) => {
            let mut c = Command::new(program);
            c.args(wrapper_args).arg(binary);
            c
        }
        None => Command::new(binary),
    };
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn streamgate")
}

/// A step run with the config file's path before the process starts.
pub type Prepare = Box<dyn FnOnce(&Path)>;

/// How to start an engine.
pub struct Options {
    /// `engine --open`; otherwise `serve` with its control plane, and the
    /// directories `fill` makes are imported as assets.
    pub open: bool,
    pub threads: usize,
    /// Extra `[engine]` keys, as TOML lines.
    pub engine_toml: String,
    /// Extra `[control]` keys, as TOML lines.
    pub control_toml: String,
    /// Extra top-level sections (`[chains.N]`, `[nft]`), as TOML.
    pub sections_toml: String,
    /// A TLS listener (`listen_tls`) with a fresh self-signed certificate.
    pub tls: bool,
    /// Extra environment variables for the process.
    pub env: Vec<(String, String)>,
    /// A command the binary runs under (`strace -f -o FILE`), or none.
    pub wrapper: Vec<String>,
    /// Runs with the config file's path before the process starts (a
    /// restore into its data dir, say).
    pub prepare: Option<Prepare>,
    /// The plain listener's address (a free port otherwise).
    pub listen: Option<SocketAddr>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            open: true,
            threads: 2,
            engine_toml: String::new(),
            control_toml: String::new(),
            sections_toml: String::new(),
            tls: false,
            env: Vec::new(),
            wrapper: Vec::new(),
            prepare: None,
            listen: None,
        }
    }
}

impl Engine {
    /// Starts with defaults and a root prepared by `fill`.
    pub fn start(fill: impl FnOnce(&Path)) -> Self {
        Self::start_with(Options::default(), fill)
    }

    pub fn start_with(mut options: Options, fill: impl FnOnce(&Path)) -> Self {
        let scratch = Scratch::new("engine");
        let tls = options.tls.then(|| {
            let (ca, key) = nginx::self_signed(&scratch.0);
            let addr = free_addr();
            options.engine_toml += &format!("\nlisten_tls = \"{addr}\"\n");
            options.sections_toml += &format!(
                "\n[engine.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
                ca.display(),
                key.display()
            );
            TlsListener { addr, ca }
        });
        let root = scratch.0.join("root");
        std::fs::create_dir_all(&root).unwrap();
        // Served as-is by an open engine; imported through the control
        // plane by `serve`.
        let incoming = if options.open {
            root.clone()
        } else {
            scratch.0.join("incoming")
        };
        std::fs::create_dir_all(&incoming).unwrap();
        fill(&incoming);
        let addr = options.listen.unwrap_or_else(free_addr);
        let (admin, grpc, http) = (free_addr(), free_addr(), free_addr());
        let config = scratch.0.join("streamgate.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = \"{}\"\n[engine]\nroot = \"{}\"\nlisten = \"{addr}\"\nadmin = \"{admin}\"\nthreads = {}\n{}\n\
                 [control]\ngrpc = \"{grpc}\"\nhttp = \"{http}\"\n{}\n{}\n",
                scratch.0.display(),
                root.display(),
                options.threads,
                options.engine_toml,
                options.control_toml,
                options.sections_toml,
            ),
        )
        .unwrap();
        let mut args: Vec<String> = if options.open {
            vec!["engine".into(), "--open".into()]
        } else {
            vec!["serve".into()]
        };
        args.extend(["--config".into(), config.display().to_string()]);
        if let Some(prepare) = options.prepare.take() {
            prepare(&config);
        }
        let child = spawn_engine(&args, &options.env, &options.wrapper);
        let mut engine = Self {
            child,
            addr,
            admin,
            grpc,
            http,
            scratch,
            root,
            tls,
            args,
            env: options.env,
            wrapper: options.wrapper,
        };
        engine.wait_ready();
        if !options.open {
            let mut names: Vec<_> = std::fs::read_dir(&incoming)
                .unwrap()
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.path())
                .collect();
            names.sort();
            for dir in names {
                engine.cli(&["asset", "import"], &[dir.to_str().unwrap()]);
            }
        }
        engine
    }

    /// Runs `streamgate <command> --config <ours> <args>`; panics on failure,
    /// returns stdout.
    pub fn cli(&self, command: &[&str], args: &[&str]) -> String {
        self.cli_with_stderr(command, args).0
    }

    /// Runs `streamgate <command> --config <ours> <args>`, whatever it
    /// exits with.
    pub fn cli_output(&self, command: &[&str], args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_streamgate"))
            .args(command)
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .output()
            .unwrap()
    }

    /// [`Engine::cli`], with what it said on stderr.
    pub fn cli_with_stderr(&self, command: &[&str], args: &[&str]) -> (String, String) {
        let out = self.cli_output(command, args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "streamgate {command:?} {args:?}: {stderr}"
        );
        (String::from_utf8(out.stdout).unwrap(), stderr)
    }

    /// Gates `asset` behind an ERC-721 rule on a chain with no RPC: it is
    /// then reachable only through operator-issued tokens.
    pub fn gate_unreachable(&self, asset: &str) {
        let (_, said) = self.cli_with_stderr(
            &["asset", "gate", asset],
            &[
                "--chain",
                "999999",
                "--erc721",
                "0x00000000000000000000000000000000000000a1",
            ],
        );
        // The operator is told the asset is now closed to every viewer.
        assert!(
            said.contains("no [chains.999999]") && said.contains("stays closed"),
            "{said}"
        );
        self.wait_status(&format!("/v/{asset}/master.m3u8"), 404);
    }

    /// Gates `asset` on ERC-721 token 1 of `contract` on the test chain
    /// (`asset gate`); what the CLI said on stderr.
    pub fn gate_erc721(&self, asset: &str, contract: &str) -> String {
        let chain = chain::CHAIN_ID.to_string();
        self.cli_with_stderr(
            &["asset", "gate", asset],
            &["--chain", &chain, "--erc721", contract, "--token-id", "1"],
        )
        .1
    }

    /// The operator token `serve` created in its data dir.
    pub fn operator_token(&self) -> String {
        std::fs::read_to_string(self.scratch.0.join("operator.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Uploads `data` as asset `id` in one tus request (creation with
    /// upload, as the operator), over plain HTTP/1.1; asserts 201.
    pub fn upload_whole(&self, data: &[u8], filename: &str, id: &str) {
        use base64::Engine as _;
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        let created = self.over(wire::Wire::Http1).send(
            "POST",
            "/upload/",
            &[
                "Tus-Resumable: 1.0.0".into(),
                format!("Authorization: Bearer {}", self.operator_token()),
                format!("Upload-Length: {}", data.len()),
                format!("Upload-Metadata: filename {},id {}", b64(filename), b64(id)),
                "Content-Type: application/offset+octet-stream".into(),
            ],
            data,
        );
        assert_eq!(created.status, 201, "{:?}", created.headers);
    }

    /// `kill -9`, then start again with the same configuration.
    pub fn kill9_and_restart(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
        self.child = spawn_engine(&self.args, &self.env, &self.wrapper);
        self.wait_ready();
    }

    /// `streamgate token issue` (operator, over gRPC).
    pub fn issue_token(&self, asset: &str) -> String {
        self.cli(&["token", "issue"], &["--asset", asset, "--ttl", "10m"])
            .trim()
            .to_string()
    }

    /// Waits until GET `path` answers `status` (key and file changes are
    /// picked up within about a second).
    pub fn wait_status(&self, path: &str, status: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.get(path, "").status;
            if got == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{path}: still {got}, wanted {status}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The streamgate.toml this engine runs with.
    pub fn config_path(&self) -> PathBuf {
        self.scratch.0.join("streamgate.toml")
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the engine exited while starting ({status}); its stderr is above");
            }
            if let Ok(r) = try_get(self.admin, "/readyz") {
                if r.status == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("engine did not become ready on {}", self.admin);
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// One GET with `extra` header lines, on a fresh connection.
    pub fn get(&self, path: &str, extra: &str) -> Response {
        self.request("GET", path, extra)
    }

    pub fn request(&self, method: &str, path: &str, extra: &str) -> Response {
        let mut s = self.connect();
        write!(s, "{method} {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n").unwrap();
        read_response(&mut s, method == "HEAD").expect("a response")
    }

    /// Sends raw bytes and returns everything until the server closes.
    pub fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut s = self.connect();
        s.write_all(bytes).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    }

    /// A counter or gauge from `/metrics` (summing matching series).
    pub fn metric(&self, series_prefix: &str) -> f64 {
        // Workers flush a few times a second.
        std::thread::sleep(Duration::from_millis(400));
        let body = String::from_utf8(try_get(self.admin, "/metrics").unwrap().body).unwrap();
        body.lines()
            .filter(|l| l.starts_with(series_prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed response: the same type the project's HTTP client returns,
/// filled here by a parser of the tests' own (`read_response`), so the
/// server is not checked only by code it shares.
pub use streamgate_net::client::Reply as Response;

/// GET on a fresh connection to any address (admin included).
pub fn try_get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")?;
    read_response(&mut s, false)
}

/// POST with no body to any address (admin included); the status.
pub fn post(addr: SocketAddr, path: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    read_response(&mut s, false).unwrap().status
}

/// Reads one response; the body is framed by Content-Length (or by close
/// when absent on a non-bodiless status).
pub fn read_response(s: &mut TcpStream, head_request: bool) -> std::io::Result<Response> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8(head).unwrap();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status: u16 = status_line[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head_request || status == 304 || status == 204 {
        return Ok(response);
    }
    match response.header("Content-Length") {
        Some(len) => {
            let mut body = vec![0u8; len.parse().unwrap()];
            s.read_exact(&mut body)?;
            response.body = body;
        }
        None => {
            s.read_to_end(&mut response.body)?;
        }
    }
    Ok(response)
}

/// Whether the server closed the connection (EOF, or reset) within `wait`.
pub fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

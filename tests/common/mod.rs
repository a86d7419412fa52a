//! Test harness: runs the real `streamgate` binary on loopback ports and
//! talks raw HTTP/1.1 to it over real sockets.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

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

/// A free loopback port (released before the server binds it).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A running engine.
pub struct Engine {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub scratch: Scratch,
    pub root: PathBuf,
    args: Vec<String>,
}

fn spawn_engine(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn streamgate")
}

/// How to start an engine.
pub struct Options {
    pub open: bool,
    pub threads: usize,
    /// Extra `[engine]` keys, as TOML lines.
    pub engine_toml: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            open: true,
            threads: 2,
            engine_toml: String::new(),
        }
    }
}

impl Engine {
    /// Starts with defaults and a root prepared by `fill`.
    pub fn start(fill: impl FnOnce(&Path)) -> Self {
        Self::start_with(Options::default(), fill)
    }

    pub fn start_with(options: Options, fill: impl FnOnce(&Path)) -> Self {
        let scratch = Scratch::new("engine");
        let root = scratch.0.join("root");
        std::fs::create_dir_all(&root).unwrap();
        fill(&root);
        let addr = free_addr();
        let admin = free_addr();
        let config = scratch.0.join("streamgate.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = \"{}\"\n[engine]\nroot = \"{}\"\n{}\n",
                scratch.0.display(),
                root.display(),
                options.engine_toml
            ),
        )
        .unwrap();
        let mut args: Vec<String> = vec![
            "engine".into(),
            "--config".into(),
            config.display().to_string(),
        ];
        args.extend([
            "--listen".into(),
            addr.to_string(),
            "--admin".into(),
            admin.to_string(),
        ]);
        args.extend(["--threads".into(), options.threads.to_string()]);
        if options.open {
            args.push("--open".into());
        }
        let child = spawn_engine(&args);
        let engine = Self {
            child,
            addr,
            admin,
            scratch,
            root,
            args,
        };
        engine.wait_ready();
        engine
    }

    /// `kill -9`, then start again with the same configuration.
    pub fn kill9_and_restart(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
        self.child = spawn_engine(&self.args);
        self.wait_ready();
    }

    /// `streamgate token issue` against this engine's configuration.
    pub fn issue_token(&self, asset: &str) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_streamgate"))
            .args([
                "token", "issue", "--asset", asset, "--ttl", "10m", "--config",
            ])
            .arg(self.config_path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
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

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
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

/// A parsed response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

/// GET on a fresh connection to any address (admin included).
pub fn try_get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")?;
    read_response(&mut s, false)
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

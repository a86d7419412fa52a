//! Debian's nginx for the load harness's HTTP/2 and TLS tests: a
//! self-signed certificate made by the openssl CLI, and listeners for
//! HTTP/1.1, h2c (prior knowledge), TLS with h2 + http/1.1 by ALPN, and TLS
//! with http/1.1 only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

use super::free_addr;

/// A running nginx serving `root` at `/`.
pub struct Nginx {
    child: Child,
    /// HTTP/1.1.
    pub plain: SocketAddr,
    /// h2c with prior knowledge.
    pub h2c: SocketAddr,
    /// TLS, ALPN h2 and http/1.1.
    pub tls: SocketAddr,
    /// TLS, http/1.1 only.
    pub tls_h1: SocketAddr,
    /// The self-signed certificate (PEM), for `--cacert`.
    pub cert: PathBuf,
}

/// A self-signed ECDSA certificate for localhost and 127.0.0.1.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    streamgate_testkit::tls::self_signed(dir).unwrap()
}

/// Fields of the certificate the TLS server at `addr` presents for SNI
/// `name` (`openssl s_client`, no verification; `fields` as `openssl x509`
/// takes them: `-subject`, `-serial`, `-issuer`).
pub fn served_certificate(addr: SocketAddr, name: &str, fields: &[&str]) -> String {
    use std::io::Write;
    let hello = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            name,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout"])
        .args(fields)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    x509.stdin.take().unwrap().write_all(&hello.stdout).unwrap();
    String::from_utf8_lossy(&x509.wait_with_output().unwrap().stdout)
        .trim()
        .to_string()
}

impl Nginx {
    /// Starts nginx with its files under `dir`.
    pub fn start(dir: &Path, root: &Path) -> Self {
        let (cert, key) = self_signed(dir);
        let (plain, h2c, tls, tls_h1) = (free_addr(), free_addr(), free_addr(), free_addr());
        let d = dir.display();
        let conf = format!(
            "worker_processes 1;\ndaemon off;\nmaster_process on;\npid {d}/nginx.pid;\n\
             error_log {d}/nginx-error.log warn;\n{user}events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  keepalive_requests 100000;\n\
               types {{ application/vnd.apple.mpegurl m3u8; video/iso.segment m4s; application/dash+xml mpd; video/mp4 mp4; }}\n\
               client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n\
               uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n\
               ssl_certificate {cert};\n  ssl_certificate_key {key};\n\
               server {{\n    listen {plain};\n    listen {h2c} http2;\n    listen {tls} ssl http2;\n    root {root};\n  }}\n\
               server {{\n    listen {tls_h1} ssl;\n    root {root};\n  }}\n}}\n",
            // As root, nginx's workers would otherwise switch to nobody,
            // who cannot read a scratch directory.
            user = if is_root() { "user root;\n" } else { "" },
            cert = cert.display(),
            key = key.display(),
            root = root.display(),
        );
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("/usr/sbin/nginx")
            .arg("-c")
            .arg(&path)
            .arg("-e")
            .arg(dir.join("nginx-error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx (scripts/setup.sh --tests installs it)");
        let nginx = Self {
            child,
            plain,
            h2c,
            tls,
            tls_h1,
            cert,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        for addr in [plain, h2c, tls, tls_h1] {
            while std::net::TcpStream::connect(addr).is_err() {
                assert!(Instant::now() < deadline, "nginx did not listen on {addr}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        nginx
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master stops its workers on the way
        // out; killed outright it would leave them serving.
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

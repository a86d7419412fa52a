//! Certificates from an ACME CA: Debian's pebble (Let's Encrypt's test
//! server) with its own CA, HTTP-01 answered on the engine's plain
//! listener. Issue and serve HTTPS with the new certificate, a forced
//! renewal swaps it without a restart, and with pebble gone a renewal
//! fails clearly while the certificate in use stays.

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::nginx::{self_signed, served_certificate};
use common::{free_addr, wait_for, write, Engine, Options, Scratch};

/// What tells two certificates and their CA apart.
const SERIAL_AND_ISSUER: &[&str] = &["-serial", "-issuer"];

/// A running pebble: its directory URL and the root its certificates
/// chain to.
struct Pebble {
    child: Child,
    directory: String,
    /// Pebble's own HTTPS certificate (the ACME client trusts it).
    api_ca: PathBuf,
    management: SocketAddr,
}

impl Pebble {
    fn start(dir: &Path, http_port: u16) -> Self {
        let (cert, key) = self_signed(dir);
        let (listen, management) = (free_addr(), free_addr());
        let config = dir.join("pebble.json");
        std::fs::write(
            &config,
            format!(
                "{{\"pebble\": {{\"listenAddress\": \"{listen}\", \"managementListenAddress\": \"{management}\", \
                 \"certificate\": \"{}\", \"privateKey\": \"{}\", \"httpPort\": {http_port}, \"tlsPort\": {}, \
                 \"ocspResponderURL\": \"\", \"externalAccountBindingRequired\": false}}}}",
                cert.display(),
                key.display(),
                free_addr().port()
            ),
        )
        .unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&config)
            // No random sleep before validating, no nonces refused at random.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble (Debian's package; scripts/setup.sh --tests)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(listen).is_err() {
            assert!(Instant::now() < deadline, "pebble did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            directory: format!("https://{listen}/dir"),
            api_ca: cert,
            management,
        }
    }

    /// The root pebble issues under (it makes a new one per run).
    fn root(&self, dir: &Path) -> PathBuf {
        let out = Command::new("curl")
            .args(["-s", "--cacert"])
            .arg(&self.api_ca)
            .arg(format!("https://{}/roots/0", self.management))
            .output()
            .unwrap();
        let path = dir.join("pebble-root.pem");
        std::fs::write(&path, out.stdout).unwrap();
        path
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn pebble_issues_a_renewal_swaps_it_and_a_dead_ca_keeps_the_old_one() {
    let s = Scratch::new("acme");
    let plain = free_addr();
    let mut pebble = Pebble::start(&s.0, plain.port());
    let tls = free_addr();
    let e = Engine::start_with(
        Options {
            // The plain listener is where pebble checks HTTP-01.
            listen: Some(plain),
            engine_toml: format!("listen_tls = \"{tls}\""),
        sections_toml: format!(
            "[engine.acme]\ndomains = [\"localhost\"]\nemail = \"ops@example.com\"\ndirectory = \"{}\"\nca = \"{}\"\n",
            pebble.directory,
            pebble.api_ca.display()
        ),
            ..Options::default()
        },
        |root| write(&root.join("a/x.m4s"), b"x"),
    );

    // Issued: the certificate chains to pebble's root, and HTTPS verifies
    // against it.
    wait_for("never issued", Duration::from_secs(30), || {
        served_certificate(tls, "localhost", SERIAL_AND_ISSUER).contains("Pebble Intermediate")
    });
    let root = pebble.root(&s.0);
    let url = format!("https://localhost:{}/v/a/x.m4s", tls.port());
    let fetch = |ca: &Path| {
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(ca)
            .arg("--resolve")
            .arg(format!("localhost:{}:127.0.0.1", tls.port()))
            .arg(&url)
            .output()
            .unwrap()
            .stdout
    };
    assert_eq!(fetch(&root), b"200");
    let acme_dir = e.scratch.0.join("acme");
    for file in ["cert.pem", "key.pem", "account.json"] {
        let mode = std::fs::metadata(acme_dir.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    assert!(e.metric("streamgate_acme_issuances_total{result=\"issued\"}") >= 1.0);

    // A forced renewal: a new certificate, no restart.
    let first = served_certificate(tls, "localhost", SERIAL_AND_ISSUER);
    assert_eq!(common::post(e.admin, "/tls/renew"), 202);
    wait_for("never renewed", Duration::from_secs(30), || {
        served_certificate(tls, "localhost", SERIAL_AND_ISSUER) != first
    });
    let second = served_certificate(tls, "localhost", SERIAL_AND_ISSUER);
    assert!(second.contains("Pebble Intermediate"), "{second}");

    // The CA gone: the renewal fails, says so, and the certificate stays.
    let _ = pebble.child.kill();
    let _ = pebble.child.wait();
    assert_eq!(common::post(e.admin, "/tls/renew"), 202);
    wait_for("failure not counted", Duration::from_secs(30), || {
        e.metric("streamgate_acme_issuances_total{result=\"failed\"}") >= 1.0
    });
    assert_eq!(
        served_certificate(tls, "localhost", SERIAL_AND_ISSUER),
        second,
        "the certificate in use stays"
    );
    assert_eq!(fetch(&root), b"200");
}

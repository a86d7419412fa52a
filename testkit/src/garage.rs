//! A real S3 server for tests and benchmarks: Garage (crates.io, built and
//! installed by `scripts/setup.sh --tests`), one node on loopback with its
//! own directories, a bucket and an access key. It can be stopped and
//! started again on the same data (a bucket outage, then recovery).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key every test node uses (Garage wants `GK` + 24 hex digits).
pub const ACCESS_KEY_ID: &str = "GK5eb0a7e5c1d2f3a4b5c6d7e8";
/// Its secret.
pub const SECRET_ACCESS_KEY: &str =
    "5eb0a7e5c1d2f3a4b5c6d7e8f90112233445566778899aabbccddeeff0011223";
/// The bucket made at start.
pub const BUCKET: &str = "streamgate";
/// The region Garage answers for.
pub const REGION: &str = "garage";

/// A running Garage node (killed on drop).
pub struct Garage {
    dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
    /// The S3 endpoint.
    pub s3: SocketAddr,
}

impl Garage {
    /// Starts a fresh node under `dir`: layout applied, key imported, bucket
    /// made and allowed.
    pub fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("garage directory");
        let s3 = crate::http::free_addr();
        let rpc = crate::http::free_addr();
        let config = dir.join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"{rpc}\"\nrpc_public_addr = \"{rpc}\"\n\
                 rpc_secret = \"{secret}\"\n[s3_api]\ns3_region = \"{REGION}\"\n\
                 api_bind_addr = \"{s3}\"\nroot_domain = \".s3.garage.localhost\"\n",
                meta = dir.join("meta").display(),
                data = dir.join("data").display(),
                secret = "7c1e".repeat(16),
            ),
        )
        .expect("garage config");
        let mut garage = Self {
            dir: dir.to_path_buf(),
            config,
            child: None,
            s3,
        };
        garage.resume();
        let id = garage.cli(&["node", "id", "-q"]);
        let id = id.trim().split('@').next().unwrap_or_default().to_string();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &id]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        garage.cli(&[
            "key",
            "import",
            "--yes",
            "-n",
            "streamgate",
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
        ]);
        garage.cli(&["bucket", "create", BUCKET]);
        garage.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            BUCKET,
            "--key",
            "streamgate",
        ]);
        garage
    }

    /// `http://<s3>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.s3)
    }

    /// A `[storage]` section pointing at this node (credentials come from
    /// [`Garage::env`]).
    pub fn storage_toml(&self) -> String {
        format!(
            "[storage]\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"{BUCKET}\"\nregion = \"{REGION}\"\n\
             request_timeout = \"3s\"\n",
            self.endpoint()
        )
    }

    /// The bucket as StreamGate's client reaches it (the keys given
    /// directly), each request bounded by `request_timeout`.
    pub fn bucket_config(&self, request_timeout: Duration) -> streamgate_assets::BucketConfig {
        streamgate_assets::BucketConfig {
            endpoint: Some(self.endpoint()),
            bucket: BUCKET.into(),
            region: REGION.into(),
            path_style: true,
            prefix: String::new(),
            credentials: streamgate_assets::CredentialSource::Given(
                streamgate_assets::Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY),
            ),
            request_timeout,
        }
    }

    /// The environment that gives a StreamGate process the credentials.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "STREAMGATE_S3_ACCESS_KEY_ID".into(),
                ACCESS_KEY_ID.to_string(),
            ),
            (
                "STREAMGATE_S3_SECRET_ACCESS_KEY".into(),
                SECRET_ACCESS_KEY.to_string(),
            ),
        ]
    }

    /// Stops the node (SIGKILL): the bucket is unreachable.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the node again on the same data and waits until it answers.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "garage is already running");
        let log = std::fs::File::create(self.dir.join("server.log")).expect("garage log");
        let child = Command::new("garage")
            .arg("-c")
            .arg(&self.config)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("garage is installed by scripts/setup.sh --tests");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(self.s3).is_err() {
            assert!(
                Instant::now() < deadline,
                "garage did not listen on {}",
                self.s3
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `garage -c <config> <args>`; panics with its output on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new("garage")
                .arg("-c")
                .arg(&self.config)
                .args(args)
                .output()
                .expect("run garage");
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            // Right after start the node may not take admin commands yet.
            assert!(
                Instant::now() < deadline,
                "garage {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

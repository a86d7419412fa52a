//! Scale-out, the way several machines run it: PostgreSQL and a bucket
//! (Garage) shared by two control-plane replicas, two origins and two job
//! runners (`streamgate worker`), each a process with a data dir of its
//! own. An upload on origin A is transcoded by a worker — killed with -9
//! mid-job, the other takes the job over — and origin B, with an empty copy
//! bounded to about half the film, serves every segment with A's
//! validators while staying in its bound; ffmpeg decodes HLS and DASH from
//! both; a half-uploaded asset is never served; replicas answer as one,
//! and losing one costs nothing; with the bucket stopped, B serves what it
//! holds and answers 503 for the rest.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::chain::{CHAIN_ID, WALLETS};
use common::postgres::Database;
use common::wallet::{challenge, login, personal_sign};
use common::{copy_bytes, free_addr, try_get, wait_for, Scratch};
use streamgate_api::v1::jobs_client::JobsClient;
use streamgate_api::v1::{Job, ListJobsRequest};
use streamgate_assets::Bucket;
use streamgate_testkit::garage::Garage;

/// A `streamgate` process (killed on drop).
struct Node {
    child: Child,
    dir: PathBuf,
}

impl Node {
    fn start(command: &str, dir: &Path, toml: &str, garage: &Garage) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("streamgate.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = \"{}\"\n{toml}\n{}",
                dir.display(),
                garage.storage_toml()
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_streamgate"))
            .args([command, "--config", config.to_str().unwrap()])
            .envs(garage.env())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Self {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn status(addr: SocketAddr, path: &str) -> u16 {
    try_get(addr, path).map_or(0, |r| r.status)
}

fn jobs(grpc: SocketAddr, token: &str) -> Vec<Job> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let Ok(mut client) = JobsClient::connect(format!("http://{grpc}")).await else {
            return Vec::new();
        };
        let mut request = tonic::Request::new(ListJobsRequest {});
        request.metadata_mut().insert(
            streamgate_api::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        client
            .list_jobs(request)
            .await
            .map(|r| r.into_inner().jobs)
            .unwrap_or_default()
    })
}

/// An origin: `streamgate engine` against both replicas, an empty copy
/// of at most `copy_bytes`.
fn origin(
    dir: &Path,
    urls: &str,
    garage: &Garage,
    copy_bytes: u64,
) -> (Node, SocketAddr, SocketAddr) {
    let (listen, admin) = (free_addr(), free_addr());
    let node = Node::start(
        "engine",
        dir,
        &format!(
            "[engine]\nlisten = \"{listen}\"\nadmin = \"{admin}\"\nthreads = 1\njob_workers = 0\n\
             upload_ladder = \"240,144\"\nupload_segment_seconds = 2\ncache_dir_max_bytes = {copy_bytes}\n\
             [control]\nurls = {urls}\n"
        ),
        garage,
    );
    (node, listen, admin)
}

/// `streamgate ingest FILE --id ID` through origin A's configuration
/// (under `scratch/a`), waiting until the asset plays.
fn ingest_on_a(scratch: &Path, file: &Path, id: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_streamgate"));
    command
        .arg("ingest")
        .arg(file)
        .args(["--id", id, "--config"])
        .arg(scratch.join("a/streamgate.toml"));
    command
}

#[test]
fn origins_workers_and_replicas_share_postgresql_and_a_bucket() {
    let Some(db) = Database::create() else {
        return;
    };
    let scratch = Scratch::new("scale-out");
    let mut garage = Garage::start(&scratch.0.join("garage"));

    // Two control-plane replicas on one database, one operator token.
    let replicas: Vec<(SocketAddr, SocketAddr)> =
        (0..2).map(|_| (free_addr(), free_addr())).collect();
    let control_toml = |(grpc, http): (SocketAddr, SocketAddr)| {
        format!(
            "[control]\ngrpc = \"{grpc}\"\nhttp = \"{http}\"\ndatabase = \"{}\"\n\
             [chains.{CHAIN_ID}]\nrpc = [\"http://127.0.0.1:9\"]\n",
            db.url()
        )
    };
    let mut c1 = Node::start(
        "control",
        &scratch.0.join("c1"),
        &control_toml(replicas[0]),
        &garage,
    );
    let token_path = c1.dir.join("operator.token");
    wait_for("replica 1", Duration::from_secs(20), || {
        token_path.exists() && status(replicas[0].1, "/healthz") == 200
    });
    let token = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_string();
    let give_token = |dir: &Path| {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("operator.token"), &token).unwrap();
    };
    give_token(&scratch.0.join("c2"));
    let _c2 = Node::start(
        "control",
        &scratch.0.join("c2"),
        &control_toml(replicas[1]),
        &garage,
    );
    wait_for("replica 2", Duration::from_secs(20), || {
        status(replicas[1].1, "/healthz") == 200
    });
    let urls = format!(
        "[\"http://{}\", \"http://{}\"]",
        replicas[0].0, replicas[1].0
    );

    // A challenge from one replica is answered at the other, once.
    let [(key, wallet), ..] = WALLETS;
    let c = challenge(replicas[0].1, wallet, CHAIN_ID, "siwe");
    let signature = personal_sign(key, c["message"].as_str().unwrap());
    let id = c["challenge_id"].as_str().unwrap();
    assert_eq!(login(replicas[1].1, id, &signature).status, 200);
    assert_eq!(
        login(replicas[0].1, id, &signature).code(),
        "challenge_used"
    );

    // Two origins, two workers, all given both replicas.
    for name in ["a", "b", "w1", "w2"] {
        give_token(&scratch.0.join(name));
    }
    // B's copy holds about half of the film: a sweep of every object
    // keeps evicting.
    let bound = 600_000;
    let (_a, a_listen, a_admin) = origin(&scratch.0.join("a"), &urls, &garage, 50 << 30);
    let (_b, b_listen, b_admin) = origin(&scratch.0.join("b"), &urls, &garage, bound);
    let worker_toml = format!(
        "[engine]\njob_workers = 1\njob_preset = \"ultrafast\"\njob_lease = \"2s\"\n[control]\nurls = {urls}\n"
    );
    let mut workers = [
        Node::start("worker", &scratch.0.join("w1"), &worker_toml, &garage),
        Node::start("worker", &scratch.0.join("w2"), &worker_toml, &garage),
    ];
    wait_for("both origins", Duration::from_secs(20), || {
        status(a_admin, "/readyz") == 200 && status(b_admin, "/readyz") == 200
    });

    // Ingest on A; the worker that claims the job is killed mid-job.
    let source = common::clip(&scratch.0, "source.mp4", "640x360", 16, true);
    let ingest = ingest_on_a(&scratch.0, &source, "film")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut claimed = None;
    wait_for("a worker claims the job", Duration::from_secs(60), || {
        claimed = jobs(replicas[0].0, &token)
            .into_iter()
            .find(|j| j.asset_id == "film" && j.state == "running");
        claimed.is_some()
    });
    let first = claimed.unwrap();
    let pid: u32 = first.runner.split(':').nth(1).unwrap().parse().unwrap();
    let victim = workers
        .iter()
        .position(|w| w.child.id() == pid)
        .expect("the runner is one of the two workers");
    workers[victim].kill9();
    let mut ingest = ingest;
    wait_for(
        "the other worker finishes the job",
        Duration::from_secs(180),
        || ingest.try_wait().unwrap().is_some(),
    );
    let out = ingest.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ingest: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let done = jobs(replicas[1].0, &token)
        .into_iter()
        .find(|j| j.asset_id == "film")
        .unwrap();
    assert_eq!(done.state, "done", "{done:?}");
    assert_eq!(done.attempts, 2, "taken over once: {done:?}");
    assert_ne!(done.runner, first.runner, "the other worker finished it");
    // The operator sees the same through the CLI.
    let listed = Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .args(["jobs", "--config"])
        .arg(scratch.0.join("a/streamgate.toml"))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    let line = listed
        .lines()
        .find(|l| l.contains(&done.id))
        .unwrap_or_else(|| panic!("no line for {}: {listed}", done.id));
    assert!(
        line.contains("film") && line.contains("done") && line.contains(&done.runner),
        "{line}"
    );

    // B, with an empty copy, serves every segment, with A's validators.
    wait_for("film open on B", Duration::from_secs(10), || {
        status(b_listen, "/v/film/master.m3u8") == 200
    });
    let mut queue = vec!["master.m3u8".to_string()];
    let mut served = 0;
    let b_copy = scratch.0.join("b/cache");
    while let Some(path) = queue.pop() {
        let (from_a, from_b) = (
            try_get(a_listen, &format!("/v/film/{path}")).unwrap(),
            try_get(b_listen, &format!("/v/film/{path}")).unwrap(),
        );
        assert_eq!((from_a.status, from_b.status), (200, 200), "{path}");
        assert_eq!(from_a.body, from_b.body, "{path}");
        assert_eq!(from_a.header("ETag"), from_b.header("ETag"), "{path}");
        assert_eq!(
            from_a.header("Last-Modified"),
            from_b.header("Last-Modified"),
            "{path}"
        );
        served += 1;
        let held = copy_bytes(&b_copy);
        assert!(held <= bound, "B holds {held} bytes, bound {bound}");
        if path.ends_with(".m3u8") {
            let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
            for line in String::from_utf8(from_b.body).unwrap().lines() {
                let uri = match line.strip_prefix("#EXT-X-MAP:URI=\"") {
                    Some(rest) => rest.split('"').next().unwrap(),
                    None if line.is_empty() || line.starts_with('#') => continue,
                    None => line,
                };
                queue.push(if dir.is_empty() {
                    uri.into()
                } else {
                    format!("{dir}/{uri}")
                });
            }
        }
    }
    assert!(served > 10, "{served} objects");
    let film_bytes = copy_bytes(&scratch.0.join("b/cache/film"));
    assert!(film_bytes > 0 && film_bytes <= bound);

    // Objects of an asset whose index never went up (a publish cut short)
    // are never served.
    let half = scratch.0.join("half.m3u8");
    std::fs::write(&half, b"#EXTM3U\n").unwrap();
    let writer = Bucket::connect(&garage.bucket_config(Duration::from_secs(5))).unwrap();
    writer
        .put_file(
            writer.asset_key("half/master.m3u8"),
            &half,
            "application/vnd.apple.mpegurl",
        )
        .unwrap();
    assert_eq!(status(b_listen, "/v/half/master.m3u8"), 404);
    for origin in [a_listen, b_listen] {
        for entry in ["master.m3u8", "manifest.mpd"] {
            common::decodes_cleanly(&format!("http://{origin}/v/film/{entry}"));
        }
    }

    // Replica 1 goes away: uploads, jobs and playback go on through 2.
    c1.kill9();
    let second = common::clip(&scratch.0, "second.mp4", "320x240", 3, false);
    let out = ingest_on_a(&scratch.0, &second, "second").output().unwrap();
    assert!(
        out.status.success(),
        "ingest with replica 1 down: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("second open on B", Duration::from_secs(10), || {
        status(b_listen, "/v/second/master.m3u8") == 200
    });

    // The bucket goes away: B keeps serving what its copy holds, and what
    // it does not hold is 503, never 404.
    garage.stop();
    assert_eq!(status(b_listen, "/v/second/master.m3u8"), 200);
    let uncached = try_get(b_listen, "/v/second/240p/index.m3u8").unwrap();
    assert_eq!(uncached.status, 503);
    assert!(uncached.header("Retry-After").is_some());
}

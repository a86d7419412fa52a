//! A split deployment: `streamgate control` and `streamgate engine` as two
//! processes with their own data directories, the way two machines run them.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_addr, try_get, write, Scratch};
use streamgate_api::v1::assets_client::AssetsClient;
use streamgate_api::v1::{AssetStatus, CreateAssetRequest};

/// A child process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn streamgate(args: &[&str]) -> Running {
    Running(
        Command::new(env!("CARGO_BIN_EXE_streamgate"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn streamgate"),
    )
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn status(addr: SocketAddr, path: &str) -> u16 {
    try_get(addr, path).map_or(0, |r| r.status)
}

/// Registers a ready asset the way an engine's job runner does.
fn register_ready(grpc: SocketAddr, token: &str, id: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = AssetsClient::connect(format!("http://{grpc}"))
            .await
            .unwrap();
        let mut request = tonic::Request::new(CreateAssetRequest {
            id: id.into(),
            title: id.into(),
            status: AssetStatus::Ready as i32,
        });
        request.metadata_mut().insert(
            streamgate_api::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        client.create_asset(request).await.unwrap();
    });
}

fn packaged(dir: &Path) {
    write(&dir.join("master.m3u8"), b"#EXTM3U\n");
    write(&dir.join("720p/1.m4s"), &[7u8; 2048]);
}

#[test]
fn deleting_an_asset_removes_the_engines_copy() {
    let control_dir = Scratch::new("split-control");
    let engine_dir = Scratch::new("split-engine");
    let (grpc, http, listen, admin) = (free_addr(), free_addr(), free_addr(), free_addr());
    let control_toml = control_dir.0.join("streamgate.toml");
    std::fs::write(
        &control_toml,
        format!(
            "data_dir = \"{}\"\n[control]\ngrpc = \"{grpc}\"\nhttp = \"{http}\"\n",
            control_dir.0.display()
        ),
    )
    .unwrap();
    let engine_toml = engine_dir.0.join("streamgate.toml");
    let root = engine_dir.0.join("assets");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        &engine_toml,
        format!(
            "data_dir = \"{}\"\n[engine]\nroot = \"{}\"\nlisten = \"{listen}\"\nadmin = \"{admin}\"\nthreads = 1\njob_workers = 0\n\
             [control]\ngrpc = \"{grpc}\"\n",
            engine_dir.0.display(),
            root.display()
        ),
    )
    .unwrap();
    let _control = streamgate(&["control", "--config", control_toml.to_str().unwrap()]);
    let token_path = control_dir.0.join("operator.token");
    wait_for("the control plane's operator token", || {
        token_path.exists() && status(http, "/healthz") == 200
    });
    let token = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_string();
    let _engine = streamgate(&["engine", "--config", engine_toml.to_str().unwrap()]);
    wait_for("the engine", || status(admin, "/readyz") == 200);

    // Published on the engine's disk (its job runner would), registered
    // with the control plane: served once the engine's poll says it is open.
    packaged(&root.join("film"));
    register_ready(grpc, &token, "film");
    wait_for("film served", || {
        status(listen, "/v/film/master.m3u8") == 200
    });

    let out = Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .args(["asset", "delete", "film", "--config"])
        .arg(&control_toml)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("each engine removes its copy"),
        "the CLI says the control plane held no files: {said}"
    );
    wait_for("the engine's copy removed", || !root.join("film").exists());
    let after = try_get(listen, "/v/film/master.m3u8");
    assert_eq!(
        after.as_ref().map(|r| r.status).ok(),
        Some(404),
        "after deletion: {after:?}"
    );
    assert_eq!(
        std::fs::read_dir(&root).unwrap().count(),
        0,
        "no trash left behind"
    );

    // The id used again: the old deletion no longer applies to it.
    packaged(&root.join("film"));
    register_ready(grpc, &token, "film");
    wait_for("film served again", || {
        status(listen, "/v/film/master.m3u8") == 200
    });
    std::thread::sleep(Duration::from_millis(2500)); // two more polls
    assert!(
        root.join("film/master.m3u8").exists(),
        "a re-created asset stays"
    );
}

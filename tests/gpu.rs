//! The GPU stages on a machine without a GPU (this VM, CI): the probe says
//! "no GPU" with the driver's reason, `--gpu require` fails naming the stage
//! and the reason (and publishes nothing), `--gpu auto` transcodes on the
//! CPU and says so once, and the engine exports what it found. The GPU side
//! of the same checks runs on a lent GPU machine (bench/gpu.sh).

mod common;

use std::process::Command;

use common::{clip, Engine, Options, Scratch};

fn no_driver() -> bool {
    !std::path::Path::new("/proc/driver/nvidia").exists()
}

#[test]
fn without_a_gpu_info_says_so_require_fails_and_auto_uses_the_cpu() {
    assert!(
        no_driver(),
        "this test is for machines without an NVIDIA driver; bench/gpu.sh covers GPU machines"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .args(["gpu", "info", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["usable"], false, "{info:#}");
    let why = info["report"]["cuda_unusable"].as_str().unwrap();
    assert!(why.contains("no NVIDIA driver loaded"), "{why}");
    assert!(
        info["auto"]
            .as_str()
            .unwrap()
            .contains("libx264 on the CPU"),
        "{info:#}"
    );

    let s = Scratch::new("gpu");
    let source = clip(&s.0, "in.mp4", "320x240", 2, false);
    let out = Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .arg("transcode")
        .arg(&source)
        .arg("--out")
        .arg(s.0.join("required"))
        .args(["--gpu", "require", "--preset", "ultrafast"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("decode: no NVIDIA driver loaded"),
        "require names the stage and the reason: {said}"
    );
    assert!(!s.0.join("required").exists(), "nothing published");

    let out = Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .arg("transcode")
        .arg(&source)
        .arg("--out")
        .arg(s.0.join("auto"))
        .args([
            "--gpu",
            "auto",
            "--preset",
            "ultrafast",
            "--segment-seconds",
            "2",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert_eq!(
        said.matches("encoding with libx264 on the CPU").count(),
        1,
        "auto says once where the stages run: {said}"
    );
    assert!(s.0.join("auto/master.m3u8").is_file());
}

#[test]
fn the_engine_exports_which_stages_can_use_the_gpu() {
    assert!(no_driver(), "for machines without an NVIDIA driver");
    let e = Engine::start_with(
        Options {
            open: false,
            ..Options::default()
        },
        |_| {},
    );
    for stage in ["decode", "scale", "encode"] {
        let series = format!("streamgate_gpu_stage_usable{{stage=\"{stage}\"}}");
        let body = String::from_utf8(common::try_get(e.admin, "/metrics").unwrap().body).unwrap();
        assert!(body.contains(&format!("{series} 0")), "{series}: {body}");
    }
}

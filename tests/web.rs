//! The viewer pages in a real browser: Debian's Chromium driven by
//! playwright-core (`tests/web/drive.mjs`) against a real `serve` with a
//! transcoded asset gated on an NFT minted on anvil. A wallet (EIP-1193,
//! announced by EIP-6963) is injected into the page and signs with anvil's
//! dev keys; the page does not know it is a test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::chain::{Anvil, CHAIN_ID, WALLETS};
use common::{clip, transcoded, Engine, Options, Scratch};

/// Runs one scenario through the browser; its JSON report.
fn drive(scenario: serde_json::Value, dir: &Path) -> serde_json::Value {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    assert!(
        web.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run scripts/setup.sh --tests"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is not installed: run scripts/setup.sh --tests"
    );
    let file = dir.join("scenario.json");
    std::fs::write(&file, scenario.to_string()).unwrap();
    let out = Command::new("node")
        .arg(web.join("drive.mjs"))
        .arg(&file)
        .output()
        .expect("node (scripts/setup.sh --tests)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "drive.mjs: {e}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Where screenshots are kept (a test artifact, beside the build).
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_holder_signs_in_with_a_browser_wallet_and_the_gated_video_plays() {
    let s = Scratch::new("web");
    let anvil = Anvil::start();
    let nft = anvil.deploy("TestNft721");
    let [(_, holder), ..] = WALLETS;
    anvil.mint721(nft, holder, 1);
    let input = clip(&s.0, "film.mp4", "320x180", 12, true);
    let e = Engine::start_with(
        Options {
            open: false,
            sections_toml: format!("[chains.{CHAIN_ID}]\nrpc = [\"{}\"]\n", anvil.url()),
            ..Options::default()
        },
        |dir| transcoded(&input, &dir.join("film"), &["--ladder", "180,144"]),
    );
    e.cli(
        &["asset", "gate", "film"],
        &[
            "--chain",
            "31337",
            "--erc721",
            &nft.to_string(),
            "--token-id",
            "1",
        ],
    );
    e.wait_status("/v/film/master.m3u8", 404);
    // The pages come with the strict policy.
    let page = common::try_get(e.addr, "/watch/film").unwrap();
    assert_eq!(page.status, 200);
    let csp = page.header("Content-Security-Policy").unwrap();
    assert!(
        csp.contains("script-src 'self';") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(page.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(page.header("Referrer-Policy"), Some("no-referrer"));

    for kind in ["siwe", "eip712"] {
        let shot = artifacts().join(format!("watch-{kind}.png"));
        let report = drive(
            serde_json::json!({
                "url": format!("http://{}/watch/film", e.addr),
                "anvil": anvil.url(),
                "account": holder,
                "kind": kind,
                "screenshot": shot,
                "playSeconds": 5,
            }),
            &s.0,
        );
        assert!(report["failure"].is_null(), "{kind}: {report}");
        assert!(report["currentTime"].as_f64().unwrap() > 5.0, "{report}");
        assert_eq!(report["errors"], serde_json::json!([]), "{kind}: {report}");
        let levels = report["levels"].as_array().unwrap();
        assert!(levels.len() >= 3, "Auto and each rendition: {report}");
        assert!(std::fs::metadata(&shot).unwrap().len() > 1000);
    }
}

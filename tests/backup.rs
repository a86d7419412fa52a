//! `streamgate backup` while the appliance serves under load, and
//! `streamgate restore` into a fresh data dir: the assets, their gate
//! rules, the signing keys (a token minted before still plays), the
//! operator token and a wallet's session all survive. A damaged backup
//! and an occupied data dir are refused.

mod common;

use std::process::Command;

use common::chain::{Anvil, CHAIN_ID, WALLETS};
use common::wallet::{playback, sign_in};
use common::{packaged_asset, Engine, Options, Scratch};

fn streamgate(args: &[&str], config: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

fn chain_section(anvil: &Anvil) -> String {
    format!("[chains.{CHAIN_ID}]\nrpc = [\"{}\"]\n", anvil.url())
}

#[test]
fn a_backup_taken_under_load_restores_everything() {
    let s = Scratch::new("backup");
    let anvil = Anvil::start();
    let nft = anvil.deploy("TestNft721");
    let e = Engine::start_with(
        Options {
            open: false,
            sections_toml: chain_section(&anvil),
            ..Options::default()
        },
        |dir| {
            packaged_asset(&dir.join("movie"), 1);
            packaged_asset(&dir.join("open"), 2);
        },
    );
    e.gate_erc721("movie", &nft.to_string());
    let [(key, wallet), ..] = WALLETS;
    let session = sign_in(e.http, key, wallet, CHAIN_ID, "siwe");
    assert_eq!(playback(e.http, &session, "open").status, 200);
    let token = e.issue_token("movie");
    let gated = format!("/p/{token}/movie/master.m3u8");
    e.wait_status(&gated, 200);

    // Under load: the engine serves and wallets sign in while it copies.
    let load = Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .args(["loadtest", "run", "--url"])
        .arg(format!("http://{}/v/open/master.m3u8", e.addr))
        .args(["--connections", "4", "--duration", "3s"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let signing = std::thread::spawn({
        let http = e.http;
        move || {
            for _ in 0..5 {
                sign_in(http, key, wallet, CHAIN_ID, "siwe");
            }
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let backup = s.0.join("nightly");
    let out = streamgate(
        &["backup", backup.to_str().unwrap(), "--assets"],
        &e.config_path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    signing.join().unwrap();
    assert!(load.wait_with_output().unwrap().status.success());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(backup.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["database"], "sqlite");
    for file in [
        "streamgate.db",
        "operator.token",
        "assets/movie/master.m3u8",
    ] {
        assert!(manifest["files"][file].is_string(), "{file}: {manifest:#}");
    }
    let operator_token = std::fs::read(e.scratch.0.join("operator.token")).unwrap();
    let backup_copy = s.0.join("damaged");
    drop(e);

    // Into a fresh data dir, before the new appliance starts.
    let restored = Engine::start_with(
        Options {
            open: false,
            sections_toml: chain_section(&anvil),
            prepare: Some(Box::new({
                let backup = backup.clone();
                move |config: &std::path::Path| {
                    let out = streamgate(&["restore", backup.to_str().unwrap()], config);
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            })),
            ..Options::default()
        },
        |_| {},
    );
    assert_eq!(
        std::fs::read(restored.scratch.0.join("operator.token")).unwrap(),
        operator_token,
        "the operator token"
    );
    let listed = restored.cli(&["asset", "list"], &[]);
    assert!(
        listed.contains("movie") && listed.contains("open"),
        "{listed}"
    );
    let shown = restored.cli(&["asset", "show", "movie"], &[]);
    assert!(
        shown.contains(&nft.to_string().to_lowercase()) || shown.contains(&nft.to_string()),
        "the gate rule: {shown}"
    );
    // The signing key: a token minted before the backup plays.
    restored.wait_status(&gated, 200);
    // The wallet's session.
    assert_eq!(playback(restored.http, &session, "open").status, 200);

    // A damaged copy is refused before anything is written; so is a data
    // dir that already holds an appliance.
    copy_dir(&backup, &backup_copy);
    let db = backup_copy.join("streamgate.db");
    let mut bytes = std::fs::read(&db).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&db, bytes).unwrap();
    let fresh = s.0.join("fresh.toml");
    std::fs::write(
        &fresh,
        format!("data_dir = \"{}\"\n", s.0.join("fresh").display()),
    )
    .unwrap();
    let out = streamgate(&["restore", backup_copy.to_str().unwrap()], &fresh);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("backup damaged: streamgate.db"));
    assert!(!s.0.join("fresh/streamgate.db").exists(), "nothing written");
    let out = streamgate(
        &["restore", backup.to_str().unwrap()],
        &restored.config_path(),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds"));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

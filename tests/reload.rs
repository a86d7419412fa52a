//! SIGHUP on a running `serve`, without dropping a connection: the
//! engine's Cache-Control for manifests and its CORS origins change, the
//! control plane moves to the chain's new RPC URL (a gate that answered
//! 503 on a dead URL answers the holder), and load running through it all
//! loses no request; a connection opened before the reload goes on.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::chain::{Anvil, CHAIN_ID, WALLETS};
use common::wallet::{playback, sign_in};
use common::{free_addr, packaged_asset, read_response, Engine, Options};

#[test]
fn sighup_applies_the_new_config_without_dropping_a_connection() {
    let anvil = Anvil::start();
    let nft = anvil.deploy("TestNft721");
    let [(key, wallet), ..] = WALLETS;
    anvil.mint721(nft, wallet, 1);
    let dead = format!("http://{}", free_addr());
    let e = Engine::start_with(
        Options {
            open: false,
            engine_toml: "manifest_max_age = 7\ncors_origins = [\"https://a.example\"]".into(),
            sections_toml: format!(
                "[chains.{CHAIN_ID}]\nrpc = [\"{dead}\"]\ntimeout = \"1s\"\n[nft]\ncache_ttl = \"1s\"\nnegative_ttl = \"1s\"\n"
            ),
            ..Options::default()
        },
        |dir| {
            packaged_asset(&dir.join("movie"), 1);
            packaged_asset(&dir.join("open"), 2);
        },
    );
    e.gate_erc721("movie", &nft.to_string());
    e.wait_status("/v/open/master.m3u8", 200);
    let session = sign_in(e.http, key, wallet, CHAIN_ID, "siwe");
    assert_eq!(
        playback(e.http, &session, "movie").status,
        503,
        "the only RPC URL is dead: unavailable, never \"no NFT\""
    );
    let manifest = "/v/open/master.m3u8";
    let before = e.get(manifest, "Origin: https://a.example\r\n");
    assert_eq!(before.header("Cache-Control"), Some("public, max-age=7"));
    assert_eq!(
        before.header("Access-Control-Allow-Origin"),
        Some("https://a.example")
    );

    // Load, and one kept-alive connection, across the reload.
    let json = e.scratch.0.join("load.json");
    let load = Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .args(["loadtest", "run", "--url"])
        .arg(format!("http://{}{manifest}", e.addr))
        .args(["--connections", "4", "--duration", "3s", "--json"])
        .arg(&json)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut kept = e.connect();
    write!(kept, "GET {manifest} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut kept, false).unwrap().status, 200);

    std::thread::sleep(Duration::from_millis(500));
    let config = std::fs::read_to_string(e.config_path())
        .unwrap()
        .replace("manifest_max_age = 7", "manifest_max_age = 30")
        .replace("https://a.example", "https://b.example")
        .replace(&dead, &anvil.url());
    std::fs::write(e.config_path(), &config).unwrap();
    // `config check` compares the file with the running engine.
    let check = |file: &std::path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_streamgate"))
            .args(["config", "check"])
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(check(&e.config_path()).contains("every change reloads with SIGHUP"));
    let bigger = e.scratch.0.join("bigger.toml");
    std::fs::write(
        &bigger,
        config.replace(
            "manifest_max_age = 30",
            "manifest_max_age = 30\ncache_bytes = 1234567",
        ),
    )
    .unwrap();
    let said = check(&bigger);
    assert!(
        said.contains("changed keys that need a restart: engine.cache_bytes"),
        "{said}"
    );
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(e.pid(), libc::SIGHUP) };

    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let after = e.get(manifest, "Origin: https://b.example\r\n");
        if after.header("Cache-Control") == Some("public, max-age=30") {
            assert_eq!(
                after.header("Access-Control-Allow-Origin"),
                Some("https://b.example")
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never reloaded");
        std::thread::sleep(Duration::from_millis(100));
    }
    let old_origin = e.get(manifest, "Origin: https://a.example\r\n");
    assert!(old_origin.header("Access-Control-Allow-Origin").is_none());
    // The control plane took the chain's new RPC URL.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while playback(e.http, &session, "movie").status != 200 {
        assert!(std::time::Instant::now() < deadline, "still the dead URL");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The connection from before the reload goes on.
    write!(kept, "GET {manifest} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let again = read_response(&mut kept, false).unwrap();
    assert_eq!(again.status, 200);
    assert_eq!(again.header("Cache-Control"), Some("public, max-age=30"));

    assert!(load.wait_with_output().unwrap().status.success());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["errors"]["total"], 0, "{}", report["errors"]);
    assert!(report["requests"].as_u64().unwrap() > 100);
}

#[test]
fn the_access_log_is_off_by_default_samples_when_on_and_never_shows_a_token() {
    let s = common::Scratch::new("access-log");
    common::write(&s.0.join("root/a/x.m4s"), b"x");
    let run = |sample: &str| {
        let (listen, admin) = (free_addr(), free_addr());
        let config = s.0.join("access.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = \"{d}\"\n[engine]\nroot = \"{d}/root\"\nlisten = \"{listen}\"\nadmin = \"{admin}\"\nthreads = 1\n{sample}\n",
                d = s.0.display()
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_streamgate"))
            .args(["engine", "--open", "--config"])
            .arg(&config)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while common::try_get(admin, "/readyz").map_or(true, |r| r.status != 200) {
            assert!(std::time::Instant::now() < deadline, "not ready");
            std::thread::sleep(Duration::from_millis(25));
        }
        for path in ["/v/a/x.m4s", "/p/eyJhbGciOiJFZERTQSJ9.secret.sig/a/x.m4s"] {
            common::try_get(listen, path).unwrap();
        }
        // SAFETY: kill(2) on our child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let off = run("");
    assert!(!off.contains(" access"), "{off}");
    let on = run("access_log_sample = 1.0");
    assert!(
        on.contains("access") && on.contains("path=/v/a/x.m4s") && on.contains("status=200"),
        "{on}"
    );
    assert!(on.contains("path=/p/…/a/x.m4s"), "{on}");
    assert!(!on.contains("secret"), "a token was logged: {on}");
}

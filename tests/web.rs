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

/// `serve` with a 12 s film gated on an ERC-721 minted to the first
/// wallet; `rpc` the chain's RPC URL, `control` more `[control]` keys.
fn gated_film(s: &Scratch, anvil: &Anvil, rpc: &str, control: &str) -> (Engine, String) {
    let nft = anvil.deploy("TestNft721");
    let [(_, holder), ..] = WALLETS;
    anvil.mint721(nft, holder, 1);
    let input = clip(&s.0, "film.mp4", "320x180", 12, true);
    let e = Engine::start_with(
        Options {
            open: false,
            control_toml: control.into(),
            sections_toml: format!(
                "[chains.{CHAIN_ID}]\nrpc = [\"{rpc}\"]\ntimeout = \"1s\"\n[nft]\ncache_ttl = \"1s\"\nnegative_ttl = \"1s\"\n"
            ),
            ..Options::default()
        },
        |dir| transcoded(&input, &dir.join("film"), &["--ladder", "180,144"]),
    );
    e.gate_erc721("film", &nft.to_string());
    e.wait_status("/v/film/master.m3u8", 404);
    (e, nft.to_string())
}

/// The first scenario field set: the page and an EVM wallet.
fn evm(e: &Engine, anvil: &Anvil, account: &str, kind: &str) -> serde_json::Value {
    serde_json::json!({
        "url": format!("http://{}/watch/film", e.addr),
        "anvil": anvil.url(),
        "account": account,
        "kind": kind,
    })
}

fn with(mut base: serde_json::Value, more: serde_json::Value) -> serde_json::Value {
    for (k, v) in more.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

#[test]
fn holders_watch_others_are_told_what_is_needed_and_the_policy_holds() {
    let s = Scratch::new("web");
    let anvil = Anvil::start();
    let (e, nft) = gated_film(&s, &anvil, &anvil.url(), "");
    let [(_, holder), (_, stranger), ..] = WALLETS;
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
    let catalog = common::try_get(e.addr, "/").unwrap();
    assert_eq!(catalog.status, 200);
    assert!(String::from_utf8_lossy(&catalog.body).contains("catalog.js"));

    // A holder, by SIWE and by EIP-712: the gated film plays, renditions
    // listed, no console error; then signs out.
    for kind in ["siwe", "eip712"] {
        let shot = artifacts().join(format!("watch-{kind}.png"));
        let report = drive(
            with(
                evm(&e, &anvil, holder, kind),
                serde_json::json!({"screenshot": shot, "playSeconds": 5, "logout": kind == "eip712"}),
            ),
            &s.0,
        );
        assert!(report["failure"].is_null(), "{kind}: {report}");
        assert!(report["video"]["time"].as_f64().unwrap() > 5.0, "{report}");
        assert_eq!(report["errors"], serde_json::json!([]), "{kind}: {report}");
        // No player error: none on the element, none the page reported.
        assert!(report["video"]["error"].is_null(), "{report}");
        assert_eq!(report["message"], "", "{report}");
        assert!(
            report["levels"].as_array().unwrap().len() >= 3,
            "Auto and each rendition: {report}"
        );
        assert!(std::fs::metadata(&shot).unwrap().len() > 1000);
        if kind == "eip712" {
            assert_eq!(
                report["signedOut"],
                serde_json::json!({"gate": true, "session": null}),
                "{report}"
            );
        }
    }

    // DASH, selected: the MPD plays through Shaka Player, token and all.
    let report = drive(
        with(
            evm(&e, &anvil, holder, "siwe"),
            serde_json::json!({"format": "dash", "playSeconds": 5,
                               "screenshot": artifacts().join("watch-dash.png")}),
        ),
        &s.0,
    );
    assert!(report["failure"].is_null(), "{report}");
    assert!(report["video"]["time"].as_f64().unwrap() > 5.0, "{report}");
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    assert!(report["levels"].as_array().unwrap().len() >= 3, "{report}");
    assert_eq!(
        report["manifests"]["m3u8"], 0,
        "HLS was not asked for: {report}"
    );
    assert!(
        report["manifests"]["mpd"].as_u64().unwrap() >= 1,
        "{report}"
    );

    // At phone width, choosing a rendition by keyboard: the frames change
    // to its size, and nothing spills sideways.
    let report = drive(
        with(
            evm(&e, &anvil, holder, "siwe"),
            serde_json::json!({"playSeconds": 1, "keyboardQuality": true, "phone": true,
                               "screenshot": artifacts().join("watch-phone.png")}),
        ),
        &s.0,
    );
    assert!(report["failure"].is_null(), "{report}");
    assert_eq!(report["chosen"], "144p", "{report}");
    assert_eq!(report["videoHeight"], 144, "{report}");
    assert_eq!(report["overflows"], false, "{report}");

    // A wallet on another network is asked to switch to the NFT's, then
    // plays; a viewer who declines in the wallet is back at the button.
    let report = drive(
        with(
            evm(&e, &anvil, holder, "siwe"),
            serde_json::json!({"walletChain": "0x1", "playSeconds": 1}),
        ),
        &s.0,
    );
    assert!(report["failure"].is_null(), "{report}");
    assert_eq!(
        report["switches"],
        serde_json::json!(["0x7a69"]),
        "{report}"
    );
    let report = drive(
        with(
            evm(&e, &anvil, holder, "siwe"),
            serde_json::json!({"decline": true, "waitMessage": "Signing was declined"}),
        ),
        &s.0,
    );
    assert!(report["failure"].is_null(), "{report}");
    assert_eq!(
        report["signInEnabled"], true,
        "back to the button: {report}"
    );

    // A wallet without the NFT is told which one it needs.
    let report = drive(
        with(
            evm(&e, &anvil, stranger, "siwe"),
            serde_json::json!({"waitMessage": "does not hold the NFT"}),
        ),
        &s.0,
    );
    assert!(report["failure"].is_null(), "{report}");
    let said = report["messageSeen"].as_str().unwrap().to_lowercase();
    assert!(
        said.contains(&nft.to_lowercase()) && said.contains("chain 31337"),
        "{said}"
    );

    // A Solana wallet (RFC 8032 test key 1) signs in; this film wants an
    // EVM NFT, so it is told so — after a sign-in that worked.
    let report = drive(
        serde_json::json!({
            "url": format!("http://{}/watch/film", e.addr),
            "solanaSeed": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "waitMessage": "does not hold the NFT",
        }),
        &s.0,
    );
    assert!(report["failure"].is_null(), "{report}");
    assert_eq!(
        report["solanaAddress"], "FVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z",
        "RFC 8032 test 1's public key"
    );

    // Code injected into the page on its way is refused by the policy.
    let report = drive(
        serde_json::json!({
            "url": format!("http://{}/watch/film", e.addr),
            "injectHtml": "<script src=\"http://127.0.0.1:9/evil.js\"></script><script>window.__streamgateInjected = 1;</script>",
        }),
        &s.0,
    );
    assert!(report["failure"].is_null(), "{report}");
    assert!(
        report["injected"].is_null(),
        "the inline script ran: {report}"
    );
    let refused = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.as_str().unwrap().contains("Content Security Policy"))
        .count();
    assert!(refused >= 2, "both injected scripts refused: {report}");
}

#[test]
fn a_dead_chain_says_try_again_and_playback_follows_once_it_is_back() {
    let s = Scratch::new("web-rpc");
    let anvil = Anvil::start();
    let dead = format!("http://{}", common::free_addr());
    let (e, _) = gated_film(&s, &anvil, &dead, "");
    let [(_, holder), ..] = WALLETS;
    // The chain comes back (its RPC URL fixed, SIGHUP) while the page waits.
    let config = e.config_path();
    let pid = e.pid();
    let (dead_url, live_url) = (dead.clone(), anvil.url());
    let back = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(6));
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace(&dead_url, &live_url);
        std::fs::write(&config, text).unwrap();
        // SAFETY: kill(2) on the serve child.
        unsafe { libc::kill(pid, libc::SIGHUP) };
    });
    let report = drive(
        with(
            evm(&e, &anvil, holder, "siwe"),
            serde_json::json!({"waitMessage": "The chain is unavailable right now; trying again in", "playSeconds": 2}),
        ),
        &s.0,
    );
    back.join().unwrap();
    assert!(report["failure"].is_null(), "{report}");
    assert!(report["video"]["time"].as_f64().unwrap() > 2.0, "{report}");
}

#[test]
fn a_film_longer_than_its_token_plays_to_the_end() {
    let s = Scratch::new("web-ttl");
    let anvil = Anvil::start();
    let (e, _) = gated_film(&s, &anvil, &anvil.url(), "playback_ttl = \"4s\"");
    let [(_, holder), ..] = WALLETS;
    let report = drive(
        with(
            evm(&e, &anvil, holder, "siwe"),
            serde_json::json!({"toEnd": true}),
        ),
        &s.0,
    );
    assert!(report["failure"].is_null(), "{report}");
    assert_eq!(report["video"]["ended"], true, "{report}");
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    // 12 s of film on 4 s tokens: renewed on the way.
    assert!(e.metric("streamgate_tokens_issued_total") >= 3.0);
}

#[test]
fn the_operator_uploads_through_a_cut_connection_then_gates_it() {
    let s = Scratch::new("web-studio");
    let anvil = Anvil::start();
    let (e, nft) = gated_film(&s, &anvil, &anvil.url(), "");
    let token = e.operator_token();
    let upload = clip(&s.0, "holiday.mp4", "320x180", 6, true);
    let report = drive(
        serde_json::json!({
            "url": format!("http://{}/studio", e.addr),
            "studio": {
                "token": token,
                "file": upload,
                "chain": CHAIN_ID,
                "contract": nft,
                "tokenId": "1",
                "screenshot": artifacts().join("studio.png"),
                "catalogScreenshot": artifacts().join("catalog.png"),
            },
        }),
        &s.0,
    );
    assert!(report["failure"].is_null(), "{report}");
    assert_eq!(report["cut"], true, "the first PATCH was cut: {report}");
    // The one error the console shows is the cut we made.
    assert_eq!(
        report["errors"],
        serde_json::json!(["Failed to load resource: net::ERR_CONNECTION_RESET"]),
        "{report}"
    );
    let asset = report["asset"].as_str().unwrap();
    let shown = e.cli(&["asset", "show", asset], &[]);
    assert!(shown.contains("status:  ready"), "{shown}");
    assert!(
        shown.contains("ERC721") || shown.contains("Erc721"),
        "the gate: {shown}"
    );
    // The catalog lists it gated, beside the film, with their durations
    // (from their MPDs: 12 s and 6 s).
    let catalog = report["catalog"].as_array().unwrap();
    let text: Vec<&str> = catalog.iter().map(|c| c.as_str().unwrap()).collect();
    assert!(text.iter().any(|t| t.starts_with("film 0:12")), "{text:?}");
    assert!(text.iter().any(|t| t.contains(" 0:06")), "{text:?}");
    assert!(
        catalog
            .iter()
            .filter(|c| c.as_str().unwrap().contains("NFT holders"))
            .count()
            >= 2,
        "{report}"
    );
}

//! The Grafana dashboard (`docs/grafana/streamgate.json`) and the alert
//! rules (`docs/prometheus/streamgate-alerts.yml`) query only series a
//! running `serve` exports: a scenario touches every part (serving over
//! TLS, a failed handshake, wallet sign-in, the NFT gate through a dead and
//! a live RPC URL, tokens issued and refused, an upload and its transcode
//! job), then every `streamgate_*` name they use must be in `/metrics` —
//! and documented in `docs/operations.md`.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::chain::{Anvil, CHAIN_ID, WALLETS};
use common::wallet::{playback, sign_in};
use common::wire::Wire;
use common::{clip, free_addr, packaged_asset, Engine, Options, Scratch};

/// Every `streamgate_…` name in `text`.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("streamgate_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

fn repo(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn every_series_the_dashboard_and_alerts_query_is_exported_and_documented() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&repo("docs/grafana/streamgate.json")).expect("the dashboard is JSON");
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queried.extend(names_in(target["expr"].as_str().unwrap()));
        }
    }
    queried.extend(names_in(&repo("docs/prometheus/streamgate-alerts.yml")));
    assert!(queried.len() > 10, "{queried:?}");

    let s = Scratch::new("dashboard");
    let anvil = Anvil::start();
    let nft = anvil.deploy("TestNft721");
    let [(k0, w0), (k1, w1), ..] = WALLETS;
    anvil.mint721(nft, w0, 1);
    let dead = format!("http://{}", free_addr());
    let e = Engine::start_with(
        Options {
            open: false,
            tls: true,
            engine_toml: "job_workers = 1\nupload_ladder = \"240\"".into(),
            sections_toml: format!(
                "[chains.{CHAIN_ID}]\nrpc = [\"{dead}\", \"{}\"]\ntimeout = \"1s\"\n",
                anvil.url()
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
    for wire in [Wire::Http1, Wire::Https1, Wire::H2] {
        let c = e.over(wire);
        c.get("/v/open/master.m3u8", "");
        c.get("/v/open/master.m3u8", "");
    }
    // A TLS client that gives up mid-handshake.
    let mut bad = std::net::TcpStream::connect(e.tls.as_ref().unwrap().addr).unwrap();
    bad.write_all(b"\x16\x03\x01\x00\x05hello").unwrap();
    drop(bad);
    let holder = sign_in(e.http, k0, w0, CHAIN_ID, "siwe");
    assert_eq!(playback(e.http, &holder, "movie").status, 200);
    let stranger = sign_in(e.http, k1, w1, CHAIN_ID, "eip712");
    assert_eq!(playback(e.http, &stranger, "movie").status, 403);

    // An upload, and the metrics scraped while its job runs.
    // Long enough that the job is scraped while it runs.
    let input = clip(&s.0, "clip.mp4", "640x360", 8, false);
    e.upload_whole(&std::fs::read(&input).unwrap(), "clip.mp4", "dash");
    let mut exported = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !queried.iter().all(|q| exported.contains(q)) && Instant::now() < deadline {
        let metrics = common::try_get(e.admin, "/metrics").unwrap().body;
        for line in String::from_utf8_lossy(&metrics).lines() {
            if !line.starts_with('#') {
                exported.extend(names_in(line.split(['{', ' ']).next().unwrap()));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let missing: Vec<_> = queried.difference(&exported).collect();
    assert!(missing.is_empty(), "queried but not exported: {missing:?}");

    let documented = names_in(&repo("docs/operations.md"));
    let bases: BTreeSet<String> = queried
        .iter()
        .map(|n| {
            n.trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count")
                .to_string()
        })
        .collect();
    let undocumented: Vec<_> = bases.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "not in docs/operations.md: {undocumented:?}"
    );
}

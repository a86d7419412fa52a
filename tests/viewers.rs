//! `streamgate loadtest viewers` against real servers on loopback: the
//! engine serving a synthetic ladder (exact bitrates) and a transcoded
//! asset, the whole appliance for tokens, nginx over h2 and TLS.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::chain::{Anvil, CHAIN_ID, WALLETS};
use common::nginx::Nginx;
use common::wallet::sign_in;
use common::{clip, ladder_asset, loadtest_merge, transcoded, Engine, Options, Scratch};
use serde_json::Value;

/// 300, 1000 and 3000 kbit/s; 12 one-second segments.
const LADDER: [(&str, u64); 3] = [("low", 300), ("mid", 1000), ("high", 3000)];

fn viewers_cmd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .args(["loadtest", "viewers"])
        .args(args)
        .output()
        .unwrap()
}

/// Runs `viewers` with `args` and returns its JSON report.
fn viewers(dir: &Path, args: &[&str]) -> Value {
    let json = dir.join(format!("v{}.json", std::process::id() ^ args.len() as u32));
    let mut all = args.to_vec();
    let path = json.to_str().unwrap().to_string();
    all.extend(["--json", &path]);
    let out = viewers_cmd(&all);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

fn share(r: &Value, name: &str) -> f64 {
    r["rendition_share"][name].as_f64().unwrap_or(0.0)
}

#[test]
fn abr_climbs_unthrottled_holds_between_rungs_and_stalls_below_the_lowest() {
    let s = Scratch::new("vw-abr");
    let e = Engine::start(|root| ladder_asset(&root.join("film"), &LADDER, 12, 1.0));
    let url = format!("http://{}/v/film/master.m3u8", e.addr);
    let base = ["--url", &url, "--viewers", "3", "--speed", "4"];

    // Loopback is fast: after the first segment (500 kbit/s default
    // estimate: the lowest rung), the top rung.
    let fast = viewers(&s.0, &[&base[..], &["--duration", "4s"]].concat());
    assert!(share(&fast, "high") >= 0.75, "{}", fast["rendition_share"]);
    assert_eq!(fast["stalls"], 0);
    assert_eq!(fast["errors"]["total"], 0, "{}", fast["errors"]);
    assert!(fast["sessions"]["completed"].as_u64().unwrap() >= 3);
    assert!(fast["startup_ms"]["p50"].as_u64().is_some());

    // 1800 kbit/s sits between mid and high: mid, never high, no stalls.
    let between = viewers(
        &s.0,
        &[&base[..], &["--duration", "4s", "--throttle", "1800"]].concat(),
    );
    assert_eq!(
        share(&between, "high"),
        0.0,
        "{}",
        between["rendition_share"]
    );
    assert!(
        share(&between, "mid") >= 0.7,
        "{}",
        between["rendition_share"]
    );
    assert_eq!(between["stalls"], 0, "{between}");
    let avg = between["avg_bitrate_bps"].as_f64().unwrap();
    assert!((800_000.0..1_000_001.0).contains(&avg), "{avg}");

    // 200 kbit/s is below the lowest rung: it stalls.
    let slow = viewers(
        &s.0,
        &[&base[..], &["--duration", "5s", "--throttle", "200"]].concat(),
    );
    assert_eq!(share(&slow, "low"), 1.0, "{}", slow["rendition_share"]);
    assert!(slow["stalls"].as_u64().unwrap() >= 3, "{slow}");
    let ratio = slow["stall_ratio"].as_f64().unwrap();
    assert!(ratio > 0.1, "stall ratio {ratio}");

    // BOLA (buffer-based) and a fixed rung over DASH.
    let mpd = format!("http://{}/v/film/manifest.mpd", e.addr);
    let fixed = viewers(
        &s.0,
        &[
            "--url",
            &mpd,
            "--viewers",
            "2",
            "--speed",
            "4",
            "--duration",
            "4s",
            "--abr",
            "fixed:1",
        ],
    );
    assert_eq!(share(&fixed, "mid"), 1.0, "{}", fixed["rendition_share"]);
    assert_eq!(fixed["switches"], 0);
    let bola = viewers(
        &s.0,
        &[
            "--url",
            &mpd,
            "--viewers",
            "2",
            "--speed",
            "4",
            "--duration",
            "4s",
            "--abr",
            "bola",
        ],
    );
    assert!(share(&bola, "high") > 0.0, "{}", bola["rendition_share"]);
    assert_eq!(bola["errors"]["total"], 0);
}

#[test]
fn viewers_play_a_transcoded_asset_over_hls_and_dash() {
    let s = Scratch::new("vw-real");
    let input = clip(&s.0, "src.mp4", "640x360", 4, true);
    let e = Engine::start(|root| {
        transcoded(&input, &root.join("movie"), &["--ladder", "360,240"]);
    });
    for manifest in ["master.m3u8", "manifest.mpd"] {
        let url = format!("http://{}/v/movie/{manifest}", e.addr);
        let r = viewers(
            &s.0,
            &[
                "--url",
                &url,
                "--viewers",
                "2",
                "--speed",
                "8",
                "--duration",
                "3s",
            ],
        );
        assert_eq!(r["errors"]["total"], 0, "{manifest}: {}", r["errors"]);
        assert!(
            r["sessions"]["completed"].as_u64().unwrap() >= 2,
            "{manifest}: {}",
            r["sessions"]
        );
        let renditions: Vec<&String> = r["renditions"].as_object().unwrap().keys().collect();
        assert!(
            renditions.iter().all(|n| *n == "360p" || *n == "240p") && !renditions.is_empty(),
            "{manifest}: {renditions:?}"
        );
        // Video and audio: per session a manifest, init segments and two
        // segments of each track at least.
        let requests = r["requests"]["requests"].as_u64().unwrap();
        let sessions = r["sessions"]["started"].as_u64().unwrap();
        assert!(
            requests >= sessions * 5,
            "{manifest}: {requests} requests, {sessions} sessions"
        );
        assert!(
            (r["played_s"].as_f64().unwrap() / r["sessions"]["completed"].as_f64().unwrap()) >= 3.5
        );
    }
}

#[test]
fn errors_are_counted_by_kind_and_bad_input_is_refused() {
    let s = Scratch::new("vw-errors");
    let e = Engine::start(|root| {
        ladder_asset(&root.join("film"), &LADDER[..1], 6, 1.0);
        std::fs::remove_file(root.join("film/low/3.m4s")).unwrap();
    });
    let url = format!("http://{}/v/film/master.m3u8", e.addr);
    let r = viewers(
        &s.0,
        &[
            "--url",
            &url,
            "--viewers",
            "2",
            "--speed",
            "8",
            "--duration",
            "3s",
        ],
    );
    assert!(
        r["errors"]["by_status"]["404"].as_u64().unwrap() >= 2,
        "{}",
        r["errors"]
    );
    assert!(r["sessions"]["failed"].as_u64().unwrap() >= 2);
    assert!(
        r["errors"]["sessions_by_kind"]["status_404"]
            .as_u64()
            .unwrap()
            >= 2
    );

    // Not a manifest, nothing listening, bad options: clear refusals.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for (args, says) in [
        (
            vec![format!("http://{}/v/film/low/0.m4s", e.addr)],
            "neither an HLS playlist",
        ),
        (
            vec![format!("http://{}/v/film/none.m3u8", e.addr)],
            "answered 404",
        ),
        (vec![format!("http://{dead}/x.m3u8")], "cannot reach"),
        (
            vec![url.clone(), "--abr".into(), "fastest".into()],
            "--abr takes",
        ),
        (
            vec![url.clone(), "--speed".into(), "0".into()],
            "--speed must be",
        ),
    ] {
        let mut all = vec!["--url".to_string()];
        all.extend(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = viewers_cmd(&all);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{all:?} succeeded");
        assert!(said.contains(says), "{all:?}: {said}");
    }
}

#[test]
fn each_viewer_fetches_its_token_from_the_json_api() {
    // The gated path for real: an NFT on anvil, the asset gated on it, a
    // holder's session; each session asks the JSON API for its token.
    let s = Scratch::new("vw-token");
    let anvil = Anvil::start();
    let nft = anvil.deploy("TestNft721");
    let (key, address) = WALLETS[0];
    anvil.mint721(nft, address, 1);
    let e = Engine::start_with(
        Options {
            open: false,
            sections_toml: format!("[chains.{CHAIN_ID}]\nrpc = [\"{}\"]\n", anvil.url()),
            ..Options::default()
        },
        |dir| ladder_asset(&dir.join("film"), &LADDER[..2], 6, 1.0),
    );
    e.gate_erc721("film", &nft.to_string());
    e.wait_status("/v/film/master.m3u8", 404);
    let session = sign_in(e.http, key, address, CHAIN_ID, "siwe");
    let api = format!("http://{}/api/v1/assets/film/playback", e.http);
    let origin = format!("http://{}/", e.addr);
    let bearer = format!("Authorization: Bearer {session}");
    for format in ["hls", "dash"] {
        let r = viewers(
            &s.0,
            &[
                "--url",
                &origin,
                "--token-from",
                &api,
                "--token-header",
                &bearer,
                "--token-format",
                format,
                "--viewers",
                "2",
                "--speed",
                "8",
                "--duration",
                "2s",
            ],
        );
        assert_eq!(r["errors"]["total"], 0, "{format}: {}", r["errors"]);
        assert!(
            r["sessions"]["completed"].as_u64().unwrap() >= 2,
            "{format}: {}",
            r["sessions"]
        );
    }
    let out = viewers_cmd(&[
        "--url",
        &origin,
        "--token-from",
        &api,
        "--token-header",
        "Authorization: Bearer sgs_nope",
    ]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("--token-from answered 401"), "{said}");
}

#[test]
fn viewers_over_h2_and_tls_against_nginx() {
    let s = Scratch::new("vw-nginx");
    let root = s.0.join("root");
    ladder_asset(&root.join("film"), &LADDER[..2], 6, 1.0);
    let nginx = Nginx::start(&s.0, &root);
    for (url, extra) in [
        (
            format!("https://127.0.0.1:{}/film/master.m3u8", nginx.tls.port()),
            vec!["--http2", "--insecure"],
        ),
        (
            format!("http://127.0.0.1:{}/film/manifest.mpd", nginx.h2c.port()),
            vec!["--http2"],
        ),
        (
            format!("https://127.0.0.1:{}/film/master.m3u8", nginx.tls_h1.port()),
            vec!["--insecure"],
        ),
    ] {
        let mut args = vec![
            "--url",
            url.as_str(),
            "--viewers",
            "2",
            "--speed",
            "8",
            "--duration",
            "2s",
        ];
        args.extend(extra);
        let r = viewers(&s.0, &args);
        assert_eq!(r["errors"]["total"], 0, "{url}: {}", r["errors"]);
        assert!(r["sessions"]["completed"].as_u64().unwrap() >= 2, "{url}");
    }
}

/// Nothing in `page` refers to another host: no URL anywhere but the text
/// that names the target (title, heading, summary table).
fn no_external_urls(page: &str) {
    let mut rest = page.to_string();
    for tag in ["title", "h1", "pre"] {
        while let Some(start) = rest.find(&format!("<{tag}>")) {
            let end = rest[start..].find(&format!("</{tag}>")).unwrap() + start;
            rest.replace_range(start..end + tag.len() + 3, "");
        }
    }
    for external in [
        "http://", "https://", "src=", "href=", "@import", "url(", "<link", "<script",
    ] {
        assert!(!rest.contains(external), "the page holds {external:?}");
    }
}

#[test]
fn reports_validate_merge_and_plot_without_external_urls() {
    let s = Scratch::new("vw-report");
    let e = Engine::start(|root| ladder_asset(&root.join("film"), &LADDER[..2], 6, 1.0));
    let url = format!("http://{}/v/film/master.m3u8", e.addr);
    let html = s.0.join("viewers.html");
    let a = viewers(
        &s.0,
        &[
            "--url",
            &url,
            "--viewers",
            "2",
            "--speed",
            "8",
            "--duration",
            "2s",
            "--html",
            html.to_str().unwrap(),
        ],
    );
    let b = viewers(
        &s.0,
        &[
            "--url",
            &url,
            "--viewers",
            "3",
            "--speed",
            "8",
            "--duration",
            "2s",
        ],
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.matches("<svg").count() >= 4, "plots in the page");
    no_external_urls(&page);
    // A `run` report with its page too.
    let run_json = s.0.join("run.json");
    let run_html = s.0.join("run.html");
    let out = Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .args([
            "loadtest",
            "run",
            "--url",
            &url,
            "--requests",
            "50",
            "--json",
        ])
        .arg(&run_json)
        .arg("--html")
        .arg(&run_html)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_page = std::fs::read_to_string(&run_html).unwrap();
    assert!(run_page.contains("<svg"));
    no_external_urls(&run_page);

    // Both kinds validate against the documented schema.
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/loadtest-schema.json");
    let (va, vb) = (s.0.join("a.json"), s.0.join("b.json"));
    std::fs::write(&va, a.to_string()).unwrap();
    std::fs::write(&vb, b.to_string()).unwrap();
    let check = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             for f in sys.argv[2:]:\n    jsonschema.validate(json.load(open(f)), schema)\n",
        ])
        .arg(&schema)
        .args([&va, &vb, &run_json])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "schema: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // The schema is not vacuous: a report without its figures fails it.
    let broken = s.0.join("broken.json");
    let mut bad = a.clone();
    bad.as_object_mut().unwrap().remove("stall_ratio");
    std::fs::write(&broken, bad.to_string()).unwrap();
    let refused = Command::new("/usr/bin/python3")
        .args(["-c", "import json, sys, jsonschema\njsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))"])
        .arg(&schema)
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!refused.status.success());

    // Merged, the counts are the sums.
    let m = loadtest_merge(&[&va, &vb], &s.0.join("m.json"));
    assert_eq!(m["viewers"], 5);
    let sum = |k: &str, sub: &str| a[k][sub].as_u64().unwrap() + b[k][sub].as_u64().unwrap();
    assert_eq!(
        m["sessions"]["started"].as_u64().unwrap(),
        sum("sessions", "started")
    );
    assert_eq!(
        m["requests"]["requests"].as_u64().unwrap(),
        sum("requests", "requests")
    );
    assert_eq!(
        m["requests"]["bytes"].as_u64().unwrap(),
        sum("requests", "bytes")
    );
    let played = a["played_s"].as_f64().unwrap() + b["played_s"].as_f64().unwrap();
    assert!((m["played_s"].as_f64().unwrap() - played).abs() < 1e-6);
}

#[test]
fn a_live_playlist_is_joined_near_its_edge_and_followed() {
    let s = Scratch::new("vw-live");
    let e = Engine::start(|root| ladder_asset(&root.join("live"), &LADDER[..1], 14, 1.0));
    let dir = e.root.join("live/low");
    // A live playlist: segments 0..=5 now, one more each second.
    fn playlist(last: usize, ended: bool) -> String {
        let mut text = String::from(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"init.mp4\"\n",
        );
        for n in 0..=last {
            text.push_str(&format!("#EXTINF:1.000000,\n{n}.m4s\n"));
        }
        if ended {
            text.push_str("#EXT-X-ENDLIST\n");
        }
        text
    }
    fn publish(dir: &Path, last: usize, ended: bool) {
        let tmp = dir.join(".index.tmp");
        std::fs::write(&tmp, playlist(last, ended)).unwrap();
        std::fs::rename(&tmp, dir.join("index.m3u8")).unwrap();
    }
    publish(&dir, 5, false);
    let growing = std::thread::spawn(move || {
        for last in 6..=13 {
            std::thread::sleep(std::time::Duration::from_secs(1));
            publish(&dir, last, false);
        }
    });
    let url = format!("http://{}/v/live/master.m3u8", e.addr);
    let r = viewers(
        &s.0,
        &["--url", &url, "--viewers", "2", "--duration", "8500ms"],
    );
    growing.join().unwrap();
    assert_eq!(r["errors"]["total"], 0, "{}", r["errors"]);
    assert_eq!(r["sessions"]["started"], 2, "{}", r["sessions"]);
    assert_eq!(r["sessions"]["completed"], 0, "live: it never ends");
    // Joined three segments behind the edge (segment 3 of 0..=5) and
    // followed the new ones (6..=13 over 8 s): at most segments 3..=13,
    // 11 s of media each; from the start it would be 14.
    let fetched = r["renditions"]["low"]["seconds"].as_f64().unwrap() / 2.0;
    assert!((8.0..=11.0).contains(&fetched), "{fetched} s of media each");
    let played = r["played_s"].as_f64().unwrap() / 2.0;
    assert!(played >= 6.0, "{played} s played each");
}

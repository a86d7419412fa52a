//! `streamgate loadtest run` against real servers on loopback: a small
//! HTTP/1.1 server that stalls now and then, and the engine.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::nginx::Nginx;
use common::{loadtest_merge, pattern, write, Engine, Scratch};

/// A keep-alive server answering `200` with 100 bytes, except that every
/// `stall_every`-th request waits `stall` first.
fn stalling_server(stall_every: u64, stall: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let served = Arc::clone(&served);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                loop {
                    let mut line = String::new();
                    // Read one request head.
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    if (served.fetch_add(1, Ordering::SeqCst) + 1) % stall_every == 0 {
                        std::thread::sleep(stall);
                    }
                    let body = [b'x'; 100];
                    let head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
                    if out
                        .write_all(head.as_bytes())
                        .and_then(|_| out.write_all(&body))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn loadtest(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .arg("loadtest")
        .arg("run")
        .args(args)
        .output()
        .unwrap()
}

fn report(s: &Scratch, args: &[&str]) -> serde_json::Value {
    let json = s.0.join(format!("r{}.json", args.len()));
    let mut all = args.to_vec();
    let path = json.to_str().unwrap().to_string();
    all.extend(["--json", &path]);
    let out = loadtest(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

#[test]
fn open_loop_latency_shows_a_stall_that_the_raw_figure_hides() {
    let s = Scratch::new("lt-stall");
    // One request in 200 stalls a second; at 50 req/s over 2 connections,
    // the ~25 requests meant to go out behind it on that connection are
    // late by up to a second each.
    let addr = stalling_server(200, Duration::from_secs(1));
    let url = format!("http://{addr}/x");
    let open = report(
        &s,
        &[
            "--url",
            &url,
            "--rate",
            "50",
            "--connections",
            "2",
            "--duration",
            "6s",
        ],
    );
    assert_eq!(open["mode"], "open");
    let corrected = open["latency_ms"]["p99"].as_f64().unwrap();
    let raw = open["latency_uncorrected_ms"]["p99"].as_f64().unwrap();
    assert!(
        corrected >= 400.0,
        "corrected p99 {corrected} ms hides the stall"
    );
    assert!(
        raw < corrected / 4.0,
        "raw p99 {raw} ms vs corrected {corrected} ms"
    );
    assert!(open["latency_ms"]["max"].as_f64().unwrap() >= 900.0);
    let requests = open["requests"].as_u64().unwrap();
    assert!(
        (250..=310).contains(&requests),
        "{requests} requests at 50/s for 6 s"
    );
    assert_eq!(open["errors"]["total"], 0);
}

#[test]
fn request_caps_errors_by_kind_and_clear_refusals() {
    let s = Scratch::new("lt-caps");
    let e = Engine::start(|root| {
        write(&root.join("a1/master.m3u8"), b"#EXTM3U\n");
        write(&root.join("a1/720p/1.m4s"), &pattern(64 << 10, 1));
    });
    // Closed loop, capped: exactly that many requests, every byte counted.
    let capped = report(
        &s,
        &[
            "--url",
            &format!("http://{}/v/a1/720p/1.m4s", e.addr),
            "--requests",
            "300",
            "--duration",
            "30s",
        ],
    );
    assert_eq!(capped["mode"], "closed");
    assert_eq!(capped["requests"], 300);
    assert_eq!(capped["bytes"], 300 * (64 << 10));
    assert_eq!(capped["status"]["200"], 300);
    // Two runs merged count as one run would: every request and byte, and
    // the slowest request of either.
    let again = report(
        &s,
        &[
            "--url",
            &format!("http://{}/v/a1/master.m3u8", e.addr),
            "--requests",
            "120",
        ],
    );
    let (a, b, merged) = (s.0.join("a.json"), s.0.join("b.json"), s.0.join("m.json"));
    std::fs::write(&a, capped.to_string()).unwrap();
    std::fs::write(&b, again.to_string()).unwrap();
    let m = loadtest_merge(&[&a, &b], &merged);
    assert_eq!(m["requests"], 420);
    assert_eq!(m["status"]["200"], 420);
    assert_eq!(m["bytes"], 300 * (64 << 10) + 120 * 8);
    let slowest = capped["latency_ms"]["max"]
        .as_f64()
        .unwrap()
        .max(again["latency_ms"]["max"].as_f64().unwrap());
    assert_eq!(m["latency_ms"]["max"].as_f64().unwrap(), slowest);
    // A missing file is counted under its status.
    let missing = report(
        &s,
        &[
            "--url",
            &format!("http://{}/v/a1/none.m4s", e.addr),
            "--requests",
            "20",
        ],
    );
    assert_eq!(missing["errors"]["total"], 20);
    assert_eq!(missing["errors"]["by_status"]["404"], 20);
    // A URL list with weights: both files are asked for, in proportion.
    let list = s.0.join("urls.txt");
    std::fs::write(
        &list,
        format!(
            "http://{0}/v/a1/720p/1.m4s 3\nhttp://{0}/v/a1/master.m3u8\n",
            e.addr
        ),
    )
    .unwrap();
    let mixed = report(
        &s,
        &[
            "--url",
            &format!("http://{}/", e.addr),
            "--urls",
            list.to_str().unwrap(),
            "--requests",
            "400",
        ],
    );
    assert_eq!(mixed["requests"], 400);
    let bytes = mixed["bytes"].as_u64().unwrap();
    let segments = (bytes - 400 * 8) / ((64 << 10) - 8);
    assert!(
        (240..=360).contains(&segments),
        "{segments} of 400 were the 3× segment"
    );
    std::fs::write(&list, format!("http://{}/a\n\nnot a url\n", e.addr)).unwrap();
    let out = loadtest(&[
        "--url",
        &format!("http://{}/", e.addr),
        "--urls",
        list.to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("urls.txt:3:"),
        "the bad line's number: {said}"
    );

    // Refusals say what is wrong.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for (args, says) in [
        (
            vec!["--url".to_string(), format!("http://{dead}/")],
            "cannot reach",
        ),
        (
            vec!["--url".into(), "http://192.0.2.1/".into()],
            "--allow-remote",
        ),
        (
            vec!["--url".into(), "ftp://127.0.0.1/".into()],
            "not an http:// or https:// URL",
        ),
        (
            vec![
                "--url".into(),
                format!("http://{}/", e.addr),
                "--rate".into(),
                "0".into(),
            ],
            "--rate must be a positive",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = loadtest(&args);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(said.contains(says), "{args:?}: {said}");
    }
}

#[test]
fn a_connection_dropped_mid_answer_is_counted_as_closed() {
    // Promises 100 bytes, sends 10, hangs up.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut out = stream;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
        }
    });
    let s = Scratch::new("lt-drop");
    let r = report(
        &s,
        &[
            "--url",
            &format!("http://{addr}/x"),
            "--requests",
            "10",
            "--connections",
            "1",
        ],
    );
    assert_eq!(r["requests"], 10);
    assert_eq!(r["errors"]["total"], 10);
    assert_eq!(r["errors"]["by_kind"]["closed"], 10, "{r}");
}

#[test]
fn http2_and_tls_against_nginx() {
    let s = Scratch::new("lt-nginx");
    let root = s.0.join("root");
    write(&root.join("a/seg.m4s"), &pattern(20_000, 3));
    let nginx = Nginx::start(&s.0, &root);
    let tls = format!("https://127.0.0.1:{}/a/seg.m4s", nginx.tls.port());
    let cacert = nginx.cert.to_str().unwrap();
    // HTTP/2 over TLS (ALPN), 4 streams on each of 2 connections.
    let h2 = report(
        &s,
        &[
            "--url",
            &tls,
            "--http2",
            "--insecure",
            "--streams",
            "4",
            "--connections",
            "2",
            "--requests",
            "400",
        ],
    );
    assert_eq!(h2["status"]["200"], 400, "{h2}");
    assert_eq!(h2["bytes"], 400 * 20_000);
    // HTTP/1.1 over TLS, the certificate trusted through --cacert.
    let h1 = report(
        &s,
        &["--url", &tls, "--cacert", cacert, "--requests", "100"],
    );
    assert_eq!(h1["status"]["200"], 100, "{h1}");
    // h2c with prior knowledge, open loop.
    let h2c = format!("http://127.0.0.1:{}/a/seg.m4s", nginx.h2c.port());
    let open = report(
        &s,
        &[
            "--url",
            &h2c,
            "--http2",
            "--rate",
            "200",
            "--duration",
            "2s",
            "--streams",
            "2",
            "--connections",
            "1",
        ],
    );
    assert_eq!(open["mode"], "open");
    let n = open["requests"].as_u64().unwrap();
    assert!((360..=420).contains(&n), "{n} requests at 200/s for 2 s");
    assert_eq!(open["errors"]["total"], 0, "{open}");
    // Refusals: an untrusted certificate, and h2 asked of a server
    // whose ALPN offers only http/1.1.
    let tls_h1 = format!("https://127.0.0.1:{}/a/seg.m4s", nginx.tls_h1.port());
    for (args, says) in [
        (vec!["--url", tls.as_str()], "certificate"),
        (
            vec!["--url", tls_h1.as_str(), "--http2", "--insecure"],
            "did not offer HTTP/2",
        ),
        (
            vec!["--url", tls.as_str(), "--cacert", "/nonexistent.pem"],
            "cannot read /nonexistent.pem",
        ),
        (
            vec!["--url", tls.as_str(), "--streams", "4", "--insecure"],
            "--streams needs --http2",
        ),
    ] {
        let out = loadtest(&args);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(said.contains(says), "{args:?}: {said}");
    }
}

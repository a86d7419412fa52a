//! TLS and HTTP/2 on the engine, over real sockets: ffmpeg decoding HLS
//! and DASH from `https://` with the test CA, certificates that are wrong,
//! expired or chosen by SNI, reload under load, HTTP/2 attacks sent as raw
//! frames while a well-behaved client keeps being served, and the control
//! plane over TLS. (The origin behaviours themselves run over every wire
//! in `engine_http.rs` and `tokens.rs`.)

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::nginx::{self_signed, served_certificate};
use common::{clip, free_addr, pattern, transcoded, write, Engine, Options, Scratch};

/// An open engine with a TLS listener; returns it, the TLS address and
/// the certificate (the test CA: self-signed).
fn engine_with_tls(
    s: &Scratch,
    extra_engine: &str,
    fill: impl FnOnce(&Path),
) -> (Engine, SocketAddr, PathBuf) {
    let (cert, key) = self_signed(&s.0);
    let tls = free_addr();
    let e = Engine::start_with(
        Options {
            engine_toml: format!("listen_tls = \"{tls}\"\n{extra_engine}"),
            sections_toml: format!(
                "[engine.tls]\ncert = \"{}\"\nkey = \"{}\"\nhandshake_timeout = \"1s\"\n",
                cert.display(),
                key.display()
            ),
            ..Options::default()
        },
        fill,
    );
    (e, tls, cert)
}

/// curl's answer: (HTTP version, status, body).
struct Curl {
    version: String,
    status: u16,
    body: Vec<u8>,
}

fn curl(args: &[&str]) -> Curl {
    let s = Scratch::new("curl");
    let body = s.0.join("body");
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "10", "-o"])
        .arg(&body)
        .args(["-w", "%{http_version} %{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    let (version, status) = said.split_once(' ').unwrap_or(("", "0"));
    Curl {
        version: version.to_string(),
        status: status.trim().parse().unwrap_or(0),
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

#[test]
fn ffmpeg_decodes_hls_and_dash_over_https_with_the_test_ca() {
    let s = Scratch::new("h2-ffmpeg");
    let input = clip(&s.0, "src.mp4", "320x180", 4, true);
    let (_e, tls, cert) = engine_with_tls(&s, "", |root| {
        transcoded(&input, &root.join("movie"), &["--ladder", "180"]);
    });
    let decode = |manifest: &str, ca: Option<&Path>| {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-v", "error", "-nostdin", "-tls_verify", "1"]);
        if let Some(ca) = ca {
            cmd.arg("-ca_file").arg(ca);
        }
        cmd.arg("-i")
            .arg(format!(
                "https://127.0.0.1:{}/v/movie/{manifest}",
                tls.port()
            ))
            .args(["-map", "0", "-f", "null", "-"])
            .output()
            .unwrap()
    };
    for manifest in ["master.m3u8", "manifest.mpd"] {
        let ok = decode(manifest, Some(&cert));
        assert!(
            ok.status.success(),
            "{manifest}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        assert!(
            ok.stderr.is_empty(),
            "{manifest}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        // Without the CA the certificate does not verify.
        assert!(
            !decode(manifest, None).status.success(),
            "{manifest} decoded without the CA"
        );
    }
}

#[test]
fn wrong_certificates_are_refused_with_the_reason() {
    let s = Scratch::new("h2-certs");
    // A key that is not the certificate's: the engine does not start, and
    // says why.
    let (cert, _) = self_signed(&s.0);
    let other = s.0.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (_, wrong_key) = self_signed(&other);
    let config = s.0.join("bad.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{d}\"\n[engine]\nroot = \"{d}\"\nlisten = \"{}\"\nadmin = \"{}\"\nlisten_tls = \"{}\"\n\
             [engine.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            free_addr(),
            free_addr(),
            free_addr(),
            cert.display(),
            wrong_key.display(),
            d = s.0.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .args(["engine", "--open", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("TLS:") && said.contains("do not make a TLS server"),
        "{said}"
    );
    let missing = std::fs::read_to_string(&config)
        .unwrap()
        .replace(wrong_key.to_str().unwrap(), "/nonexistent/key.pem");
    std::fs::write(&config, missing).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .args(["engine", "--open", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/key.pem"));

    // A client that trusts another CA refuses the engine's certificate; a
    // client that never finishes its handshake is cut at the timeout and
    // counted.
    let (e, tls, _) = engine_with_tls(&s, "", |root| write(&root.join("a/x.m4s"), b"x"));
    let url = format!("https://127.0.0.1:{}/v/a/x.m4s", tls.port());
    let other_ca = other.join("cert.pem");
    let refused = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "--cacert",
            other_ca.to_str().unwrap(),
            &url,
        ])
        .status()
        .unwrap();
    assert_eq!(
        refused.code(),
        Some(60),
        "curl: peer certificate cannot be authenticated"
    );
    let mut silent = TcpStream::connect(tls).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    assert!(matches!(silent.read(&mut byte), Ok(0) | Err(_)));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "closed at the 1 s handshake timeout"
    );
    assert!(e.metric("streamgate_tls_handshake_failures_total{reason=\"timeout\"}") >= 1.0);
}

// ---- HTTP/2 attacks, as raw frames over h2c ----

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK block for `GET path` (indexed :method, :scheme; literal
/// :path and :authority without indexing).
fn get_block(path: &str) -> Vec<u8> {
    let mut b = vec![0x82, 0x86, 0x04, path.len() as u8];
    b.extend_from_slice(path.as_bytes());
    b.extend_from_slice(&[0x01, 9]);
    b.extend_from_slice(b"localhost");
    b
}

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// Reads the server's frames for up to `wait`, handing each (type,
/// payload) to `on_frame` until it returns true; returns whether the
/// server closed the connection.
fn read_frames(
    s: &mut TcpStream,
    wait: Duration,
    mut on_frame: impl FnMut(u8, &[u8]) -> bool,
) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + wait;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    while Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) => return true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
        // Walk whole frames.
        let mut at = 0;
        while buf.len() >= at + 9 {
            let len = (usize::from(buf[at]) << 16)
                | (usize::from(buf[at + 1]) << 8)
                | usize::from(buf[at + 2]);
            if buf.len() < at + 9 + len {
                break;
            }
            if on_frame(buf[at + 3], &buf[at + 9..at + 9 + len]) {
                return false;
            }
            at += 9 + len;
        }
        buf.drain(..at);
    }
    false
}

/// Reads frames until the server closes or `wait` passes; returns the
/// GOAWAY error code if one came, and whether the connection closed.
fn read_until_goaway(s: &mut TcpStream, wait: Duration) -> (Option<u32>, bool) {
    let mut goaway = None;
    let closed = read_frames(s, wait, |kind, p| {
        if kind == GOAWAY && p.len() >= 8 {
            goaway = Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
        }
        false
    });
    (goaway, closed)
}

/// A well-behaved client is served on another connection.
fn still_serves(e: &Engine) {
    let ok = curl(&[
        "--http2-prior-knowledge",
        &format!("http://{}/v/a/x.m4s", e.addr),
    ]);
    assert_eq!(
        (ok.version.as_str(), ok.status),
        ("2", 200),
        "a well-behaved client"
    );
}

fn attacker(e: &Engine) -> TcpStream {
    let mut s = TcpStream::connect(e.addr).unwrap();
    s.write_all(PREFACE).unwrap();
    s.write_all(&frame(SETTINGS, 0, 0, &[])).unwrap();
    s
}

fn h2_engine() -> Engine {
    Engine::start_with(
        Options {
            engine_toml: "send_timeout = \"2s\"\n".into(),
            ..Options::default()
        },
        |root| {
            write(&root.join("a/x.m4s"), b"x");
            write(&root.join("a/big.m4s"), &pattern(4 << 20, 1));
        },
    )
}

#[test]
fn rapid_reset_gets_a_goaway_and_others_are_served() {
    let e = h2_engine();
    let mut a = attacker(&e);
    let mut burst = Vec::new();
    for i in 0..2000u32 {
        let id = 2 * i + 1;
        burst.extend(frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            id,
            &get_block("/v/a/x.m4s"),
        ));
        burst.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    let _ = a.write_all(&burst);
    let (goaway, closed) = read_until_goaway(&mut a, Duration::from_secs(5));
    assert!(
        goaway.is_some() || closed,
        "the server neither sent GOAWAY nor closed"
    );
    if let Some(code) = goaway {
        assert_eq!(code, 0xb, "ENHANCE_YOUR_CALM");
    }
    still_serves(&e);
    assert!(
        e.metric("streamgate_h2_connection_errors_total") >= 1.0,
        "the attack is counted"
    );
}

#[test]
fn a_continuation_flood_ends_the_connection() {
    let e = h2_engine();
    let mut a = attacker(&e);
    // HEADERS without END_HEADERS, then CONTINUATION frames far past the
    // header list limit (16 KiB), never ending.
    let _ = a.write_all(&frame(HEADERS, END_STREAM, 1, &get_block("/v/a/x.m4s")));
    let junk = vec![0x40; 8192]; // literal-with-indexing openings: never a complete field
    for _ in 0..200 {
        if a.write_all(&frame(CONTINUATION, 0, 1, &junk)).is_err() {
            break;
        }
    }
    let (goaway, closed) = read_until_goaway(&mut a, Duration::from_secs(5));
    assert!(
        goaway.is_some() || closed,
        "a CONTINUATION flood was let run"
    );
    still_serves(&e);
}

#[test]
fn settings_and_ping_floods_are_cut_and_others_served() {
    let e = h2_engine();
    for kind in [SETTINGS, PING] {
        let mut a = attacker(&e);
        let payload: &[u8] = if kind == PING {
            &[0; 8]
        } else {
            &[0, 3, 0, 0, 0, 100]
        };
        let mut burst = Vec::new();
        for _ in 0..20_000 {
            burst.extend(frame(kind, 0, 0, payload));
        }
        // The attacker never reads the acknowledgements.
        a.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
        let _ = a.write_all(&burst);
        still_serves(&e);
        let (goaway, closed) = read_until_goaway(&mut a, Duration::from_secs(3));
        assert!(
            closed || goaway.is_some(),
            "a flood of frame type {kind} was let run"
        );
    }
}

#[test]
fn a_window_of_zero_is_reset_at_the_send_timeout() {
    let e = h2_engine();
    let mut a = TcpStream::connect(e.addr).unwrap();
    a.write_all(PREFACE).unwrap();
    // SETTINGS_INITIAL_WINDOW_SIZE = 0: the server may send no DATA.
    a.write_all(&frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 0]))
        .unwrap();
    a.write_all(&frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        1,
        &get_block("/v/a/big.m4s"),
    ))
    .unwrap();
    // The stream is reset (RST_STREAM) at the 2 s send timeout; the
    // connection and the worker go on.
    let started = Instant::now();
    let mut reset = false;
    read_frames(&mut a, Duration::from_secs(6), |kind, _| {
        reset = kind == RST_STREAM;
        reset
    });
    assert!(reset, "no RST_STREAM within 6 s");
    assert!(
        started.elapsed() >= Duration::from_millis(1800),
        "reset before the send timeout"
    );
    still_serves(&e);
}

#[test]
fn streams_past_max_concurrent_streams_are_refused_and_others_served() {
    let e = Engine::start_with(
        Options {
            engine_toml: "send_timeout = \"5s\"\n".into(),
            sections_toml: "[engine.h2]\nmax_concurrent_streams = 10\n".into(),
            ..Options::default()
        },
        |root| write(&root.join("a/big.m4s"), &pattern(1 << 20, 1)),
    );
    let mut a = TcpStream::connect(e.addr).unwrap();
    a.write_all(PREFACE).unwrap();
    // A window of 0: every stream stays open, waiting to send.
    a.write_all(&frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 0]))
        .unwrap();
    let mut burst = Vec::new();
    for i in 0..30u32 {
        burst.extend(frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            2 * i + 1,
            &get_block("/v/a/big.m4s"),
        ));
    }
    a.write_all(&burst).unwrap();
    // The server's SETTINGS says 10; streams beyond it are reset with
    // REFUSED_STREAM (or the connection is ended), never all served.
    let (mut advertised, mut refused) = (None, 0);
    read_frames(&mut a, Duration::from_secs(3), |kind, p| {
        if kind == SETTINGS {
            for setting in p.chunks(6).filter(|s| s.len() == 6) {
                if setting[..2] == [0, 3] {
                    advertised = Some(u32::from_be_bytes([
                        setting[2], setting[3], setting[4], setting[5],
                    ]));
                }
            }
        }
        if kind == RST_STREAM && p.len() == 4 && p == 7u32.to_be_bytes() {
            refused += 1;
        }
        false
    });
    assert_eq!(advertised, Some(10), "SETTINGS_MAX_CONCURRENT_STREAMS");
    assert!(
        refused >= 20,
        "{refused} streams refused of the 20 over the limit"
    );
    let ok = curl(&[
        "--http2-prior-knowledge",
        "-r",
        "0-9",
        &format!("http://{}/v/a/big.m4s", e.addr),
    ]);
    assert_eq!((ok.version.as_str(), ok.status), ("2", 206));
}

#[test]
fn sighup_reloads_the_certificate_without_losing_a_request() {
    let s = Scratch::new("h2-reload");
    let (e, tls, cert) = engine_with_tls(&s, "", |root| {
        write(&root.join("a/x.m4s"), &pattern(50_000, 2))
    });
    let key = cert.with_file_name("key.pem");
    let url = format!("https://127.0.0.1:{}/v/a/x.m4s", tls.port());
    let first_ca = s.0.join("first-ca.pem");
    std::fs::copy(&cert, &first_ca).unwrap();
    let with_ca = |ca: &Path| curl(&["--http2", "--cacert", ca.to_str().unwrap(), &url]).status;
    assert_eq!(with_ca(&first_ca), 200);
    // Load over both protocols while the certificate changes.
    let json = s.0.join("load.json");
    let load = Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .args([
            "loadtest",
            "run",
            "--url",
            &url,
            "--insecure",
            "--http2",
            "--streams",
            "4",
        ])
        .args(["--connections", "4", "--duration", "4s", "--json"])
        .arg(&json)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let next = s.0.join("next");
    std::fs::create_dir_all(&next).unwrap();
    let (next_cert, next_key) = self_signed(&next);
    std::fs::copy(&next_cert, &cert).unwrap();
    std::fs::copy(&next_key, &key).unwrap();
    // SAFETY: kill(2) on the engine child.
    unsafe { libc::kill(e.pid(), libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(500));
    // New handshakes get the new certificate.
    assert_eq!(with_ca(&next_cert), 200);
    assert_ne!(with_ca(&first_ca), 200, "still the old certificate");
    // A bad file keeps the new one in use.
    std::fs::write(&cert, "garbage").unwrap();
    unsafe { libc::kill(e.pid(), libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        with_ca(&next_cert),
        200,
        "a bad file replaced a good certificate"
    );
    let out = load.wait_with_output().unwrap();
    assert!(out.status.success());
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        r["errors"]["total"], 0,
        "requests lost during the reload: {}",
        r["errors"]
    );
    assert!(r["requests"].as_u64().unwrap() > 100);
}

#[test]
fn the_control_plane_speaks_tls_and_its_clients_verify_it() {
    let s = Scratch::new("control-tls");
    let (cert, key) = self_signed(&s.0);
    let e = Engine::start_with(
        Options {
            open: false,
            sections_toml: format!(
                "[control.tls]\ncert = \"{0}\"\nkey = \"{1}\"\nca = \"{0}\"\n",
                cert.display(),
                key.display()
            ),
            ..Options::default()
        },
        |dir| {
            write(&dir.join("film/master.m3u8"), b"#EXTM3U\n");
            write(&dir.join("film/x.m4s"), b"x");
        },
    );
    // The CLI imported the asset over gRPC on TLS (Engine::start_with) and
    // lists it; the engine learnt it is open over TLS too.
    let (listed, _) = e.cli_with_stderr(&["asset", "list"], &[]);
    assert!(listed.contains("film"), "{listed}");
    e.wait_status("/v/film/x.m4s", 200);
    // The JSON API is HTTPS, verified with the same CA.
    let api = curl(&[
        "--cacert",
        cert.to_str().unwrap(),
        &format!("https://127.0.0.1:{}/api/v1/assets", e.http.port()),
    ]);
    assert_eq!(api.status, 200);
    assert!(String::from_utf8_lossy(&api.body).contains("film"));
    // Plain HTTP to it gets nowhere.
    let plain = curl(&[&format!("http://127.0.0.1:{}/api/v1/assets", e.http.port())]);
    assert_ne!(plain.status, 200);
    // A client that trusts another CA refuses the control plane, and says so.
    let other = s.0.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (other_ca, _) = self_signed(&other);
    let config = std::fs::read_to_string(e.config_path()).unwrap().replace(
        &format!("ca = \"{}\"", cert.display()),
        &format!("ca = \"{}\"", other_ca.display()),
    );
    let wrong = s.0.join("wrong-ca.toml");
    std::fs::write(&wrong, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .args(["asset", "list", "--config"])
        .arg(&wrong)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "listed with the wrong CA");
    assert!(
        said.contains("certificate") || said.contains("UnknownIssuer"),
        "{said}"
    );
}

#[test]
fn certificates_are_chosen_by_sni_and_expired_or_unknown_names_fail_visibly() {
    use streamgate_testkit::tls::certificate;
    let s = Scratch::new("sni");
    let (default_cert, default_key) = self_signed(&s.0);
    let (a_cert, a_key) = certificate(&s.0, &["a.test", "*.a.test"], false).unwrap();
    let (b_cert, b_key) = certificate(&s.0, &["b.test"], true).unwrap();
    let start = |strict: bool| {
        let tls = free_addr();
        let e = Engine::start_with(
            Options {
                engine_toml: format!("listen_tls = \"{tls}\""),
                sections_toml: format!(
                    "[engine.tls]\ncert = \"{}\"\nkey = \"{}\"\nstrict_sni = {strict}\n\
                     [[engine.tls.sni]]\nnames = [\"a.test\", \"*.a.test\"]\ncert = \"{}\"\nkey = \"{}\"\n\
                     [[engine.tls.sni]]\nnames = [\"b.test\"]\ncert = \"{}\"\nkey = \"{}\"\n",
                    default_cert.display(),
                    default_key.display(),
                    a_cert.display(),
                    a_key.display(),
                    b_cert.display(),
                    b_key.display()
                ),
                ..Options::default()
            },
            |root| write(&root.join("a/x.m4s"), b"x"),
        );
        (e, tls)
    };
    // curl asking for `name` on our port, trusting `ca`; (exit code, stderr).
    let fetch = |tls: SocketAddr, name: &str, ca: &Path| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-S",
                "-o",
                "/dev/null",
                "--max-time",
                "10",
                "--resolve",
            ])
            .arg(format!("{name}:{}:127.0.0.1", tls.port()))
            .arg("--cacert")
            .arg(ca)
            .arg(format!("https://{name}:{}/v/a/x.m4s", tls.port()))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (e, tls) = start(false);
    assert_eq!(fetch(tls, "a.test", &a_cert).0, Some(0), "exact name");
    assert_eq!(fetch(tls, "cdn.a.test", &a_cert).0, Some(0), "wildcard");
    assert_eq!(
        served_certificate(tls, "b.test", &["-subject"]),
        "subject=CN = b.test"
    );
    // Expired: served (the engine warns and exports it), refused by a
    // verifying client with the reason.
    let (code, said) = fetch(tls, "b.test", &b_cert);
    assert_eq!(code, Some(60), "{said}");
    assert!(said.contains("expired"), "{said}");
    let expiry = |cert: &Path| {
        e.metric(&format!(
            "streamgate_tls_certificate_expiry_timestamp_seconds{{cert=\"{}\"}}",
            cert.display()
        ))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expiry(&b_cert) > 0.0 && expiry(&b_cert) < now, "expired");
    assert!(expiry(&a_cert) > now, "valid");
    // A name no SNI certificate has gets the default certificate, which a
    // client asking for that name refuses.
    assert_eq!(
        served_certificate(tls, "unknown.test", &["-subject"]),
        "subject=CN = localhost"
    );
    let (code, said) = fetch(tls, "unknown.test", &default_cert);
    assert_eq!(code, Some(60), "{said}");
    drop(e);

    // strict_sni: the handshake itself is refused, and counted.
    let (e, tls) = start(true);
    assert_eq!(fetch(tls, "a.test", &a_cert).0, Some(0));
    let (code, said) = fetch(tls, "unknown.test", &default_cert);
    assert_eq!(code, Some(35), "a refused handshake: {said}");
    assert!(e.metric("streamgate_tls_handshake_failures_total{reason=\"no_certificate\"}") >= 1.0);
}

#[test]
fn a_client_certificate_from_the_client_ca_stands_in_for_the_operator_token() {
    let s = Scratch::new("mtls");
    let (cert, key) = self_signed(&s.0);
    let (client_ca, client_cert, client_key) =
        streamgate_testkit::tls::client_certificate(&s.0).unwrap();
    let e = Engine::start_with(
        Options {
            open: false,
            sections_toml: format!(
                "[control.tls]\ncert = \"{0}\"\nkey = \"{1}\"\nca = \"{0}\"\nclient_ca = \"{2}\"\n",
                cert.display(),
                key.display(),
                client_ca.display()
            ),
            ..Options::default()
        },
        |dir| write(&dir.join("film/master.m3u8"), b"#EXTM3U\n"),
    );
    // Another node: its own data dir (no operator token in it), the
    // control plane's CA, and maybe a client certificate.
    let node = s.0.join("node");
    std::fs::create_dir_all(&node).unwrap();
    let node_config = |client: Option<(&Path, &Path)>| {
        let mut toml = format!(
            "data_dir = \"{}\"\n[control]\ngrpc = \"{}\"\n[control.tls]\nca = \"{}\"\n",
            node.display(),
            e.grpc,
            cert.display()
        );
        if let Some((c, k)) = client {
            toml += &format!(
                "client_cert = \"{}\"\nclient_key = \"{}\"\n",
                c.display(),
                k.display()
            );
        }
        let path = node.join("streamgate.toml");
        std::fs::write(&path, toml).unwrap();
        path
    };
    let list = |config: &Path| {
        Command::new(env!("CARGO_BIN_EXE_streamgate"))
            .args(["asset", "list", "--config"])
            .arg(config)
            .output()
            .unwrap()
    };
    // With the client certificate: an operator, no token needed.
    let out = list(&node_config(Some((&client_cert, &client_key))));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("film"));
    // Without one, and without the token: told what is missing.
    let out = list(&node_config(None));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the operator token"));
    // A certificate the client CA did not sign (the server's own,
    // self-signed): the handshake is refused.
    let out = list(&node_config(Some((&cert, &key))));
    assert!(!out.status.success(), "a stranger's certificate was let in");
    // The operator token still works beside mTLS (the CLI on the box).
    let (listed, _) = e.cli_with_stderr(&["asset", "list"], &[]);
    assert!(listed.contains("film"), "{listed}");
}

#[test]
#[cfg_attr(
    not(ktls_kernel),
    ignore = "this kernel has no kTLS (CONFIG_TLS; build.rs probes TCP_ULP \"tls\"): the hand-over runs where it has"
)]
fn http1_over_tls_goes_to_kernel_tls_and_bodies_are_spliced() {
    let s = Scratch::new("ktls");
    let big = pattern(8 << 20, 3);
    let (e, tls, cert) = engine_with_tls(&s, "", |root| write(&root.join("a/big.m4s"), &big));
    let url = format!("https://127.0.0.1:{}/v/a/big.m4s", tls.port());
    let ca = cert.to_str().unwrap();
    // TLS 1.3 and 1.2, two requests on one connection each, a range.
    for max in ["1.3", "1.2"] {
        let out = s.0.join(format!("out-{max}"));
        let ranged = s.0.join(format!("range-{max}"));
        let common = ["-s", "-S", "--http1.1", "--tls-max", max, "--cacert", ca];
        // `--next`: a second transfer with its own options, on the same
        // connection (curl keeps it in its cache).
        let status = Command::new("curl")
            .args(common)
            .args(["-o", out.to_str().unwrap(), &url, "--next"])
            .args(common)
            .args(["-r", "100-199", "-o", ranged.to_str().unwrap(), &url])
            .status()
            .unwrap();
        assert!(status.success(), "TLS {max}");
        assert!(std::fs::read(&out).unwrap() == big, "TLS {max}: body");
        assert_eq!(std::fs::read(&ranged).unwrap(), &big[100..200], "TLS {max}");
    }
    assert_eq!(e.metric("streamgate_ktls_available"), 1.0);
    assert!(e.metric("streamgate_ktls_connections_total{outcome=\"kernel\"}") >= 2.0);
    assert_eq!(
        e.metric("streamgate_ktls_connections_total{outcome=\"failed\"}"),
        0.0
    );
    // HTTP/2 stays in userspace and is served.
    let h2 = curl(&["--http2", "--cacert", ca, &url]);
    assert_eq!((h2.version.as_str(), h2.status), ("2", 200));
    assert!(h2.body == big);
}

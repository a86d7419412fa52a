//! The engine as a CDN origin, over real sockets: every HTTP behaviour of
//! issue 2 against the real `streamgate engine` binary. The origin
//! semantics (Range, conditionals, caching headers, CORS, HEAD, methods,
//! traversal, the hot cache) run over every wire — plain HTTP/1.1,
//! HTTPS/1.1, HTTP/2 over TLS and h2c — from one case each; HTTP/1
//! framing (pipelining, malformed heads, slowloris) is HTTP/1's alone.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use common::wire::Wire;
use common::{closed_within, pattern, read_response, write, Engine, Options};

over_every_wire!(
    get_serves_the_file_with_origin_headers,
    head_has_the_get_headers_and_no_body,
    byte_ranges,
    conditional_requests,
    content_types_and_cache_control_by_type,
    cors_preflight_and_origin_lists,
    not_found_and_method_rules,
    closed_policy_serves_nothing_under_v,
    traversal_never_reads_outside_the_root,
    hot_cache_hits_and_never_serves_a_replaced_file,
    large_files_stream_from_cached_descriptors,
    a_deleted_file_leaves_the_cache_and_frees_its_descriptor,
    requests_are_counted_by_protocol,
);

/// An engine for `wire`: with its TLS listener when the wire needs it.
fn start(wire: Wire, options: Options, fill: impl FnOnce(&Path)) -> Engine {
    Engine::start_with(
        Options {
            tls: wire.tls(),
            ..options
        },
        fill,
    )
}

const SEGMENT_LEN: usize = 100_000;

/// A small packaged asset (Contract 2).
fn asset(root: &Path) {
    let a = root.join("a1");
    write(&a.join("master.m3u8"), b"#EXTM3U\n#EXT-X-VERSION:7\n");
    write(&a.join("manifest.mpd"), b"<MPD/>\n");
    write(&a.join("720p/index.m3u8"), b"#EXTM3U\n");
    write(&a.join("720p/init.mp4"), &pattern(1000, 1));
    write(&a.join("720p/1.m4s"), &pattern(SEGMENT_LEN, 2));
    write(&a.join("old/1.ts"), &pattern(10, 3));
    write(&a.join("subs/en.vtt"), b"WEBVTT\n");
    write(&a.join("poster.jpg"), &pattern(10, 4));
}

fn get_serves_the_file_with_origin_headers(wire: Wire) {
    let e = start(wire, Options::default(), asset);
    let r = e.over(wire).get("/v/a1/720p/1.m4s", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, pattern(SEGMENT_LEN, 2));
    assert_eq!(r.header("Content-Length"), Some("100000"));
    assert_eq!(r.header("Content-Type"), Some("video/iso.segment"));
    assert_eq!(
        r.header("Cache-Control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
    assert!(r.header("ETag").unwrap().starts_with('"'));
    assert!(httpdate_ok(r.header("Last-Modified").unwrap()));
    assert!(httpdate_ok(r.header("Date").unwrap()));
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    let exposed = r.header("Access-Control-Expose-Headers").unwrap();
    for h in ["Content-Length", "Content-Range", "ETag"] {
        assert!(exposed.contains(h), "{exposed}");
    }
    assert!(r.header("Set-Cookie").is_none(), "no cookies, ever");
    if wire.is_h2() {
        for h in ["Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade"] {
            assert!(r.header(h).is_none(), "hop-by-hop {h} on HTTP/2");
        }
    }
}

fn httpdate_ok(s: &str) -> bool {
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    s.len() == 29 && s.ends_with(" GMT") && s.as_bytes()[3] == b','
}

fn head_has_the_get_headers_and_no_body(wire: Wire) {
    let e = start(wire, Options::default(), asset);
    let c = e.over(wire);
    let get = c.get("/v/a1/720p/1.m4s", "");
    let head = c.request("HEAD", "/v/a1/720p/1.m4s", "");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    // A HEAD carries the headers its GET would.
    let same_as_get = |head: &common::Response| {
        for h in [
            "Content-Length",
            "Content-Type",
            "ETag",
            "Last-Modified",
            "Cache-Control",
        ] {
            assert_eq!(head.header(h), get.header(h), "{h}");
        }
    };
    same_as_get(&head);
    if wire != Wire::Http1 {
        return;
    }
    let mut s = e.connect();
    // A HEAD then a GET on one connection: if HEAD leaked a body, the GET's
    // status line would be garbage.
    s.write_all(b"HEAD /v/a1/720p/1.m4s HTTP/1.1\r\nHost: t\r\n\r\nGET /v/a1/master.m3u8 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let head = read_response(&mut s, true).unwrap();
    assert_eq!(head.status, 200);
    same_as_get(&head);
    let next = read_response(&mut s, false).unwrap();
    assert_eq!(next.status, 200);
    assert_eq!(next.body, b"#EXTM3U\n#EXT-X-VERSION:7\n");
}

fn byte_ranges(wire: Wire) {
    let e = start(wire, Options::default(), asset);
    let c = e.over(wire);
    let body = pattern(SEGMENT_LEN, 2);
    let cases: &[(&str, usize, usize)] = &[
        ("bytes=0-99", 0, 99),
        ("bytes=99990-", 99_990, 99_999),
        ("bytes=-10", 99_990, 99_999),
        ("bytes=50000-999999", 50_000, 99_999),
    ];
    for &(range, start, end) in cases {
        let r = c.get("/v/a1/720p/1.m4s", &format!("Range: {range}\r\n"));
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(
            r.header("Content-Range").unwrap(),
            format!("bytes {start}-{end}/{SEGMENT_LEN}")
        );
        assert_eq!(r.body, &body[start..=end], "{range}");
    }
    let r = c.get("/v/a1/720p/1.m4s", "Range: bytes=100000-\r\n");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Content-Range"), Some("bytes */100000"));
    // Several ranges, or a header that does not parse: the whole body.
    for range in ["bytes=0-1,5-6", "bytes=9-1", "pages=1-2"] {
        let r = c.get("/v/a1/720p/1.m4s", &format!("Range: {range}\r\n"));
        assert_eq!(r.status, 200, "{range}");
        assert_eq!(r.body.len(), SEGMENT_LEN);
    }
    // Ranges on a small (cached) file take the same path.
    let r = c.get("/v/a1/master.m3u8", "Range: bytes=1-6\r\n");
    assert_eq!((r.status, r.body.as_slice()), (206, &b"EXTM3U"[..]));
}

fn conditional_requests(wire: Wire) {
    let e = start(wire, Options::default(), asset);
    let c = e.over(wire);
    let first = c.get("/v/a1/720p/1.m4s", "");
    let etag = first.header("ETag").unwrap().to_string();
    let last_modified = first.header("Last-Modified").unwrap().to_string();

    let r = c.get(
        "/v/a1/720p/1.m4s",
        &format!("If-None-Match: \"nope\", {etag}\r\n"),
    );
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("ETag"), Some(etag.as_str()));
    assert!(r.header("Cache-Control").is_some());
    assert_eq!(
        c.get("/v/a1/720p/1.m4s", "If-None-Match: \"nope\"\r\n")
            .status,
        200
    );

    let r = c.get(
        "/v/a1/720p/1.m4s",
        &format!("If-Modified-Since: {last_modified}\r\n"),
    );
    assert_eq!(r.status, 304);
    let r = c.get(
        "/v/a1/720p/1.m4s",
        "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
    );
    assert_eq!(r.status, 200);

    // If-Range: a matching validator keeps the range, a stale one gets 200.
    let r = c.get(
        "/v/a1/720p/1.m4s",
        &format!("Range: bytes=0-9\r\nIf-Range: {etag}\r\n"),
    );
    assert_eq!(r.status, 206);
    let r = c.get(
        "/v/a1/720p/1.m4s",
        &format!("Range: bytes=0-9\r\nIf-Range: {last_modified}\r\n"),
    );
    assert_eq!(r.status, 206);
    let r = c.get(
        "/v/a1/720p/1.m4s",
        "Range: bytes=0-9\r\nIf-Range: \"stale\"\r\n",
    );
    assert_eq!((r.status, r.body.len()), (200, SEGMENT_LEN));
}

fn content_types_and_cache_control_by_type(wire: Wire) {
    let e = start(
        wire,
        Options {
            engine_toml: "manifest_max_age = 7".into(),
            ..Options::default()
        },
        asset,
    );
    let cases = [
        (
            "/v/a1/master.m3u8",
            "application/vnd.apple.mpegurl",
            "public, max-age=7",
        ),
        (
            "/v/a1/720p/index.m3u8",
            "application/vnd.apple.mpegurl",
            "public, max-age=7",
        ),
        (
            "/v/a1/manifest.mpd",
            "application/dash+xml",
            "public, max-age=7",
        ),
        (
            "/v/a1/720p/init.mp4",
            "video/mp4",
            "public, max-age=31536000, immutable",
        ),
        (
            "/v/a1/720p/1.m4s",
            "video/iso.segment",
            "public, max-age=31536000, immutable",
        ),
        (
            "/v/a1/old/1.ts",
            "video/mp2t",
            "public, max-age=31536000, immutable",
        ),
        (
            "/v/a1/subs/en.vtt",
            "text/vtt; charset=utf-8",
            "public, max-age=31536000, immutable",
        ),
        (
            "/v/a1/poster.jpg",
            "image/jpeg",
            "public, max-age=31536000, immutable",
        ),
    ];
    for (path, content_type, cache_control) in cases {
        let r = e.over(wire).get(path, "");
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("Content-Type"), Some(content_type), "{path}");
        assert_eq!(r.header("Cache-Control"), Some(cache_control), "{path}");
    }
}

fn cors_preflight_and_origin_lists(wire: Wire) {
    let e = start(wire, Options::default(), asset);
    let r = e.over(wire).request(
        "OPTIONS",
        "/v/a1/720p/1.m4s",
        "Origin: https://player.example\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: range\r\n",
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    assert!(r
        .header("Access-Control-Allow-Methods")
        .unwrap()
        .contains("GET"));
    assert!(r
        .header("Access-Control-Allow-Headers")
        .unwrap()
        .contains("Range"));
    assert!(r.header("Access-Control-Max-Age").is_some());

    let listed = start(
        wire,
        Options {
            engine_toml: "cors_origins = [\"https://player.example\"]".into(),
            ..Options::default()
        },
        asset,
    );
    let ok = listed
        .over(wire)
        .get("/v/a1/master.m3u8", "Origin: https://player.example\r\n");
    assert_eq!(
        ok.header("Access-Control-Allow-Origin"),
        Some("https://player.example")
    );
    assert_eq!(ok.header("Vary"), Some("Origin"));
    let other = listed
        .over(wire)
        .get("/v/a1/master.m3u8", "Origin: https://evil.example\r\n");
    assert_eq!(other.status, 200);
    assert!(other.header("Access-Control-Allow-Origin").is_none());
}

#[test]
fn keep_alive_and_pipelining() {
    let e = Engine::start(asset);
    let mut s = e.connect();
    // Three requests in one write, answered in order on one connection.
    s.write_all(
        b"GET /v/a1/master.m3u8 HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /v/a1/720p/1.m4s HTTP/1.1\r\nHost: t\r\nRange: bytes=0-3\r\n\r\n\
          GET /v/a1/manifest.mpd HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    let a = read_response(&mut s, false).unwrap();
    let b = read_response(&mut s, false).unwrap();
    let c = read_response(&mut s, false).unwrap();
    assert_eq!(a.body, b"#EXTM3U\n#EXT-X-VERSION:7\n");
    assert_eq!(
        (b.status, b.body.as_slice()),
        (206, &pattern(SEGMENT_LEN, 2)[..4])
    );
    assert_eq!(c.body, b"<MPD/>\n");
    // Still open: a fourth request, split across writes.
    s.write_all(b"GET /v/a1/master.m3u8 HT").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"TP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, false).unwrap().status, 200);
    // Connection: close is honoured.
    s.write_all(b"GET /v/a1/master.m3u8 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let last = read_response(&mut s, false).unwrap();
    assert_eq!(last.header("Connection"), Some("close"));
    assert!(closed_within(&mut s, Duration::from_secs(2)));
    // HTTP/1.0 closes by default.
    let mut s10 = e.connect();
    s10.write_all(b"GET /v/a1/master.m3u8 HTTP/1.0\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s10, false).unwrap().status, 200);
    assert!(closed_within(&mut s10, Duration::from_secs(2)));
}

fn not_found_and_method_rules(wire: Wire) {
    let e = start(wire, Options::default(), asset);
    let c = e.over(wire);
    for path in [
        "/",
        "/v/",
        "/v/a1",
        "/v/a1/",
        "/v/a1/720p",
        "/v/a1/missing.m4s",
        "/v/nope/master.m3u8",
        "/v/a1/.hidden",
        "/other/a1/master.m3u8",
        "/v/bad!id/master.m3u8",
    ] {
        let r = c.get(path, "");
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.header("Cache-Control"), Some("no-store"), "{path}");
    }
    let r = c.request("POST", "/v/a1/master.m3u8", "Content-Length: 0\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD, OPTIONS"));
    let r = c.request("DELETE", "/v/a1/master.m3u8", "");
    assert_eq!(r.status, 405);
    assert_eq!(c.request("BREW", "/v/a1/master.m3u8", "").status, 501);
}

fn closed_policy_serves_nothing_under_v(wire: Wire) {
    let e = start(
        wire,
        Options {
            open: false,
            ..Options::default()
        },
        asset,
    );
    assert_eq!(e.over(wire).get("/v/a1/master.m3u8", "").status, 404);
}

fn traversal_never_reads_outside_the_root(wire: Wire) {
    let e = start(wire, Options::default(), |root| {
        asset(root);
        let outside = root.parent().unwrap();
        write(&outside.join("secret.txt"), b"TOP-SECRET");
        write(&outside.join("secretdir/s.m4s"), b"TOP-SECRET");
        std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("a1/escape.m4s")).unwrap();
        std::os::unix::fs::symlink(outside.join("secretdir"), root.join("a1/escdir")).unwrap();
        std::os::unix::fs::symlink("../../secret.txt", root.join("a1/relative.m4s")).unwrap();
        // A symlink that stays inside the root is fine.
        std::os::unix::fs::symlink("720p/init.mp4", root.join("a1/inside.mp4")).unwrap();
    });
    let attacks = [
        "/v/a1/../../secret.txt",
        "/v/a1/%2e%2e/%2e%2e/secret.txt",
        "/v/a1/%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/v/a1/..%2f..%2fsecret.txt",
        "/v/a1/..%5c..%5csecret.txt",
        "/v/a1/master.m3u8%00.m4s",
        "/v/a1/escape.m4s",
        "/v/a1/escdir/s.m4s",
        "/v/a1/relative.m4s",
        "/v/%2e%2e/secret.txt",
        "/v/a1/./../../secret.txt",
    ];
    let c = e.over(wire);
    for path in attacks {
        let r = c.get(path, "");
        let text = String::from_utf8_lossy(&r.body);
        assert!(!text.contains("TOP-SECRET"), "{path} leaked: {text}");
        assert!(matches!(r.status, 400 | 404), "{path}: {}", r.status);
    }
    assert_eq!(c.get("/v/a1/inside.mp4", "").body, pattern(1000, 1));
    if wire != Wire::Http1 {
        return;
    }
    // What only an HTTP/1 request line can carry: an absolute-form target,
    // a raw NUL, a backslash.
    let raw = e.raw(
        b"GET http://h/v/a1/../../secret.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains("TOP-SECRET"), "absolute form leaked: {text}");
    assert!(
        text.starts_with("HTTP/1.1 400 ") || text.starts_with("HTTP/1.1 404 "),
        "{text}"
    );
    // Raw NUL and backslash in the request line are refused by the parser.
    assert!(e
        .raw(b"GET /v/a1/x\x00y HTTP/1.1\r\nHost: t\r\n\r\n")
        .starts_with(b"HTTP/1.1 400 "));
    assert!(e
        .raw(b"GET /v/a1\\..\\..\\secret.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .starts_with(b"HTTP/1.1 400 "));
}

#[test]
fn hostile_heads_get_their_status_and_a_close() {
    let e = Engine::start(asset);
    let long_uri = format!("GET /v/a1/{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    let big_header = format!(
        "GET /v/a1/master.m3u8 HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(17_000)
    );
    let many_headers = format!(
        "GET /v/a1/master.m3u8 HTTP/1.1\r\nHost: t\r\n{}\r\n",
        "X-A: 1\r\n".repeat(100)
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (long_uri.into_bytes(), "414"),
        (big_header.into_bytes(), "431"),
        (many_headers.into_bytes(), "431"),
        (b"GET /v/a1/master.m3u8\r\n\r\n".to_vec(), "400"),
        (b"GET  /v/a1/master.m3u8 HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), "400"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(), "400"),
        (b"GET /v/a1/master.m3u8 HTTP/1.1\r\n\r\n".to_vec(), "400"),
        (b"GET /v/a1/master.m3u8 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(), "400"),
        (b"GET /v/a1/master.m3u8 HTTP/1.1\r\nHost: t\r\n folded: x\r\n\r\n".to_vec(), "400"),
        (b"GET /v/a1/master.m3u8 HTTP/3.0\r\nHost: t\r\n\r\n".to_vec(), "505"),
        (b"FROB /v/a1/master.m3u8 HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), "501"),
    ];
    for (raw, status) in cases {
        let reply = e.raw(&raw);
        let text = String::from_utf8_lossy(&reply);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status} ")),
            "want {status}, got {text}"
        );
        assert!(text.contains("Connection: close"), "{text}");
    }
    // A request with a body is answered, then the connection closes rather
    // than guessing where the next request starts.
    let reply =
        e.raw(b"POST /v/a1/master.m3u8 HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nGET /");
    assert!(reply.starts_with(b"HTTP/1.1 405 "));
    assert_eq!(reply.windows(9).filter(|w| w == b"HTTP/1.1 ").count(), 1);
    // None of that hurt the workers.
    assert_eq!(e.get("/v/a1/master.m3u8", "").status, 200);
}

#[test]
fn garbage_and_abrupt_peers_do_not_hurt_workers() {
    let e = Engine::start(asset);
    let mut seed = 0x2545_f491_u32;
    for i in 0..64 {
        let mut junk = vec![0u8; 1 + (i * 97) % 3000];
        for b in &mut junk {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *b = seed as u8;
        }
        let mut s = e.connect();
        let _ = s.write_all(&junk);
        if i % 2 == 0 {
            drop(s); // hang up without reading
        } else {
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
    }
    // Hang up halfway through a large response.
    let mut s = e.connect();
    s.write_all(b"GET /v/a1/720p/1.m4s HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut some = [0u8; 100];
    s.read_exact(&mut some).unwrap();
    drop(s);
    assert_eq!(e.get("/v/a1/720p/1.m4s", "").body.len(), SEGMENT_LEN);
    // No connection leaked: every one of them is closed again.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while e.metric("streamgate_http_open_connections") > 0.0 {
        assert!(std::time::Instant::now() < deadline, "connections leaked");
    }
}

#[test]
fn slowloris_and_idle_connections_are_closed() {
    let e = Engine::start_with(
        Options {
            engine_toml: "header_timeout = \"1s\"\nidle_timeout = \"1s\"".into(),
            ..Options::default()
        },
        asset,
    );
    // A head that trickles in and never ends: 408, then close.
    let mut slow = e.connect();
    slow.write_all(b"GET /v/a1/master.m3u8 HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(400));
        if slow.write_all(b"X-Drip: 1\r\n").is_err() {
            break;
        }
    }
    let mut reply = Vec::new();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = slow.read_to_end(&mut reply);
    assert!(
        reply.starts_with(b"HTTP/1.1 408 "),
        "{}",
        String::from_utf8_lossy(&reply)
    );

    // An idle kept-alive connection is closed silently.
    let mut idle = e.connect();
    idle.write_all(b"GET /v/a1/master.m3u8 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle, false).unwrap().status, 200);
    assert!(closed_within(&mut idle, Duration::from_secs(5)));

    // A connection that never sends a byte is closed too.
    let mut silent = e.connect();
    assert!(closed_within(&mut silent, Duration::from_secs(5)));
}

#[test]
fn connections_idle_a_while_park_and_still_serve_or_time_out() {
    // Idle past a second, a connection leaves its task for the worker's
    // epoll set: it must still answer its next request, still count as
    // open, close at its idle timeout, and close when the engine drains.
    let mut e = Engine::start_with(
        Options {
            threads: 1,
            engine_toml: "idle_timeout = \"3s\"".into(),
            ..Options::default()
        },
        asset,
    );
    let mut kept = e.connect();
    let ask = b"GET /v/a1/master.m3u8 HTTP/1.1\r\nHost: t\r\n\r\n";
    kept.write_all(ask).unwrap();
    assert_eq!(read_response(&mut kept, false).unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(1600)); // parked by now
    assert_eq!(e.metric("streamgate_http_open_connections"), 1.0);
    assert_eq!(e.metric("streamgate_http_parked_connections"), 1.0);
    kept.write_all(ask).unwrap();
    let again = read_response(&mut kept, false).unwrap();
    assert_eq!(
        (again.status, again.body.as_slice()),
        (200, &b"#EXTM3U\n#EXT-X-VERSION:7\n"[..])
    );
    // Parked again, then past the idle timeout: closed, and no longer counted.
    assert!(closed_within(&mut kept, Duration::from_secs(6)));
    assert_eq!(e.metric("streamgate_http_open_connections"), 0.0);
    assert_eq!(e.metric("streamgate_http_parked_connections"), 0.0);

    // A parked connection does not hold up draining.
    let mut parked = e.connect();
    parked.write_all(ask).unwrap();
    assert_eq!(read_response(&mut parked, false).unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(1600));
    // SAFETY: kill(2) on the child this test started.
    unsafe { libc::kill(e.pid(), libc::SIGTERM) };
    assert!(closed_within(&mut parked, Duration::from_secs(3)));
    let status = e.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn connection_cap_answers_503() {
    let e = Engine::start_with(
        Options {
            threads: 1,
            engine_toml: "max_connections = 2".into(),
            ..Options::default()
        },
        asset,
    );
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = e.connect();
        s.write_all(b"GET /v/a1/master.m3u8 HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut s, false).unwrap().status, 200);
        held.push(s);
    }
    let reply = e.raw(b"GET /v/a1/master.m3u8 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(
        reply.starts_with(b"HTTP/1.1 503 "),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert!(e.metric("streamgate_http_connections_rejected_total") >= 1.0);
    drop(held);
    // Capacity comes back once they close.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let reply =
            e.raw(b"GET /v/a1/master.m3u8 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        if reply.starts_with(b"HTTP/1.1 200 ") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "capacity never came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hot_cache_hits_and_never_serves_a_replaced_file(wire: Wire) {
    let e = start(
        wire,
        Options {
            threads: 1, // one worker: the second request must hit its cache
            ..Options::default()
        },
        asset,
    );
    // A small file is cached in memory, a segment as an open descriptor:
    // both must notice replacement.
    for (url, file, len) in [
        ("/v/a1/720p/init.mp4", "a1/720p/init.mp4", 1000),
        ("/v/a1/720p/1.m4s", "a1/720p/1.m4s", SEGMENT_LEN),
    ] {
        let path = e.root.join(file);
        let hits_before = e.metric("streamgate_cache_hits_total");
        assert_eq!(
            e.over(wire).get(url, "").body,
            std::fs::read(&path).unwrap()
        );
        assert_eq!(
            e.over(wire).get(url, "").body,
            std::fs::read(&path).unwrap()
        );
        assert!(
            e.metric("streamgate_cache_hits_total") > hits_before,
            "{url}: no cache hit"
        );

        // Replaced by rename (how the transcoder publishes): same size, new bytes.
        let staged = e.root.join("a1/720p/.staged.tmp");
        std::fs::write(&staged, pattern(len, 9)).unwrap();
        std::fs::rename(&staged, &path).unwrap();
        assert_eq!(
            e.over(wire).get(url, "").body,
            pattern(len, 9),
            "{url}: stale after rename"
        );
        assert_eq!(
            e.over(wire).get(url, "Range: bytes=0-9\r\n").body,
            pattern(len, 9)[..10]
        );
        // Rewritten in place.
        std::fs::write(&path, pattern(len, 10)).unwrap();
        assert_eq!(
            e.over(wire).get(url, "").body,
            pattern(len, 10),
            "{url}: stale after rewrite"
        );
        let held = e.metric("streamgate_cache_bytes");
        if len < 16 << 10 {
            assert_eq!(held, len as f64, "{url}: a small file is held in memory");
        } else {
            assert_eq!(held, 0.0, "{url}: a segment is held as a descriptor");
        }
        // Deleted: refused, and the cache lets go of it.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            e.over(wire).get(url, "").status,
            404,
            "{url}: served after delete"
        );
        assert_eq!(
            e.metric("streamgate_cache_bytes"),
            0.0,
            "{url}: still cached"
        );
    }
}

/// One worker whose cache keeps only bodies up to 4 KiB in memory (larger
/// files as descriptors), serving [`asset`] plus `extra` (name, bytes).
fn descriptor_cache_engine(wire: Wire, extra: (&str, Vec<u8>)) -> Engine {
    start(
        wire,
        Options {
            threads: 1,
            engine_toml: "cache_max_object = 4096".into(),
            ..Options::default()
        },
        |root| {
            asset(root);
            write(&root.join(extra.0), &extra.1);
        },
    )
}

/// Over plain HTTP/1.1 the body is spliced from the descriptor; over TLS
/// it is read from the same descriptor and copied into records.
fn large_files_stream_from_cached_descriptors(wire: Wire) {
    let big = 8 << 20;
    let e = descriptor_cache_engine(wire, ("a1/720p/2.m4s", pattern(big, 5)));
    let c = e.over(wire);
    let r = c.get("/v/a1/720p/2.m4s", "");
    assert_eq!(r.body.len(), big);
    assert!(r.body == pattern(big, 5));
    let r = c.get("/v/a1/720p/2.m4s", "Range: bytes=5000000-5000099\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &pattern(big, 5)[5_000_000..5_000_100]);
    // The second request was served from the descriptor the first cached.
    assert!(e.metric("streamgate_cache_hits_total") >= 1.0);
    assert_eq!(
        e.metric("streamgate_cache_bytes"),
        0.0,
        "an 8 MiB body is never copied into the cache"
    );
}

fn a_deleted_file_leaves_the_cache_and_frees_its_descriptor(wire: Wire) {
    let e = descriptor_cache_engine(wire, ("a1/720p/9.m4s", pattern(1 << 20, 9)));
    let c = e.over(wire);
    let path = e.root.join("a1/720p/9.m4s");
    assert_eq!(c.get("/v/a1/720p/9.m4s", "").status, 200);
    assert!(
        open_descriptors_to(e.pid(), &path) > 0,
        "the cache holds the large file's descriptor"
    );
    std::fs::remove_file(&path).unwrap();
    assert_eq!(c.get("/v/a1/720p/9.m4s", "").status, 404);
    // The deleted file's blocks are freed only once no descriptor is open.
    assert_eq!(
        open_descriptors_to(e.pid(), &path),
        0,
        "a deleted segment must not stay open in the hot cache"
    );
}

/// Descriptors of process `pid` open on `path` (deleted or not).
fn open_descriptors_to(pid: i32, path: &Path) -> usize {
    let wanted = path.display().to_string();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| {
            let t = target.display().to_string();
            t == wanted || t == format!("{wanted} (deleted)")
        })
        .count()
}

/// Requests are counted under their protocol, and TLS connections by
/// negotiated protocol and version.
fn requests_are_counted_by_protocol(wire: Wire) {
    let e = start(wire, Options::default(), asset);
    let c = e.over(wire);
    assert_eq!(c.get("/v/a1/master.m3u8", "").status, 200);
    assert_eq!(c.get("/v/a1/none", "").status, 404);
    let p = wire.protocol_label();
    for status in [200, 404] {
        let series = format!(
            "streamgate_http_requests_total{{method=\"GET\",status=\"{status}\",protocol=\"{p}\"}}"
        );
        assert_eq!(e.metric(&series), 1.0, "{series}");
    }
    let tls = e.metric("streamgate_tls_connections_total");
    if wire.tls() {
        let series =
            format!("streamgate_tls_connections_total{{protocol=\"{p}\",version=\"1.3\"}}");
        assert_eq!(e.metric(&series), 2.0, "{series}");
        // The kTLS gauge says what the kernel lists (this VM: no CONFIG_TLS).
        let ulps =
            std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp").unwrap_or_default();
        let listed = ulps.split_whitespace().any(|u| u == "tls");
        assert_eq!(e.metric("streamgate_ktls_available") == 1.0, listed);
    } else {
        assert_eq!(tls, 0.0, "TLS connections counted on {wire:?}");
    }
}

#[test]
fn admin_endpoints() {
    let e = Engine::start(asset);
    assert_eq!(e.get("/v/a1/master.m3u8", "").status, 200);
    assert_eq!(e.get("/v/a1/none", "").status, 404);
    assert_eq!(common::try_get(e.admin, "/healthz").unwrap().status, 200);
    assert_eq!(common::try_get(e.admin, "/readyz").unwrap().status, 200);
    assert_eq!(common::try_get(e.admin, "/nope").unwrap().status, 404);
    assert!(
        e.metric(
            "streamgate_http_requests_total{method=\"GET\",status=\"200\",protocol=\"http1\"}"
        ) >= 1.0
    );
    assert!(
        e.metric(
            "streamgate_http_requests_total{method=\"GET\",status=\"404\",protocol=\"http1\"}"
        ) >= 1.0
    );
    assert!(e.metric("streamgate_http_response_bytes_total") > 0.0);
    assert!(e.metric("streamgate_http_request_duration_seconds_count") >= 2.0);
    let text = String::from_utf8(common::try_get(e.admin, "/metrics").unwrap().body).unwrap();
    for name in [
        "streamgate_http_open_connections",
        "streamgate_cache_hits_total",
        "streamgate_cache_misses_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
}

#[test]
fn sigterm_finishes_in_flight_responses_and_exits_zero() {
    let big = 32 << 20;
    let mut e = Engine::start_with(
        Options {
            engine_toml: "shutdown_grace = \"20s\"".into(),
            ..Options::default()
        },
        |root| write(&root.join("a1/big.m4s"), &pattern(big, 7)),
    );
    let mut s = e.connect();
    s.write_all(b"GET /v/a1/big.m4s HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 4096];
    s.read_exact(&mut first).unwrap();
    // An idle kept-alive connection is closed by the drain, not waited for.
    let mut idle = e.connect();
    idle.write_all(b"GET /v/a1/big.m4s HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle, false).unwrap().status, 206);

    // SAFETY: plain kill(2) on our child.
    assert_eq!(unsafe { libc::kill(e.pid(), libc::SIGTERM) }, 0);
    // Read slowly for a moment: the response must still complete.
    std::thread::sleep(Duration::from_millis(300));
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    let mut all = first.to_vec();
    all.extend_from_slice(&rest);
    let head_end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(all[..head_end].starts_with(b"HTTP/1.1 200 "));
    assert_eq!(all.len() - head_end, big, "the in-flight body was cut");
    assert!(all[head_end..] == pattern(big, 7)[..]);
    assert!(closed_within(&mut idle, Duration::from_secs(5)));

    let status = e.child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        std::net::TcpStream::connect(e.addr).is_err(),
        "still accepting after drain"
    );
}

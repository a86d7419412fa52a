//! The appliance end to end over real sockets: `streamgate serve` →
//! `streamgate ingest` (tus 1.0) through a proxy that cuts the upload's
//! connection → the CLI resumes → transcoded → ready → ffmpeg decodes HLS
//! and DASH from the engine to the last frame. The same with tus-js-client
//! (the tus client inside Uppy). Plus the tus refusals and the expiry of
//! abandoned uploads.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::wallet::ApiReply;
use common::wire::Wire;
use common::{clip, decoded_video_frames, Engine, Options, Scratch};
use streamgate_net::client::Connection;

const FRAMES: u32 = 5 * 25;

fn appliance() -> Engine {
    appliance_with("")
}

fn appliance_with(engine_toml: &str) -> Engine {
    Engine::start_with(
        Options {
            open: false,
            engine_toml: format!(
                "job_workers = 1\nupload_ladder = \"240\"\nupload_max_bytes = 50000000\n{engine_toml}"
            ),
            ..Options::default()
        },
        |_| {},
    )
}

/// A TCP proxy to `target` that cuts the first connection once it has
/// carried `cut_after` bytes from the client; later connections pass.
fn flaky_proxy(target: SocketAddr, cut_after: u64) -> (SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&cut);
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(target) else {
                continue;
            };
            let first = !done.load(Ordering::SeqCst);
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_read, mut c_write) = (server, client);
            let flag = Arc::clone(&done);
            let carried = Arc::new(AtomicU64::new(0));
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 << 10];
                loop {
                    let n = match c_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    if first
                        && carried.fetch_add(n as u64, Ordering::SeqCst) + n as u64 >= cut_after
                    {
                        // Mid-body: both directions go down at once.
                        flag.store(true, Ordering::SeqCst);
                        let _ = c_read.shutdown(Shutdown::Both);
                        let _ = s_write.shutdown(Shutdown::Both);
                        break;
                    }
                }
                let _ = s_write.shutdown(Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(Shutdown::Write);
            });
        }
    });
    (addr, cut)
}

#[test]
fn ingest_resumes_after_a_cut_and_the_video_plays_to_the_end() {
    let s = Scratch::new("ingest");
    let input = clip(&s.0, "holiday.mp4", "320x240", 5, true);
    let size = std::fs::metadata(&input).unwrap().len();
    assert!(
        size > 120_000,
        "the clip must span several chunks ({size} bytes)"
    );
    let e = appliance();
    let (proxy, cut) = flaky_proxy(e.addr, size / 2);

    let out = Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .args(["ingest"])
        .arg(&input)
        .args([
            "--server",
            &format!("http://{proxy}"),
            "--id",
            "holiday",
            "--chunk-size",
            "32768",
            "--config",
        ])
        .arg(e.config_path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(cut.load(Ordering::SeqCst), "the proxy never cut the upload");
    assert!(stderr.contains("resuming"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let hls = format!("http://{proxy}/v/holiday/master.m3u8");
    assert!(stdout.contains(&hls), "{stdout}");
    assert!(
        stdout.contains(&format!("http://{proxy}/v/holiday/manifest.mpd")),
        "{stdout}"
    );

    // The state shows everywhere: CLI (gRPC) and the JSON API.
    let shown = e.cli(&["asset", "show", "holiday"], &[]);
    assert!(shown.contains("status:  ready"), "{shown}");
    assert!(shown.contains("title:   holiday.mp4"), "{shown}");
    let listed: ApiReply = common::wallet::api(e.http, "GET", "/api/v1/assets", None, None);
    assert_eq!(listed.json[0]["status"], "ready");
    // The file that arrived is byte for byte the source.
    let uploads = e.scratch.0.join("uploads");
    let stored = std::fs::read_dir(&uploads)
        .unwrap()
        .flatten()
        .map(|d| d.path())
        .find(|p| p.extension().is_some_and(|x| x == "mp4"))
        .unwrap();
    assert_eq!(
        std::fs::read(stored).unwrap(),
        std::fs::read(&input).unwrap()
    );
    // The cut chunk was checksummed, so none of it was kept: every byte
    // was acknowledged once.
    assert_eq!(
        e.metric("streamgate_uploads_total{result=\"completed\"}"),
        1.0
    );
    assert_eq!(e.metric("streamgate_upload_bytes_total"), size as f64);

    // The whole file in the creating POST (creation-with-upload, as a tus
    // client with uploadDataDuringCreation sends it): one request, queued.
    let bytes = std::fs::read(&input).unwrap();
    let digest: String = sha256(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let meta = format!(
        "id {},sha256 {}",
        base64_encode(b"again"),
        base64_encode(digest.as_bytes())
    );
    let created = tus(
        &e,
        "POST",
        "/upload/",
        &[
            format!("Upload-Length: {size}"),
            format!("Upload-Metadata: {meta}"),
            "Content-Type: application/offset+octet-stream".into(),
            format!("Upload-Checksum: sha256 {}", base64_encode(&sha256(&bytes))),
        ],
        &bytes,
    );
    assert_eq!(created.status, 201);
    assert_eq!(created.header("Upload-Offset"), Some(&*size.to_string()));
    assert_eq!(
        created.header("Upload-Expires"),
        None,
        "complete uploads do not expire"
    );
    wait_ready(&e, "again");

    // ffmpeg decodes both manifests from the engine, every frame.
    assert_eq!(
        decoded_video_frames(&format!("http://{}/v/holiday/master.m3u8", e.addr)),
        FRAMES
    );
    assert_eq!(
        decoded_video_frames(&format!("http://{}/v/holiday/manifest.mpd", e.addr)),
        FRAMES
    );
}

fn tus(
    e: &Engine,
    method: &str,
    path: &str,
    extra: &[String],
    body: &[u8],
) -> streamgate_net::client::Reply {
    let mut headers = vec![
        "Tus-Resumable: 1.0.0".to_string(),
        format!("Authorization: Bearer {}", e.operator_token()),
    ];
    headers.extend_from_slice(extra);
    Connection::open(e.addr)
        .unwrap()
        .send(method, path, &headers, body)
        .unwrap()
}

#[test]
fn tus_refusals_and_termination() {
    let e = appliance();
    // Discovery needs no token.
    let options = Connection::open(e.addr)
        .unwrap()
        .send("OPTIONS", "/upload/", &[], &[])
        .unwrap();
    assert_eq!(options.status, 204);
    assert_eq!(
        options.header("Tus-Extension"),
        Some("creation,creation-with-upload,checksum,termination,expiration")
    );
    assert_eq!(options.header("Tus-Checksum-Algorithm"), Some("sha256"));
    // No or a wrong token.
    let anonymous = Connection::open(e.addr)
        .unwrap()
        .send(
            "POST",
            "/upload/",
            &["Tus-Resumable: 1.0.0".into(), "Upload-Length: 10".into()],
            &[],
        )
        .unwrap();
    assert_eq!(anonymous.status, 401);
    // Too large for the configured limit.
    let big = tus(
        &e,
        "POST",
        "/upload/",
        &["Upload-Length: 60000000".into()],
        &[],
    );
    assert_eq!(big.status, 413);
    // Nothing to upload is no video.
    let empty = tus(&e, "POST", "/upload/", &["Upload-Length: 0".into()], &[]);
    assert_eq!(empty.status, 400);

    // A chunk whose checksum does not match is dropped: the offset stays.
    let created = tus(&e, "POST", "/upload/", &["Upload-Length: 8".into()], &[]);
    assert_eq!(created.status, 201);
    let location = created.header("Location").unwrap().to_string();
    let asset = created.header("StreamGate-Asset").unwrap().to_string();
    assert!(e
        .cli(&["asset", "show", &asset], &[])
        .contains("status:  uploading"));
    let wrong = "sha256 LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564="; // of "foo"
    let patch = |offset: u64, sum: &str, body: &[u8]| {
        tus(
            &e,
            "PATCH",
            &location,
            &[
                "Content-Type: application/offset+octet-stream".into(),
                format!("Upload-Offset: {offset}"),
                format!("Upload-Checksum: {sum}"),
            ],
            body,
        )
    };
    assert_eq!(patch(0, wrong, b"abcd").status, 460);
    let head = tus(&e, "HEAD", &location, &[], &[]);
    assert_eq!(
        (head.status, head.header("Upload-Offset")),
        (200, Some("0"))
    );
    // The right checksum is accepted; a wrong offset is a conflict.
    let abcd = "sha256 iNQmb9TmM40TuEX88olXnSCciXgjuSF9o+Fhk28DFYk=";
    let ok = patch(0, abcd, b"abcd");
    assert_eq!((ok.status, ok.header("Upload-Offset")), (204, Some("4")));
    assert_eq!(patch(0, abcd, b"abcd").status, 409);
    // Bad upload ids never reach the file system.
    assert_eq!(
        tus(&e, "HEAD", "/upload/..%2f..%2fetc", &[], &[]).status,
        404
    );
    assert_eq!(tus(&e, "HEAD", "/upload/nope", &[], &[]).status, 404);

    // Termination: the upload and its asset are gone.
    assert_eq!(tus(&e, "DELETE", &location, &[], &[]).status, 204);
    assert_eq!(tus(&e, "HEAD", &location, &[], &[]).status, 404);
    let out = Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .args(["asset", "show", &asset, "--config"])
        .arg(e.config_path())
        .output()
        .unwrap();
    assert!(!out.status.success());

    // creation-with-upload: the POST carries the first chunk, checked like
    // a PATCH; what did not verify is simply not kept.
    for (sum, kept) in [(abcd, "4"), (wrong, "0")] {
        let created = tus(
            &e,
            "POST",
            "/upload/",
            &[
                "Upload-Length: 8".into(),
                "Content-Type: application/offset+octet-stream".into(),
                format!("Upload-Checksum: {sum}"),
            ],
            b"abcd",
        );
        assert_eq!(
            (created.status, created.header("Upload-Offset")),
            (201, Some(kept))
        );
        assert!(created.header("Upload-Expires").is_some());
        let location = created.header("Location").unwrap();
        let head = tus(&e, "HEAD", location, &[], &[]);
        assert_eq!(head.header("Upload-Offset"), Some(kept));
        assert_eq!(tus(&e, "DELETE", location, &[], &[]).status, 204);
    }
    // A first chunk longer than the whole upload.
    let long = tus(
        &e,
        "POST",
        "/upload/",
        &[
            "Upload-Length: 2".into(),
            "Content-Type: application/offset+octet-stream".into(),
        ],
        b"abcd",
    );
    assert_eq!(long.status, 413);

    // An asset deleted while its upload runs is never published: the last
    // chunk is refused (410) and no job is queued.
    let created = tus(&e, "POST", "/upload/", &["Upload-Length: 8".into()], &[]);
    let location = created.header("Location").unwrap().to_string();
    let asset = created.header("StreamGate-Asset").unwrap().to_string();
    assert_eq!(patch_at(&e, &location, 0, b"abcd").status, 204);
    e.cli(&["asset", "delete", &asset], &[]);
    assert_eq!(patch_at(&e, &location, 4, b"efgh").status, 410);
    assert_eq!(tus(&e, "HEAD", &location, &[], &[]).status, 404);
    let jobs = String::from_utf8(common::try_get(e.admin, "/jobs").unwrap().body).unwrap();
    assert!(jobs.trim().is_empty(), "{jobs}");
    assert!(!e.root.join(&asset).exists());

    // A whole file whose hash differs from its metadata is not queued: the
    // asset fails with the reason.
    let sha_of_other = "0".repeat(64);
    let meta = format!("sha256 {}", base64_encode(sha_of_other.as_bytes()));
    let created = tus(
        &e,
        "POST",
        "/upload/",
        &[
            "Upload-Length: 4".into(),
            format!("Upload-Metadata: {meta}"),
        ],
        &[],
    );
    let location = created.header("Location").unwrap().to_string();
    let asset = created.header("StreamGate-Asset").unwrap().to_string();
    let last = patch_at(&e, &location, 0, b"abcd");
    assert_eq!(last.status, 460);
    let shown = e.cli(&["asset", "show", &asset], &[]);
    assert!(
        shown.contains("status:  failed") && shown.contains("checksum"),
        "{shown}"
    );
    assert!(!e.root.join(&asset).exists());

    // Every outcome above is counted.
    for (result, n) in [
        ("created", 5.0),
        ("chunk_checksum_mismatch", 2.0),
        ("terminated", 3.0),
        ("asset_deleted", 1.0),
        ("checksum_mismatch", 1.0),
        ("completed", 0.0),
    ] {
        let series = format!("streamgate_uploads_total{{result=\"{result}\"}}");
        assert_eq!(e.metric(&series), n, "{series}");
    }
    // 4 bytes kept before termination, 4 in a POST, 8 of the deleted asset,
    // 4 of the mismatching file; the rejected chunks are not counted.
    assert_eq!(e.metric("streamgate_upload_bytes_total"), 20.0);
}

/// A PATCH without a checksum.
fn patch_at(e: &Engine, location: &str, offset: u64, body: &[u8]) -> streamgate_net::client::Reply {
    tus(
        e,
        "PATCH",
        location,
        &[
            "Content-Type: application/offset+octet-stream".into(),
            format!("Upload-Offset: {offset}"),
        ],
        body,
    )
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Seconds from now until an `Upload-Expires` date.
fn expires_in(reply: &streamgate_net::client::Reply) -> f64 {
    let text = reply.header("Upload-Expires").expect("Upload-Expires");
    let at = httpdate::parse_http_date(text).expect("an HTTP date");
    match at.duration_since(std::time::SystemTime::now()) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

#[test]
fn abandoned_uploads_expire_and_progress_keeps_one_alive() {
    const EXPIRY: u64 = 3;
    let e = appliance_with(&format!("upload_expiry = \"{EXPIRY}s\""));
    let uploads = e.scratch.0.join("uploads");
    let create = |length: u64| {
        let created = tus(
            &e,
            "POST",
            "/upload/",
            &[format!("Upload-Length: {length}")],
            &[],
        );
        assert_eq!(created.status, 201);
        // The stamp is whole seconds, so up to one second early.
        let left = expires_in(&created);
        assert!(
            left > EXPIRY as f64 - 1.5 && left <= EXPIRY as f64 + 0.5,
            "{left}"
        );
        (
            created.header("Location").unwrap().to_string(),
            created.header("StreamGate-Asset").unwrap().to_string(),
        )
    };
    let patch = |location: &str, offset: u64, body: &[u8]| patch_at(&e, location, offset, body);
    let files_of = |location: &str| {
        let id = location.rsplit('/').next().unwrap().to_string();
        std::fs::read_dir(&uploads)
            .unwrap()
            .filter(|f| {
                f.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&id)
            })
            .count()
    };
    let (abandoned, abandoned_asset) = create(100);
    let first = patch(&abandoned, 0, b"abcd");
    assert_eq!(first.status, 204);
    assert!(expires_in(&first) > EXPIRY as f64 - 1.5);
    assert_eq!(files_of(&abandoned), 2, "data and state on disk");

    // A second upload sends a byte every half second for twice the expiry:
    // each accepted chunk pushes its expiry forward, so it never lapses.
    let (busy, busy_asset) = create(100);
    let rounds = 4 * EXPIRY;
    for offset in 0..rounds {
        let reply = patch(&busy, offset, b"x");
        assert_eq!(reply.status, 204, "chunk {offset}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let head = tus(&e, "HEAD", &busy, &[], &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Upload-Offset"), Some(&*rounds.to_string()));
    assert!(expires_in(&head) > 0.0);
    assert!(e
        .cli(&["asset", "show", &busy_asset], &[])
        .contains("status:  uploading"));

    // The abandoned one expired long ago: refused (410) until the sweeper
    // (every second here) removes its bytes, its state, and its
    // `uploading` asset; then it is unknown (404).
    let head = tus(&e, "HEAD", &abandoned, &[], &[]);
    assert!(matches!(head.status, 404 | 410), "{}", head.status);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while files_of(&abandoned) > 0 {
        assert!(std::time::Instant::now() < deadline, "never swept");
        let refused = patch(&abandoned, 4, b"efgh").status;
        assert!(matches!(refused, 404 | 410), "{refused}"); // 404 once swept
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(tus(&e, "HEAD", &abandoned, &[], &[]).status, 404);
    assert_eq!(patch(&abandoned, 4, b"efgh").status, 404);
    let out = Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .args(["asset", "show", &abandoned_asset, "--config"])
        .arg(e.config_path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the abandoned asset is still listed");
    assert_eq!(
        e.metric("streamgate_uploads_total{result=\"expired\"}"),
        1.0
    );
}

/// tus-js-client from npm (`tests/tus`, installed by `scripts/setup.sh
/// --tests`) uploads `file` as asset `id`; returns its output.
fn tus_js_client(
    e: &Engine,
    server: SocketAddr,
    file: &std::path::Path,
    id: &str,
    flags: &[&str],
) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tus");
    assert!(
        dir.join("node_modules/tus-js-client").is_dir(),
        "tus-js-client is not installed: run scripts/setup.sh --tests"
    );
    let out = Command::new("node")
        .arg(dir.join("upload.mjs"))
        .arg(file)
        .arg(format!("http://{server}/upload/"))
        .arg(e.operator_token())
        .arg(id)
        .args(flags)
        .output()
        .expect("node (installed by scripts/setup.sh --tests)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tus-js-client failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// Waits until the asset is ready and the engine serves it (it learns of
/// newly open assets on its next poll of the control plane, within a second).
fn wait_ready(e: &Engine, id: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let master = format!("/v/{id}/master.m3u8");
    loop {
        let shown = e.cli(&["asset", "show", id], &[]);
        if shown.contains("status:  ready")
            && common::try_get(e.addr, &master).is_ok_and(|r| r.status == 200)
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never ready: {shown}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn tus_js_client_uploads_resume_and_play() {
    let s = Scratch::new("ingest-js");
    let input = clip(&s.0, "clip.mp4", "320x240", 5, true);
    let size = std::fs::metadata(&input).unwrap().len();
    let e = appliance();

    // Through a proxy that cuts the first connection halfway: the client
    // retries, asks HEAD for the offset and goes on.
    let (proxy, cut) = flaky_proxy(e.addr, size / 2);
    let printed = tus_js_client(&e, proxy, &input, "js", &[]);
    assert!(cut.load(Ordering::SeqCst), "the proxy never cut the upload");
    assert!(printed.contains(&format!("\"bytes\":{size}")), "{printed}");
    assert!(printed.contains("\"created_offset\":null"), "{printed}");
    // The first chunk in the creating POST (uploadDataDuringCreation): the
    // 201 acknowledges it.
    let printed = tus_js_client(&e, e.addr, &input, "js-early", &["--during-creation"]);
    assert!(
        printed.contains("\"created_offset\":\"65536\""),
        "{printed}"
    );

    for id in ["js", "js-early"] {
        wait_ready(&e, id);
        assert_eq!(
            decoded_video_frames(&format!("http://{}/v/{id}/master.m3u8", e.addr)),
            FRAMES
        );
    }
    assert_eq!(
        e.metric("streamgate_upload_bytes_total"),
        2.0 * size as f64,
        "every byte acknowledged once"
    );
}

#[test]
fn the_whole_file_check_holds_across_a_restart() {
    // The server keeps a running hash of each upload in memory; after a
    // restart it must read the file back instead, and still tell a good
    // file from a bad one.
    let mut e = appliance();
    let sha = |text: &[u8]| -> String { sha256(text).iter().map(|b| format!("{b:02x}")).collect() };
    let mut locations = Vec::new();
    for claimed in [sha(b"abcdefgh"), sha(b"abcdefgX")] {
        let meta = format!("sha256 {}", base64_encode(claimed.as_bytes()));
        let created = tus(
            &e,
            "POST",
            "/upload/",
            &[
                "Upload-Length: 8".into(),
                format!("Upload-Metadata: {meta}"),
            ],
            &[],
        );
        let location = created.header("Location").unwrap().to_string();
        assert_eq!(patch_at(&e, &location, 0, b"abcd").status, 204);
        locations.push(location);
    }
    e.kill9_and_restart();
    let (good, bad) = (&locations[0], &locations[1]);
    assert_eq!(patch_at(&e, good, 4, b"efgh").status, 204);
    assert_eq!(patch_at(&e, bad, 4, b"efgh").status, 460);
    // Without a restart the running hash decides, the same way.
    let created = tus(
        &e,
        "POST",
        "/upload/",
        &[
            "Upload-Length: 8".into(),
            format!(
                "Upload-Metadata: sha256 {}",
                base64_encode(sha(b"abcdefgX").as_bytes())
            ),
        ],
        &[],
    );
    let location = created.header("Location").unwrap().to_string();
    assert_eq!(patch_at(&e, &location, 0, b"abcd").status, 204);
    assert_eq!(patch_at(&e, &location, 4, b"efgh").status, 460);
}

#[test]
fn upload_requests_share_the_connection_and_beyond_the_cap_get_503() {
    let e = appliance();
    let auth = [
        "Tus-Resumable: 1.0.0".to_string(),
        format!("Authorization: Bearer {}", e.operator_token()),
    ];
    // One keep-alive connection: create, patch, ask, then a plain request.
    // The connection stays with the engine's worker between them.
    let mut c = Connection::open(e.addr).unwrap();
    let mut create = auth.to_vec();
    create.push("Upload-Length: 6".into());
    let created = c.send("POST", "/upload/", &create, &[]).unwrap();
    assert_eq!(created.status, 201);
    let location = created.header("Location").unwrap().to_string();
    let mut chunk = auth.to_vec();
    chunk.extend([
        "Upload-Offset: 0".to_string(),
        "Content-Type: application/offset+octet-stream".to_string(),
    ]);
    assert_eq!(
        c.send("PATCH", &location, &chunk, b"abc").unwrap().status,
        204
    );
    let head = c.send("HEAD", &location, &auth, &[]).unwrap();
    assert_eq!(head.header("Upload-Offset"), Some("3"));
    let plain = c.send("GET", "/v/none/master.m3u8", &[], &[]).unwrap();
    assert_eq!(
        plain.status, 404,
        "answered by the engine, not the tus handler"
    );
    assert!(plain.header("Tus-Resumable").is_none());

    // 32 uploads whose bodies stall hold every ingest slot...
    let mut stalled = Vec::new();
    for _ in 0..32 {
        let mut s = TcpStream::connect(e.addr).unwrap();
        write!(
            s,
            "POST /upload/ HTTP/1.1\r\nHost: t\r\nTus-Resumable: 1.0.0\r\nAuthorization: Bearer {}\r\n\
             Upload-Length: 1000\r\nContent-Type: application/offset+octet-stream\r\n\
             Content-Length: 1000\r\n\r\n0123456789",
            e.operator_token()
        )
        .unwrap();
        stalled.push(s);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while e.metric("streamgate_upload_connections") < 32.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the uploads never started"
        );
    }
    // ...so the next upload request is told to come back, not dropped.
    let busy = Connection::open(e.addr)
        .unwrap()
        .send("OPTIONS", "/upload/", &[], &[])
        .unwrap();
    assert_eq!(busy.status, 503);
    assert_eq!(busy.header("Retry-After"), Some("5"));
    // Serving goes on meanwhile.
    assert_eq!(e.get("/v/none/master.m3u8", "").status, 404);
    // The stalled clients go away: their slots free up.
    drop(stalled);
    while e.metric("streamgate_upload_connections") > 0.0 {
        assert!(std::time::Instant::now() < deadline + std::time::Duration::from_secs(10));
    }
    let options = Connection::open(e.addr)
        .unwrap()
        .send("OPTIONS", "/upload/", &[], &[])
        .unwrap();
    assert_eq!(options.status, 204);
}

over_every_wire!(tus_uploads_in_chunks_over_every_wire_and_plays);

/// Create, a checksummed first half, HEAD for the offset, the rest: the
/// same tus conversation over HTTP/1.1, HTTPS/1.1, h2 and h2c, then the
/// asset plays to its last frame.
fn tus_uploads_in_chunks_over_every_wire_and_plays(wire: Wire) {
    let s = Scratch::new("tus-wire");
    let input = clip(&s.0, "clip.mp4", "160x120", 2, false);
    let data = std::fs::read(&input).unwrap();
    let e = Engine::start_with(
        Options {
            open: false,
            tls: wire.tls(),
            engine_toml: "job_workers = 1\nupload_ladder = \"240\"\nupload_max_bytes = 50000000"
                .into(),
            ..Options::default()
        },
        |_| {},
    );
    let c = e.over(wire);
    let with = |more: &[String]| {
        let mut headers = vec![
            "Tus-Resumable: 1.0.0".to_string(),
            format!("Authorization: Bearer {}", e.operator_token()),
        ];
        headers.extend_from_slice(more);
        headers
    };
    let id = "wired";
    let created = c.send(
        "POST",
        "/upload/",
        &with(&[
            format!("Upload-Length: {}", data.len()),
            format!(
                "Upload-Metadata: filename {},id {}",
                base64_encode(b"clip.mp4"),
                base64_encode(id.as_bytes())
            ),
        ]),
        &[],
    );
    assert_eq!(created.status, 201, "{:?}", created.headers);
    let location = created.header("Location").unwrap().to_string();
    let half = data.len() / 2;
    let patch = |offset: usize, chunk: &[u8]| {
        c.send(
            "PATCH",
            &location,
            &with(&[
                "Content-Type: application/offset+octet-stream".into(),
                format!("Upload-Offset: {offset}"),
                format!("Upload-Checksum: sha256 {}", base64_encode(&sha256(chunk))),
            ]),
            chunk,
        )
    };
    let first = patch(0, &data[..half]);
    assert_eq!(
        (first.status, first.header("Upload-Offset")),
        (204, Some(half.to_string().as_str()))
    );
    let head = c.send("HEAD", &location, &with(&[]), &[]);
    assert_eq!(
        (head.status, head.header("Upload-Offset")),
        (200, Some(half.to_string().as_str()))
    );
    let rest = patch(half, &data[half..]);
    assert_eq!(rest.status, 204, "{:?}", rest.headers);
    wait_ready(&e, id);
    assert_eq!(
        decoded_video_frames(&format!("http://{}/v/{id}/master.m3u8", e.addr)),
        2 * 25
    );
}

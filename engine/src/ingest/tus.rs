//! The tus 1.0 protocol over one blocking connection: OPTIONS, POST
//! (creation), HEAD, PATCH (with `Upload-Checksum: sha256 …`), DELETE
//! (termination). <https://tus.io/protocols/resumable-upload>

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::FileExt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use streamgate_api::v1::AssetStatus;
use streamgate_net::request::{self, find_field, Method, Parsed};
use streamgate_net::response::{DateCache, HeadWriter};
use streamgate_token::{constant_time_eq, is_asset_id};

use super::expiry::{self, unix_now};
use super::store::Upload;
use super::Ingest;
use crate::telemetry;

const TUS_VERSION: &str = "1.0.0";
/// Largest body of a request that is not a PATCH (they carry none).
const MAX_OTHER_BODY: u64 = 64 << 10;
/// The content type of upload data (PATCH, and POST with creation-with-upload).
const OFFSET_STREAM: &str = "application/offset+octet-stream";
/// Read size while streaming a PATCH body to disk.
const CHUNK: usize = 256 << 10;

/// An answer: status, extra headers, and whether to close after it.
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    close: bool,
}

impl Answer {
    fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            close: false,
        }
    }

    fn with(mut self, name: &'static str, value: impl ToString) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    fn closing(mut self) -> Self {
        self.close = true;
        self
    }
}

/// Says 503 to a connection the service has no room for.
pub fn refuse_busy(mut stream: TcpStream) {
    let mut head = Vec::new();
    write_answer(
        &mut stream,
        &mut head,
        &mut DateCache::default(),
        Answer::new(503).with("Retry-After", 5).closing(),
    );
}

fn write_answer(
    stream: &mut TcpStream,
    head: &mut Vec<u8>,
    dates: &mut DateCache,
    answer: Answer,
) -> bool {
    let mut w = HeadWriter::new(head, answer.status, dates.now());
    w.header("Tus-Resumable", TUS_VERSION)
        .header("Cache-Control", "no-store")
        .header("Content-Length", 0)
        // Browser uploaders (Uppy) from an admin page on another origin;
        // authorization is a bearer token, never a cookie.
        .header("Access-Control-Allow-Origin", "*")
        .header(
            "Access-Control-Expose-Headers",
            "Location, Upload-Offset, Upload-Length, Upload-Metadata, Tus-Resumable, \
             Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, Upload-Expires, \
             StreamGate-Asset",
        );
    for (name, value) in &answer.headers {
        w.header(name, value);
    }
    if answer.close {
        w.header("Connection", "close");
    }
    w.finish();
    stream.write_all(head).is_ok()
}

/// Serves one connection until it closes or an answer says to.
pub fn serve(ingest: &Ingest, mut stream: TcpStream, mut buf: Vec<u8>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(ingest.idle_timeout));
    let _ = stream.set_write_timeout(Some(ingest.send_timeout));
    let mut dates = DateCache::default();
    let mut head = Vec::with_capacity(512);
    loop {
        let (answer, consumed) = match request::parse(&buf, &ingest.limits) {
            Ok(Parsed::Complete { request, head_len }) => {
                let raw_head = buf[..head_len].to_vec();
                let keep_alive = request.keep_alive;
                let method = request.method;
                let target = String::from_utf8_lossy(request.target).into_owned();
                buf.drain(..head_len);
                let mut answer = handle(ingest, method, &target, &raw_head, &mut stream, &mut buf);
                answer.close |= !keep_alive;
                (answer, true)
            }
            Ok(Parsed::Partial) => (Answer::new(0), false),
            Err(e) => (Answer::new(e.status()).closing(), true),
        };
        if consumed {
            let close = answer.close;
            if !write_answer(&mut stream, &mut head, &mut dates, answer) || close {
                return;
            }
            continue;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn field<'h>(head: &'h [u8], name: &str) -> Option<&'h str> {
    find_field(head, name).and_then(|v| std::str::from_utf8(v).ok())
}

fn content_length(head: &[u8]) -> Result<u64, Answer> {
    if find_field(head, "Transfer-Encoding").is_some() {
        return Err(Answer::new(411).closing());
    }
    match field(head, "Content-Length") {
        None => Ok(0),
        Some(v) => v.parse().map_err(|_| Answer::new(400).closing()),
    }
}

/// Reads and drops a small body so the connection can carry on.
fn skip_body(stream: &mut TcpStream, buf: &mut Vec<u8>, len: u64) -> Result<(), Answer> {
    if len > MAX_OTHER_BODY {
        return Err(Answer::new(413).closing());
    }
    let mut left = len as usize;
    let take = left.min(buf.len());
    buf.drain(..take);
    left -= take;
    let mut scratch = [0u8; 4096];
    while left > 0 {
        match stream.read(&mut scratch[..left.min(4096)]) {
            Ok(0) | Err(_) => return Err(Answer::new(400).closing()),
            Ok(n) => left -= n,
        }
    }
    Ok(())
}

fn handle(
    ingest: &Ingest,
    method: Method,
    target: &str,
    head: &[u8],
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Answer {
    let body_len = match content_length(head) {
        Ok(n) => n,
        Err(answer) => return answer,
    };
    // creation-with-upload: a POST may carry the first bytes.
    let data_in_post = method == Method::Post
        && body_len > 0
        && field(head, "Content-Type") == Some(OFFSET_STREAM);
    if method != Method::Patch && !data_in_post {
        if let Err(answer) = skip_body(stream, buf, body_len) {
            return answer;
        }
    }
    let answer = route(ingest, method, target, head, body_len, stream, buf);
    if data_in_post && answer.status != 201 {
        return answer.closing(); // refused before (or while) its body was read
    }
    answer
}

/// Answers a request whose body is consumed, or left for PATCH and
/// creation-with-upload to stream.
fn route(
    ingest: &Ingest,
    method: Method,
    target: &str,
    head: &[u8],
    body_len: u64,
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Answer {
    let path = target.split('?').next().unwrap_or_default();
    let upload_id = path.strip_prefix("/upload/").filter(|id| !id.is_empty());
    if upload_id.is_some_and(|id| !is_asset_id(id)) {
        return Answer::new(404); // upload ids are URL-safe; nothing else names a file
    }
    if method == Method::Options {
        return Answer::new(204)
            .with(
                "Access-Control-Allow-Methods",
                "POST, HEAD, PATCH, DELETE, OPTIONS",
            )
            .with(
                "Access-Control-Allow-Headers",
                "Authorization, Content-Type, Tus-Resumable, Upload-Length, Upload-Metadata, \
                 Upload-Offset, Upload-Checksum",
            )
            .with("Access-Control-Max-Age", 600)
            .with("Tus-Version", TUS_VERSION)
            .with(
                "Tus-Extension",
                "creation,creation-with-upload,checksum,termination,expiration",
            )
            .with("Tus-Checksum-Algorithm", "sha256")
            .with("Tus-Max-Size", ingest.config.max_bytes);
    }
    // Everything else needs the operator token.
    let authorized = match ingest.control.operator_token() {
        Ok(token) => field(head, "Authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())),
        Err(e) => {
            eprintln!("streamgate engine: ingest refused: {e}");
            return Answer::new(503).closing();
        }
    };
    if !authorized {
        return Answer::new(401)
            .with("WWW-Authenticate", "Bearer")
            .closing();
    }
    if field(head, "Tus-Resumable") != Some(TUS_VERSION) {
        return Answer::new(412).with("Tus-Version", TUS_VERSION);
    }
    match (method, upload_id) {
        (Method::Post, None) if path == "/upload/" || path == "/upload" => {
            create(ingest, head, body_len, stream, buf)
        }
        (Method::Head, Some(id)) => status(ingest, id),
        (Method::Patch, Some(id)) => patch(ingest, id, head, body_len, stream, buf),
        (Method::Delete, Some(id)) => terminate(ingest, id),
        (_, None) => Answer::new(405).with("Allow", "OPTIONS, POST"),
        (_, Some(_)) => Answer::new(405).with("Allow", "OPTIONS, HEAD, PATCH, DELETE"),
    }
}

/// `Upload-Metadata: key base64,key2 base64` → pairs (keys without a
/// value are allowed and map to "").
fn metadata(raw: &str) -> Result<Vec<(String, String)>, ()> {
    let mut out = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let mut parts = item.splitn(2, ' ');
        let key = parts.next().ok_or(())?.to_string();
        let value = match parts.next() {
            Some(v) => String::from_utf8(B64.decode(v.trim()).map_err(|_| ())?).map_err(|_| ())?,
            None => String::new(),
        };
        out.push((key, value));
    }
    Ok(out)
}

fn create(
    ingest: &Ingest,
    head: &[u8],
    body_len: u64,
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Answer {
    let Some(length) = field(head, "Upload-Length").and_then(|v| v.parse::<u64>().ok()) else {
        // Upload-Defer-Length is not offered.
        return Answer::new(400);
    };
    if length == 0 {
        // No video is empty; an upload that could never finish would only
        // leave an asset stuck in `uploading`.
        return Answer::new(400);
    }
    if length > ingest.config.max_bytes {
        return Answer::new(413).with("Tus-Max-Size", ingest.config.max_bytes);
    }
    if body_len > length {
        return Answer::new(413);
    }
    // Checked before anything is registered, like the rest of the request.
    let checksum = match chunk_checksum(head) {
        Ok(c) => c,
        Err(answer) => return answer,
    };
    let raw = field(head, "Upload-Metadata")
        .unwrap_or_default()
        .to_string();
    let Ok(meta) = metadata(&raw) else {
        return Answer::new(400);
    };
    let get = |key: &str| meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let filename = get("filename").unwrap_or_default();
    let sha256 = get("sha256").map(|h| h.to_ascii_lowercase());
    if sha256
        .as_ref()
        .is_some_and(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Answer::new(400);
    }
    let wanted = get("id").unwrap_or_default();
    if !wanted.is_empty() && !is_asset_id(&wanted) {
        return Answer::new(400);
    }
    let title = get("title").unwrap_or_else(|| filename.clone());
    let asset = match ingest
        .control
        .create_asset(&wanted, &title, AssetStatus::Uploading)
    {
        Ok(id) => id,
        Err(crate::control::ControlError::Call(s))
            if s.code() == tonic::Code::FailedPrecondition =>
        {
            return Answer::new(409); // the asset id is taken
        }
        Err(e) => {
            eprintln!("streamgate engine: ingest: registering the asset: {e}");
            return Answer::new(503).with("Retry-After", 5);
        }
    };
    let id = new_upload_id();
    let mut upload = Upload {
        length,
        offset: 0,
        asset: asset.clone(),
        metadata: raw,
        filename,
        sha256,
        complete: false,
        expires: expiry::from_now(ingest),
    };
    if let Err(e) = ingest.store.create(&id, &upload) {
        eprintln!("streamgate engine: ingest: {e}");
        let _ = ingest.control.delete_asset(&asset);
        return Answer::new(500);
    }
    telemetry::upload("created");
    let created = Answer::new(201)
        .with("Location", format!("/upload/{id}"))
        .with("StreamGate-Asset", asset);
    if body_len == 0 {
        return with_expiry(created, &upload);
    }
    // creation-with-upload: the body is the first chunk, checked as a PATCH
    // at offset 0 would be.
    let sent = ingest
        .claimed(&id, || {
            receive(
                ingest,
                &id,
                &mut upload,
                body_len,
                checksum.as_deref(),
                stream,
                buf,
            )
        })
        .unwrap_or_else(|| Answer::new(500)); // a new id is never claimed
    match ingest.store.load(&id) {
        // Created, with whatever of the body was kept (nothing if it did not
        // verify): the client goes on from Upload-Offset with PATCH.
        Some(stored) if sent.status != 500 => {
            let created = with_expiry(created.with("Upload-Offset", stored.offset), &stored);
            if sent.close {
                created.closing()
            } else {
                created
            }
        }
        // The whole file arrived and was refused (checksum, deleted asset),
        // or the server failed.
        _ => sent,
    }
}

/// The `Upload-Checksum` of a chunk: `None` without one, 400 for one that
/// is malformed or uses an algorithm we do not offer.
fn chunk_checksum(head: &[u8]) -> Result<Option<Vec<u8>>, Answer> {
    match field(head, "Upload-Checksum") {
        None => Ok(None),
        Some(v) => match v.split_once(' ') {
            Some(("sha256", b64)) => match B64.decode(b64.trim()) {
                Ok(d) if d.len() == 32 => Ok(Some(d)),
                _ => Err(Answer::new(400).closing()),
            },
            _ => Err(Answer::new(400).closing()),
        },
    }
}

/// An upload that is still there: 404 for one never made (or removed),
/// 410 for one past its expiry (the sweeper removes it soon).
fn live_upload(ingest: &Ingest, id: &str) -> Result<Upload, Answer> {
    let upload = ingest.store.load(id).ok_or_else(|| Answer::new(404))?;
    if upload.expired(unix_now()) {
        return Err(Answer::new(410));
    }
    Ok(upload)
}

/// `Upload-Expires` for an unfinished upload.
fn with_expiry(answer: Answer, upload: &Upload) -> Answer {
    if upload.complete || upload.expires == 0 {
        answer
    } else {
        answer.with("Upload-Expires", expiry::http_date(upload.expires))
    }
}

fn status(ingest: &Ingest, id: &str) -> Answer {
    let u = match live_upload(ingest, id) {
        Ok(u) => u,
        Err(answer) => return answer,
    };
    let mut a = Answer::new(200)
        .with("Upload-Offset", u.offset)
        .with("Upload-Length", u.length)
        .with("StreamGate-Asset", &u.asset);
    if !u.metadata.is_empty() {
        a = a.with("Upload-Metadata", &u.metadata);
    }
    with_expiry(a, &u)
}

fn terminate(ingest: &Ingest, id: &str) -> Answer {
    ingest
        .claimed(id, || match live_upload(ingest, id) {
            Ok(upload) => {
                ingest.discard(id, &upload);
                telemetry::upload("terminated");
                Answer::new(204)
            }
            Err(answer) => answer,
        })
        .unwrap_or_else(|| Answer::new(423))
}

fn patch(
    ingest: &Ingest,
    id: &str,
    head: &[u8],
    body_len: u64,
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Answer {
    if field(head, "Content-Type") != Some(OFFSET_STREAM) {
        return Answer::new(415).closing();
    }
    // Claim before reading the state: a PATCH that finished between our
    // read and our claim would otherwise leave us a stale offset.
    let claimed = ingest.claimed(id, || {
        let mut upload = match live_upload(ingest, id) {
            Ok(u) => u,
            Err(answer) => return answer.closing(),
        };
        if upload.complete {
            return Answer::new(409)
                .with("Upload-Offset", upload.offset)
                .closing();
        }
        let given = field(head, "Upload-Offset").and_then(|v| v.parse::<u64>().ok());
        if given != Some(upload.offset) {
            return Answer::new(409)
                .with("Upload-Offset", upload.offset)
                .closing();
        }
        if upload.offset + body_len > upload.length {
            return Answer::new(413).closing();
        }
        let checksum = match chunk_checksum(head) {
            Ok(c) => c,
            Err(answer) => return answer,
        };
        receive(
            ingest,
            id,
            &mut upload,
            body_len,
            checksum.as_deref(),
            stream,
            buf,
        )
    });
    claimed.unwrap_or_else(|| Answer::new(423).closing())
}

/// Streams the body to the data file at the upload's offset.
fn receive(
    ingest: &Ingest,
    id: &str,
    upload: &mut Upload,
    body_len: u64,
    checksum: Option<&[u8]>,
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Answer {
    let file = match ingest.store.data_file(id) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("streamgate engine: ingest: {e}");
            return Answer::new(500).closing();
        }
    };
    let start = upload.offset;
    let mut written = 0u64;
    let mut hash = Sha256::new();
    let mut chunk = vec![0u8; CHUNK];
    let mut broken = false;
    while written < body_len {
        let want = ((body_len - written) as usize).min(CHUNK);
        let n = if !buf.is_empty() {
            let n = want.min(buf.len());
            chunk[..n].copy_from_slice(&buf[..n]);
            buf.drain(..n);
            n
        } else {
            match stream.read(&mut chunk[..want]) {
                Ok(0) | Err(_) => {
                    broken = true;
                    break;
                }
                Ok(n) => n,
            }
        };
        if let Err(e) = file.write_all_at(&chunk[..n], start + written) {
            eprintln!("streamgate engine: ingest: writing {id}: {e}");
            let _ = file.set_len(start);
            return Answer::new(500).closing();
        }
        hash.update(&chunk[..n]);
        written += n as u64;
    }
    if broken && checksum.is_some() {
        // A checksummed chunk that did not arrive whole cannot be verified.
        let _ = file.set_len(start);
        return Answer::new(400).closing();
    }
    if let Some(expected) = checksum {
        if hash.finalize()[..] != *expected {
            let _ = file.set_len(start);
            telemetry::upload("chunk_checksum_mismatch");
            return Answer::new(460).with("Upload-Offset", start);
        }
    }
    // Acknowledge only what is on disk.
    if let Err(e) = file.sync_data() {
        eprintln!("streamgate engine: ingest: syncing {id}: {e}");
        let _ = file.set_len(start);
        return Answer::new(500).closing();
    }
    upload.offset = start + written;
    // Progress keeps an upload alive.
    upload.expires = expiry::from_now(ingest);
    if let Err(e) = ingest.store.save(id, upload) {
        eprintln!("streamgate engine: ingest: {e}");
        let _ = file.set_len(start);
        return Answer::new(500).closing();
    }
    telemetry::upload_bytes(written);
    if broken {
        return Answer::new(400).closing(); // nobody is listening anyway
    }
    if upload.offset == upload.length {
        if let Err(answer) = finish(ingest, id, upload) {
            return answer;
        }
    }
    with_expiry(
        Answer::new(204).with("Upload-Offset", upload.offset),
        upload,
    )
}

/// The last byte arrived: verify the whole file, queue the transcode.
fn finish(ingest: &Ingest, id: &str, upload: &mut Upload) -> Result<(), Answer> {
    let data = ingest.store.data_path(id);
    if let Some(expected) = &upload.sha256 {
        let actual = file_sha256(&data).map_err(|e| {
            eprintln!("streamgate engine: ingest: hashing {id}: {e}");
            Answer::new(500)
        })?;
        if &actual != expected {
            // Nothing is queued: the asset fails with the reason and the
            // bytes are dropped.
            let _ = ingest.control.update_status(
                &upload.asset,
                AssetStatus::Failed,
                0,
                "upload checksum mismatch (sha256 of the received file differs from the metadata)",
            );
            ingest.store.remove(id, upload);
            telemetry::upload("checksum_mismatch");
            return Err(Answer::new(460));
        }
    }
    // Queued before the job exists, so that an asset deleted while its
    // upload ran is noticed here and never published. An unreachable
    // control plane does not stop the upload: the job reporter tells it
    // later.
    match ingest
        .control
        .update_status(&upload.asset, AssetStatus::Queued, 0, "")
    {
        Ok(()) => {}
        Err(crate::control::ControlError::Call(s)) if s.code() == tonic::Code::NotFound => {
            eprintln!(
                "streamgate engine: ingest: asset {} was deleted during its upload; dropped",
                upload.asset
            );
            ingest.store.remove(id, upload);
            telemetry::upload("asset_deleted");
            return Err(Answer::new(410));
        }
        Err(e) => eprintln!("streamgate engine: ingest: asset {}: {e}", upload.asset),
    }
    let source = ingest.store.source_path(id, upload);
    std::fs::rename(&data, &source).map_err(|e| {
        eprintln!("streamgate engine: ingest: {e}");
        Answer::new(500)
    })?;
    let out = ingest.root.join(&upload.asset);
    if let Err(e) = ingest.spool.submit(
        &source,
        &out,
        &ingest.config.ladder,
        ingest.config.segment_seconds,
    ) {
        eprintln!("streamgate engine: ingest: queueing {}: {e}", upload.asset);
        let _ = std::fs::rename(&source, &data);
        let _ = ingest.control.update_status(
            &upload.asset,
            AssetStatus::Failed,
            0,
            &format!("the transcode could not be queued: {e}"),
        );
        return Err(Answer::new(500));
    }
    upload.complete = true;
    let _ = ingest.store.save(id, upload);
    telemetry::upload("completed");
    Ok(())
}

fn file_sha256(path: &std::path::Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hash = Sha256::new();
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        hash.update(&chunk[..n]);
    }
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn new_upload_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

//! The tus 1.0 protocol, one request at a time on an ingest thread:
//! framing of the body, authorization and routing. The answers and the headers tus defines are
//! in `wire`; what each request does to an upload is in `methods`; a
//! chunk's bytes go to disk in `receive`. <https://tus.io/protocols/resumable-upload>

use std::io::Read;

use streamgate_net::http1::request::{find_field, Method};
use streamgate_token::{constant_time_eq, is_asset_id};

use super::wire::{field, Answer, OFFSET_STREAM, TUS_VERSION};
use super::{methods, Ingest};

/// Largest body of a request that is not a PATCH (they carry none).
const MAX_OTHER_BODY: u64 = 64 << 10;

/// Answers one request for `/upload…`, reading its body (if any) from
/// `body`. Runs on an ingest thread; the connection stays with its worker.
pub fn answer(
    ingest: &Ingest,
    method: Method,
    target: &str,
    head: &[u8],
    body: &mut dyn Read,
) -> Answer {
    handle(ingest, method, target, head, body)
}

/// How many body bytes follow a request head, as the ingest reads them
/// (the worker relays exactly this many); chunked bodies are refused (411).
pub fn body_length(head: &[u8]) -> Result<u64, Answer> {
    content_length(head)
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
fn skip_body(stream: &mut dyn Read, len: u64) -> Result<(), Answer> {
    if len > MAX_OTHER_BODY {
        return Err(Answer::new(413).closing());
    }
    let mut left = len as usize;
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
    stream: &mut dyn Read,
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
        if let Err(answer) = skip_body(stream, body_len) {
            return answer;
        }
    }
    let answer = route(ingest, method, target, head, body_len, stream);
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
    stream: &mut dyn Read,
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
            tracing::error!(error = %e, "ingest refused: no operator token to check against");
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
            methods::create(ingest, head, body_len, stream)
        }
        (Method::Head, Some(id)) => methods::status(ingest, id),
        (Method::Patch, Some(id)) => methods::patch(ingest, id, head, body_len, stream),
        (Method::Delete, Some(id)) => methods::terminate(ingest, id),
        (_, None) => Answer::new(405).with("Allow", "OPTIONS, POST"),
        (_, Some(_)) => Answer::new(405).with("Allow", "OPTIONS, HEAD, PATCH, DELETE"),
    }
}

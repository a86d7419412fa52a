//! One HTTP/2 connection (the `h2` crate): streams accepted on the
//! connection's task, each answered on a task of its own by the same
//! [`Site::respond`](crate::serve::Site::respond) HTTP/1.1 uses — one
//! request model, two codecs. Only the framing differs: no hop-by-hop
//! headers, bodies as DATA frames under flow control.
//!
//! Defences are the h2 crate's, configured from `[engine.h2]`
//! (`streamgate_net::http2::Limits`): concurrent
//! streams, header list size (a CONTINUATION flood ends the connection),
//! streams reset before they were answered (Rapid Reset) and streams reset
//! for the client's errors; and ours: a client sending more control frames
//! a second than `max_control_frames_per_second` (SETTINGS, PING floods)
//! loses the connection (`streamgate_net::http2::guard`). A stream whose client stops reading is reset at
//! the send timeout; a connection with no stream open past the idle
//! timeout, or when the worker drains, gets a GOAWAY. Uploads (`/upload…`,
//! tus) go to the ingest threads (`upload`).

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use h2::server::SendResponse;
use http::{HeaderValue, Request as HttpRequest, Response};
use streamgate_net::request::{Fields, Method, Request, Version};
use streamgate_net::response::{Body, ResponseHead};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::context::Worker;
use crate::telemetry;

mod upload;

use streamgate_net::http2::guard::FloodGuard;
use streamgate_net::http2::{server_builder, HOP_BY_HOP, SEND_CHUNK as CHUNK};

/// Serves an HTTP/2 connection until the client goes, an error or a
/// timeout ends it, or the worker drains.
pub async fn serve<T>(io: T, worker: Rc<Worker>)
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let io = FloodGuard::new(io, worker.config.h2.max_control_frames_per_second);
    let handshake = server_builder(&worker.config.h2).handshake::<_, Bytes>(io);
    let mut conn = match monoio::time::timeout(worker.config.header_timeout, handshake).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "h2: handshake failed");
            return;
        }
        Err(_) => return,
    };
    let open = Rc::new(std::cell::Cell::new(0usize));
    let mut drained = std::pin::pin!(worker.drain.wait());
    let mut going_away = false;
    loop {
        let idle = monoio::time::sleep(worker.config.idle_timeout);
        let next = monoio::select! {
            next = conn.accept() => next,
            _ = drained.as_mut(), if !going_away => {
                telemetry::goaway("draining");
                conn.graceful_shutdown();
                going_away = true;
                continue;
            },
            _ = idle, if open.get() == 0 && !going_away => {
                telemetry::goaway("idle");
                conn.graceful_shutdown();
                going_away = true;
                continue;
            },
        };
        match next {
            Some(Ok((request, respond))) => {
                open.set(open.get() + 1);
                let (worker, open) = (Rc::clone(&worker), Rc::clone(&open));
                monoio::spawn(async move {
                    stream(request, respond, &worker).await;
                    open.set(open.get() - 1);
                });
            }
            Some(Err(e)) => {
                // Our side ended it: h2 sent a GOAWAY with the reason, or
                // the flood guard cut the connection (an I/O error).
                let why = if e.is_go_away() && !e.is_remote() {
                    match e.reason() {
                        Some(h2::Reason::ENHANCE_YOUR_CALM) => "enhance_your_calm",
                        Some(h2::Reason::PROTOCOL_ERROR) => "protocol_error",
                        Some(h2::Reason::COMPRESSION_ERROR) => "compression_error",
                        Some(h2::Reason::FRAME_SIZE_ERROR) => "frame_size_error",
                        _ => "other",
                    }
                } else if e.is_io() {
                    "io"
                } else {
                    "peer"
                };
                telemetry::h2_connection_error(why);
                tracing::debug!(error = %e, why, "h2: connection ended by an error");
                break;
            }
            None => break,
        }
    }
    // Let the GOAWAY and the last frames go out.
    let _ = monoio::time::timeout(
        worker.config.send_timeout,
        std::future::poll_fn(|cx| conn.poll_closed(cx)),
    )
    .await;
}

/// Answers one stream.
async fn stream(
    request: HttpRequest<h2::RecvStream>,
    mut respond: SendResponse<Bytes>,
    worker: &Worker,
) {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let header =
        |name: http::header::HeaderName| parts.headers.get(name).map(HeaderValue::as_bytes);
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .as_bytes();
    let Some(method) = Method::from_token(parts.method.as_str().as_bytes()) else {
        let _ = respond.send_response(status_only(501), true);
        return;
    };
    let request = Request {
        method,
        target,
        version: Version::Http2,
        fields: Fields {
            host: parts.uri.authority().map(|a| a.as_str().as_bytes()),
            range: header(http::header::RANGE),
            if_none_match: header(http::header::IF_NONE_MATCH),
            if_modified_since: header(http::header::IF_MODIFIED_SINCE),
            if_range: header(http::header::IF_RANGE),
            origin: header(http::header::ORIGIN),
            access_control_request_method: header(http::header::ACCESS_CONTROL_REQUEST_METHOD),
        },
        keep_alive: true,
        has_body: !body.is_end_stream(),
    };
    if let Some(ingest) = worker
        .ingest
        .as_ref()
        .filter(|_| crate::ingest::is_upload_target(request.target))
    {
        upload::relay(&parts, body, respond, worker, ingest, method).await;
        return;
    }
    let reply = worker.answer(&request).await;
    let (response, status) = {
        let head = worker.head.borrow();
        worker
            .site
            .access_log("h2", &request, head.status(), reply.body.len());
        (
            response_of(&head, worker.dates.borrow_mut().now()),
            head.status(),
        )
    };
    drop(body);
    let empty = reply.body.is_empty();
    let mut send = match respond.send_response(response, empty) {
        Ok(send) => send,
        Err(_) => return,
    };
    let sent = if empty {
        Ok(0)
    } else {
        let sending = send_body(&mut send, &reply.body);
        match monoio::time::timeout(worker.config.send_timeout, sending).await {
            Ok(result) => result,
            Err(_) => Err(h2::Reason::CANCEL),
        }
    };
    match sent {
        Ok(bytes) => count(worker, method.as_str(), status, bytes, started),
        Err(reason) => {
            send.send_reset(reason);
            count(worker, method.as_str(), status, 0, started);
        }
    }
}

fn count(worker: &Worker, method: &'static str, status: u16, bytes: u64, started: Instant) {
    worker
        .stats
        .borrow_mut()
        .request("h2", method, status, bytes, started.elapsed().as_secs_f64());
}

fn status_only(status: u16) -> Response<()> {
    let mut r = Response::new(());
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    r
}

/// The HTTP/2 response for a filled head: its status and fields, with a
/// `date`, without hop-by-hop fields.
fn response_of(head: &ResponseHead, date: &str) -> Response<()> {
    let mut r = status_only(head.status());
    let headers = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(date) {
        headers.insert(http::header::DATE, v);
    }
    for (name, value) in head.fields() {
        if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            http::header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    r
}

/// Sends a body as DATA frames as the flow-control windows open; returns
/// the bytes sent.
async fn send_body(send: &mut h2::SendStream<Bytes>, body: &Body) -> Result<u64, h2::Reason> {
    let total = body.len();
    let mut at = 0u64;
    while at < total {
        let want = ((total - at) as usize).min(CHUNK);
        send.reserve_capacity(want);
        let granted = match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(Ok(n)) if n > 0 => n.min(want),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(h2::Reason::CANCEL),
        };
        let chunk = match body {
            Body::Empty => return Ok(at),
            Body::Memory(bytes) => bytes.slice(at as usize..at as usize + granted),
            Body::File { file, offset, .. } => {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; granted];
                let n = file
                    .read_at(&mut buf, offset + at)
                    .map_err(|_| h2::Reason::INTERNAL_ERROR)?;
                if n == 0 {
                    return Err(h2::Reason::INTERNAL_ERROR);
                }
                buf.truncate(n);
                Bytes::from(buf)
            }
        };
        at += chunk.len() as u64;
        send.send_data(chunk, at == total)
            .map_err(|_| h2::Reason::CANCEL)?;
    }
    Ok(at)
}

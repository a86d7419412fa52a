//! Requests for `/upload…` on an HTTP/2 stream: the same ingest threads
//! and the same relay as HTTP/1.1 (`crate::ingest::relay`). The stream's
//! head is handed over written as an HTTP/1.1 head — the form the tus code
//! reads its fields from — and its DATA frames are relayed as they come,
//! their flow-control window given back as they go into the pair, so a
//! client uploads as fast as the disk takes it and no faster.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use streamgate_net::request::Method;

use super::{count, response_of};
use crate::context::Worker;
use crate::ingest::relay::Relay;
use crate::ingest::{self, Answer, Ingest};

/// Relays one upload stream and sends its answer.
pub(super) async fn relay(
    parts: &http::request::Parts,
    mut body: RecvStream,
    mut respond: SendResponse<Bytes>,
    worker: &Worker,
    ingest: &Arc<Ingest>,
    method: Method,
) {
    let started = Instant::now();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let head = http1_head(parts, &target);
    let unframed =
        !body.is_end_stream() && !parts.headers.contains_key(http::header::CONTENT_LENGTH);
    let answer = match ingest::body_length(&head) {
        // No Content-Length on a stream with a body: tus needs the length
        // up front, as for chunked HTTP/1.1 (411).
        Ok(_) if unframed => Answer::length_required(),
        Err(answer) => answer,
        Ok(len) => match ingest.start_request(method, target, head) {
            Err(busy) => busy,
            Ok(call) => match Relay::new(call.body) {
                Err(e) => {
                    tracing::warn!(error = %e, "ingest: cannot relay an upload body");
                    Answer::server_error()
                }
                Ok(pair) => {
                    relay_body(&pair, &mut body, worker, len).await;
                    pair.answer(&call.answer).await.unwrap_or_else(|| {
                        tracing::error!("ingest: an upload request ended without an answer");
                        Answer::server_error()
                    })
                }
            },
        },
    };
    let (response, status) = {
        let mut head = worker.head.borrow_mut();
        answer.fill(&mut head);
        (
            response_of(&head, worker.dates.borrow_mut().now()),
            head.status(),
        )
    };
    // The answer has no body; a body not read to its end is the client's
    // to stop (h2 resets the stream when we drop it unread).
    let _ = respond.send_response(response, true);
    count(worker, method.as_str(), status, 0, started);
}

/// Relays up to `len` body bytes from the stream into the pair; stops
/// early when the ingest answered first, the client stalls past the idle
/// timeout, or the stream ends or breaks.
async fn relay_body(pair: &Relay, body: &mut RecvStream, worker: &Worker, len: u64) {
    let mut relayed = 0u64;
    while relayed < len {
        let next = monoio::select! {
            next = monoio::time::timeout(worker.config.idle_timeout, body.data()) => next,
            _ = pair.answered() => break,
        };
        let chunk = match next {
            Ok(Some(Ok(chunk))) => chunk,
            // Timed out, ended, or reset.
            _ => break,
        };
        relayed += chunk.len() as u64;
        let answered = matches!(pair.send(&chunk).await, Ok(true) | Err(_));
        // The bytes left our hands: the client may send as many more.
        let _ = body.flow_control().release_capacity(chunk.len());
        if answered {
            break;
        }
    }
    pair.end_body();
}

/// The stream's head as HTTP/1.1 would have carried it (request line,
/// `Host` from `:authority`, then the fields), for the tus code.
fn http1_head(parts: &http::request::Parts, target: &str) -> Vec<u8> {
    let mut head = format!("{} {target} HTTP/1.1\r\n", parts.method).into_bytes();
    if let Some(authority) = parts.uri.authority() {
        head.extend_from_slice(format!("Host: {authority}\r\n").as_bytes());
    }
    for (name, value) in &parts.headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

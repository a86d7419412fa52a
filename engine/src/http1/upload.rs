//! Requests for `/upload…` on an HTTP/1.1 connection: the worker keeps the
//! connection and relays the request's body (exactly its `Content-Length`)
//! into a socket pair read by an ingest thread, which writes it to disk off
//! the serving core and answers. The worker waits for both through its ring
//! — client bytes, room in the pair, the answer — and sends the answer like
//! any other response, so keep-alive goes on afterwards.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use streamgate_net::http1::write_head;
use streamgate_net::request::Request;
use streamgate_net::response::Body;

use super::{finish, Counted, Step};
use crate::context::Worker;
use crate::ingest::relay::Relay;
use crate::ingest::{self, Answer, Ingest};
use crate::transport::Transport;

/// Body bytes moved per read from the client.
const RELAY_CHUNK: usize = 256 << 10;

/// Relays one upload request and sends its answer.
pub(super) async fn relay<T: Transport>(
    transport: &T,
    worker: &Worker,
    ingest: &Arc<Ingest>,
    request: &Request<'_>,
    bytes: &[u8],
    head_len: usize,
) -> Step {
    let started = Instant::now();
    let head = &bytes[..head_len];
    let body_len = match ingest::body_length(head) {
        Ok(n) => n,
        // Unframed (chunked, a bad length): the connection cannot go on.
        Err(answer) => {
            return respond(transport, worker, request, answer, started, head_len, false).await
        }
    };
    let target = String::from_utf8_lossy(request.target).into_owned();
    let call = match ingest.start_request(request.method, target, head.to_vec()) {
        Ok(call) => call,
        Err(busy) => {
            return respond(transport, worker, request, busy, started, head_len, false).await
        }
    };
    let relayed = match Relay::new(call.body) {
        Ok(relay) => body(relay, transport, worker, &bytes[head_len..], body_len).await,
        Err(e) => {
            tracing::warn!(error = %e, "ingest: cannot relay an upload body");
            Relayed {
                from_buffer: 0,
                complete: false,
                pair: None,
            }
        }
    };
    let answer = match &relayed.pair {
        Some(pair) => pair.answer(&call.answer).await,
        None => None,
    }
    .unwrap_or_else(|| {
        tracing::error!("ingest: an upload request ended without an answer");
        Answer::server_error()
    });
    respond(
        transport,
        worker,
        request,
        answer,
        started,
        head_len + relayed.from_buffer,
        relayed.complete,
    )
    .await
}

/// How relaying a body ended.
struct Relayed {
    /// Body bytes taken from the connection's buffer (the rest came from
    /// the socket).
    from_buffer: usize,
    /// Whether the whole body went across.
    complete: bool,
    /// The pair, to wait for the answer on.
    pair: Option<Relay>,
}

/// Relays `len` body bytes into the pair: first what is already in
/// `buffered`, then from the client. Stops early when the ingest answered
/// before reading it all (a refusal), the client stalls past the idle
/// timeout or goes away.
async fn body<T: Transport>(
    relay: Relay,
    transport: &T,
    worker: &Worker,
    buffered: &[u8],
    len: u64,
) -> Relayed {
    let from_buffer = usize::try_from(len)
        .unwrap_or(usize::MAX)
        .min(buffered.len());
    let mut relayed = from_buffer as u64;
    let mut answered = matches!(
        relay.send(&buffered[..from_buffer]).await,
        Ok(true) | Err(_)
    );
    let mut chunk =
        Vec::with_capacity(RELAY_CHUNK.min(usize::try_from(len).unwrap_or(RELAY_CHUNK)));
    while relayed < len && !answered {
        let until = Instant::now() + worker.config.idle_timeout;
        let deadline = worker.deadlines.until(until, false);
        let readable = monoio::select! {
            r = transport.readable() => r.is_ok(),
            _ = relay.answered() => { answered = true; false },
            _ = deadline => false,
        };
        if !readable {
            break;
        }
        chunk.clear();
        let want = usize::try_from(len - relayed).unwrap_or(usize::MAX);
        match transport.try_read(&mut chunk, want) {
            Ok(0) => break, // the client went away
            Ok(n) => relayed += n as u64,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        }
        answered = matches!(relay.send(&chunk).await, Ok(true) | Err(_));
    }
    relay.end_body();
    Relayed {
        from_buffer,
        complete: relayed == len,
        pair: Some(relay),
    }
}

/// Sends the answer to an upload request; the connection ends after it when
/// the answer says so, the request asked, or its body did not go across
/// whole.
async fn respond<T: Transport>(
    transport: &T,
    worker: &Worker,
    request: &Request<'_>,
    answer: Answer,
    started: Instant,
    consumed: usize,
    body_complete: bool,
) -> Step {
    let close =
        answer.closes() || !body_complete || !request.keep_alive || worker.drain.is_drained();
    let mut out = worker.take_buffer();
    let status = {
        let mut head = worker.head.borrow_mut();
        answer.fill(&mut head);
        write_head(&head, worker.dates.borrow_mut().now(), close, &mut out);
        head.status()
    };
    let counted = Counted {
        method: request.method.as_str(),
        status,
        started,
    };
    finish(
        transport,
        worker,
        out,
        &Body::Empty,
        counted,
        consumed,
        close,
    )
    .await
}

//! One HTTP/1.1 connection: read, parse, answer, repeat.
//!
//! Keep-alive and pipelining come from the loop's shape: after a response,
//! bytes already buffered are parsed before reading again, so pipelined
//! requests are answered in order without extra reads. Between requests the
//! connection holds no buffer: it waits for readiness, then borrows one from
//! the worker's pool for as long as a request is in flight. Every wait is
//! bounded: the idle timeout between requests, the header timeout from a
//! head's first byte to its end (slowloris), and the send timeout while a
//! slow reader drains a response. Requests for `/upload` are answered by
//! the ingest threads, their bodies relayed to them (`upload`).

use std::io;
use std::rc::Rc;
use std::time::Instant;

use streamgate_net::http1::request::{self, Parsed};
use streamgate_net::http1::write_head;
use streamgate_net::response::Body;

mod upload;

use crate::context::{Worker, BUFFER_SIZE};
use crate::ingest;
use crate::park::PARK_AFTER;
use crate::serve;
use crate::transport::Transport;

/// Why waiting for bytes ended.
pub(crate) enum Wait {
    Readable,
    Closed,
    TimedOut,
    Draining,
}

/// Serves a connection until the peer closes it, a timeout or an error ends
/// it, or the worker drains. A connection idle for [`PARK_AFTER`] comes
/// back with its idle deadline, to be parked (`park`).
pub async fn serve<T: Transport>(transport: T, worker: Rc<Worker>) -> Option<(T, Instant)> {
    // Bytes read and not yet answered; `None` while idle.
    let mut buf: Option<Vec<u8>> = None;
    let mut head_started: Option<Instant> = None;

    loop {
        if let Some(bytes) = buf.as_mut().filter(|b| !b.is_empty()) {
            // Boxed: answering holds the parsed request and the send path's
            // state, needed only while a request is in flight, so they do
            // not size every idle connection's task.
            match Box::pin(answer_one(&transport, &worker, bytes)).await {
                Step::Answered { consumed, close } => {
                    if close {
                        break;
                    }
                    bytes.drain(..consumed);
                    head_started = None;
                    continue;
                }
                Step::Refused => break,
                Step::Partial => {}
            }
        }

        // More bytes are needed. Idle: give the buffer back first.
        let idle = buf.as_ref().is_none_or(Vec::is_empty);
        if idle {
            if let Some(b) = buf.take() {
                worker.return_buffer(b);
            }
        }
        let now = Instant::now();
        let idle_until = now + worker.config.idle_timeout;
        let until = if idle && T::PARKS {
            idle_until.min(now + PARK_AFTER)
        } else if idle {
            idle_until
        } else {
            *head_started.get_or_insert(now) + worker.config.header_timeout
        };
        match wait_readable(&transport, &worker, until, idle).await {
            Wait::Readable => {}
            Wait::TimedOut if !idle => {
                Box::pin(reply_and_close(&transport, &worker, 408)).await;
                break;
            }
            // Idle a while, not yet timed out: park (holding nothing).
            Wait::TimedOut
                if T::PARKS && Instant::now() < idle_until && !worker.drain.is_drained() =>
            {
                return Some((transport, idle_until));
            }
            _ => break,
        }
        let bytes = buf.get_or_insert_with(|| worker.take_buffer());
        if bytes.capacity() - bytes.len() < BUFFER_SIZE / 2 {
            bytes.reserve(BUFFER_SIZE);
        }
        match transport.try_read(bytes, usize::MAX) {
            Ok(0) => break,
            Ok(_) => {}
            // Readiness without bytes (another waiter took them): wait again.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
    if let Some(b) = buf {
        worker.return_buffer(b);
    }
    None
}

/// What answering the buffered bytes came to.
pub(crate) enum Step {
    /// One request answered; its head was `consumed` bytes.
    Answered { consumed: usize, close: bool },
    /// Not a request (malformed, too large): answered, and the connection
    /// ends.
    Refused,
    /// The head is not complete yet.
    Partial,
}

/// Parses the first request in `bytes` and, when it is complete, answers it.
async fn answer_one<T: Transport>(transport: &T, worker: &Worker, bytes: &[u8]) -> Step {
    let (request, head_len) = match request::parse(bytes, &worker.config.limits) {
        Ok(Parsed::Complete { request, head_len }) => (request, head_len),
        Ok(Parsed::Partial) => return Step::Partial,
        Err(e) => {
            reply_and_close(transport, worker, e.status()).await;
            return Step::Refused;
        }
    };
    if let Some(ingest) = worker.ingest.as_ref() {
        if ingest::is_upload_target(request.target) {
            return upload::relay(transport, worker, ingest, &request, bytes, head_len).await;
        }
    }
    let started = Instant::now();
    let closing = !request.keep_alive || request.has_body || worker.drain.is_drained();
    let mut out = worker.take_buffer();
    let reply = worker.answer(&request).await;
    let (status, reply) = {
        let head = worker.head.borrow();
        worker
            .site
            .access_log("http1", &request, head.status(), reply.body.len());
        let close = closing || reply.close;
        write_head(&head, worker.dates.borrow_mut().now(), close, &mut out);
        (head.status(), serve::Reply { close, ..reply })
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
        &reply.body,
        counted,
        head_len,
        reply.close,
    )
    .await
}

/// What a request is counted as in the metrics.
pub(crate) struct Counted {
    pub(crate) method: &'static str,
    pub(crate) status: u16,
    pub(crate) started: Instant,
}

/// Sends a framed head (`out`, back to the pool after) and its body,
/// counts the request, and says how the connection goes on: `consumed`
/// bytes of the buffer answered, closing when `close` or the send failed.
pub(crate) async fn finish<T: Transport>(
    transport: &T,
    worker: &Worker,
    out: Vec<u8>,
    body: &Body,
    counted: Counted,
    consumed: usize,
    close: bool,
) -> Step {
    let sent = send_timed(transport, worker, &out, body).await;
    worker.return_buffer(out);
    worker.stats.borrow_mut().request(
        "http1",
        counted.method,
        counted.status,
        sent.as_ref().copied().unwrap_or(0),
        counted.started.elapsed().as_secs_f64(),
    );
    Step::Answered {
        consumed,
        close: close || sent.is_err(),
    }
}

/// Waits for bytes until `until`; while idle the worker's drain also ends
/// the wait. The deadline is the worker's (see `deadline`), not a runtime
/// timer: an idle connection stays small.
pub(crate) async fn wait_readable<T: Transport>(
    transport: &T,
    worker: &Worker,
    until: Instant,
    idle: bool,
) -> Wait {
    if Instant::now() >= until || (idle && worker.drain.is_drained()) {
        return Wait::TimedOut;
    }
    let deadline = worker.deadlines.until(until, idle);
    monoio::select! {
        r = transport.readable() => match r {
            Ok(()) => Wait::Readable,
            Err(_) => Wait::Closed,
        },
        _ = deadline => if idle && worker.drain.is_drained() {
            Wait::Draining
        } else {
            Wait::TimedOut
        },
    }
}

/// Sends a head and body within the send timeout; returns the bytes
/// written.
pub(crate) async fn send_timed<T: Transport>(
    transport: &T,
    worker: &Worker,
    head: &[u8],
    body: &Body,
) -> io::Result<u64> {
    let sending = transport.send(worker, head, body);
    match monoio::time::timeout(worker.config.send_timeout, sending).await {
        Ok(Ok(())) => Ok(head.len() as u64 + body.len()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Answers a request that cannot be served as a request (malformed, too
/// large, too slow) and lets the caller close.
async fn reply_and_close<T: Transport>(transport: &T, worker: &Worker, status: u16) {
    let started = Instant::now();
    let mut out = worker.take_buffer();
    let text = {
        let mut head = worker.head.borrow_mut();
        let text = serve::parse_error_reply(&mut head, status);
        write_head(&head, worker.dates.borrow_mut().now(), true, &mut out);
        text
    };
    let body = Body::Memory(bytes::Bytes::from_static(text.as_bytes()));
    let sent = send_timed(transport, worker, &out, &body).await;
    worker.return_buffer(out);
    worker.stats.borrow_mut().request(
        "http1",
        "-",
        status,
        sent.unwrap_or(0),
        started.elapsed().as_secs_f64(),
    );
}

//! One HTTP/1.1 connection: read, parse, answer, repeat.
//!
//! Keep-alive and pipelining come from the loop's shape: after a response,
//! bytes already buffered are parsed before reading again, so pipelined
//! requests are answered in order without extra reads. Between requests the
//! connection holds no buffer: it waits for readiness, then borrows one from
//! the worker's pool for as long as a request is in flight. Every wait is
//! bounded: the idle timeout between requests, the header timeout from a
//! head's first byte to its end (slowloris), and the send timeout while a
//! slow reader drains a response.

use std::io;
use std::os::fd::FromRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use streamgate_net::http1::request::{self, Parsed};
use streamgate_net::http1::write_head;
use streamgate_net::response::Body;

use crate::context::{Worker, BUFFER_SIZE};
use crate::ingest;
use crate::serve;
use crate::shutdown::DrainWait;
use crate::transport::Transport;

/// Why waiting for bytes ended.
enum Wait {
    Readable,
    Closed,
    TimedOut,
    Draining,
}

/// Serves a connection until the peer closes it, a timeout or an error ends
/// it, or the worker drains.
pub async fn serve<T: Transport>(mut transport: T, worker: Rc<Worker>) {
    let limits = worker.config.limits;
    // Bytes read and not yet answered; `None` while idle.
    let mut buf: Option<Vec<u8>> = None;
    let mut drain = std::pin::pin!(worker.drain.wait());
    let mut head_started: Option<Instant> = None;

    loop {
        if let Some(bytes) = buf.as_mut().filter(|b| !b.is_empty()) {
            match request::parse(bytes, &limits) {
                Ok(Parsed::Complete { request, head_len }) => {
                    if worker.ingest.is_some() && ingest::is_upload_target(request.target) {
                        let unread = buf.take().unwrap_or_default();
                        if !hand_over(&transport, &worker, unread) {
                            // No descriptor to hand over (EMFILE, TLS): say so.
                            reply_and_close(&transport, &worker, 503).await;
                        }
                        return;
                    }
                    let started = Instant::now();
                    let closing =
                        !request.keep_alive || request.has_body || worker.drain.is_drained();
                    let method = request.method.as_str();
                    let mut out = worker.take_buffer();
                    let (status, reply) = {
                        let mut head = worker.head.borrow_mut();
                        let mut stats = worker.stats.borrow_mut();
                        let reply = worker.site.respond(&request, &mut head, &mut stats);
                        let close = closing || reply.close;
                        write_head(&head, worker.dates.borrow_mut().now(), close, &mut out);
                        (head.status(), serve::Reply { close, ..reply })
                    };
                    let sent = send_timed(&transport, &worker, &out, &reply.body).await;
                    worker.return_buffer(out);
                    worker.stats.borrow_mut().request(
                        method,
                        status,
                        sent.as_ref().copied().unwrap_or(0),
                        started.elapsed().as_secs_f64(),
                    );
                    if sent.is_err() || reply.close {
                        break;
                    }
                    bytes.drain(..head_len);
                    head_started = None;
                    continue;
                }
                Ok(Parsed::Partial) => {}
                Err(e) => {
                    reply_and_close(&transport, &worker, e.status()).await;
                    break;
                }
            }
        }

        // More bytes are needed. Idle: give the buffer back first.
        let idle = buf.as_ref().is_none_or(Vec::is_empty);
        if idle {
            if let Some(b) = buf.take() {
                worker.return_buffer(b);
            }
        }
        let wait = if idle {
            worker.config.idle_timeout
        } else {
            let since = *head_started.get_or_insert_with(Instant::now);
            worker.config.header_timeout.saturating_sub(since.elapsed())
        };
        match wait_readable(&transport, wait, idle, &mut drain).await {
            Wait::Readable => {}
            Wait::TimedOut if !idle => {
                reply_and_close(&transport, &worker, 408).await;
                break;
            }
            _ => break,
        }
        let bytes = buf.get_or_insert_with(|| worker.take_buffer());
        if bytes.capacity() - bytes.len() < BUFFER_SIZE / 2 {
            bytes.reserve(BUFFER_SIZE);
        }
        match transport.try_read(bytes) {
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
}

/// Gives the connection to the ingest service: a blocking duplicate of the
/// socket and the unconsumed bytes (this request's head included). The
/// worker's own descriptor closes when `serve` returns; the duplicate keeps
/// the connection open. `false` when there is no socket to duplicate (the
/// caller answers 503).
fn hand_over<T: Transport>(transport: &T, worker: &Worker, buf: Vec<u8>) -> bool {
    let (Some(ingest), Some(socket)) = (&worker.ingest, transport.raw_socket()) else {
        return false;
    };
    // SAFETY: F_DUPFD_CLOEXEC of a descriptor this task owns; the result is
    // owned by the std stream below.
    let fd = unsafe { libc::fcntl(socket, libc::F_DUPFD_CLOEXEC, 0) };
    if fd < 0 {
        tracing::warn!(error = %io::Error::last_os_error(), "ingest: cannot hand an upload connection over");
        return false;
    }
    // SAFETY: `fd` is a fresh descriptor no one else owns.
    let blocking = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    ingest.take_over(blocking, buf);
    true
}

/// Waits for bytes, bounded by `wait`; while idle the worker's drain also
/// ends the wait.
async fn wait_readable<T: Transport>(
    transport: &T,
    wait: Duration,
    idle: bool,
    drain: &mut std::pin::Pin<&mut DrainWait>,
) -> Wait {
    if wait.is_zero() {
        return Wait::TimedOut;
    }
    let readable = monoio::time::timeout(wait, transport.readable());
    let result = monoio::select! {
        r = readable => r,
        _ = drain.as_mut(), if idle => return Wait::Draining,
    };
    match result {
        Err(_elapsed) => Wait::TimedOut,
        Ok(Ok(())) => Wait::Readable,
        Ok(Err(_)) => Wait::Closed,
    }
}

/// Sends a head and body within the send timeout; returns the bytes
/// written.
async fn send_timed<T: Transport>(
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
        "-",
        status,
        sent.unwrap_or(0),
        started.elapsed().as_secs_f64(),
    );
}

//! One client connection: read, parse, answer, repeat.
//!
//! Keep-alive and pipelining come from the loop's shape: after a response,
//! bytes already buffered are parsed before reading again, so pipelined
//! requests are answered in order without extra reads. Every wait is bounded:
//! the idle timeout between requests, the header timeout from a head's first
//! byte to its end (slowloris), and the send timeout while a slow reader
//! drains a response.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::AsyncReadRent;
use monoio::net::TcpStream;
use streamgate_net::request::{self, Parsed};
use streamgate_net::send;

use crate::ingest;
use crate::serve::{self, Body, Reply};
use crate::worker::Worker;

/// Initial read buffer; it grows only up to the head limit.
const READ_CHUNK: usize = 4096;
/// Largest file body sent with `sendfile(2)`; larger ones are spliced
/// through a pooled pipe.
const SENDFILE_MAX: u64 = 256 << 10;

/// Why a read ended without bytes.
enum ReadOutcome {
    Data,
    Closed,
    TimedOut,
    Draining,
}

/// Serves a connection until the peer closes it, a timeout or an error ends
/// it, or the worker drains.
pub async fn serve(mut stream: TcpStream, worker: Rc<Worker>) {
    let limits = worker.config.limits;
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut head: Vec<u8> = Vec::with_capacity(512);
    let mut drain = std::pin::pin!(worker.drain.wait());
    let mut head_started: Option<Instant> = None;

    loop {
        match request::parse(&buf, &limits) {
            Ok(Parsed::Complete { request, head_len }) => {
                if worker.ingest.is_some() && ingest::is_upload_target(request.target) {
                    if !hand_over(&stream, &worker, buf) {
                        // No descriptor to hand over (EMFILE): say so.
                        reply_and_close(&stream, &worker, &mut head, 503).await;
                    }
                    return;
                }
                let started = Instant::now();
                let closing = !request.keep_alive || request.has_body || worker.drain.is_drained();
                let reply = {
                    let mut stats = worker.stats.borrow_mut();
                    let mut dates = worker.dates.borrow_mut();
                    worker
                        .site
                        .respond(&request, &mut head, dates.now(), closing, &mut stats)
                };
                let method = request.method.as_str();
                let status = reply.status;
                let closing = reply.close;
                let sent = send_reply(&stream, &worker, &head, reply).await;
                worker.stats.borrow_mut().request(
                    method,
                    status,
                    sent.as_ref().copied().unwrap_or(0),
                    started.elapsed().as_secs_f64(),
                );
                if sent.is_err() || closing {
                    break;
                }
                buf.drain(..head_len);
                head_started = None;
                continue;
            }
            Ok(Parsed::Partial) => {}
            Err(e) => {
                reply_and_close(&stream, &worker, &mut head, e.status()).await;
                break;
            }
        }

        // More bytes are needed.
        let idle = buf.is_empty();
        let wait = if idle {
            worker.config.idle_timeout
        } else {
            let since = *head_started.get_or_insert_with(Instant::now);
            worker.config.header_timeout.saturating_sub(since.elapsed())
        };
        if buf.capacity() - buf.len() < READ_CHUNK / 2 {
            buf.reserve(READ_CHUNK);
        }
        let (outcome, returned) = read_some(&mut stream, buf, wait, idle, &mut drain).await;
        match (outcome, returned) {
            (ReadOutcome::Data, Some(b)) => buf = b,
            (ReadOutcome::TimedOut, _) if !idle => {
                reply_and_close(&stream, &worker, &mut head, 408).await;
                break;
            }
            _ => break,
        }
    }
}

/// Gives the connection to the ingest service: a blocking duplicate of the
/// socket and the unconsumed bytes (this request's head included). The
/// worker's own descriptor closes when `serve` returns; the duplicate keeps
/// the connection open. `false` when the socket could not be duplicated
/// (the caller answers 503).
fn hand_over(stream: &TcpStream, worker: &Worker, buf: Vec<u8>) -> bool {
    let Some(ingest) = &worker.ingest else {
        return false;
    };
    // SAFETY: dup(2) of a descriptor this task owns; the result is owned by
    // the std stream below.
    let fd = unsafe { libc::fcntl(stream.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if fd < 0 {
        tracing::warn!(error = %io::Error::last_os_error(), "ingest: cannot hand an upload connection over");
        return false;
    }
    // SAFETY: `fd` is a fresh descriptor no one else owns.
    let blocking = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    ingest.take_over(blocking, buf);
    true
}

/// Reads once into the spare capacity of `buf`, bounded by `wait`; while idle
/// the worker's drain also ends the wait.
async fn read_some(
    stream: &mut TcpStream,
    buf: Vec<u8>,
    wait: Duration,
    idle: bool,
    drain: &mut std::pin::Pin<&mut crate::shutdown::DrainWait>,
) -> (ReadOutcome, Option<Vec<u8>>) {
    if wait.is_zero() {
        return (ReadOutcome::TimedOut, None);
    }
    let before = buf.len();
    // Read into the spare capacity: a plain Vec would be overwritten from 0.
    let spare = buf.slice_mut(before..);
    let read = monoio::time::timeout(wait, stream.read(spare));
    let result = monoio::select! {
        r = read => r,
        _ = drain.as_mut(), if idle => return (ReadOutcome::Draining, None),
    };
    match result {
        Err(_elapsed) => (ReadOutcome::TimedOut, None),
        Ok((Ok(0), _)) => (ReadOutcome::Closed, None),
        Ok((Ok(_), b)) => (ReadOutcome::Data, Some(b.into_inner())),
        Ok((Err(e), b)) if e.kind() == io::ErrorKind::WouldBlock => {
            let b = b.into_inner();
            // Only on kernels where io_uring honours O_NONBLOCK for recv.
            match stream.readable(false).await {
                Ok(()) => (ReadOutcome::Data, Some(b)),
                Err(_) => (ReadOutcome::Closed, None),
            }
        }
        Ok((Err(_), _)) => (ReadOutcome::Closed, None),
    }
}

/// Sends a reply within the send timeout; returns the bytes written.
async fn send_reply(
    stream: &TcpStream,
    worker: &Worker,
    head: &[u8],
    reply: Reply,
) -> io::Result<u64> {
    let body_len = reply.body.len();
    let sending = async {
        match &reply.body {
            Body::Empty => send::send_all(stream, head, &[], false).await,
            Body::Memory(bytes) => send::send_all(stream, head, bytes, false).await,
            // Bodies the socket buffer takes in one go: one sendfile call
            // beats two splices (docs/decisions/0001-zero-copy-send.md).
            Body::File { file, offset, len } if *len <= SENDFILE_MAX => {
                send::send_all(stream, head, &[], true).await?;
                send::sendfile_all(stream, &**file, *offset, *len).await
            }
            Body::File { file, offset, len } => {
                let pipe = worker.take_pipe()?;
                send::send_all(stream, head, &[], true).await?;
                send::splice_file_all(stream, file, *offset, *len, &pipe).await?;
                // Only an emptied pipe goes back; one cut off mid-transfer
                // is dropped with whatever it still holds.
                worker.return_pipe(pipe);
                Ok(())
            }
        }
    };
    match monoio::time::timeout(worker.config.send_timeout, sending).await {
        Ok(Ok(())) => Ok(head.len() as u64 + body_len),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Answers a request that cannot be served as a request (malformed, too
/// large, too slow) and lets the caller close.
async fn reply_and_close(stream: &TcpStream, worker: &Worker, head: &mut Vec<u8>, status: u16) {
    let text = serve::parse_error_reply(head, worker.dates.borrow_mut().now(), status);
    let started = Instant::now();
    let sent = monoio::time::timeout(
        worker.config.send_timeout,
        send::send_all(stream, head, text.as_bytes(), false),
    )
    .await;
    let bytes = match sent {
        Ok(Ok(())) => (head.len() + text.len()) as u64,
        _ => 0,
    };
    worker
        .stats
        .borrow_mut()
        .request("-", status, bytes, started.elapsed().as_secs_f64());
}

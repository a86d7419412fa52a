//! Requests for `/upload…` on an HTTP/1.1 connection: the worker keeps the
//! connection and relays the request's body (exactly its `Content-Length`)
//! into a socket pair read by an ingest thread, which writes it to disk off
//! the serving core and answers. The worker waits for both through its ring
//! — client bytes, room in the pair, the answer — and sends the answer like
//! any other response, so keep-alive goes on afterwards.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::TryRecvError;
use std::sync::Arc;
use std::time::Instant;

use streamgate_net::http1::write_head;
use streamgate_net::request::Request;
use streamgate_net::response::Body;

use super::{finish, Counted, Step};
use crate::context::Worker;
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
        Ok(pair) => {
            pair.body(transport, worker, &bytes[head_len..], body_len)
                .await
        }
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

/// The worker's end of the socket pair to one ingest thread.
struct Relay {
    /// Written to with non-blocking sends.
    pair: UnixStream,
    /// The same socket, registered with the ring for readiness.
    ready: monoio::net::UnixStream,
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

impl Relay {
    fn new(pair: UnixStream) -> io::Result<Self> {
        let ready = pair.try_clone()?;
        ready.set_nonblocking(true)?;
        Ok(Self {
            pair,
            ready: monoio::net::UnixStream::from_std(ready)?,
        })
    }

    /// Relays `len` body bytes: first what is already in `buffered`, then
    /// from the client. Stops early when the ingest answered before
    /// reading it all (a refusal), the client stalls past the idle timeout
    /// or goes away.
    async fn body<T: Transport>(
        self,
        transport: &T,
        worker: &Worker,
        buffered: &[u8],
        len: u64,
    ) -> Relayed {
        let from_buffer = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .min(buffered.len());
        let mut relayed = from_buffer as u64;
        let mut answered = matches!(self.send(&buffered[..from_buffer]).await, Ok(true) | Err(_));
        let mut chunk =
            Vec::with_capacity(RELAY_CHUNK.min(usize::try_from(len).unwrap_or(RELAY_CHUNK)));
        while relayed < len && !answered {
            let until = Instant::now() + worker.config.idle_timeout;
            let deadline = worker.deadlines.until(until, false);
            let readable = monoio::select! {
                r = transport.readable() => r.is_ok(),
                _ = self.ready.readable(false) => { answered = true; false },
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
            answered = matches!(self.send(&chunk).await, Ok(true) | Err(_));
        }
        // The end of the body: an ingest thread still reading sees it as a
        // connection that broke (and keeps what arrived, as tus says).
        let _ = self.pair.shutdown(std::net::Shutdown::Write);
        Relayed {
            from_buffer,
            complete: relayed == len,
            pair: Some(self),
        }
    }

    /// Sends `data` into the pair, waiting for room through the ring.
    /// `Ok(true)` when the answer arrived first (the ingest stopped
    /// reading).
    async fn send(&self, mut data: &[u8]) -> io::Result<bool> {
        while !data.is_empty() {
            // SAFETY: a valid buffer on an open socket; MSG_NOSIGNAL turns
            // a closed peer into EPIPE instead of a signal.
            let n = unsafe {
                libc::send(
                    self.pair.as_raw_fd(),
                    data.as_ptr().cast(),
                    data.len(),
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            };
            if n >= 0 {
                data = &data[n as usize..];
                continue;
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => {
                    let answered = monoio::select! {
                        w = self.ready.writable(false) => { w?; false },
                        _ = self.ready.readable(false) => true,
                    };
                    if answered {
                        return Ok(true);
                    }
                }
                _ => return Err(err),
            }
        }
        Ok(false)
    }

    /// Waits for the ingest thread's answer: it writes a byte to the pair
    /// after sending it (or the pair closes if the thread ended without
    /// one).
    async fn answer(&self, answers: &std::sync::mpsc::Receiver<Answer>) -> Option<Answer> {
        loop {
            match answers.try_recv() {
                Ok(answer) => return Some(answer),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {
                    if self.ready.readable(false).await.is_err() {
                        return answers.try_recv().ok();
                    }
                }
            }
        }
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

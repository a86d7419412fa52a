//! How a connection's bytes move, under the protocol: [`Transport`], its
//! plain-TCP implementation [`PlainTcp`] and the TLS one [`TlsTcp`].
//!
//! Reads wait for readiness first (an io_uring `POLL_ADD`) and only then
//! take a buffer and read what is there, so a connection waiting for its
//! next request holds no buffer at all. On plain TCP file bodies go
//! zero-copy: one `sendfile(2)` for bodies the socket buffer takes at once,
//! `splice(2)` through a pooled pipe beyond (see
//! `docs/decisions/0001-zero-copy-send.md`). The TLS transport copies
//! bodies through the record layer instead: there is no zero copy under
//! userspace TLS.

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;

use monoio::net::TcpStream;
use streamgate_net::response::Body;
use streamgate_net::send;

use crate::context::Worker;

/// Largest file body sent with `sendfile(2)`; larger ones are spliced
/// through a pooled pipe.
const SENDFILE_MAX: u64 = 256 << 10;

/// A connection's byte stream, as the protocol codecs use it.
pub trait Transport {
    /// Whether an idle connection can leave its task and wait parked (a
    /// bare descriptor in the worker's epoll set, see `park`).
    const PARKS: bool = true;

    /// Waits until bytes (or the peer's close) can be read, holding no
    /// buffer while it waits.
    fn readable(&self) -> impl Future<Output = io::Result<()>>;

    /// Reads what has arrived into the spare capacity of `buf`, at most
    /// `max` bytes, without waiting: `Ok(0)` when the peer closed,
    /// `WouldBlock` when nothing is there after all.
    fn try_read(&self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize>;

    /// Sends `head` then `body` completely.
    fn send(
        &self,
        worker: &Worker,
        head: &[u8],
        body: &Body,
    ) -> impl Future<Output = io::Result<()>>;
}

/// Plain TCP: readiness through the ring, zero-copy file bodies.
pub struct PlainTcp(TcpStream);

impl PlainTcp {
    /// Wraps an accepted, non-blocking stream.
    pub fn new(stream: TcpStream) -> Self {
        Self(stream)
    }

    /// The stream back (to park it).
    pub fn into_stream(self) -> TcpStream {
        self.0
    }
}

impl Transport for PlainTcp {
    async fn readable(&self) -> io::Result<()> {
        self.0.readable(false).await
    }

    fn try_read(&self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let spare = buf.spare_capacity_mut();
        let limit = max.min(spare.len());
        let spare = &mut spare[..limit];
        loop {
            // SAFETY: recv writes at most `spare.len()` bytes into memory
            // the Vec owns; `set_len` below covers only what it wrote.
            let n = unsafe {
                libc::recv(
                    self.0.as_raw_fd(),
                    spare.as_mut_ptr().cast(),
                    spare.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n >= 0 {
                let n = n as usize;
                // SAFETY: the kernel initialised `n` bytes past the length.
                unsafe { buf.set_len(buf.len() + n) };
                return Ok(n);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    async fn send(&self, worker: &Worker, head: &[u8], body: &Body) -> io::Result<()> {
        let stream = &self.0;
        match body {
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
    }
}

/// TLS over TCP (rustls, through the ring's readiness): plaintext read
/// ahead by [`Transport::readable`] waits in a small buffer for
/// [`Transport::try_read`]; bodies are copied through the record layer.
pub struct TlsTcp {
    stream: std::cell::RefCell<TlsStream>,
    /// Plaintext read and not yet taken; freed when emptied, so an idle
    /// connection holds none.
    pending: std::cell::RefCell<Vec<u8>>,
    /// The peer closed (or the stream failed).
    ended: std::cell::Cell<bool>,
}

/// A server-side TLS stream over a poll-style monoio socket (reads bounded
/// by record during a handshake a kTLS hand-over may follow).
pub type TlsStream = tokio_rustls::server::TlsStream<
    crate::ktls::RecordBounded<monoio::net::tcp::stream_poll::TcpStreamPoll>,
>;

/// Plaintext read from TLS at a time (one record's worth).
const TLS_READ: usize = 16 << 10;
/// File bytes read and encrypted at a time.
const TLS_FILE_CHUNK: usize = 64 << 10;

impl TlsTcp {
    /// Wraps a stream whose handshake is done.
    pub fn new(stream: TlsStream) -> Self {
        Self {
            stream: std::cell::RefCell::new(stream),
            pending: std::cell::RefCell::new(Vec::new()),
            ended: std::cell::Cell::new(false),
        }
    }

    async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        use tokio::io::AsyncWrite;
        while !data.is_empty() {
            let n = std::future::poll_fn(|cx| {
                let mut stream = self.stream.borrow_mut();
                std::pin::Pin::new(&mut *stream).poll_write(cx, data)
            })
            .await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            data = &data[n..];
        }
        Ok(())
    }

    async fn flush(&self) -> io::Result<()> {
        use tokio::io::AsyncWrite;
        std::future::poll_fn(|cx| {
            let mut stream = self.stream.borrow_mut();
            std::pin::Pin::new(&mut *stream).poll_flush(cx)
        })
        .await
    }
}

impl Transport for TlsTcp {
    // Parking watches a bare descriptor; a TLS session has state besides.
    const PARKS: bool = false;

    async fn readable(&self) -> io::Result<()> {
        use tokio::io::AsyncRead;
        if !self.pending.borrow().is_empty() || self.ended.get() {
            return Ok(());
        }
        let mut chunk = vec![0u8; TLS_READ];
        let n = std::future::poll_fn(|cx| {
            let mut stream = self.stream.borrow_mut();
            let mut buf = tokio::io::ReadBuf::new(&mut chunk);
            match std::pin::Pin::new(&mut *stream).poll_read(cx, &mut buf) {
                std::task::Poll::Ready(Ok(())) => std::task::Poll::Ready(Ok(buf.filled().len())),
                std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
                std::task::Poll::Pending => std::task::Poll::Pending,
            }
        })
        .await;
        match n {
            Ok(0) | Err(_) => self.ended.set(true),
            Ok(n) => {
                chunk.truncate(n);
                let mut pending = self.pending.borrow_mut();
                if pending.is_empty() {
                    *pending = chunk;
                } else {
                    pending.extend_from_slice(&chunk);
                }
            }
        }
        Ok(())
    }

    fn try_read(&self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let mut pending = self.pending.borrow_mut();
        if pending.is_empty() {
            return if self.ended.get() {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = pending.len().min(max);
        buf.extend_from_slice(&pending[..n]);
        if n == pending.len() {
            *pending = Vec::new();
        } else {
            pending.drain(..n);
        }
        Ok(n)
    }

    async fn send(&self, _worker: &Worker, head: &[u8], body: &Body) -> io::Result<()> {
        self.write_all(head).await?;
        match body {
            Body::Empty => {}
            Body::Memory(bytes) => self.write_all(bytes).await?,
            Body::File { file, offset, len } => {
                use std::os::unix::fs::FileExt;
                let mut chunk = vec![0u8; TLS_FILE_CHUNK.min(*len as usize)];
                let (mut at, end) = (*offset, offset + len);
                while at < end {
                    let want = ((end - at) as usize).min(chunk.len());
                    // Page-cache reads, as nginx does for TLS bodies.
                    let n = file.read_at(&mut chunk[..want], at)?;
                    if n == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    self.write_all(&chunk[..n]).await?;
                    at += n as u64;
                }
            }
        }
        self.flush().await
    }
}

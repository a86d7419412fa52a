//! How a connection's bytes move, under the protocol: [`Transport`], and
//! its plain-TCP implementation [`PlainTcp`].
//!
//! Reads wait for readiness first (an io_uring `POLL_ADD`) and only then
//! take a buffer and read what is there, so a connection waiting for its
//! next request holds no buffer at all. On plain TCP file bodies go
//! zero-copy: one `sendfile(2)` for bodies the socket buffer takes at once,
//! `splice(2)` through a pooled pipe beyond (see
//! `docs/decisions/0001-zero-copy-send.md`). A TLS transport will copy
//! bodies through the record layer instead (there is no zero copy under
//! userspace TLS), or hand them to kTLS where the kernel has it.

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

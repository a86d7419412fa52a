//! The worker's end of the socket pair to one ingest thread, for every
//! codec: body bytes go in with non-blocking sends (room waited for
//! through the ring), and the answer's wake-up byte comes back the same
//! way. How body bytes are read from the client is the codec's business.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{Receiver, TryRecvError};

use super::Answer;

/// The worker's end of the pair.
pub struct Relay {
    /// Written to with non-blocking sends.
    pair: UnixStream,
    /// The same socket, registered with the ring for readiness.
    ready: monoio::net::UnixStream,
}

impl Relay {
    /// Takes the worker's end of an [`super::UploadCall`].
    pub fn new(pair: UnixStream) -> io::Result<Self> {
        let ready = pair.try_clone()?;
        ready.set_nonblocking(true)?;
        Ok(Self {
            pair,
            ready: monoio::net::UnixStream::from_std(ready)?,
        })
    }

    /// Resolves once the ingest thread has answered (or gone): it wrote
    /// its wake-up byte, so it reads no more body.
    pub async fn answered(&self) {
        let _ = self.ready.readable(false).await;
    }

    /// Sends `data` into the pair, waiting for room through the ring.
    /// `Ok(true)` when the answer arrived first (the ingest stopped
    /// reading).
    pub async fn send(&self, mut data: &[u8]) -> io::Result<bool> {
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

    /// The end of the body: an ingest thread still reading sees it as a
    /// connection that broke (and keeps what arrived, as tus says).
    pub fn end_body(&self) {
        let _ = self.pair.shutdown(std::net::Shutdown::Write);
    }

    /// Waits for the ingest thread's answer: it writes a byte to the pair
    /// after sending it (or the pair closes if the thread ended without
    /// one).
    pub async fn answer(&self, answers: &Receiver<Answer>) -> Option<Answer> {
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

//! [`FloodGuard`]: reads an HTTP/2 connection's frame headers as they pass
//! (nine bytes a frame, payloads skipped) and fails the connection when
//! the client sends more control frames — SETTINGS, PING, RST_STREAM,
//! WINDOW_UPDATE, PRIORITY — in one second than any real client does.
//! The h2 crate answers each of them (an ACK, a pong) and a client that
//! never reads those answers would otherwise keep the connection busy
//! for nothing (the SETTINGS and PING floods of CVE-2019-9512/9515).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client preface before the first frame.
const PREFACE_LEN: usize = 24;

/// An HTTP/2 connection's stream, watched for control-frame floods.
pub struct FloodGuard<T> {
    inner: T,
    /// Bytes of the preface still to pass.
    preface_left: usize,
    /// Frame header bytes collected so far.
    header: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to skip.
    skip: usize,
    window_start: Instant,
    in_window: u32,
    max_per_second: u32,
}

impl<T> FloodGuard<T> {
    /// Watches `inner`, allowing `max_per_second` control frames a second.
    pub fn new(inner: T, max_per_second: u32) -> Self {
        Self {
            inner,
            preface_left: PREFACE_LEN,
            header: [0; 9],
            have: 0,
            skip: 0,
            window_start: Instant::now(),
            in_window: 0,
            max_per_second,
        }
    }

    /// Walks `bytes`; `Err` once the client floods.
    fn observe(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        let skip = self.preface_left.min(bytes.len());
        self.preface_left -= skip;
        bytes = &bytes[skip..];
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < 9 {
                break;
            }
            self.have = 0;
            let h = self.header;
            self.skip = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            let (kind, flags) = (h[3], h[4]);
            let ack = flags & 0x1 != 0;
            // SETTINGS and PING count unless they acknowledge ours.
            let control =
                matches!((kind, ack), (0x4 | 0x6, false)) || matches!(kind, 0x2 | 0x3 | 0x8);
            if control {
                self.count()?;
            }
        }
        Ok(())
    }

    fn count(&mut self) -> io::Result<()> {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.in_window = 0;
        }
        self.in_window += 1;
        if self.in_window > self.max_per_second {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "HTTP/2 control frame flood",
            ));
        }
        Ok(())
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FloodGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => Poll::Ready(self.observe(&buf.filled()[before..])),
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FloodGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, len: usize) -> Vec<u8> {
        let mut f = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            flags,
            0,
            0,
            0,
            0,
        ];
        f.extend(std::iter::repeat_n(0u8, len));
        f
    }

    #[test]
    fn control_frames_are_counted_across_any_split() {
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        for _ in 0..10 {
            bytes.extend(frame(0x6, 0, 8)); // PING
            bytes.extend(frame(0x0, 0, 100)); // DATA: not control
            bytes.extend(frame(0x4, 0x1, 0)); // SETTINGS ACK: not counted
        }
        for split in [1, 7, 9, 50, bytes.len()] {
            let mut g = FloodGuard::new((), 10);
            for piece in bytes.chunks(split) {
                g.observe(piece).unwrap();
            }
            assert_eq!(g.in_window, 10, "split {split}");
            assert!(g.observe(&frame(0x4, 0, 6)).is_err(), "the 11th is a flood");
        }
    }
}

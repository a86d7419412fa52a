//! Writing responses to a monoio socket.
//!
//! Sockets handed to these functions must be non-blocking (see
//! [`set_nonblocking`]). Writes are tried synchronously first — a response
//! head and a cached segment nearly always fit the socket buffer, so the
//! common case is one `sendmsg` and no trip through the ring — and whenever
//! the socket buffer is full the task waits on an io_uring POLL_ADD
//! ([`TcpStream::writable`]) instead of blocking the core's only thread.
//!
//! # Why `sendfile(2)` for file bodies
//! monoio's splice operation takes no file offset, so concurrent ranges of
//! one file could not share a descriptor, and io_uring SEND_ZC copies on
//! loopback and needs a completion-notification round trip per buffer.
//! `sendfile` moves page-cache pages into the socket without a copy, at an
//! explicit offset. The measurements behind this choice are in
//! `docs/decisions/0001-zero-copy-send.md`.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use monoio::net::TcpStream;

/// Puts a descriptor into non-blocking mode.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own has no memory-safety preconditions.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// One `sendmsg` of up to two slices. `Ok(None)` means the socket is full.
fn sendmsg_now(fd: RawFd, a: &[u8], b: &[u8], more: bool) -> io::Result<Option<usize>> {
    let mut iov = [
        libc::iovec {
            iov_base: a.as_ptr() as *mut _,
            iov_len: a.len(),
        },
        libc::iovec {
            iov_base: b.as_ptr() as *mut _,
            iov_len: b.len(),
        },
    ];
    let (iov_ptr, iov_len) = if a.is_empty() {
        (iov[1..].as_mut_ptr(), 1)
    } else {
        (iov.as_mut_ptr(), if b.is_empty() { 1 } else { 2 })
    };
    // SAFETY: zeroed msghdr is valid; we point it at live iovecs.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov_ptr;
    msg.msg_iovlen = iov_len;
    let mut flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
    if more {
        flags |= libc::MSG_MORE;
    }
    loop {
        // SAFETY: `msg` describes buffers that outlive the call.
        let n = unsafe { libc::sendmsg(fd, &msg, flags) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::WouldBlock => return Ok(None),
            io::ErrorKind::Interrupted => continue,
            _ => return Err(err),
        }
    }
}

/// Writes `head` then `body` completely. `more` tells the kernel further
/// bytes follow (MSG_MORE), so a head can share a segment with its body.
pub async fn send_all(stream: &TcpStream, head: &[u8], body: &[u8], more: bool) -> io::Result<()> {
    let (mut head, mut body) = (head, body);
    while !head.is_empty() || !body.is_empty() {
        match sendmsg_now(stream.as_raw_fd(), head, body, more)? {
            None => stream.writable(false).await?,
            Some(0) => return Err(io::ErrorKind::WriteZero.into()),
            Some(mut n) => {
                let from_head = n.min(head.len());
                head = &head[from_head..];
                n -= from_head;
                body = &body[n..];
            }
        }
    }
    Ok(())
}

/// Sends `len` bytes of `file` starting at `offset` with `sendfile(2)`.
pub async fn sendfile_all(
    stream: &TcpStream,
    file: &impl AsRawFd,
    offset: u64,
    len: u64,
) -> io::Result<()> {
    let mut off = libc::off_t::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
    let end = off
        .checked_add(libc::off_t::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?)
        .ok_or(io::ErrorKind::InvalidInput)?;
    while off < end {
        // Linux caps one call at 0x7ffff000 bytes.
        let chunk = usize::try_from(end - off)
            .unwrap_or(usize::MAX)
            .min(0x7fff_f000);
        // SAFETY: both descriptors are open for the duration of the call and
        // `off` is a valid pointer to an off_t.
        let n = unsafe { libc::sendfile(stream.as_raw_fd(), file.as_raw_fd(), &mut off, chunk) };
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock => stream.writable(false).await?,
                io::ErrorKind::Interrupted => {}
                _ => return Err(err),
            }
        } else if n == 0 {
            // The file shrank under us: the promised length cannot be sent.
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

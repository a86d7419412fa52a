//! Writing responses to a monoio socket.
//!
//! Sockets handed to these functions must be non-blocking (see
//! [`set_nonblocking`]). Writes are tried synchronously first — a response
//! head and a cached segment nearly always fit the socket buffer, so the
//! common case is one `sendmsg` and no trip through the ring — and whenever
//! the socket buffer is full the task waits on an io_uring POLL_ADD
//! ([`TcpStream::writable`]) instead of blocking the core's only thread.
//!
//! # File bodies: `sendfile(2)`, or `splice(2)` through a pipe of our own
//! Page-cache pages go to the socket as references, never copied: one
//! `sendfile` call for bodies the socket buffer takes at once, a pooled pipe
//! for large ones (bytes moved into it survive a full-socket wait).
//! Measured against io_uring SPLICE, SEND_ZC, SEND and `sendfile(2)` in
//! `docs/decisions/0001-zero-copy-send.md`; monoio's own splice operation
//! takes no file offset and hides its pipe's descriptors, hence the
//! synchronous splices with io_uring readiness here.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

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

/// A pipe used to move file pages into a socket without copying them.
///
/// Bytes spliced from a file into the pipe stay there (as page references)
/// until the socket takes them, so a full socket costs a wait, not a re-read
/// — the difference that makes this path beat `sendfile(2)` on large bodies
/// (docs/decisions/0001-zero-copy-send.md).
pub struct SplicePipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl SplicePipe {
    /// Creates a pipe, asking for `capacity` bytes (the kernel may give less).
    pub fn new(capacity: usize) -> io::Result<Self> {
        let mut fds = [0; 2];
        // SAFETY: valid out array for two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh descriptors we now own.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let wanted = libc::c_int::try_from(capacity).unwrap_or(libc::c_int::MAX);
        // SAFETY: fcntl on our own pipe; on failure the default size stays.
        let got = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, wanted) };
        // SAFETY: as above.
        let capacity = if got > 0 {
            got
        } else {
            unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) }
        };
        Ok(Self {
            read,
            write,
            capacity: usize::try_from(capacity).unwrap_or(4096).max(4096),
        })
    }
}

/// Sends `len` bytes of `file` from `offset` through `pipe`: `splice(2)`
/// file → pipe at an explicit offset, then pipe → socket non-blocking,
/// waiting on io_uring readiness while the socket is full.
///
/// On success the pipe is empty again and can be reused; on error it may
/// hold bytes and must be dropped.
pub async fn splice_file_all(
    stream: &TcpStream,
    file: &impl AsRawFd,
    offset: u64,
    len: u64,
    pipe: &SplicePipe,
) -> io::Result<()> {
    let mut off = libc::loff_t::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut remaining = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut in_pipe = 0usize;
    while remaining > 0 || in_pipe > 0 {
        if in_pipe == 0 {
            let want = remaining.min(pipe.capacity);
            // SAFETY: open descriptors and a valid offset pointer.
            let n = unsafe {
                libc::splice(
                    file.as_raw_fd(),
                    &mut off,
                    pipe.write.as_raw_fd(),
                    std::ptr::null_mut(),
                    want,
                    libc::SPLICE_F_MOVE,
                )
            };
            match n {
                // The file shrank under us: the promised length cannot be sent.
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n if n < 0 => {
                    let err = io::Error::last_os_error();
                    if err.kind() != io::ErrorKind::Interrupted {
                        return Err(err);
                    }
                    continue;
                }
                n => {
                    in_pipe = n as usize;
                    remaining -= in_pipe;
                }
            }
        }
        // SPLICE_F_MORE while more of the body follows: the kernel then
        // sends full segments instead of pushing a short one per call.
        let more = if remaining > 0 {
            libc::SPLICE_F_MORE
        } else {
            0
        };
        // SAFETY: open descriptors; no offsets for pipe or socket.
        let n = unsafe {
            libc::splice(
                pipe.read.as_raw_fd(),
                std::ptr::null_mut(),
                stream.as_raw_fd(),
                std::ptr::null_mut(),
                in_pipe,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK | more,
            )
        };
        if n > 0 {
            in_pipe -= n as usize;
            continue;
        }
        let err = if n == 0 {
            io::ErrorKind::WriteZero.into()
        } else {
            io::Error::last_os_error()
        };
        match err.kind() {
            io::ErrorKind::WouldBlock => stream.writable(false).await?,
            io::ErrorKind::Interrupted => {}
            _ => return Err(err),
        }
    }
    Ok(())
}

/// Sends `len` bytes of `file` starting at `offset` with `sendfile(2)`,
/// waiting on io_uring readiness whenever the socket buffer is full.
/// Best for bodies the socket buffer takes in one call: one syscall.
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
        let chunk = usize::try_from(end - off)
            .unwrap_or(usize::MAX)
            .min(0x7fff_f000);
        // SAFETY: both descriptors are open and `off` is a valid off_t.
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

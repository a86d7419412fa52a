//! Parking for keep-alive connections that have been idle a while.
//!
//! A connection waiting in its own task costs that task, the runtime's
//! stream and a pending poll: about 900 bytes. Players and CDN pools hold
//! thousands of connections between fetches, so after [`PARK_AFTER`] of
//! idleness a connection leaves its task: its socket (a duplicate
//! descriptor) waits in one epoll set per core, with its idle deadline in a
//! map — a few dozen bytes. The worker waits on the epoll descriptor
//! through its ring; a parked socket that turns readable gets a fresh task,
//! which reads the request as usual. Busy connections never park, so the
//! request path is unchanged for them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

/// Idleness after which a connection parks.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// Most sockets taken from the epoll set per wake.
const BATCH: usize = 64;

/// One worker's parked connections.
pub struct Parking {
    epoll: OwnedFd,
    /// Parked sockets by descriptor, with when their idle timeout ends.
    parked: RefCell<HashMap<RawFd, (OwnedFd, Instant)>>,
}

impl Parking {
    /// An empty parking with its own epoll set.
    pub fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 has no preconditions; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: a fresh descriptor nobody else owns.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            parked: RefCell::new(HashMap::new()),
        })
    }

    /// A handle the worker's ring can wait on: readable whenever a parked
    /// socket is.
    pub fn readiness(&self) -> io::Result<monoio::net::UnixStream> {
        let fd = dup(self.epoll.as_raw_fd())?;
        // monoio waits for readiness only on its socket types; its wait is
        // an io_uring POLL_ADD, which works on any pollable descriptor,
        // epoll's included, and nothing but `readable` is ever called on
        // this one.
        // SAFETY: `fd` is a fresh descriptor owned by the stream from here.
        let std = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
        monoio::net::UnixStream::from_std(std)
    }

    /// Parks the socket of `stream` until it turns readable or `until`.
    /// The stream itself is dropped: its descriptor closes once the
    /// runtime is done with it, the duplicate keeps the connection.
    pub fn park(&self, stream: TcpStream, until: Instant) -> io::Result<()> {
        let socket = dup(stream.as_raw_fd())?;
        drop(stream);
        // SAFETY: `socket` is a fresh descriptor owned from here.
        let socket = unsafe { OwnedFd::from_raw_fd(socket) };
        let fd = socket.as_raw_fd();
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32,
            u64: fd as u64,
        };
        // SAFETY: valid descriptors and a live event struct.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) }
            < 0
        {
            return Err(io::Error::last_os_error());
        }
        self.parked.borrow_mut().insert(fd, (socket, until));
        Ok(())
    }

    /// The parked sockets that turned readable (or closed), out of the set.
    pub fn take_ready(&self) -> Vec<std::net::TcpStream> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        // SAFETY: a valid epoll descriptor and a buffer of BATCH events.
        let n = unsafe {
            libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), BATCH as i32, 0)
        };
        let mut ready = Vec::new();
        for event in events.iter().take(usize::try_from(n).unwrap_or(0)) {
            let fd = event.u64 as RawFd;
            if let Some((socket, _)) = self.remove(fd) {
                ready.push(std::net::TcpStream::from(socket));
            }
        }
        ready
    }

    /// Closes parked connections whose idle timeout has passed (all of them
    /// when `everything`, for draining); returns how many.
    pub fn close_expired(&self, now: Instant, everything: bool) -> usize {
        let expired: Vec<RawFd> = self
            .parked
            .borrow()
            .iter()
            .filter(|(_, (_, until))| everything || *until <= now)
            .map(|(fd, _)| *fd)
            .collect();
        for &fd in &expired {
            // Dropping the descriptor closes the connection.
            drop(self.remove(fd));
        }
        expired.len()
    }

    /// Connections parked now.
    pub fn len(&self) -> usize {
        self.parked.borrow().len()
    }

    fn remove(&self, fd: RawFd) -> Option<(OwnedFd, Instant)> {
        let entry = self.parked.borrow_mut().remove(&fd)?;
        // SAFETY: valid descriptors; DEL ignores the event argument.
        unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            );
        }
        Some(entry)
    }
}

fn dup(fd: RawFd) -> io::Result<RawFd> {
    // SAFETY: F_DUPFD_CLOEXEC of a descriptor the caller owns.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(new)
    }
}

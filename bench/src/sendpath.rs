//! The send-path experiment behind `docs/decisions/0001-zero-copy-send.md`.
//!
//! A deliberately minimal single-thread io_uring responder (straight on the
//! `io-uring` crate, no runtime) that answers every request with one file,
//! sending the body by one of four paths:
//!
//! - `splice`: IORING_OP_SPLICE file@offset → pipe, linked to pipe → socket;
//! - `sendzc`: IORING_OP_SEND_ZC from an in-memory copy, waiting out the
//!   notification CQEs;
//! - `send`: IORING_OP_SEND from an in-memory copy (one copy into the socket);
//! - `sendfile`: `sendfile(2)` on a non-blocking socket, IORING_OP_POLL_ADD
//!   when the socket buffer is full (the engine's disk path).
//!
//! Everything else (accept, recv, the head) is the same io_uring code in all
//! four, so the CPU difference per request is the body path's.

use std::collections::HashMap;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

/// How the body is sent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// file → pipe → socket, two linked io_uring splices.
    Splice,
    /// io_uring SEND_ZC from memory.
    SendZc,
    /// io_uring SEND from memory.
    Send,
    /// sendfile(2) + io_uring POLL_ADD.
    Sendfile,
    /// splice(2) file@offset → own pipe → non-blocking socket, io_uring
    /// POLL_ADD when the socket is full (bytes stay in the pipe meanwhile).
    SpliceSync,
}

impl Mode {
    /// All modes, in report order.
    pub const ALL: [Mode; 5] = [
        Mode::Splice,
        Mode::SendZc,
        Mode::Send,
        Mode::Sendfile,
        Mode::SpliceSync,
    ];

    /// The mode's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Splice => "splice",
            Self::SendZc => "sendzc",
            Self::Send => "send",
            Self::Sendfile => "sendfile",
            Self::SpliceSync => "splice-sync",
        }
    }

    /// Parses a name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

const ACCEPT: u64 = 0;
const RECV: u64 = 1;
const HEAD: u64 = 2;
const BODY: u64 = 3;
const SPLICE_IN: u64 = 4;
const PIPE_SIZE: usize = 1 << 20;

struct Conn {
    fd: RawFd,
    buf: Vec<u8>,
    filled: usize,
    sent: usize,
    pipe: Option<(RawFd, RawFd)>,
    /// Bytes moved into the pipe by the last splice-in.
    spliced_in: usize,
    /// Bytes still in the pipe.
    in_pipe: usize,
}

fn data(idx: usize, kind: u64) -> u64 {
    ((idx as u64) << 8) | kind
}

/// Serves `file` on `port` until killed.
pub fn serve(mode: Mode, port: u16, file: &std::path::Path) -> io::Result<()> {
    let body = std::fs::read(file)?;
    let file = std::fs::File::open(file)?;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: video/iso.segment\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let lfd = listener.as_raw_fd();
    // Same ring setup as the engine's workers.
    let mut ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(1024)?;
    let mut conns: HashMap<usize, Conn> = HashMap::new();
    let mut next_idx = 1usize;

    let push = |ring: &mut IoUring, e: squeue::Entry| {
        // SAFETY: every buffer an entry points at lives in `conns`, `head` or
        // `body` until its completion arrives.
        unsafe {
            while ring.submission().push(&e).is_err() {
                ring.submit().expect("submit");
            }
        }
    };
    push(
        &mut ring,
        opcode::Accept::new(types::Fd(lfd), std::ptr::null_mut(), std::ptr::null_mut())
            .build()
            .user_data(data(0, ACCEPT)),
    );

    loop {
        ring.submit_and_wait(1)?;
        let completions: Vec<cqueue::Entry> = ring.completion().collect();
        for cqe in completions {
            let (idx, kind, res) = (
                (cqe.user_data() >> 8) as usize,
                cqe.user_data() & 0xff,
                cqe.result(),
            );
            if kind == ACCEPT {
                push(
                    &mut ring,
                    opcode::Accept::new(types::Fd(lfd), std::ptr::null_mut(), std::ptr::null_mut())
                        .build()
                        .user_data(data(0, ACCEPT)),
                );
                if res >= 0 {
                    let fd = res;
                    set_nodelay(fd);
                    if matches!(mode, Mode::Sendfile | Mode::SpliceSync) {
                        streamgate_net::send::set_nonblocking(fd)?;
                    }
                    let pipe = matches!(mode, Mode::Splice | Mode::SpliceSync)
                        .then(make_pipe)
                        .transpose()?;
                    let idx = next_idx;
                    next_idx += 1;
                    conns.insert(
                        idx,
                        Conn {
                            fd,
                            buf: vec![0; 4096],
                            filled: 0,
                            sent: 0,
                            pipe,
                            spliced_in: 0,
                            in_pipe: 0,
                        },
                    );
                    recv(&mut ring, &push, idx, conns.get_mut(&idx).unwrap());
                }
                continue;
            }
            if cqueue::notif(cqe.flags()) {
                continue; // SEND_ZC: the kernel let go of the buffer.
            }
            let Some(conn) = conns.get_mut(&idx) else {
                continue;
            };
            let ok = match kind {
                RECV if res > 0 => {
                    conn.filled += res as usize;
                    if let Some(end) = conn.buf[..conn.filled]
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                    {
                        conn.buf.copy_within(end + 4..conn.filled, 0);
                        conn.filled -= end + 4;
                        conn.sent = 0;
                        let e =
                            opcode::Send::new(types::Fd(conn.fd), head.as_ptr(), head.len() as u32)
                                .flags(libc::MSG_MORE)
                                .build();
                        push(&mut ring, e.user_data(data(idx, HEAD)));
                    } else {
                        recv(&mut ring, &push, idx, conn);
                    }
                    true
                }
                // A body error (peer gone) closes the connection.
                HEAD if res == head.len() as i32 => {
                    send_body(mode, &mut ring, &push, idx, conn, &body, &file).is_ok()
                }
                SPLICE_IN if res > 0 => {
                    conn.spliced_in = res as usize;
                    true
                }
                SPLICE_IN => res == -libc::ECANCELED,
                BODY if res >= 0 || res == -libc::ECANCELED => {
                    match mode {
                        Mode::Splice => {
                            let out = if res == -libc::ECANCELED {
                                0
                            } else {
                                res as usize
                            };
                            conn.in_pipe = conn.in_pipe + conn.spliced_in - out;
                            conn.sent += out;
                            conn.spliced_in = 0;
                        }
                        Mode::SendZc | Mode::Send => conn.sent += res as usize,
                        Mode::Sendfile | Mode::SpliceSync => {} // readiness; the sync path tracks `sent`
                    }
                    if conn.sent >= body.len() {
                        recv(&mut ring, &push, idx, conn);
                        true
                    } else {
                        send_body(mode, &mut ring, &push, idx, conn, &body, &file).is_ok()
                    }
                }
                _ => false,
            };
            if !ok {
                if let Some(conn) = conns.remove(&idx) {
                    // SAFETY: closing descriptors this loop owns.
                    unsafe {
                        libc::close(conn.fd);
                        if let Some((r, w)) = conn.pipe {
                            libc::close(r);
                            libc::close(w);
                        }
                    }
                }
            }
        }
    }
}

fn recv(
    ring: &mut IoUring,
    push: &impl Fn(&mut IoUring, squeue::Entry),
    idx: usize,
    conn: &mut Conn,
) {
    let spare = &mut conn.buf[conn.filled..];
    let e = opcode::Recv::new(types::Fd(conn.fd), spare.as_mut_ptr(), spare.len() as u32).build();
    push(ring, e.user_data(data(idx, RECV)));
}

fn send_body(
    mode: Mode,
    ring: &mut IoUring,
    push: &impl Fn(&mut IoUring, squeue::Entry),
    idx: usize,
    conn: &mut Conn,
    body: &[u8],
    file: &std::fs::File,
) -> io::Result<()> {
    let rest = &body[conn.sent..];
    let fd = types::Fd(conn.fd);
    match mode {
        Mode::Send => push(
            ring,
            opcode::Send::new(fd, rest.as_ptr(), rest.len() as u32)
                .build()
                .user_data(data(idx, BODY)),
        ),
        Mode::SendZc => push(
            ring,
            opcode::SendZc::new(fd, rest.as_ptr(), rest.len() as u32)
                .build()
                .user_data(data(idx, BODY)),
        ),
        Mode::Splice => {
            let (r, w) = conn.pipe.expect("pipe");
            if conn.in_pipe > 0 {
                // Drain what a short splice-out left behind first.
                // Its completion subtracts what left from `in_pipe`.
                let e = opcode::Splice::new(types::Fd(r), -1, fd, -1, conn.in_pipe as u32);
                push(ring, e.build().user_data(data(idx, BODY)));
                conn.spliced_in = 0;
                return Ok(());
            }
            let chunk = rest.len().min(PIPE_SIZE) as u32;
            let offset = (body.len() - rest.len()) as i64;
            let first =
                opcode::Splice::new(types::Fd(file.as_raw_fd()), offset, types::Fd(w), -1, chunk)
                    .flags(libc::SPLICE_F_MOVE)
                    .build()
                    .flags(squeue::Flags::IO_LINK)
                    .user_data(data(idx, SPLICE_IN));
            let second = opcode::Splice::new(types::Fd(r), -1, fd, -1, chunk)
                .flags(libc::SPLICE_F_MOVE)
                .build()
                .user_data(data(idx, BODY));
            push(ring, first);
            push(ring, second);
        }
        Mode::SpliceSync => loop {
            let (r, w) = conn.pipe.expect("pipe");
            if conn.in_pipe == 0 {
                let mut off = (conn.sent) as libc::loff_t;
                let want = rest.len().min(PIPE_SIZE);
                // SAFETY: valid descriptors and offset pointer.
                let n = unsafe {
                    libc::splice(
                        file.as_raw_fd(),
                        &mut off,
                        w,
                        std::ptr::null_mut(),
                        want,
                        libc::SPLICE_F_MOVE,
                    )
                };
                if n <= 0 {
                    return Err(io::Error::last_os_error());
                }
                conn.in_pipe = n as usize;
            }
            // SAFETY: valid descriptors.
            let n = unsafe {
                libc::splice(
                    r,
                    std::ptr::null_mut(),
                    conn.fd,
                    std::ptr::null_mut(),
                    conn.in_pipe,
                    libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
                )
            };
            if n > 0 {
                conn.in_pipe -= n as usize;
            }
            if let Some(done) = after_sync_send(n as isize, ring, push, idx, conn, body.len()) {
                return done;
            }
        },
        Mode::Sendfile => loop {
            let mut off = conn.sent as libc::off_t;
            // SAFETY: valid descriptors and offset pointer.
            let n = unsafe { libc::sendfile(conn.fd, file.as_raw_fd(), &mut off, rest.len()) };
            if let Some(done) = after_sync_send(n, ring, push, idx, conn, body.len()) {
                return done;
            }
        },
    }
    Ok(())
}

/// Bookkeeping after a synchronous send of `n` bytes (or an error): `None`
/// to keep sending, `Some` when this turn is over — the body is complete
/// (next request armed), the socket is full (POLL_ADD armed), or an error.
fn after_sync_send(
    n: isize,
    ring: &mut IoUring,
    push: &impl Fn(&mut IoUring, squeue::Entry),
    idx: usize,
    conn: &mut Conn,
    body_len: usize,
) -> Option<io::Result<()>> {
    if n > 0 {
        conn.sent += n as usize;
        if conn.sent >= body_len {
            recv(ring, push, idx, conn);
            return Some(Ok(()));
        }
        return None;
    }
    let err = io::Error::last_os_error();
    if n < 0 && err.kind() == io::ErrorKind::WouldBlock {
        let e = opcode::PollAdd::new(types::Fd(conn.fd), libc::POLLOUT as u32).build();
        push(ring, e.user_data(data(idx, BODY)));
        return Some(Ok(()));
    }
    Some(Err(err))
}

fn make_pipe() -> io::Result<(RawFd, RawFd)> {
    let mut fds = [0; 2];
    // SAFETY: valid out array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl on our pipe; failure only leaves the default size.
    unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, PIPE_SIZE as libc::c_int) };
    Ok((fds[0], fds[1]))
}

fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: valid option pointer and size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            4,
        );
    }
}

/// Runs every mode at 64 KiB and 2 MiB, interleaved, and reports requests per
/// server CPU-second relative to `sendfile`.
pub fn run(o: &crate::harness::LoadOptions) -> Result<(), String> {
    use crate::harness::{free_port, median, record, wait_for_port};
    use std::fmt::Write as _;

    let dir = std::env::current_dir()
        .map_err(|e| e.to_string())?
        .join("bench/out/sendpath");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut report = format!(
        "Command: `target/release/streamgate-bench sendpath --rounds {} --duration {}`  \n\
         One single-thread io_uring responder per mode (`bench/src/sendpath.rs`), wrk 1 thread × {} connections, \
         {} s per run, modes interleaved, medians of {} rounds. Figure: requests per server CPU-second.\n\n\
         | body | splice | sendzc | send | sendfile | splice-sync | best |\n|---|---:|---:|---:|---:|---:|---|\n",
        o.rounds, o.seconds, o.connections, o.seconds, o.rounds
    );
    for (label, size) in [("64 KiB", 64usize << 10), ("2 MiB", 2 << 20)] {
        let file = dir.join(format!("body-{size}.m4s"));
        let bytes: Vec<u8> = (0..size).map(|i| (i * 13 + i / 251) as u8).collect();
        std::fs::write(&file, bytes).map_err(|e| e.to_string())?;
        let mut servers = Vec::new();
        for mode in Mode::ALL {
            let port = free_port();
            let mut child = std::process::Command::new(&exe)
                .args(["sendpath-serve", mode.name(), &port.to_string()])
                .arg(&file)
                .spawn()
                .map_err(|e| e.to_string())?;
            wait_for_port(port, &mut child, mode.name())?;
            servers.push((mode, port, child));
        }
        let url = |port: u16| format!("http://127.0.0.1:{port}/x");
        let outcome = (|| -> Result<Vec<f64>, String> {
            for (_, port, _) in &servers {
                crate::wrk::run(&url(*port), 1, o.connections, 1)?;
            }
            let mut per_cpu: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
            for round in 0..o.rounds {
                let mut order: Vec<usize> = (0..servers.len()).collect();
                order.rotate_left(round % servers.len());
                for i in order {
                    let (mode, port, child) = &servers[i];
                    let before = crate::procstat::cpu_seconds(child.id());
                    let w = crate::wrk::run(&url(*port), 1, o.connections, o.seconds)?;
                    let cpu = crate::procstat::cpu_seconds(child.id()) - before;
                    if w.errors > 0.0 {
                        return Err(format!("{} had {} errors", mode.name(), w.errors));
                    }
                    per_cpu[i].push(w.requests / cpu.max(0.01));
                }
            }
            Ok(per_cpu.into_iter().map(median).collect())
        })();
        for (_, _, mut child) in servers {
            let _ = child.kill();
            let _ = child.wait();
        }
        let medians = outcome?;
        let best = Mode::ALL[medians
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i)];
        let base = medians[3];
        let cells: Vec<String> = medians
            .iter()
            .map(|m| format!("{m:.0} ({:.2}×)", m / base))
            .collect();
        let _ = writeln!(
            report,
            "| {label} | {} | {} |",
            cells.join(" | "),
            best.name()
        );
    }
    print!("{report}");
    if let Some(path) = &o.markdown {
        record(path, "sendpath", &report)?;
    }
    Ok(())
}

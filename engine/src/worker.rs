//! One worker: a thread pinned to a core, its own monoio runtime (one
//! io_uring ring), its own `SO_REUSEPORT` listener, cache and counters.

use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use monoio::io::IntoPollIo;
use monoio::net::{ListenerOpts, TcpListener, TcpStream};
use streamgate_net::send;

use crate::cache;
use crate::config::EngineConfig;
use crate::context::Worker;
use crate::gate::{Gate, SharedAccess};
use crate::ingest::Ingest;
use crate::ktls::RecordBounded;
use crate::park::Parking;
use crate::serve::Site;
use crate::shutdown::Drain;
use crate::transport::{PlainTcp, TlsTcp};
use crate::{http1, http2, telemetry};

/// How often a worker looks at the drain flag.
const TICK: Duration = Duration::from_millis(50);
/// Submission queue entries per ring.
const RING_ENTRIES: u32 = 1024;
/// Ticks between metric flushes.
const FLUSH_EVERY: u32 = 5;
/// Everything a worker thread needs from the engine.
pub struct Spawn {
    /// Index, used for the core it pins to.
    pub index: usize,
    /// Engine configuration.
    pub config: Arc<EngineConfig>,
    /// Where the assets are.
    pub assets: Arc<dyn streamgate_assets::AssetStore>,
    /// Keys, revocations and open assets from the control plane.
    pub access: Arc<SharedAccess>,
    /// The ingest service, when uploads are enabled.
    pub ingest: Option<Arc<Ingest>>,
    /// The process-wide drain flag.
    pub drain: Drain,
    /// Where the listener's bind result is reported.
    pub bound: mpsc::Sender<io::Result<()>>,
    /// The TLS server configuration, when `[engine] listen_tls` is set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Where this worker's loop stamps its heartbeat.
    pub liveness: Arc<crate::liveness::Liveness>,
    /// Settings SIGHUP reloads.
    pub settings: Arc<crate::reload::Published>,
    /// HTTP-01 answers, when certificates come from ACME.
    pub challenges: Option<Arc<crate::acme::Challenges>>,
    /// The pages, when `[engine] web_root` is set.
    pub web: Option<Arc<crate::web::Web>>,
}

/// Runs a worker to completion on the current thread.
pub fn run(spawn: Spawn) {
    pin_to_core(spawn.index);
    let mut runtime = match build_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = spawn.bound.send(Err(e));
            return;
        }
    };
    runtime.block_on(serve(spawn));
}

async fn serve(spawn: Spawn) {
    let config = spawn.config;
    let workers = config.worker_count();
    let opts = ListenerOpts::new().reuse_port(true).backlog(4096);
    let listener = match TcpListener::bind_with_config(config.listen, &opts) {
        Ok(l) => l,
        Err(e) => {
            let _ = spawn.bound.send(Err(e));
            return;
        }
    };
    let tls_listener = match &config.tls {
        Some(t) => match TcpListener::bind_with_config(t.listen, &opts) {
            Ok(l) => Some(l),
            Err(e) => {
                let _ = spawn.bound.send(Err(e));
                return;
            }
        },
        None => None,
    };
    let parking = match Parking::new() {
        Ok(p) => p,
        Err(e) => {
            let _ = spawn.bound.send(Err(e));
            return;
        }
    };
    let _ = spawn.bound.send(Ok(()));

    let site = Site::new(
        &config,
        spawn.assets,
        spawn.challenges,
        spawn.web,
        Gate::new(spawn.access),
        cache::Limits {
            memory_bytes: config.cache_bytes / workers,
            max_memory_object: config.cache_max_object,
            max_entries: config.cache_open_files / workers,
        },
    );
    let max_connections = (config.max_connections / workers).max(1) as i64;
    let worker = Rc::new(Worker::new(
        Arc::clone(&config),
        site,
        spawn.ingest,
        max_connections,
        parking,
    ));
    match worker.parking.readiness() {
        Ok(ready) => {
            monoio::spawn(unpark(Rc::clone(&worker), ready));
        }
        Err(e) => tracing::error!(error = %e, "no parking for idle connections"),
    }
    monoio::spawn(housekeeping(
        Rc::clone(&worker),
        spawn.drain,
        Beat {
            liveness: spawn.liveness,
            settings: spawn.settings,
            index: spawn.index,
            workers,
        },
    ));
    if let (Some(listener), Some(server)) = (tls_listener, spawn.tls) {
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        monoio::spawn(accept_tls(listener, Rc::clone(&worker), acceptor));
    }

    accept_until_drained(&listener, &worker, |stream| admit(stream, &worker)).await;
    // Stop accepting: closing the listener lets the kernel steer new
    // connections to workers still listening (or refuse them).
    drop(listener);
    while worker.stats.borrow().open_connections() > 0 {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.stats.borrow_mut().flush();
}

type Runtime = monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>;

/// Builds the worker's runtime, asking the kernel to run io_uring completion
/// work only when the worker enters the ring (DEFER_TASKRUN): completions are
/// handled in batches instead of interrupting every syscall the worker makes.
/// Measured at +30% requests per CPU-second for 64 KiB bodies
/// (docs/decisions/0001-zero-copy-send.md). Kernels before 6.1 lack it, and
/// get COOP_TASKRUN (5.19+) or a plain ring.
fn build_runtime() -> io::Result<Runtime> {
    let mut last_error = None;
    for setup in [
        RingSetup::DeferTaskrun,
        RingSetup::CoopTaskrun,
        RingSetup::Plain,
    ] {
        let mut ring = io_uring::IoUring::builder();
        match setup {
            RingSetup::DeferTaskrun => {
                ring.setup_single_issuer().setup_defer_taskrun();
            }
            RingSetup::CoopTaskrun => {
                ring.setup_coop_taskrun().setup_taskrun_flag();
            }
            RingSetup::Plain => {}
        }
        match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(RING_ENTRIES)
            .uring_builder(ring)
            .enable_timer()
            .build()
        {
            Ok(rt) => return Ok(rt),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no io_uring setup worked")))
}

#[derive(Clone, Copy)]
enum RingSetup {
    DeferTaskrun,
    CoopTaskrun,
    Plain,
}

/// Starts serving an accepted connection, or refuses it at the cap.
fn admit(stream: TcpStream, worker: &Rc<Worker>) {
    let _ = stream.set_nodelay(true);
    if send::set_nonblocking(stream.as_raw_fd()).is_err() {
        return;
    }
    let mut stats = worker.stats.borrow_mut();
    if stats.open_connections() >= worker.max_connections.get() {
        stats.rejected();
        drop(stats);
        refuse(&stream);
        return;
    }
    stats.connection(1);
    drop(stats);
    monoio::spawn(connection(stream, Rc::clone(worker)));
}

/// One connection's task: serves it until it ends, or parks it when it
/// has been idle a while (it stays open, and counted). A client that opens
/// with the HTTP/2 preface (h2c, prior knowledge) is served by `http2`.
async fn connection(stream: TcpStream, worker: Rc<Worker>) {
    if worker.config.h2c && starts_h2(&stream, &worker).await {
        if let Ok(io) = stream.into_poll_io() {
            http2::serve(io, Rc::clone(&worker)).await;
        }
        worker.stats.borrow_mut().connection(-1);
        return;
    }
    match http1::serve(PlainTcp::new(stream), Rc::clone(&worker)).await {
        Some((transport, until)) => {
            if let Err(e) = worker.parking.park(transport.into_stream(), until) {
                tracing::warn!(error = %e, "cannot park an idle connection; closed");
                worker.stats.borrow_mut().connection(-1);
            }
        }
        None => worker.stats.borrow_mut().connection(-1),
    }
}

/// Whether the client's first bytes are the HTTP/2 connection preface:
/// waits for them (within the idle timeout) and peeks, leaving them for
/// whichever codec reads them.
async fn starts_h2(stream: &TcpStream, worker: &Worker) -> bool {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
    let ready = monoio::time::timeout(worker.config.idle_timeout, stream.readable(false)).await;
    if !matches!(ready, Ok(Ok(()))) {
        return false;
    }
    let mut peek = [0u8; 16];
    // SAFETY: recv writes at most `peek.len()` bytes into our buffer.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            peek.as_mut_ptr().cast(),
            peek.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n == PREFACE.len() as isize && peek[..] == PREFACE[..]
}

/// Accepts TLS connections: the handshake within its timeout, then HTTP/2
/// or HTTP/1.1 as ALPN chose, on this worker.
async fn accept_tls(
    listener: TcpListener,
    worker: Rc<Worker>,
    acceptor: tokio_rustls::TlsAcceptor,
) {
    accept_until_drained(&listener, &worker, |stream| {
        let _ = stream.set_nodelay(true);
        let mut stats = worker.stats.borrow_mut();
        if stats.open_connections() >= worker.max_connections.get() {
            stats.rejected();
            return; // dropped: no plaintext 503 inside a TLS port
        }
        stats.connection(1);
        drop(stats);
        monoio::spawn(tls_connection(stream, Rc::clone(&worker), acceptor.clone()));
    })
    .await;
}

/// Accepts on `listener` until the worker drains, handing each connection
/// to `on_accept`.
async fn accept_until_drained(
    listener: &TcpListener,
    worker: &Worker,
    mut on_accept: impl FnMut(TcpStream),
) {
    let mut drained = std::pin::pin!(worker.drain.wait());
    loop {
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = drained.as_mut() => break,
        };
        let Ok((stream, _peer)) = accepted else {
            // EMFILE and friends: back off briefly instead of spinning.
            monoio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        on_accept(stream);
    }
}

/// One TLS connection's task.
async fn tls_connection(
    stream: TcpStream,
    worker: Rc<Worker>,
    acceptor: tokio_rustls::TlsAcceptor,
) {
    serve_tls(stream, &worker, acceptor).await;
    worker.stats.borrow_mut().connection(-1);
}

async fn serve_tls(stream: TcpStream, worker: &Rc<Worker>, acceptor: tokio_rustls::TlsAcceptor) {
    let Ok(io) = stream.into_poll_io() else {
        return;
    };
    let timeout = worker
        .config
        .tls
        .as_ref()
        .map_or(Duration::from_secs(10), |t| t.handshake_timeout);
    // Secret extraction is on only where the kernel takes TLS over.
    let ktls = acceptor.config().enable_secret_extraction;
    let io = RecordBounded::new(io, ktls);
    let mut tls = match monoio::time::timeout(timeout, acceptor.accept(io)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            telemetry::handshake_failed(handshake_reason(&e));
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            telemetry::handshake_failed("timeout");
            return;
        }
    };
    let session = tls.get_ref().1;
    let h2 = session.alpn_protocol() == Some(b"h2");
    let version = match session.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
        _ => "other",
    };
    telemetry::tls_connection(if h2 { "h2" } else { "http1" }, version);
    if ktls && !h2 && crate::ktls::ready(&mut tls) {
        let (io, session) = tls.into_inner();
        if let Err(e) = crate::ktls::hand_over(io.get_ref().as_raw_fd(), session) {
            telemetry::ktls_connection("failed");
            tracing::debug!(error = %e, "kTLS hand-over failed; connection closed");
            return;
        }
        telemetry::ktls_connection("kernel");
        if let Ok(stream) = io.into_inner().try_into_comp_io() {
            if send::set_nonblocking(stream.as_raw_fd()).is_err() {
                return;
            }
            // From here a plain connection: spliced bodies, and parking
            // (which keeps its own count of the connection).
            worker.stats.borrow_mut().connection(1);
            connection(stream, Rc::clone(worker)).await;
        }
        return;
    }
    tls.get_mut().0.unbound();
    if h2 {
        http2::serve(tls, Rc::clone(worker)).await;
    } else {
        if ktls {
            telemetry::ktls_connection("userspace");
        }
        // TLS connections do not park (see `Transport::PARKS`).
        let _ = http1::serve(TlsTcp::new(tls), Rc::clone(worker)).await;
    }
}

/// The metrics label of a failed handshake.
fn handshake_reason(e: &io::Error) -> &'static str {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::NoApplicationProtocol) => "no_alpn",
        Some(rustls::Error::AlertReceived(_)) => "alert_received",
        Some(rustls::Error::InvalidMessage(_)) => "invalid_message",
        Some(rustls::Error::PeerIncompatible(_)) => "incompatible",
        // The certificate resolver had nothing for the name asked (strict
        // SNI). rustls says so only in words; `tests/tls_h2.rs` checks the
        // label, so a change of wording shows.
        Some(rustls::Error::General(m)) if m == "no server certificate chain resolved" => {
            "no_certificate"
        }
        Some(_) => "tls_error",
        None if e.kind() == io::ErrorKind::UnexpectedEof => "closed",
        None => "io",
    }
}

/// Gives parked connections that turned readable a task again.
async fn unpark(worker: Rc<Worker>, ready: monoio::net::UnixStream) {
    loop {
        if ready.readable(false).await.is_err() {
            monoio::time::sleep(TICK).await;
            continue;
        }
        for socket in worker.parking.take_ready() {
            match TcpStream::from_std(socket) {
                Ok(stream) => {
                    monoio::spawn(connection(stream, Rc::clone(&worker)));
                }
                Err(_) => worker.stats.borrow_mut().connection(-1),
            }
        }
    }
}

/// Best-effort 503 on a connection over the cap; never waits for the peer.
fn refuse(stream: &TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\
        Retry-After: 1\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
    // SAFETY: a valid buffer on an open socket; the result is deliberately ignored.
    unsafe {
        libc::send(
            stream.as_raw_fd(),
            BUSY.as_ptr().cast(),
            BUSY.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        );
    }
}

/// What a worker's housekeeping shares with the engine.
struct Beat {
    liveness: Arc<crate::liveness::Liveness>,
    settings: Arc<crate::reload::Published>,
    index: usize,
    workers: usize,
}

/// Watches the drain flag, flushes counters, stamps the worker's
/// heartbeat (this task runs only when the worker's loop turns) and takes
/// reloaded settings.
async fn housekeeping(worker: Rc<Worker>, drain: Drain, beat: Beat) {
    let (liveness, index) = (&beat.liveness, beat.index);
    let mut ticks = 0u32;
    let mut settings_seen = 0u64;
    loop {
        monoio::time::sleep(TICK).await;
        ticks += 1;
        liveness.beat(index);
        if let Some(settings) = beat.settings.newer_than(&mut settings_seen) {
            worker.site.apply(&settings);
            worker
                .max_connections
                .set((settings.max_connections / beat.workers).max(1) as i64);
        }
        if let Some(stall) = liveness.take_stall(index) {
            tracing::warn!(
                worker = index,
                ?stall,
                "fault injection: stalling this worker's thread"
            );
            std::thread::sleep(stall);
        }
        worker.deadlines.fire(std::time::Instant::now());
        worker.site.gate.refresh();
        if drain.is_triggered() && !worker.drain.is_drained() {
            worker.drain.fire();
            worker.deadlines.drain();
        }
        // Parked connections past their idle timeout close (all of them
        // once draining).
        let closed = worker
            .parking
            .close_expired(std::time::Instant::now(), worker.drain.is_drained());
        if closed > 0 {
            worker.stats.borrow_mut().connection(-(closed as i64));
        }
        if ticks.is_multiple_of(FLUSH_EVERY) {
            let mut stats = worker.stats.borrow_mut();
            stats.cache_bytes(worker.site.cache_bytes());
            stats.parked(worker.parking.len());
            stats.flush();
        }
    }
}

/// Pins the calling thread to the `index`-th CPU it may run on, so a
/// worker's ring, cache and sockets stay on one core.
fn pin_to_core(index: usize) {
    // SAFETY: cpu_set_t is plain data; the calls read and write only it.
    unsafe {
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut allowed) != 0 {
            return;
        }
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &allowed))
            .collect();
        if cpus.is_empty() {
            return;
        }
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpus[index % cpus.len()], &mut one);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one);
    }
}

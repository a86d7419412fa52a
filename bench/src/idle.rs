//! What an idle keep-alive connection costs in server memory: nginx and
//! `streamgate engine` (one worker each) each take `--connections` clients
//! that send one 4 KiB GET and then stay connected doing nothing, the way
//! players and CDN pools hold connections between segment fetches. The
//! figure is the server's growth in resident memory (VmRSS from /proc,
//! nginx's worker process) divided by the number of connections.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::harness::{free_port, median, record, start_engine, start_nginx};

/// Options of `streamgate-bench idle`.
pub struct Options {
    connections: usize,
    rounds: usize,
    streamgate: PathBuf,
    markdown: Option<PathBuf>,
}

impl Options {
    /// Parses `--flag value` pairs.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = Self {
            connections: 9000,
            rounds: 3,
            streamgate: PathBuf::from("target/release/streamgate"),
            markdown: None,
        };
        for (flag, value) in crate::harness::flags(args)? {
            match flag {
                "--connections" => o.connections = crate::harness::number(flag, value)?,
                "--rounds" => o.rounds = crate::harness::number(flag, value)?,
                "--streamgate" => o.streamgate = value.into(),
                "--markdown" => o.markdown = Some(value.into()),
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        o.connections = o.connections.max(1);
        o.rounds = o.rounds.max(1);
        Ok(o)
    }
}

const BODY: usize = 4096;
/// Connections opened at once when arrivals are paced.
const ARRIVAL_BATCH: usize = 500;
/// Pause between paced batches.
const ARRIVAL_PAUSE: Duration = Duration::from_millis(1200);

/// Runs the benchmark and prints (and optionally records) the table.
pub fn run(o: &Options) -> Result<(), String> {
    raise_fd_limit();
    let dir = std::env::current_dir()
        .map_err(|e| e.to_string())?
        .join("bench/out/idle");
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("a")).map_err(|e| e.to_string())?;
    std::fs::write(root.join("a/4k.m4s"), vec![7u8; BODY]).map_err(|e| e.to_string())?;
    if !o.streamgate.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release` first",
            o.streamgate.display()
        ));
    }
    let location = format!("location /v/ {{ alias {}/; }}", root.display());
    // Fresh servers each round: memory freed by one round stays with the
    // allocator and would be reused by the next, hiding the cost.
    let mut rows = Vec::new();
    for pace in [false, true] {
        let mut bytes: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for round in 0..o.rounds {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                bytes[i].push(measure(o, &dir, &root, &location, i == 0, pace)?);
            }
        }
        rows.push((pace, bytes));
    }
    let mut report = String::new();
    let _ = writeln!(
        report,
        "Command: `target/release/streamgate-bench idle --connections {} --rounds {}`  \n\
         {} keep-alive connections, each after one {BODY}-byte GET, held idle; one worker each; \
         growth of the server's VmRSS (nginx: its worker) over the idle connections, fresh servers \
         every round, interleaved, medians of {}. \"At once\": opened back to back; \"arriving\": \
         {ARRIVAL_BATCH} at a time, {} ms apart, as viewers join over time (the engine parks \
         connections idle for a second).\n\n\
         | bytes per idle connection | nginx | streamgate | streamgate / nginx |\n|---|---:|---:|---:|",
        o.connections,
        o.rounds,
        o.connections,
        o.rounds,
        ARRIVAL_PAUSE.as_millis(),
    );
    for (pace, bytes) in &rows {
        let (n, s) = (median(bytes[0].clone()), median(bytes[1].clone()));
        let _ = writeln!(
            report,
            "| {} | {n:.0} | {s:.0} | {:.2}× |",
            if *pace {
                "arriving over time"
            } else {
                "opened at once"
            },
            s / n.max(1.0)
        );
    }
    report.push('\n');
    for (pace, bytes) in &rows {
        let _ = writeln!(
            report,
            "Per round, {} (nginx / streamgate): {}  ",
            if *pace { "arriving" } else { "at once" },
            bytes[0]
                .iter()
                .zip(&bytes[1])
                .map(|(a, b)| format!("{a:.0} / {b:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    print!("{report}");
    if let Some(path) = &o.markdown {
        record(path, "idle", &report)?;
        eprintln!("recorded in {}", path.display());
    }
    Ok(())
}

/// Starts one server, measures, stops it.
fn measure(
    o: &Options,
    dir: &std::path::Path,
    root: &std::path::Path,
    location: &str,
    nginx: bool,
    pace: bool,
) -> Result<f64, String> {
    let port = free_port();
    let mut server = if nginx {
        start_nginx(dir, port, 1, location)?
    } else {
        start_engine(
            &o.streamgate,
            root,
            port,
            1,
            &[
                ("STREAMGATE_ENGINE__MAX_CONNECTIONS", "100000"),
                ("STREAMGATE_ENGINE__IDLE_TIMEOUT", "10m"),
            ],
        )?
    };
    let measured = if nginx {
        worker_of(server.id()).ok_or_else(|| "nginx has no worker process".to_string())
    } else {
        Ok(server.id())
    }
    .and_then(|pid| per_connection(port, pid, o.connections, pace));
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let _ = server.wait();
    measured
}

/// Opens `count` connections to `port`, one GET each, and returns the growth
/// of `pid`'s resident memory per connection while they sit idle.
fn per_connection(port: u16, pid: u32, count: usize, pace: bool) -> Result<f64, String> {
    let request = format!("GET /v/a/4k.m4s HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    // Warm: the file in the server's cache, its allocator's first arenas.
    let warm = connect_and_get(port, &request)?;
    drop(connect_and_get(port, &request)?);
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_bytes(pid)?;
    let mut held = Vec::with_capacity(count);
    for i in 0..count {
        held.push(connect_and_get(port, &request)?);
        if pace && (i + 1) % ARRIVAL_BATCH == 0 {
            // Arrivals spread over time, as players join: each batch has
            // been idle a while before the next comes.
            std::thread::sleep(ARRIVAL_PAUSE);
        }
    }
    // Let the server settle into waiting on every connection (the engine
    // parks connections idle for a second).
    std::thread::sleep(Duration::from_millis(3000));
    let after = rss_bytes(pid)?;
    drop(held);
    drop(warm);
    Ok(after.saturating_sub(before) as f64 / count as f64)
}

fn connect_and_get(port: u16, request: &str) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    // Read the one response: head then exactly BODY bytes.
    let mut got = Vec::with_capacity(BODY + 512);
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the server closed a connection".into());
        }
        got.extend_from_slice(&chunk[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            if got.len() >= end + 4 + BODY {
                return Ok(s);
            }
        }
    }
}

/// VmRSS of `pid`, in bytes.
fn rss_bytes(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("no VmRSS for {pid}"))
}

/// The first child process of `pid` (nginx's worker under its master).
fn worker_of(pid: u32) -> Option<u32> {
    for _ in 0..50 {
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
        if let Some(first) = children.split_whitespace().next() {
            return first.parse().ok();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Idle connections need descriptors: up to the hard limit.
fn raise_fd_limit() {
    // SAFETY: get/setrlimit on this process with a valid struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

//! Does the harness see a stall? A small server on loopback answers at
//! once except that the first request after every `every` seconds waits a
//! second (by time, not by count: counted stalls would come as often as a
//! closed loop is fast, and fill every connection); at a fixed rate
//! the open-loop run (latency from each request's intended send) shows the
//! stall in its tail, while our closed-loop run sends nothing while it
//! waits and hides it; `wrk` is shown beside (it back-fills its closed-loop
//! histogram after the run, an estimate of the same correction).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{flags, number, record};
use crate::wrk;

/// `honesty` options.
pub struct Options {
    rate: u64,
    seconds: u64,
    connections: usize,
    every: u64,
    streamgate: std::path::PathBuf,
    markdown: Option<std::path::PathBuf>,
}

impl Options {
    /// Parses `--rate --duration --connections --every --streamgate --markdown`.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = Self {
            rate: 200,
            seconds: 20,
            connections: 8,
            every: 5,
            streamgate: "target/release/streamgate".into(),
            markdown: None,
        };
        for (flag, value) in flags(args)? {
            match flag {
                "--rate" => o.rate = number(flag, value)?,
                "--duration" => o.seconds = number(flag, value)?,
                "--connections" => o.connections = number(flag, value)?,
                "--every" => o.every = number::<u64>(flag, value)?.max(1),
                "--streamgate" => o.streamgate = value.into(),
                "--markdown" => o.markdown = Some(value.into()),
                _ => return Err(format!("unknown option {flag}\n{}", crate::USAGE)),
            }
        }
        Ok(o)
    }
}

/// Starts the stalling server; returns its port.
fn stalling_server(every: u64) -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let start = Instant::now();
    // The last `every`-second period that has had its stall.
    let stalled = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let stalled = Arc::clone(&stalled);
            std::thread::spawn(move || {
                // One write per answer, sent at once (no Nagle wait).
                let _ = stream.set_nodelay(true);
                let Ok(read) = stream.try_clone() else { return };
                let mut reader = BufReader::new(read);
                let mut out = stream;
                let mut line = String::new();
                loop {
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    let period = start.elapsed().as_secs() / every;
                    if period > stalled.load(Ordering::SeqCst)
                        && stalled.swap(period, Ordering::SeqCst) < period
                    {
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    let mut answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec();
                    answer.extend_from_slice(&[b'x'; 100]);
                    if out.write_all(&answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(port)
}

/// Latency percentiles (ms) of one `loadtest run`.
fn ours(o: &Options, url: &str, rate: Option<u64>) -> Result<[f64; 5], String> {
    let json = std::env::temp_dir().join(format!("sg-honesty-{}.json", std::process::id()));
    let mut cmd = Command::new(&o.streamgate);
    cmd.args(["loadtest", "run", "--url", url])
        .args(["--connections", &o.connections.to_string()])
        .args(["--duration", &format!("{}s", o.seconds)])
        .arg("--json")
        .arg(&json);
    if let Some(rate) = rate {
        cmd.args(["--rate", &rate.to_string()]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", o.streamgate.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&json);
    let l = &v["latency_ms"];
    let f = |k: &str| l[k].as_f64().unwrap_or(f64::NAN);
    Ok([
        v["requests"].as_f64().unwrap_or(0.0),
        f("p50"),
        f("p99"),
        f("p999"),
        f("max"),
    ])
}

/// Runs the three and prints (and optionally records) the table.
pub fn run(o: &Options) -> Result<(), String> {
    let port = stalling_server(o.every)?;
    let url = format!("http://127.0.0.1:{port}/x");
    let open = ours(o, &url, Some(o.rate))?;
    let closed = ours(o, &url, None)?;
    let w = wrk::run(&url, 1, o.connections, o.seconds)?;
    let mut report = String::new();
    let _ = writeln!(
        report,
        "Command: `target/release/streamgate-bench honesty --rate {} --duration {} --connections {} --every {}` \
         (`scripts/bench-loadtest.sh`)  \n\
         A loopback server answers 100 bytes at once, except that the first request after every {} s waits 1 s. \
         Latency in ms.\n\n\
         | run | requests | p50 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|\n\
         | loadtest, open loop at {}/s (corrected) | {:.0} | {:.2} | {:.1} | {:.1} | {:.1} |\n\
         | loadtest, closed loop | {:.0} | {:.2} | {:.2} | {:.1} | {:.1} |\n\
         | wrk (closed loop) | {:.0} | - | {:.2} | - | - |\n\n\
         The open-loop tail shows the stall, measured: every request meant to go out during the \
         second the connection waits is late. Our closed loop reports each request as it was \
         sent, and the stall is a handful of slow requests among a million. wrk's tail is not \
         raw either: before printing, wrk 4 back-fills its histogram (`stats_correct`, with the \
         average interval per connection as the expected one), so its p99 estimates the stall \
         from a closed-loop run rather than hiding it.\n",
        o.rate, o.seconds, o.connections, o.every, o.every, o.rate,
        open[0], open[1], open[2], open[3], open[4],
        closed[0], closed[1], closed[2], closed[3], closed[4],
        w.requests, w.p99_ms,
    );
    print!("{report}");
    if let Some(path) = &o.markdown {
        record(path, "honesty", &report)?;
        eprintln!("recorded in {}", path.display());
    }
    Ok(())
}

//! The HTTP origin benchmark: `streamgate engine` against nginx.

use std::fmt::Write as _;

use crate::harness::{free_port, median, record, start_engine, start_nginx, LoadOptions};
use crate::wrk::{self, WrkResult};
use crate::{loadgen, procstat};

/// The bodies compared, as (label, file name, size).
const BODIES: [(&str, &str, usize); 2] = [
    ("64 KiB", "64k.m4s", 64 << 10),
    ("2 MiB", "2m.m4s", 2 << 20),
];

#[derive(Clone, Copy, PartialEq)]
enum Server {
    Nginx,
    Engine,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Engine => "streamgate",
        }
    }
}

/// One measured run.
#[derive(Clone, Copy)]
struct Sample {
    wrk: WrkResult,
    cpu_seconds: f64,
    /// The same load from `streamgate loadtest run` (one thread, same
    /// connections and duration), and the server CPU it cost.
    ours: WrkResult,
    ours_cpu_seconds: f64,
}

impl Sample {
    fn per_cpu_second(&self) -> f64 {
        self.wrk.requests / self.cpu_seconds.max(0.01)
    }

    fn ours_per_cpu_second(&self) -> f64 {
        self.ours.requests / self.ours_cpu_seconds.max(0.01)
    }
}

/// Runs the benchmark and prints (and optionally records) the table.
pub fn run(o: &LoadOptions) -> Result<(), String> {
    let dir = std::env::current_dir()
        .map_err(|e| e.to_string())?
        .join("bench/out/http");
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("a")).map_err(|e| e.to_string())?;
    for (_, name, size) in BODIES {
        let bytes: Vec<u8> = (0..size).map(|i| (i * 7 + i / 255) as u8).collect();
        std::fs::write(root.join("a").join(name), bytes).map_err(|e| e.to_string())?;
    }
    if !o.streamgate.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release` first",
            o.streamgate.display()
        ));
    }

    let nginx_port = free_port();
    let engine_port = free_port();
    let location = format!("location /v/ {{ alias {}/; }}", root.display());
    let mut nginx = start_nginx(&dir, nginx_port, o.threads, &location)?;
    let mut engine = start_engine(&o.streamgate, &root, engine_port, o.threads, &[])?;
    let servers = [
        (Server::Nginx, nginx_port, nginx.id()),
        (Server::Engine, engine_port, engine.id()),
    ];

    let mut report = String::new();
    let _ = writeln!(
        report,
        "Command: `scripts/bench-http.sh` (= `streamgate-bench http --rounds {} --duration {} --connections {} --threads {}`)  \n\
         wrk: 1 thread, {} connections, {} s per run, then `streamgate loadtest run` with the same (one thread, closed loop); \
         server: {} worker(s); interleaved rounds, medians of {}.  \n\
         nginx: Debian's, sendfile on, tcp_nopush on, tcp_nodelay on, access_log off (the issue's anchor settings).\n",
        o.rounds, o.seconds, o.connections, o.threads, o.connections, o.seconds, o.threads, o.rounds
    );
    let result = (|| -> Result<(), String> {
        for (label, name, _) in BODIES {
            // Warm both (page cache, hot cache, connection setup).
            for &(_, port, _) in &servers {
                wrk::run(&url(port, name), 1, o.connections, 1)?;
            }
            let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
            for round in 0..o.rounds {
                let order: Vec<usize> = if round % 2 == 0 {
                    vec![0, 1]
                } else {
                    vec![1, 0]
                };
                for i in order {
                    let (_, port, pid) = servers[i];
                    let before = procstat::cpu_seconds(pid);
                    let wrk = wrk::run(&url(port, name), 1, o.connections, o.seconds)?;
                    let cpu_seconds = procstat::cpu_seconds(pid) - before;
                    let before = procstat::cpu_seconds(pid);
                    let ours = loadgen::loadtest_run(
                        &o.streamgate,
                        &url(port, name),
                        o.connections,
                        o.seconds,
                        &dir,
                    )?;
                    let ours_cpu_seconds = procstat::cpu_seconds(pid) - before;
                    if wrk.errors > 0.0 || ours.errors > 0.0 {
                        return Err(format!(
                            "{} answered {} errors at {label}",
                            servers[i].0.name(),
                            wrk.errors + ours.errors
                        ));
                    }
                    samples[i].push(Sample {
                        wrk,
                        cpu_seconds,
                        ours,
                        ours_cpu_seconds,
                    });
                }
            }
            report.push_str(&table(label, &samples));
        }
        Ok(())
    })();
    // SIGTERM, not SIGKILL: nginx's master only takes its workers down on a
    // signal it can handle, and the engine drains.
    for child in [&mut nginx, &mut engine] {
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
    }
    result?;

    print!("{report}");
    if let Some(path) = &o.markdown {
        record(path, "http", &report)?;
        eprintln!("recorded in {}", path.display());
    }
    Ok(())
}

/// Reads one figure from a sample.
type Metric = fn(&Sample) -> f64;

fn table(label: &str, samples: &[Vec<Sample>; 2]) -> String {
    let metric = |i: usize, f: Metric| median(samples[i].iter().map(f).collect());
    let rows: [(&str, Metric); 8] = [
        ("req/s (wrk)", |s| s.wrk.rps),
        ("MB/s (wrk)", |s| s.wrk.mb_per_s),
        ("p99 ms (wrk)", |s| s.wrk.p99_ms),
        ("req per server CPU-s (wrk)", |s| s.per_cpu_second()),
        ("server CPU-s per run (wrk)", |s| s.cpu_seconds),
        ("req/s (loadtest)", |s| s.ours.rps),
        ("p99 ms (loadtest)", |s| s.ours.p99_ms),
        ("req per server CPU-s (loadtest)", |s| {
            s.ours_per_cpu_second()
        }),
    ];
    let mut out = format!("\n### {label} bodies\n\n| metric | nginx | streamgate | streamgate / nginx |\n|---|---:|---:|---:|\n");
    for (name, f) in rows {
        let (a, b) = (metric(0, f), metric(1, f));
        let _ = writeln!(
            out,
            "| {name} | {a:.2} | {b:.2} | {:.2}× |",
            b / a.max(1e-9)
        );
    }
    let per_round: Vec<String> = samples[0]
        .iter()
        .zip(&samples[1])
        .map(|(n, s)| format!("{:.2}×", s.per_cpu_second() / n.per_cpu_second()))
        .collect();
    let _ = writeln!(
        out,
        "\nPer-round req/CPU-s ratios: {}",
        per_round.join(", ")
    );
    out
}

fn url(port: u16, name: &str) -> String {
    format!("http://127.0.0.1:{port}/v/a/{name}")
}

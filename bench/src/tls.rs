//! TLS and HTTP/2: `streamgate engine` against nginx + OpenSSL (Debian's),
//! same files, same ECDSA P-256 certificate, one worker each, interleaved
//! rounds, medians. Figures per *server* CPU-second (utime+stime from
//! /proc), steadier than requests per second when the load generator
//! shares the two cores: HTTPS/1.1 with wrk, HTTP/2 over TLS with h2load
//! (`-c 32 -m 8`), and new connections with `openssl s_time` (full
//! handshakes, and resumed ones).

use std::fmt::Write as _;
use std::process::Command;

use crate::harness::{
    free_port, median, record, start_engine, start_nginx, wait_for_port, LoadOptions,
};
use crate::procstat;
use crate::wrk;

const BODIES: [(&str, &str, usize); 2] = [
    ("64 KiB", "64k.m4s", 64 << 10),
    ("2 MiB", "2m.m4s", 2 << 20),
];

/// One server under test: its name, TLS port and pid.
struct Server {
    name: &'static str,
    port: u16,
    pid: u32,
}

/// Runs the benchmark and prints (and optionally records) the tables.
pub fn run(o: &LoadOptions) -> Result<(), String> {
    let dir = std::env::current_dir()
        .map_err(|e| e.to_string())?
        .join("bench/out/tls");
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("a")).map_err(|e| e.to_string())?;
    for (_, name, size) in BODIES {
        let bytes: Vec<u8> = (0..size).map(|i| (i * 7 + i / 255) as u8).collect();
        std::fs::write(root.join("a").join(name), bytes).map_err(|e| e.to_string())?;
    }
    let (cert, key) = streamgate_testkit::tls::self_signed(&dir)?;
    let (nginx_plain, nginx_tls, engine_plain, engine_tls) =
        (free_port(), free_port(), free_port(), free_port());
    let site = format!(
        "location /v/ {{ alias {}/; }}\n    listen 127.0.0.1:{nginx_tls} ssl http2;\n    \
         ssl_certificate {};\n    ssl_certificate_key {};\n    ssl_protocols TLSv1.2 TLSv1.3;\n    \
         ssl_session_tickets on;\n    ssl_session_cache shared:SSL:10m;",
        root.display(),
        cert.display(),
        key.display()
    );
    let mut nginx = start_nginx(&dir, nginx_plain, o.threads, &site)?;
    let listen_tls = format!("127.0.0.1:{engine_tls}");
    let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
    let mut engine = start_engine(
        &o.streamgate,
        &root,
        engine_plain,
        o.threads,
        &[
            ("STREAMGATE_ENGINE__LISTEN_TLS", listen_tls.as_str()),
            ("STREAMGATE_ENGINE__TLS__CERT", cert_s.as_str()),
            ("STREAMGATE_ENGINE__TLS__KEY", key_s.as_str()),
        ],
    )?;
    let result = (|| -> Result<String, String> {
        wait_for_port(nginx_tls, &mut nginx, "nginx (TLS)")?;
        wait_for_port(engine_tls, &mut engine, "streamgate engine (TLS)")?;
        let servers = [
            Server {
                name: "nginx",
                port: nginx_tls,
                pid: nginx.id(),
            },
            Server {
                name: "streamgate",
                port: engine_tls,
                pid: engine.id(),
            },
        ];
        let mut report = String::new();
        let _ = writeln!(
            report,
            "Command: `scripts/bench-tls.sh` (= `streamgate-bench tls --rounds {} --duration {} --connections {} --threads {}`)  \n\
             Same files and ECDSA P-256 certificate; nginx (Debian's, OpenSSL, `ssl http2`, session tickets and cache) \
             and the engine with {} worker(s); interleaved rounds, medians of {}. Figure: requests (or connections) \
             per server CPU-second.\n",
            o.rounds, o.seconds, o.connections, o.threads, o.threads, o.rounds
        );
        report.push_str(
            "\n| load | nginx | streamgate | streamgate / nginx |\n|---|---:|---:|---:|\n",
        );
        for (label, name, _) in BODIES {
            let url = |port: u16| format!("https://127.0.0.1:{port}/v/a/{name}");
            let https1 = rounds(o, &servers, |s| {
                Ok(wrk::run(&url(s.port), 1, o.connections, o.seconds)?.requests)
            })?;
            row(
                &mut report,
                &format!("HTTPS/1.1 {label} (wrk -c {})", o.connections),
                https1,
            );
            let h2 = rounds(o, &servers, |s| {
                h2load(&url(s.port), o.connections, o.seconds)
            })?;
            row(
                &mut report,
                &format!("HTTP/2 {label} (h2load -c {} -m 8)", o.connections),
                h2,
            );
        }
        let full = rounds(o, &servers, |s| s_time(s.port, &["-new"], o.seconds))?;
        row(
            &mut report,
            "new connections, full TLS 1.3 handshake (s_time -new)",
            full,
        );
        let full12 = rounds(o, &servers, |s| {
            s_time(s.port, &["-new", "-tls1_2"], o.seconds)
        })?;
        row(
            &mut report,
            "new connections, full TLS 1.2 handshake (s_time -new -tls1_2)",
            full12,
        );
        // s_time resumes only TLS 1.2 sessions (it never reads 1.3 tickets).
        let resumed = rounds(o, &servers, |s| {
            s_time(s.port, &["-reuse", "-tls1_2"], o.seconds)
        })?;
        row(
            &mut report,
            "new connections, resumed TLS 1.2 (s_time -reuse -tls1_2)",
            resumed,
        );
        Ok(report)
    })();
    for child in [&mut nginx, &mut engine] {
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
    }
    let report = result?;
    print!("{report}");
    if let Some(path) = &o.markdown {
        record(path, "tls", &report)?;
        eprintln!("recorded in {}", path.display());
    }
    Ok(())
}

/// Interleaved rounds of `load` on both servers: per round, work done per
/// server CPU-second, for each.
fn rounds(
    o: &LoadOptions,
    servers: &[Server; 2],
    load: impl Fn(&Server) -> Result<f64, String>,
) -> Result<[Vec<f64>; 2], String> {
    let mut out: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..o.rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let before = procstat::cpu_seconds(servers[i].pid);
            let done = load(&servers[i]).map_err(|e| format!("{}: {e}", servers[i].name))?;
            let cpu = (procstat::cpu_seconds(servers[i].pid) - before).max(0.01);
            out[i].push(done / cpu);
        }
    }
    Ok(out)
}

fn row(report: &mut String, label: &str, per_cpu: [Vec<f64>; 2]) {
    let (n, s) = (median(per_cpu[0].clone()), median(per_cpu[1].clone()));
    let _ = writeln!(
        report,
        "| {label} | {n:.0} | {s:.0} | {:.2}× |",
        s / n.max(1e-9)
    );
}

/// Requests h2load completed in `seconds`.
fn h2load(url: &str, connections: usize, seconds: u64) -> Result<f64, String> {
    let out = Command::new("h2load")
        .args([
            "-c",
            &connections.to_string(),
            "-m",
            "8",
            "-D",
            &seconds.to_string(),
        ])
        .arg(url)
        .output()
        .map_err(|e| format!("cannot run h2load (scripts/setup.sh --bench): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "requests: 1000 total, 1000 started, 1000 done, 1000 succeeded, 0 failed, …"
    let line = text
        .lines()
        .find(|l| l.starts_with("requests:"))
        .ok_or_else(|| format!("cannot read h2load output:\n{text}"))?;
    let field = |name: &str| -> Option<f64> {
        line.split(',')
            .map(str::trim)
            .find(|p| p.ends_with(name))?
            .split_whitespace()
            .next()?
            .trim_start_matches("requests:")
            .trim()
            .parse()
            .ok()
    };
    let succeeded = field("succeeded").ok_or("no succeeded count in h2load output")?;
    if field("failed").unwrap_or(0.0) > 0.0 || field("errored").unwrap_or(0.0) > 0.0 {
        return Err(format!("h2load saw failures: {line}"));
    }
    Ok(succeeded)
}

/// Connections `openssl s_time` made in `seconds` (`-new`: full
/// handshakes; `-reuse`: resumed; `-tls1_2`: that version).
fn s_time(port: u16, mode: &[&str], seconds: u64) -> Result<f64, String> {
    let out = Command::new("openssl")
        .args(["s_time", "-connect", &format!("127.0.0.1:{port}")])
        .args(mode)
        .args(["-time", &seconds.to_string()])
        .output()
        .map_err(|e| format!("cannot run openssl s_time: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "1234 connections in 3.02s; 408.61 connections/user sec, bytes read 0"
    text.lines()
        .filter_map(|l| l.split_once(" connections in ").map(|(n, _)| n.trim()))
        .filter_map(|n| n.parse::<f64>().ok())
        .next_back()
        .ok_or_else(|| format!("cannot read s_time output:\n{text}"))
}

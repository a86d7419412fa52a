//! The harness at scale: thousands of simulated viewers of a synthetic
//! ladder against the engine on this box. Figures: the harness's own CPU
//! per viewer-second (from the kernel's accounting of the waited-for
//! child) and its memory — resident set at one minute, at the end and at
//! its peak, so a long run shows whether memory grows.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{flags, free_port, number, record, start_engine};
use crate::procstat;

/// `viewers` options.
pub struct Options {
    viewers: usize,
    seconds: u64,
    ramp: u64,
    /// Seconds of media in the ladder (default: as long as the run).
    media: Option<u64>,
    threads: usize,
    streamgate: std::path::PathBuf,
    markdown: Option<std::path::PathBuf>,
}

impl Options {
    /// Parses `--viewers --duration --ramp --media --threads --streamgate --markdown`.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = Self {
            viewers: 10_000,
            seconds: 120,
            ramp: 30,
            media: None,
            threads: 2,
            streamgate: "target/release/streamgate".into(),
            markdown: None,
        };
        for (flag, value) in flags(args)? {
            match flag {
                "--viewers" => o.viewers = number(flag, value)?,
                "--duration" => o.seconds = number(flag, value)?,
                "--ramp" => o.ramp = number(flag, value)?,
                "--media" => o.media = Some(number(flag, value)?),
                "--threads" => o.threads = number(flag, value)?,
                "--streamgate" => o.streamgate = value.into(),
                "--markdown" => o.markdown = Some(value.into()),
                _ => return Err(format!("unknown option {flag}\n{}", crate::USAGE)),
            }
        }
        Ok(o)
    }
}

/// Resident set of `pid`, bytes.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs the benchmark and prints (and optionally records) the table.
pub fn run(o: &Options) -> Result<(), String> {
    let dir = std::env::current_dir()
        .map_err(|e| e.to_string())?
        .join("bench/out/viewers");
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("root");
    // 64/128/256 kbit/s, 2-s segments, as long as the run: each viewer
    // watches once, from its start to the end.
    let segments = (o.media.unwrap_or(o.seconds) / 2 + 2) as usize;
    streamgate_testkit::ladder::write(
        &root.join("film"),
        &[("64k", 64), ("128k", 128), ("256k", 256)],
        segments,
        2.0,
    )
    .map_err(|e| e.to_string())?;
    let port = free_port();
    // Room for every viewer's connection (the default cap is 10 000).
    let cap = (o.viewers + 1_000).to_string();
    let mut engine = start_engine(
        &o.streamgate,
        &root,
        port,
        o.threads,
        &[("STREAMGATE_ENGINE__MAX_CONNECTIONS", cap.as_str())],
    )?;
    let json = dir.join("viewers.json");
    let result = (|| -> Result<String, String> {
        let cpu_before = procstat::children_cpu();
        let engine_before = procstat::cpu_seconds(engine.id());
        let mut child = Command::new(&o.streamgate)
            .args(["loadtest", "viewers"])
            .args([
                "--url",
                &format!("http://127.0.0.1:{port}/v/film/master.m3u8"),
            ])
            .args(["--viewers", &o.viewers.to_string()])
            .args(["--ramp", &format!("{}s", o.ramp)])
            .args(["--duration", &format!("{}s", o.seconds)])
            .args(["--timeout", "30s"])
            .arg("--json")
            .arg(&json)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", o.streamgate.display()))?;
        let started = Instant::now();
        let (mut at_minute, mut last, mut peak) = (None, 0u64, 0u64);
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if let Some(now) = rss(child.id()) {
                last = now;
                peak = peak.max(now);
                if at_minute.is_none() && started.elapsed() >= Duration::from_secs(60) {
                    at_minute = Some(now);
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        };
        if !status.success() {
            return Err(format!("loadtest viewers failed: {status}"));
        }
        let cpu = procstat::children_cpu() - cpu_before;
        let engine_cpu = procstat::cpu_seconds(engine.id()) - engine_before;
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let sum = |k: &str| -> f64 {
            v["timeline"][k]
                .as_array()
                .map_or(0.0, |a| a.iter().filter_map(|x| x.as_f64()).sum())
        };
        let viewer_seconds = sum("starting") + sum("playing") + sum("stalled");
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let mut report = String::new();
        let _ = writeln!(
            report,
            "Command: `target/release/streamgate-bench viewers --viewers {} --duration {} --ramp {} --media {}`  \n\
             {} viewers ramped over {} s against `streamgate engine` ({} threads) on this 2-core VM, \
             synthetic ladder of 64/128/256 kbit/s in 2-s segments ({} s of media), throughput ABR, real time.\n\n\
             | figure | value |\n|---|---:|\n\
             | viewer-seconds simulated | {:.0} |\n\
             | harness CPU | {:.1} s |\n\
             | harness CPU per viewer-second | {:.3} ms |\n\
             | harness RSS at 1 min | {} |\n\
             | harness RSS at the end | {:.1} MiB |\n\
             | harness RSS peak | {:.1} MiB ({:.1} KiB per viewer) |\n\
             | engine CPU | {:.1} s |\n\
             | requests / errors | {} / {} |\n\
             | startup p50 / p99 | {} / {} ms |\n\
             | stalls (stall ratio) | {} ({:.4}) |\n\
             | time-average bitrate | {:.0} kbit/s |\n",
            o.viewers,
            o.seconds,
            o.ramp,
            o.media.unwrap_or(o.seconds),
            o.viewers,
            o.ramp,
            o.threads,
            o.media.unwrap_or(o.seconds),
            viewer_seconds,
            cpu,
            cpu * 1000.0 / viewer_seconds.max(1.0),
            at_minute.map_or("-".to_string(), |b| format!("{:.1} MiB", mib(b))),
            mib(last),
            mib(peak),
            peak as f64 / 1024.0 / o.viewers.max(1) as f64,
            engine_cpu,
            v["requests"]["requests"],
            v["errors"]["total"],
            v["startup_ms"]["p50"],
            v["startup_ms"]["p99"],
            v["stalls"],
            v["stall_ratio"].as_f64().unwrap_or(0.0),
            v["avg_bitrate_bps"].as_f64().unwrap_or(0.0) / 1000.0,
        );
        Ok(report)
    })();
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    unsafe { libc::kill(engine.id() as i32, libc::SIGTERM) };
    let _ = engine.wait();
    let report = result?;
    print!("{report}");
    if let Some(path) = &o.markdown {
        record(path, "viewers", &report)?;
        eprintln!("recorded in {}", path.display());
    }
    Ok(())
}

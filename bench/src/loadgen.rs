//! The load generator's own efficiency: `streamgate loadtest run` against
//! `wrk` (Debian's) on the same nginx, same connections and duration, closed
//! loop, interleaved rounds. The figure is requests per *load-generator*
//! CPU-second (the generator's utime+stime, from the kernel's accounting of
//! the waited-for child), so the server's share of the two cores drops out.

use std::fmt::Write as _;
use std::process::Command;

use crate::harness::{free_port, median, record, start_nginx, LoadOptions};
use crate::procstat;
use crate::wrk::{self, WrkResult};

/// Runs the benchmark and prints (and optionally records) the table.
pub fn run(o: &LoadOptions) -> Result<(), String> {
    let dir = std::env::current_dir()
        .map_err(|e| e.to_string())?
        .join("bench/out/loadgen");
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("a")).map_err(|e| e.to_string())?;
    std::fs::write(root.join("a/4k.m4s"), vec![7u8; 4096]).map_err(|e| e.to_string())?;
    if !o.streamgate.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release` first",
            o.streamgate.display()
        ));
    }
    let port = free_port();
    let location = format!("location /v/ {{ alias {}/; }}", root.display());
    let mut nginx = start_nginx(&dir, port, o.threads, &location)?;
    let url = format!("http://127.0.0.1:{port}/v/a/4k.m4s");
    let result = (|| -> Result<[Vec<f64>; 2], String> {
        // Warm nginx and the page cache.
        wrk::run(&url, 1, o.connections, 1)?;
        let mut per_cpu: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for round in 0..o.rounds {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                let before = procstat::children_cpu();
                let requests = if i == 0 {
                    wrk::run(&url, 1, o.connections, o.seconds)?.requests
                } else {
                    ours(o, &url, &dir)?
                };
                let cpu = (procstat::children_cpu() - before).max(0.001);
                per_cpu[i].push(requests / cpu);
            }
        }
        Ok(per_cpu)
    })();
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    unsafe { libc::kill(nginx.id() as i32, libc::SIGTERM) };
    let _ = nginx.wait();
    let per_cpu = result?;
    let (w, s) = (median(per_cpu[0].clone()), median(per_cpu[1].clone()));
    let mut report = String::new();
    let _ = writeln!(
        report,
        "Command: `target/release/streamgate-bench loadgen --rounds {} --duration {} --connections {}`  \n\
         Closed loop against Debian's nginx ({} worker) serving a 4 KiB file; wrk with 1 thread; \
         interleaved rounds, medians of {}. Figure: requests per load-generator CPU-second.\n\n\
         | | wrk | streamgate loadtest | loadtest / wrk |\n|---|---:|---:|---:|\n\
         | requests per generator CPU-s | {w:.0} | {s:.0} | {:.2}× |\n\n\
         Per-round ratios: {}\n",
        o.rounds,
        o.seconds,
        o.connections,
        o.threads,
        o.rounds,
        s / w.max(1e-9),
        per_cpu[0]
            .iter()
            .zip(&per_cpu[1])
            .map(|(a, b)| format!("{:.2}×", b / a))
            .collect::<Vec<_>>()
            .join(", ")
    );
    print!("{report}");
    if let Some(path) = &o.markdown {
        record(path, "loadgen", &report)?;
        eprintln!("recorded in {}", path.display());
    }
    Ok(())
}

/// One closed-loop run of `streamgate loadtest run`; returns its requests.
fn ours(o: &LoadOptions, url: &str, dir: &std::path::Path) -> Result<f64, String> {
    Ok(loadtest_run(&o.streamgate, url, o.connections, o.seconds, dir)?.requests)
}

/// One closed-loop run of `streamgate loadtest run` (one thread, as wrk
/// gets), read back as wrk's figures.
pub fn loadtest_run(
    streamgate: &std::path::Path,
    url: &str,
    connections: usize,
    seconds: u64,
    dir: &std::path::Path,
) -> Result<WrkResult, String> {
    let json = dir.join("loadtest.json");
    let out = Command::new(streamgate)
        .args(["loadtest", "run", "--url", url])
        .args(["--threads", "1"])
        .args(["--connections", &connections.to_string()])
        .args(["--duration", &format!("{seconds}s")])
        .arg("--json")
        .arg(&json)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", streamgate.display()))?;
    if !out.status.success() {
        return Err(format!(
            "streamgate loadtest failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = std::fs::read_to_string(&json).map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let number = |x: &serde_json::Value| x.as_f64().unwrap_or(0.0);
    Ok(WrkResult {
        requests: v["requests"]
            .as_f64()
            .ok_or("no request count in the loadtest JSON")?,
        rps: number(&v["rps"]),
        mb_per_s: number(&v["throughput_bps"]) / 8.0 / 1e6,
        p99_ms: number(&v["latency_ms"]["p99"]),
        errors: number(&v["errors"]["total"]),
    })
}

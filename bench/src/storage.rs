//! Object storage (`[storage] kind = "s3"`) against local serving: the same
//! asset published into a local root and into a Garage bucket, served by two
//! `streamgate engine --open` — one from the root, one reading through to
//! the bucket.
//!
//! - **First byte**: every segment asked once on the read-through engine
//!   (a cold miss: fetched from the bucket, checked, placed, then served),
//!   then again (a warm hit); the local engine as the reference.
//! - **Warm hits**: wrk in interleaved rounds against both engines, requests
//!   per server CPU-second (from /proc) — what the read-through path costs
//!   when everything is already local. The target: within 5 %.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use streamgate_assets::{AssetStore, Bucket, BucketStore, LocalStore};
use streamgate_testkit::garage::{self, Garage};

use crate::harness::{free_port, median, record, start_engine, LoadOptions};
use crate::{procstat, wrk};

/// Segments asked cold and warm, and their size.
const SEGMENTS: usize = 100;
const SEGMENT_BYTES: usize = 512 << 10;
/// Bodies driven by wrk (warm), as (label, file name, size).
const BODIES: [(&str, &str, usize); 2] = [
    ("64 KiB", "64k.m4s", 64 << 10),
    ("2 MiB", "2m.m4s", 2 << 20),
];

/// Runs the benchmark and prints (and optionally records) the report.
pub fn run(o: &LoadOptions) -> Result<(), String> {
    let dir = std::env::current_dir()
        .map_err(|e| e.to_string())?
        .join("bench/out/storage");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if !o.streamgate.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release` first",
            o.streamgate.display()
        ));
    }
    let garage = Garage::start(&dir.join("garage"));
    let asset = |at: &Path| -> Result<(), String> {
        let write = |name: &str, size: usize, seed: usize| {
            let bytes: Vec<u8> = (0..size).map(|i| (i * 7 + i / 251 + seed) as u8).collect();
            std::fs::write(at.join(name), bytes)
        };
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        for n in 0..SEGMENTS {
            write(&format!("{n}.m4s"), SEGMENT_BYTES, n).map_err(|e| e.to_string())?;
        }
        for (_, name, size) in BODIES {
            write(name, size, 0).map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    // The same bytes under a local root and in the bucket.
    let root = dir.join("root");
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    asset(&dir.join("incoming-local"))?;
    LocalStore::open(&root)
        .map_err(|e| e.to_string())?
        .import(&dir.join("incoming-local"), "a")
        .map_err(|e| e.to_string())?;
    asset(&dir.join("incoming-bucket"))?;
    let bucket = Bucket::connect(&garage.bucket_config(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    BucketStore::new(bucket, &dir.join("scratch"))
        .map_err(|e| e.to_string())?
        .import(&dir.join("incoming-bucket"), "a")
        .map_err(|e| e.to_string())?;

    let (local_port, s3_port) = (free_port(), free_port());
    let mut local = start_engine(&o.streamgate, &root, local_port, o.threads, &[])?;
    let endpoint = garage.endpoint();
    let data_dir = dir.join("s3-node");
    let data_dir = data_dir.to_string_lossy();
    let mut env: Vec<(&str, &str)> = vec![
        ("STREAMGATE_DATA_DIR", &data_dir),
        ("STREAMGATE_STORAGE__KIND", "s3"),
        ("STREAMGATE_STORAGE__ENDPOINT", &endpoint),
        ("STREAMGATE_STORAGE__BUCKET", garage::BUCKET),
        ("STREAMGATE_STORAGE__REGION", garage::REGION),
    ];
    env.push(("STREAMGATE_S3_ACCESS_KEY_ID", garage::ACCESS_KEY_ID));
    env.push(("STREAMGATE_S3_SECRET_ACCESS_KEY", garage::SECRET_ACCESS_KEY));
    let mut s3 = start_engine(&o.streamgate, &root, s3_port, o.threads, &env)?;

    let result = measure(o, local_port, local.id(), s3_port, s3.id());
    for child in [&mut local, &mut s3] {
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
    }
    drop(garage);
    let report = result?;
    print!("{report}");
    if let Some(path) = &o.markdown {
        record(path, "storage", &report)?;
        eprintln!("recorded in {}", path.display());
    }
    Ok(())
}

fn measure(
    o: &LoadOptions,
    local_port: u16,
    local_pid: u32,
    s3_port: u16,
    s3_pid: u32,
) -> Result<String, String> {
    let mut report = String::new();
    let _ = writeln!(
        report,
        "Command: `scripts/bench-storage.sh` (= `streamgate-bench storage --rounds {} --duration {} --connections {} --threads {}`)  \n\
         Both engines `--open` with {} worker(s); the bucket is Garage 2.5.0 on loopback (one node, SQLite metadata). \
         First byte: each of {SEGMENTS} segments of {} KiB asked once (cold) then again (warm), one connection each, \
         time from the request's first byte sent to the response's first byte read.\n",
        o.rounds, o.seconds, o.connections, o.threads, o.threads, SEGMENT_BYTES >> 10
    );
    let (mut cold, mut warm, mut reference) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..SEGMENTS {
        let path = format!("/v/a/{n}.m4s");
        cold.push(first_byte(s3_port, &path)?);
        warm.push(first_byte(s3_port, &path)?);
        reference.push(first_byte(local_port, &path)?);
    }
    let _ = writeln!(
        report,
        "| first byte, ms | p50 | p90 | max |\n|---|---:|---:|---:|"
    );
    for (label, v) in [
        ("read-through, cold miss", &cold),
        ("read-through, warm hit", &warm),
        ("local root", &reference),
    ] {
        let (p50, p90, max) = percentiles(v);
        let _ = writeln!(report, "| {label} | {p50:.2} | {p90:.2} | {max:.2} |");
    }

    let servers = [(local_port, local_pid), (s3_port, s3_pid)];
    let _ = writeln!(
        report,
        "\nWarm hits: wrk, 1 thread, {} connections, {} s per run, interleaved rounds, medians of {}.\n\n\
         | body | local req/s | read-through req/s | local req per CPU-s | read-through req per CPU-s | read-through / local |\n\
         |---|---:|---:|---:|---:|---:|",
        o.connections, o.seconds, o.rounds
    );
    for (label, name, _) in BODIES {
        let url = |port: u16| format!("http://127.0.0.1:{port}/v/a/{name}");
        for &(port, _) in &servers {
            wrk::run(&url(port), 1, o.connections, 1)?;
        }
        let mut rps = [Vec::new(), Vec::new()];
        let mut per_cpu = [Vec::new(), Vec::new()];
        for round in 0..o.rounds {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                let (port, pid) = servers[i];
                let before = procstat::cpu_seconds(pid);
                let w = wrk::run(&url(port), 1, o.connections, o.seconds)?;
                let cpu = procstat::cpu_seconds(pid) - before;
                if w.errors > 0.0 {
                    return Err(format!("{} errors from port {port} at {label}", w.errors));
                }
                rps[i].push(w.rps);
                per_cpu[i].push(w.requests / cpu.max(0.01));
            }
        }
        let (l, s) = (median(per_cpu[0].clone()), median(per_cpu[1].clone()));
        let _ = writeln!(
            report,
            "| {label} | {:.0} | {:.0} | {l:.0} | {s:.0} | {:.3}× |",
            median(rps[0].clone()),
            median(rps[1].clone()),
            s / l.max(1e-9)
        );
    }
    Ok(report)
}

/// Milliseconds from sending a GET to reading the response's first byte,
/// on a fresh connection; the rest is read and checked to be a 200.
fn first_byte(port: u16, path: &str) -> Result<f64, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    let started = Instant::now();
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut first = [0u8; 1];
    s.read_exact(&mut first).map_err(|e| e.to_string())?;
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).map_err(|e| e.to_string())?;
    if !rest.starts_with(b"TTP/1.1 200") {
        return Err(format!(
            "{path} on {port}: {}",
            String::from_utf8_lossy(&rest[..rest.len().min(40)])
        ));
    }
    Ok(elapsed)
}

fn percentiles(v: &[f64]) -> (f64, f64, f64) {
    let mut sorted = v.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9), at(1.0))
}

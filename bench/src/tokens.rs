//! The cost of playback-token checks: one engine, the same 64 KiB body
//! fetched as `/v/a/…` (open) and as `/p/<token>/a/…` (checked), in
//! interleaved wrk runs, compared by requests per server CPU-second.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{free_port, median, record, wait_for_port, LoadOptions};
use crate::{procstat, wrk};

fn status_of(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "HEAD {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = String::new();
    s.read_to_string(&mut head).ok()?;
    head.get(9..12)?.parse().ok()
}

/// Runs the comparison.
pub fn run(o: &LoadOptions) -> Result<(), String> {
    let dir = std::env::current_dir()
        .map_err(|e| e.to_string())?
        .join("bench/out/tokens");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("root/a")).map_err(|e| e.to_string())?;
    let body: Vec<u8> = (0..64 << 10).map(|i: usize| (i * 7) as u8).collect();
    std::fs::write(dir.join("root/a/64k.m4s"), body).map_err(|e| e.to_string())?;
    let (port, admin) = (free_port(), free_port());
    let config = dir.join("streamgate.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{d}\"\n[engine]\nroot = \"{d}/root\"\nlisten = \"127.0.0.1:{port}\"\nadmin = \"127.0.0.1:{admin}\"\nthreads = 1\nopen = true\njob_workers = 0\n",
            d = dir.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let issued = Command::new(&o.streamgate)
        .args(["token", "issue", "--asset", "a", "--ttl", "1h", "--config"])
        .arg(&config)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", o.streamgate.display()))?;
    let token = String::from_utf8_lossy(&issued.stdout).trim().to_string();
    let mut engine = Command::new(&o.streamgate)
        .args(["engine", "--config"])
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let result = measure(o, port, &token, &mut engine);
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(engine.id() as i32, libc::SIGTERM) };
    let _ = engine.wait();
    let (open, gated, ratios) = result?;
    let report = format!(
        "Command: `target/release/streamgate-bench tokens --rounds {} --duration {}` (after `cargo build --release`)  \n\
         One engine worker, 64 KiB body, wrk 1 thread × {} connections, {} s per run, `/v/` and `/p/<token>/` interleaved, medians of {}.\n\n\
         | path | req per server CPU-s |\n|---|---:|\n| `/v/a/64k.m4s` (open) | {open:.0} |\n| `/p/<token>/a/64k.m4s` (checked) | {gated:.0} |\n\n\
         Token check cost: **{:.1} %** of requests per CPU-second (target ≤ 3 %). Per-round gated/open ratios: {}.\n",
        o.rounds,
        o.seconds,
        o.connections,
        o.seconds,
        o.rounds,
        (1.0 - gated / open) * 100.0,
        ratios.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(", ")
    );
    print!("{report}");
    if let Some(path) = &o.markdown {
        record(path, "tokens", &report)?;
    }
    Ok(())
}

fn measure(
    o: &LoadOptions,
    port: u16,
    token: &str,
    engine: &mut std::process::Child,
) -> Result<(f64, f64, Vec<f64>), String> {
    wait_for_port(port, engine, "streamgate engine")?;
    let pid = engine.id();
    let urls = [
        format!("http://127.0.0.1:{port}/v/a/64k.m4s"),
        format!("http://127.0.0.1:{port}/p/{token}/a/64k.m4s"),
    ];
    // The engine loads the key it was started with; wait until the token works.
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_of(port, &format!("/p/{token}/a/64k.m4s")) != Some(200) {
        if Instant::now() > deadline {
            return Err("the engine never accepted the benchmark token".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for url in &urls {
        wrk::run(url, 1, o.connections, 1)?;
    }
    let mut per_cpu: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..o.rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let before = procstat::cpu_seconds(pid);
            let w = wrk::run(&urls[i], 1, o.connections, o.seconds)?;
            let cpu = procstat::cpu_seconds(pid) - before;
            if w.errors > 0.0 {
                return Err(format!("{} answered {} errors", urls[i], w.errors));
            }
            per_cpu[i].push(w.requests / cpu.max(0.01));
        }
    }
    let ratios = per_cpu[1]
        .iter()
        .zip(&per_cpu[0])
        .map(|(g, v)| g / v)
        .collect();
    Ok((
        median(per_cpu[0].clone()),
        median(per_cpu[1].clone()),
        ratios,
    ))
}

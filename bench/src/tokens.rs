//! Playback tokens, measured on the whole appliance (`streamgate serve`
//! with anvil as its chain):
//!
//! 1. issuing: `POST /api/v1/assets/<id>/playback` for an NFT-gated asset
//!    with the NFT answer cached (warm), sequential on one kept-alive
//!    connection: p50 / p99 latency; the first (cold, chain asked) request
//!    is reported apart;
//! 2. checking: the same 64 KiB body fetched as `/v/open/…` (no token) and
//!    `/p/<token>/gated/…` (token checked per request) in interleaved wrk
//!    runs, compared by requests per server CPU-second.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use streamgate_testkit::chain::{Anvil, CHAIN_ID, WALLETS};
use streamgate_testkit::http::{free_addr, Connection};
use streamgate_testkit::wallet::{api_on, sign_in};

use crate::harness::{median, record, LoadOptions};
use crate::{procstat, wrk};

/// Token requests timed for the latency percentiles.
const ISSUES: usize = 2000;

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

fn cli(o: &LoadOptions, config: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(&o.streamgate)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .map_err(|e| format!("{}: {e}", o.streamgate.display()))?;
    if !out.status.success() {
        return Err(format!(
            "streamgate {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs both measurements.
pub fn run(o: &LoadOptions) -> Result<(), String> {
    let dir = std::env::current_dir()
        .map_err(|e| e.to_string())?
        .join("bench/out/tokens");
    let _ = std::fs::remove_dir_all(&dir);
    let body: Vec<u8> = (0..64 << 10).map(|i: usize| (i * 7) as u8).collect();
    for id in ["gated", "open"] {
        let asset = dir.join("incoming").join(id);
        std::fs::create_dir_all(&asset).map_err(|e| e.to_string())?;
        std::fs::write(asset.join("master.m3u8"), "#EXTM3U\n").map_err(|e| e.to_string())?;
        std::fs::write(asset.join("64k.m4s"), &body).map_err(|e| e.to_string())?;
    }
    let anvil = Anvil::start();
    let nft = anvil.deploy("TestNft721");
    let (key, wallet) = WALLETS[0];
    anvil.mint721(nft, wallet, 1);
    let (listen, admin, grpc, http) = (free_addr(), free_addr(), free_addr(), free_addr());
    let config = dir.join("streamgate.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{d}\"\n[engine]\nlisten = \"{listen}\"\nadmin = \"{admin}\"\nthreads = {t}\njob_workers = 0\n\
             [control]\ngrpc = \"{grpc}\"\nhttp = \"{http}\"\n[chains.{CHAIN_ID}]\nrpc = [\"{rpc}\"]\n\
             [nft]\ncache_ttl = \"10m\"\n",
            d = dir.display(),
            t = o.threads,
            rpc = anvil.url()
        ),
    )
    .map_err(|e| e.to_string())?;
    let mut serve = Command::new(&o.streamgate)
        .args(["serve", "--config"])
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let result = (|| {
        crate::harness::wait_for_port(listen.port(), &mut serve, "streamgate serve")?;
        for id in ["gated", "open"] {
            cli(
                o,
                &config,
                &[
                    "asset",
                    "import",
                    &dir.join("incoming").join(id).to_string_lossy(),
                ],
            )?;
        }
        let contract = nft.to_string();
        cli(
            o,
            &config,
            &[
                "asset",
                "gate",
                "gated",
                "--chain",
                "31337",
                "--erc721",
                &contract,
                "--token-id",
                "1",
            ],
        )?;
        let session = sign_in(http, key, wallet, CHAIN_ID, "siwe");
        let issue = issue_latency(http, &session)?;
        let check = check_cost(o, listen.port(), &issue.token, &mut serve)?;
        Ok::<_, String>((issue, check))
    })();
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) };
    let _ = serve.wait();
    let (issue, (open, gated, ratios)) = result?;
    let issue_report = format!(
        "Command: `target/release/streamgate-bench tokens` (after `cargo build --release`)  \n\
         `streamgate serve` with anvil as chain 31337, an asset gated on an ERC-721 token the wallet holds, \
         `[nft] cache_ttl = \"10m\"`; one SIWE session; {ISSUES} sequential `POST /api/v1/assets/gated/playback` \
         on one kept-alive connection after 50 warm-up requests.\n\n\
         | | latency |\n|---|---:|\n| first request (cold: NFT checked on the chain) | {:.2} ms |\n\
         | p50 (warm cache) | {:.3} ms |\n| p99 (warm cache) | {:.3} ms |\n| mean (warm cache) | {:.3} ms |\n",
        issue.cold_ms, issue.p50_ms, issue.p99_ms, issue.mean_ms
    );
    let check_report = format!(
        "Command: `target/release/streamgate-bench tokens --rounds {} --duration {}` (after `cargo build --release`)  \n\
         `streamgate serve`, {} engine worker(s), 64 KiB body, wrk 1 thread × {} connections, {} s per run, `/v/` and `/p/<token>/` interleaved, medians of {}.\n\n\
         | path | req per worker CPU-s |\n|---|---:|\n| `/v/open/64k.m4s` (open) | {open:.0} |\n| `/p/<token>/gated/64k.m4s` (checked) | {gated:.0} |\n\n\
         Token check cost: **{:.1} %** of requests per worker CPU-second (target ≤ 3 %; CPU of the `sg-worker` threads from /proc/<pid>/task). Per-round gated/open ratios: {}.\n",
        o.rounds,
        o.seconds,
        o.threads,
        o.connections,
        o.seconds,
        o.rounds,
        (1.0 - gated / open) * 100.0,
        ratios.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(", ")
    );
    print!("{issue_report}\n{check_report}");
    if let Some(path) = &o.markdown {
        record(path, "token-issue", &issue_report)?;
        record(path, "tokens", &check_report)?;
    }
    Ok(())
}

struct IssueLatency {
    token: String,
    cold_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    mean_ms: f64,
}

fn issue_latency(http: std::net::SocketAddr, session: &str) -> Result<IssueLatency, String> {
    let mut connection = Connection::open(http).map_err(|e| e.to_string())?;
    let path = "/api/v1/assets/gated/playback";
    let once = |connection: &mut Connection| {
        let started = Instant::now();
        let reply = api_on(connection, "POST", path, Some(session), None);
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        if reply.status != 200 {
            return Err(format!(
                "playback answered {}: {}",
                reply.status, reply.json
            ));
        }
        Ok((
            elapsed,
            reply.json["token"].as_str().unwrap_or_default().to_string(),
        ))
    };
    let (cold_ms, token) = once(&mut connection)?;
    for _ in 0..50 {
        once(&mut connection)?;
    }
    let mut samples = Vec::with_capacity(ISSUES);
    for _ in 0..ISSUES {
        samples.push(once(&mut connection)?.0);
    }
    let mean_ms = samples.iter().sum::<f64>() / samples.len() as f64;
    samples.sort_by(|a, b| a.total_cmp(b));
    Ok(IssueLatency {
        token,
        cold_ms,
        p50_ms: samples[samples.len() / 2],
        p99_ms: samples[samples.len() * 99 / 100],
        mean_ms,
    })
}

fn check_cost(
    o: &LoadOptions,
    port: u16,
    token: &str,
    serve: &mut Child,
) -> Result<(f64, f64, Vec<f64>), String> {
    let pid = serve.id();
    let urls = [
        format!("http://127.0.0.1:{port}/v/open/64k.m4s"),
        format!("http://127.0.0.1:{port}/p/{token}/gated/64k.m4s"),
    ];
    // The engine picks up the open asset within a poll.
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_of(port, "/v/open/64k.m4s") != Some(200)
        || status_of(port, &format!("/p/{token}/gated/64k.m4s")) != Some(200)
    {
        if Instant::now() > deadline {
            return Err("the engine never served both benchmark paths".into());
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
            // Only the serving workers: the control plane shares the
            // process and would add its own noise.
            let before = procstat::thread_cpu_seconds(pid, "sg-worker");
            let w = wrk::run(&urls[i], 1, o.connections, o.seconds)?;
            let cpu = procstat::thread_cpu_seconds(pid, "sg-worker") - before;
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

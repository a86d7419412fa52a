//! Ingest, measured: `streamgate ingest` against `curl -T` to nginx's
//! WebDAV `PUT`, the same file over loopback, in interleaved rounds.
//!
//! The two do different amounts of work on purpose — this is what the
//! durability and verification of our upload path cost. nginx writes the
//! body to a temporary file and renames it (no checksum, no fsync).
//! StreamGate's path: the CLI hashes the whole file, then sends 8 MiB tus
//! PATCHes each with a SHA-256; the server hashes every chunk (and keeps a
//! running hash of the whole file), `fdatasync`s it and rewrites the upload
//! state atomically before acknowledging, and checks the whole-file hash
//! before queueing the job. Reported: the
//! client command's wall-clock MB/s and the server's CPU-seconds per GB
//! (utime+stime from /proc: nginx master and workers; the whole `serve`
//! process, whose control plane idles and whose job fails at once on the
//! random bytes).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::harness::{flags, free_port, median, number, record, start_nginx, wait_for_port};
use crate::procstat;

/// `streamgate-bench ingest` options.
pub struct Options {
    rounds: usize,
    mib: usize,
    streamgate: PathBuf,
    markdown: Option<PathBuf>,
}

impl Options {
    /// Parses `--rounds N --mib M --streamgate PATH --markdown FILE`.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = Self {
            rounds: 5,
            mib: 512,
            streamgate: PathBuf::from("target/release/streamgate"),
            markdown: None,
        };
        for (flag, value) in flags(args)? {
            match flag {
                "--rounds" => o.rounds = number(flag, value)?,
                "--mib" => o.mib = number(flag, value)?,
                "--streamgate" => o.streamgate = value.into(),
                "--markdown" => o.markdown = Some(value.into()),
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        o.rounds = o.rounds.max(1);
        o.mib = o.mib.max(1);
        Ok(o)
    }
}

/// One upload: client wall time and server CPU.
struct Sample {
    seconds: f64,
    cpu_seconds: f64,
}

/// Runs the comparison and prints (and optionally records) the table.
pub fn run(o: &Options) -> Result<(), String> {
    let dir = std::env::current_dir()
        .map_err(|e| e.to_string())?
        .join("bench/out/ingest");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("nginx/put")).map_err(|e| e.to_string())?;
    if !o.streamgate.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release` first",
            o.streamgate.display()
        ));
    }
    let source = dir.join("source.bin");
    write_noise(&source, o.mib << 20)?;
    let bytes = (o.mib << 20) as f64;

    let nginx_port = free_port();
    let location = format!(
        "location /put/ {{ root {}; dav_methods PUT; create_full_put_path on; \
         client_max_body_size 0; client_body_buffer_size 1m; }}",
        dir.join("nginx").display()
    );
    let mut nginx = start_nginx(&dir, nginx_port, 1, &location)?;
    let (config, listen) = serve_config(&dir)?;
    let mut serve = Command::new(&o.streamgate)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", o.streamgate.display()))?;

    let result = (|| -> Result<[Vec<Sample>; 2], String> {
        wait_for_port(listen, &mut serve, "streamgate serve")?;
        let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
        for round in 0..o.rounds {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for side in order {
                let sample = if side == 0 {
                    let mut curl = Command::new("curl");
                    curl.args(["-sS", "-f", "-o", "/dev/null", "-T"])
                        .arg(&source)
                        .arg(format!("http://127.0.0.1:{nginx_port}/put/r{round}.bin"));
                    let sample = timed(nginx.id(), &mut curl, "curl -T")?;
                    let _ = std::fs::remove_file(dir.join(format!("nginx/put/r{round}.bin")));
                    sample
                } else {
                    let mut ingest = Command::new(&o.streamgate);
                    ingest
                        .arg("ingest")
                        .arg(&source)
                        .args(["--server", &format!("http://127.0.0.1:{listen}")])
                        .args(["--id", &format!("r{round}"), "--no-wait", "--config"])
                        .arg(&config);
                    let sample = timed(serve.id(), &mut ingest, "streamgate ingest")?;
                    // Keep the disk from filling: drop the stored source and
                    // the client's resume record for this file.
                    for sub in ["sg/uploads", "sg/ingest"] {
                        let _ = std::fs::remove_dir_all(dir.join(sub));
                        let _ = std::fs::create_dir_all(dir.join(sub));
                    }
                    sample
                };
                samples[side].push(sample);
            }
        }
        Ok(samples)
    })();
    for child in [&mut nginx, &mut serve] {
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
    }
    let samples = result?;

    let gb = bytes / 1e9;
    let mb = bytes / 1e6;
    let rate = |i: usize| median(samples[i].iter().map(|s| mb / s.seconds).collect());
    let cpu = |i: usize| median(samples[i].iter().map(|s| s.cpu_seconds / gb).collect());
    let mut report = String::new();
    let _ = writeln!(
        report,
        "Command: `scripts/bench-ingest.sh` (= `streamgate-bench ingest --rounds {} --mib {}`)  \n\
         A {} MiB file over loopback, interleaved rounds, medians of {}. nginx: Debian's, one worker, \
         WebDAV `PUT` (temp file + rename, no checksum, no fsync), driven by `curl -T`. StreamGate: \
         `streamgate ingest --no-wait` into `streamgate serve` (client whole-file SHA-256 first, 8 MiB tus \
         PATCHes with SHA-256 each; server hashes each chunk and the running whole file, `fdatasync`s \
         and records state per chunk).\n\n\
         | metric | nginx PUT | streamgate ingest | streamgate / nginx |\n|---|---:|---:|---:|",
        o.rounds, o.mib, o.mib, o.rounds
    );
    for (name, f) in [
        ("client command MB/s (wall)", &rate as &dyn Fn(usize) -> f64),
        ("server CPU-s per GB", &cpu),
    ] {
        let (a, b) = (f(0), f(1));
        let _ = writeln!(report, "| {name} | {a:.2} | {b:.2} | {:.2}× |", b / a);
    }
    print!("{report}");
    if let Some(path) = &o.markdown {
        record(path, "ingest", &report)?;
        eprintln!("recorded in {}", path.display());
    }
    Ok(())
}

/// Runs `command` (a client) and returns its wall time and the CPU the
/// server `pid` spent meanwhile.
fn timed(pid: u32, command: &mut Command, what: &str) -> Result<Sample, String> {
    let before = procstat::cpu_seconds(pid);
    let started = Instant::now();
    let out = command
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(Sample {
        seconds,
        cpu_seconds: procstat::cpu_seconds(pid) - before,
    })
}

/// A config for `serve` under `dir/sg`; returns it and the engine's port.
fn serve_config(dir: &Path) -> Result<(PathBuf, u16), String> {
    let listen = free_port();
    let config = dir.join("streamgate.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{d}\"\n[engine]\nlisten = \"127.0.0.1:{listen}\"\nadmin = \"127.0.0.1:{admin}\"\n\
             job_workers = 1\njob_attempts = 1\nupload_max_bytes = 1099511627776\n\
             [control]\ngrpc = \"127.0.0.1:{grpc}\"\nhttp = \"127.0.0.1:{http}\"\n",
            d = dir.join("sg").display(),
            admin = free_port(),
            grpc = free_port(),
            http = free_port(),
        ),
    )
    .map_err(|e| e.to_string())?;
    Ok((config, listen))
}

/// `len` bytes that no layer could compress or deduplicate (xorshift).
fn write_noise(path: &Path, len: usize) -> Result<(), String> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    std::fs::write(path, bytes).map_err(|e| e.to_string())
}

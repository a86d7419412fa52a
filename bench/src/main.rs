//! `streamgate-bench`: side-by-side benchmarks against an anchor, in one run.
//!
//! `streamgate-bench parse` times parsing and decoding an open and a
//! tokenized request head in-process (what the token in the path costs).
//!
//! `streamgate-bench transcode` runs `streamgate transcode` against the
//! ffmpeg CLI on the same 1080p source and ladder (wall time, PSNR).
//!
//! `streamgate-bench ingest` uploads one file with `streamgate ingest` and
//! with `curl -T` to nginx's WebDAV PUT (client MB/s, server CPU per GB).
//!
//! `streamgate-bench loadgen` compares `streamgate loadtest run` with `wrk`
//! on the same nginx: requests per load-generator CPU-second.
//!
//! `streamgate-bench storage` serves one asset from a local root and from a
//! Garage bucket through the read-through copy: first-byte latency of cold
//! misses and warm hits, and warm-hit requests per server CPU-second.
//!
//! `streamgate-bench tls` compares HTTPS/1.1, HTTP/2 over TLS and new TLS
//! connections with nginx + OpenSSL, per server CPU-second.
//!
//! `streamgate-bench honesty` shows the open-loop tail catching a stalling
//! server that closed-loop runs (ours, wrk) hide.
//!
//! `streamgate-bench viewers` runs thousands of simulated players against
//! the engine: harness CPU per viewer-second and memory over the run.
//!
//! `streamgate-bench idle` holds thousands of idle keep-alive connections to
//! nginx and to the engine and reports server memory per connection.
//!
//! `streamgate-bench http` serves the same files from Debian's nginx and from
//! `streamgate engine`, drives both with the same `wrk` load in interleaved
//! rounds (A B, B A, …), and reports medians of req/s, MB/s, p99 latency and
//! requests per server CPU-second — the last from the server's own
//! utime+stime in /proc, which holds still on a small shared machine where
//! the load generator competes for the same cores.

mod harness;
mod honesty;
mod http;
mod idle;
mod ingest;
mod loadgen;
mod parse;
mod procstat;
mod sendpath;
mod storage;
mod tls;
mod tokens;
mod transcode;
mod viewers;
mod wrk;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("http") => harness::LoadOptions::parse(&args[1..], 3, 5).and_then(|o| http::run(&o)),
        Some("tokens") => {
            harness::LoadOptions::parse(&args[1..], 5, 5).and_then(|o| tokens::run(&o))
        }
        Some("idle") => idle::Options::parse(&args[1..]).and_then(|o| idle::run(&o)),
        Some("loadgen") => {
            harness::LoadOptions::parse(&args[1..], 5, 5).and_then(|o| loadgen::run(&o))
        }
        Some("storage") => {
            harness::LoadOptions::parse(&args[1..], 3, 5).and_then(|o| storage::run(&o))
        }
        Some("tls") => harness::LoadOptions::parse(&args[1..], 3, 5).and_then(|o| tls::run(&o)),
        Some("honesty") => honesty::Options::parse(&args[1..]).and_then(|o| honesty::run(&o)),
        Some("viewers") => viewers::Options::parse(&args[1..]).and_then(|o| viewers::run(&o)),
        Some("ingest") => ingest::Options::parse(&args[1..]).and_then(|o| ingest::run(&o)),
        Some("transcode") => transcode::Options::parse(&args[1..]).and_then(|o| transcode::run(&o)),
        Some("sendpath") => {
            harness::LoadOptions::parse(&args[1..], 3, 4).and_then(|o| sendpath::run(&o))
        }
        Some("sendpath-serve") => serve_one(&args[1..]),
        Some("parse") => parse::run(markdown_flag(&args[1..]).as_deref()),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streamgate-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The value of `--markdown FILE`, if given.
fn markdown_flag(args: &[String]) -> Option<std::path::PathBuf> {
    args.iter()
        .position(|a| a == "--markdown")
        .and_then(|i| args.get(i + 1))
        .map(Into::into)
}

/// `sendpath-serve MODE PORT FILE`: one experimental responder (internal).
fn serve_one(args: &[String]) -> Result<(), String> {
    let [mode, port, file] = args else {
        return Err("usage: streamgate-bench sendpath-serve MODE PORT FILE".into());
    };
    let mode = sendpath::Mode::from_name(mode).ok_or_else(|| format!("unknown mode {mode}"))?;
    let port = port.parse().map_err(|_| format!("bad port {port}"))?;
    sendpath::serve(mode, port, std::path::Path::new(file)).map_err(|e| e.to_string())
}

const USAGE: &str = "usage: streamgate-bench http [--rounds N] [--duration SECS] [--connections C] \
[--threads T] [--streamgate PATH] [--markdown FILE]
       streamgate-bench sendpath [--rounds N] [--duration SECS] [--connections C] [--markdown FILE]
       streamgate-bench tokens [--rounds N] [--duration SECS] [--connections C] [--streamgate PATH] [--markdown FILE]
       streamgate-bench transcode [--rounds N] [--seconds S] [--preset P] [--streamgate PATH] [--markdown FILE]
       streamgate-bench loadgen [--rounds N] [--duration SECS] [--connections C] [--streamgate PATH] [--markdown FILE]
       streamgate-bench storage [--rounds N] [--duration SECS] [--connections C] [--threads T] [--streamgate PATH] [--markdown FILE]
       streamgate-bench tls [--rounds N] [--duration SECS] [--connections C] [--threads T] [--streamgate PATH] [--markdown FILE]
       streamgate-bench honesty [--rate R] [--duration SECS] [--connections C] [--every N] [--streamgate PATH] [--markdown FILE]
       streamgate-bench viewers [--viewers N] [--duration SECS] [--ramp SECS] [--media SECS] [--threads T] [--streamgate PATH] [--markdown FILE]
       streamgate-bench idle [--connections N] [--rounds N] [--streamgate PATH] [--markdown FILE]
       streamgate-bench ingest [--rounds N] [--mib M] [--streamgate PATH] [--markdown FILE]
       streamgate-bench parse [--markdown FILE]";

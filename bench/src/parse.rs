//! The user-space cost of reading a request head: `request::parse` plus
//! `target::decode`, in-process, for an open segment URL and the same URL
//! carrying a playback token (Contract 3 puts ~280 bytes of JWS in the
//! path). Nanoseconds per head, best of several batches; no I/O, so it
//! isolates what a longer path costs the engine from the kernel's share.

use std::hint::black_box;
use std::time::Instant;

use streamgate_net::http1::request::{parse, Limits, Parsed};
use streamgate_net::target::{decode, Target};

use crate::harness::record;

/// A playback token of the real shape and length (header.claims.signature).
const TOKEN: &str = "eyJhbGciOiJFZERTQSIsImtpZCI6ImswMDE3OTU2Nzg5NjAtV0NLQ3B5alMiLCJ0eXAiOiJKV1QifQ.\
eyJzdWIiOiJnYXRlZCIsImV4cCI6MTc5NTY5MzQ2MCwiaWF0IjoxNzk1Njc5MDYwLCJqdGkiOiJhYmNkZWZnaGlqa2xtbm9wcXJzdHV2In0.\
3q2-7wQk5xN0cQ9yZ1pQm5vYl3mVb2Xx9m0VnWcYk1L8x2c6GZq0bT1m3nQp4r5s6t7u8v9w0x1y2z3A4B5C6D";

fn per_head(head: &[u8], rounds: u32) -> f64 {
    let limits = Limits::default();
    let n = 500_000;
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let started = Instant::now();
        for _ in 0..n {
            if let Ok(Parsed::Complete { request, .. }) = parse(black_box(head), &limits) {
                if let Ok(Target::Path(path)) = decode(request.target) {
                    black_box(path);
                }
            }
        }
        best = best.min(started.elapsed().as_nanos() as f64 / f64::from(n));
    }
    best
}

/// Runs the measurement; records it under `parse` in `markdown`.
pub fn run(markdown: Option<&std::path::Path>) -> Result<(), String> {
    let open =
        b"GET /v/open/720p/17.m4s HTTP/1.1\r\nHost: origin.example\r\nUser-Agent: bench\r\n\r\n"
            .to_vec();
    let gated = format!(
        "GET /p/{TOKEN}/gated/720p/17.m4s HTTP/1.1\r\nHost: origin.example\r\nUser-Agent: bench\r\n\r\n"
    )
    .into_bytes();
    let (o, g) = (per_head(&open, 7), per_head(&gated, 7));
    let report = format!(
        "Command: `target/release/streamgate-bench parse` (after `cargo build --release`)  \n\
         `request::parse` + `target::decode` in-process, best of 7 batches of 500 000.\n\n\
         | head | bytes | ns per head |\n|---|---:|---:|\n\
         | open `/v/open/720p/17.m4s` | {} | {o:.0} |\n| tokenized `/p/<token>/gated/720p/17.m4s` | {} | {g:.0} |\n\n\
         The token adds {:.0} ns per request.\n",
        open.len(),
        gated.len(),
        g - o
    );
    print!("{report}");
    if let Some(path) = markdown {
        record(path, "parse", &report)?;
    }
    Ok(())
}

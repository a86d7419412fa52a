//! `streamgate loadtest viewers`: simulated players of an HLS or DASH
//! stream, ramped up over `--ramp`, each a task on one of the per-core
//! threads with its own connection, as a browser tab would have.
//!
//! Modules: [`manifest`] (what a player reads from HLS and DASH), [`abr`]
//! (the rendition rules), `player` (one viewer's sessions), [`report`]
//! (what they lived through).

pub mod abr;
pub mod manifest;
mod player;
pub mod report;
mod shared;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::client::{Connector, Protocol};
use crate::{cores, LoadError, Target};
pub use abr::Rule;
use player::{Clock, Viewer};
pub use report::{ViewerTally, ViewersReport};

/// Which manifest a `--token-from` answer names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFormat {
    /// Its `hls` field.
    Hls,
    /// Its `dash` field.
    Dash,
}

/// Where each session gets a playback token (Contract 5's playback call).
#[derive(Debug, Clone)]
pub struct TokenFrom {
    /// `POST` here (e.g. `http://127.0.0.1:8081/api/v1/assets/ID/playback`).
    pub target: Target,
    /// Headers for it, e.g. `Authorization: Bearer <session>`.
    pub headers: Vec<(String, String)>,
    /// Which manifest of the answer to play.
    pub format: TokenFormat,
}

/// What to run.
#[derive(Clone)]
pub struct ViewersOptions {
    /// The multivariant playlist or MPD (with `token_from`: the engine's
    /// origin; the path comes from the token answer).
    pub target: Target,
    /// Simulated viewers.
    pub viewers: usize,
    /// Viewers start evenly over this time.
    pub ramp: Duration,
    /// How long the run lasts (ramp included).
    pub duration: Duration,
    /// The simulated clock's speed (1 = real time).
    pub speed: f64,
    /// The ABR rule.
    pub abr: Rule,
    /// A link of this many kbit/s per viewer (simulated time).
    pub throttle_kbps: Option<f64>,
    /// The playback buffer target, seconds.
    pub buffer_s: f64,
    /// Extra headers on every request.
    pub headers: Vec<(String, String)>,
    /// HTTP/1.1 or HTTP/2.
    pub protocol: Protocol,
    /// The TLS client configuration, for `https://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Threads (0: one per core).
    pub threads: usize,
    /// How long one answer may take.
    pub timeout: Duration,
    /// Fetch a playback token per session.
    pub token_from: Option<TokenFrom>,
}

/// Counts the threads share for the live status.
pub(crate) struct Live {
    starting: AtomicI64,
    playing: AtomicI64,
    stalled: AtomicI64,
    requests: AtomicU64,
    errors: AtomicU64,
    startup: Mutex<Histogram<u64>>,
}

/// Where a viewers run stands, for a live display.
#[derive(Debug, Clone, Copy)]
pub struct ViewersStatus {
    /// Time since the run began.
    pub elapsed: Duration,
    /// Viewers waiting for their first frame.
    pub starting: i64,
    /// Viewers playing.
    pub playing: i64,
    /// Viewers stalled.
    pub stalled: i64,
    /// Requests so far.
    pub requests: u64,
    /// Failed requests so far.
    pub errors: u64,
    /// Median startup so far, ms.
    pub startup_p50_ms: Option<u64>,
}

/// What every viewer reads.
pub(crate) struct Shared {
    options: ViewersOptions,
    connector: Connector,
    api: Option<Connector>,
    clock: Clock,
    pace_bps: Option<f64>,
    live: Arc<Live>,
}

/// Runs the viewers and returns what they lived through, calling `status`
/// about once a second meanwhile.
pub fn viewers(
    o: &ViewersOptions,
    status: &mut dyn FnMut(ViewersStatus),
) -> Result<ViewersReport, LoadError> {
    if o.viewers == 0 {
        return Err(LoadError::BadOption("--viewers must be at least 1".into()));
    }
    if !(o.speed.is_finite() && o.speed > 0.0) {
        return Err(LoadError::BadOption(format!(
            "--speed must be a positive factor, not {}",
            o.speed
        )));
    }
    if let Some(k) = o.throttle_kbps {
        if !(k.is_finite() && k > 0.0) {
            return Err(LoadError::BadOption(format!(
                "--throttle must be a positive number of kbit/s, not {k}"
            )));
        }
    }
    if o.ramp > o.duration {
        return Err(LoadError::BadOption(
            "--ramp must not be longer than --duration".into(),
        ));
    }
    let connector = Connector::new(&o.target, o.protocol, o.tls.clone(), o.timeout)
        .map_err(|e| LoadError::BadOption(e.to_string()))?;
    let api = match &o.token_from {
        Some(t) => Some(
            Connector::new(&t.target, Protocol::Http1, o.tls.clone(), o.timeout)
                .map_err(|e| LoadError::BadOption(e.to_string()))?,
        ),
        None => None,
    };
    check_manifest(&connector, api.as_ref(), o)?;
    let live = Arc::new(Live {
        starting: AtomicI64::new(0),
        playing: AtomicI64::new(0),
        stalled: AtomicI64::new(0),
        requests: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        startup: Mutex::new(
            Histogram::new_with_bounds(1, 3_600_000, 3).expect("valid histogram bounds"),
        ),
    });
    let start = Instant::now() + Duration::from_millis(50);
    let shared = Arc::new(Shared {
        options: o.clone(),
        connector,
        api,
        clock: Clock {
            start,
            speed: o.speed,
            end_s: o.duration.as_secs_f64(),
        },
        pace_bps: o.throttle_kbps.map(|k| k * 1000.0 / 8.0 * o.speed),
        live: Arc::clone(&live),
    });
    let threads = cores::count(o.threads).min(o.viewers);
    let handles = cores::spawn(threads, "sg-viewers", move |thread| {
        let shared = Arc::clone(&shared);
        async move {
            let tally = Rc::new(RefCell::new(ViewerTally::default()));
            let n = shared.options.viewers;
            let mut tasks = Vec::new();
            for index in (thread..n).step_by(threads) {
                let (shared, tally) = (Arc::clone(&shared), Rc::clone(&tally));
                let begin =
                    shared.clock.start + shared.options.ramp.mul_f64(index as f64 / n as f64);
                tasks.push(tokio::task::spawn_local(async move {
                    tokio::time::sleep_until(begin.into()).await;
                    Viewer {
                        shared: &shared,
                        tally: &tally,
                        conn: None,
                        api: None,
                    }
                    .watch()
                    .await
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            let tally = tally.borrow().clone();
            tally
        }
    })?;
    cores::each_second_until_done(&handles, || {
        let (starting, playing, stalled) = live.viewers();
        status(ViewersStatus {
            elapsed: start.elapsed(),
            starting,
            playing,
            stalled,
            requests: live.requests.load(Ordering::Relaxed),
            errors: live.errors.load(Ordering::Relaxed),
            startup_p50_ms: live
                .startup
                .lock()
                .ok()
                .filter(|h| !h.is_empty())
                .map(|h| h.value_at_quantile(0.5)),
        })
    });
    let mut tally = ViewerTally::default();
    for h in handles {
        if let Ok(part) = h.join() {
            tally.merge(&part);
        }
    }
    Ok(ViewersReport {
        tally,
        viewers: o.viewers as u64,
        duration: start.elapsed().min(o.duration),
    })
}

/// Fetches and parses the manifest once before any viewer starts, so an
/// unreachable host or a manifest that is not one is a clear error.
fn check_manifest(
    connector: &Connector,
    api: Option<&Connector>,
    o: &ViewersOptions,
) -> Result<(), LoadError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LoadError::BadOption(e.to_string()))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let unreachable = LoadError::connecting;
        let mut conn = connector
            .connect()
            .await
            .map_err(|e| unreachable(o.target.addr, e))?;
        let (Some(api), Some(from)) = (api, &o.token_from) else {
            let reply = conn
                .fetch(&crate::client::Fetch {
                    method: "GET",
                    path: &o.target.path,
                    headers: &o.headers,
                    keep: Some(16 << 20),
                    pace_bps: None,
                })
                .await
                .map_err(|e| unreachable(o.target.addr, e))?;
            if reply.status >= 400 {
                return Err(LoadError::Manifest(format!(
                    "{} answered {}",
                    o.target.path, reply.status
                )));
            }
            return manifest::parse(&reply.body, &o.target.path).map(drop);
        };
        // With tokens: the API must answer; a refusal says why.
        let mut api_conn = api
            .connect()
            .await
            .map_err(|e| unreachable(from.target.addr, e))?;
        let reply = api_conn
            .fetch(&crate::client::Fetch {
                method: "POST",
                path: &from.target.path,
                headers: &from.headers,
                keep: Some(1 << 20),
                pace_bps: None,
            })
            .await
            .map_err(|e| unreachable(from.target.addr, e))?;
        if reply.status != 200 {
            return Err(LoadError::BadOption(format!(
                "--token-from answered {}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )));
        }
        Ok(())
    })
}

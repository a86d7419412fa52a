//! `streamgate loadtest run`: the schedule and the lanes.
//!
//! A *lane* is one request in flight: a connection for HTTP/1.1, a stream
//! of a shared connection for HTTP/2 (`--streams` lanes per connection).
//! Lanes are dealt to one thread per core and run as tasks there. Open
//! loop: request `k` of the whole run is *meant* to go out at
//! `start + k / rate`, the requests dealt to the lanes in turn, and its
//! corrected latency runs from that moment to the last byte of the answer;
//! a lane that falls behind sends at once and the lateness counts. Closed
//! loop: each lane sends as soon as its previous answer is in, and both
//! latencies are the same. A connection that breaks is opened again for
//! the lane's next request.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{http2, Conn, Connector, Fetch, Protocol};
use crate::report::{Outcome, Tally};
use crate::urls::{Picker, Weighted};
use crate::{cores, LoadError, Report, Target};

/// What to run.
#[derive(Clone)]
pub struct RunOptions {
    /// The URL under load (with [`RunOptions::list`], only its origin).
    pub target: Target,
    /// `GET` or `HEAD`.
    pub method: &'static str,
    /// Requests to spread the load over (`--urls`); empty: the target's
    /// path alone.
    pub list: Vec<Weighted>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Connections.
    pub connections: usize,
    /// HTTP/1.1, or HTTP/2 (h2 by ALPN over TLS, h2c over TCP).
    pub protocol: Protocol,
    /// Requests in flight per HTTP/2 connection.
    pub streams: usize,
    /// The TLS client configuration, for `https://` targets.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Threads (0: one per core).
    pub threads: usize,
    /// Requests per second over all lanes; `None`: closed loop.
    pub rate: Option<f64>,
    /// How long to measure.
    pub duration: Duration,
    /// At most this many measured requests.
    pub requests: Option<u64>,
    /// Load before measuring (not counted).
    pub warmup: Duration,
    /// How long one answer may take before it counts as a timeout.
    pub timeout: Duration,
}

/// Counts the threads share for the live status.
#[derive(Default)]
struct Live {
    requests: AtomicU64,
    errors: AtomicU64,
}

/// Where a run stands, for a live display.
#[derive(Debug, Clone, Copy)]
pub struct Status {
    /// Time since measuring began.
    pub elapsed: Duration,
    /// Requests measured so far.
    pub requests: u64,
    /// Of which errors (no answer, or 400 and above).
    pub errors: u64,
}

/// Runs the load and returns what it measured, calling `status` about once
/// a second meanwhile.
pub fn run(o: &RunOptions, status: &mut dyn FnMut(Status)) -> Result<Report, LoadError> {
    if o.connections == 0 || o.streams == 0 {
        return Err(LoadError::BadOption(
            "--connections and --streams must be at least 1".into(),
        ));
    }
    if o.streams > 1 && o.protocol == Protocol::Http1 {
        return Err(LoadError::BadOption(
            "--streams needs --http2 (HTTP/1.1 has one request in flight per connection)".into(),
        ));
    }
    if let Some(rate) = o.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(LoadError::BadOption(format!(
                "--rate must be a positive number of requests per second, not {rate}"
            )));
        }
    }
    let connector = Connector::new(&o.target, o.protocol, o.tls.clone(), o.timeout)
        .map_err(|e| LoadError::BadOption(e.to_string()))?;
    // Fail early and clearly when nothing listens or the handshake fails.
    probe(&connector, &o.target)?;
    let list = if o.list.is_empty() {
        vec![Weighted {
            method: o.method,
            path: o.target.path.clone(),
            weight: 1,
        }]
    } else {
        o.list.clone()
    };
    let start = Instant::now() + Duration::from_millis(50);
    let plan = Plan {
        start,
        measure_from: start + o.warmup,
        end: start + o.warmup + o.duration,
        lanes: o.connections * o.streams,
    };
    let budget = Arc::new(AtomicU64::new(o.requests.unwrap_or(u64::MAX)));
    let live = Arc::new(Live::default());
    let threads = cores::count(o.threads).min(o.connections);
    let shared = Arc::new(Shared {
        o: o.clone(),
        list,
        connector,
        plan,
        budget,
        live: Arc::clone(&live),
    });
    let handles = cores::spawn(threads, "sg-load", move |thread| {
        let shared = Arc::clone(&shared);
        async move {
            let o = &shared.o;
            let tally = Rc::new(RefCell::new(Tally::new()));
            let mut tasks = Vec::new();
            for connection in (thread..o.connections).step_by(threads) {
                let conn = Rc::new(SharedConn::default());
                for stream in 0..o.streams {
                    let lane = Lane {
                        index: connection * o.streams + stream,
                        conn: Rc::clone(&conn),
                    };
                    let (shared, tally) = (Arc::clone(&shared), Rc::clone(&tally));
                    tasks.push(tokio::task::spawn_local(async move {
                        lane.run(&shared, &tally).await
                    }));
                }
            }
            for t in tasks {
                let _ = t.await;
            }
            let tally = tally.borrow().clone();
            tally
        }
    })?;
    cores::each_second_until_done(&handles, || {
        status(Status {
            elapsed: plan.measure_from.elapsed(),
            requests: live.requests.load(Ordering::Relaxed),
            errors: live.errors.load(Ordering::Relaxed),
        })
    });
    let mut tally = Tally::new();
    for h in handles {
        if let Ok(part) = h.join() {
            tally.merge(&part);
        }
    }
    let measured = Instant::now()
        .min(plan.end)
        .saturating_duration_since(plan.measure_from);
    Ok(Report::new(tally, measured, o.rate.is_some()))
}

/// Connects once (and does the TLS and HTTP/2 handshakes) before any load.
fn probe(connector: &Connector, target: &Target) -> Result<(), LoadError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LoadError::BadOption(e.to_string()))?;
    let local = tokio::task::LocalSet::new();
    local
        .block_on(&runtime, connector.connect())
        .map(drop)
        .map_err(|source| LoadError::connecting(target.addr, source))
}

/// What every lane reads.
struct Shared {
    o: RunOptions,
    list: Vec<Weighted>,
    connector: Connector,
    plan: Plan,
    budget: Arc<AtomicU64>,
    live: Arc<Live>,
}

/// When the run's requests are due.
#[derive(Clone, Copy)]
struct Plan {
    start: Instant,
    measure_from: Instant,
    end: Instant,
    lanes: usize,
}

/// A connection the lanes of one HTTP/2 connection share; for HTTP/1.1 a
/// lane's own.
#[derive(Default)]
struct SharedConn {
    h2: RefCell<Option<(u64, http2::Conn)>>,
    generation: std::cell::Cell<u64>,
    connecting: tokio::sync::Mutex<()>,
}

/// One request in flight.
struct Lane {
    index: usize,
    conn: Rc<SharedConn>,
}

impl Lane {
    async fn run(self, shared: &Shared, tally: &RefCell<Tally>) {
        let Shared {
            o,
            list,
            connector,
            plan,
            budget,
            live,
        } = shared;
        let mut picker = Picker::new(list, self.index as u64 + 1);
        let mut conn: Option<(u64, Conn)> = None;
        let step = o
            .rate
            .map(|r| Duration::from_secs_f64(plan.lanes as f64 / r));
        let mut next = plan.start
            + o.rate.map_or(Duration::ZERO, |r| {
                Duration::from_secs_f64(self.index as f64 / r)
            });
        loop {
            let intended = match step {
                Some(step) => {
                    let due = next;
                    next += step;
                    due
                }
                None => Instant::now().max(plan.start),
            };
            if intended >= plan.end {
                break;
            }
            let measured = intended >= plan.measure_from;
            if measured && take_one(budget).is_none() {
                break;
            }
            if intended > Instant::now() {
                tokio::time::sleep_until(intended.into()).await;
            }
            let request = &list[picker.pick().min(list.len() - 1)];
            let fetch = Fetch {
                method: request.method,
                path: &request.path,
                headers: &o.headers,
                keep: None,
                pace_bps: None,
            };
            let sent = Instant::now();
            let outcome = match self.exchange(&mut conn, connector, &fetch, o.timeout).await {
                Ok((status, bytes)) => Outcome::Answered { status, bytes },
                Err(e) => Outcome::Failed(e.kind()),
            };
            let done = Instant::now();
            if measured {
                tally.borrow_mut().record(
                    &outcome,
                    done - intended,
                    done - sent,
                    done.saturating_duration_since(plan.measure_from),
                );
                live.requests.fetch_add(1, Ordering::Relaxed);
                if !matches!(outcome, Outcome::Answered { status, .. } if status < 400) {
                    live.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// One request on the lane's connection, opened (or joined, for
    /// HTTP/2) if needed; a failure closes it.
    async fn exchange(
        &self,
        conn: &mut Option<(u64, Conn)>,
        connector: &Connector,
        fetch: &Fetch<'_>,
        timeout: Duration,
    ) -> io::Result<(u16, u64)> {
        let result = tokio::time::timeout(timeout, async {
            if conn.is_none() {
                *conn = Some(self.open(connector).await?);
            }
            match conn {
                Some((_, c)) => c.fetch(fetch).await,
                None => Err(io::ErrorKind::NotConnected.into()),
            }
        })
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "answer timed out")));
        match result {
            Ok(reply) => {
                if reply.closes {
                    *conn = None;
                }
                Ok((reply.status, reply.bytes))
            }
            Err(e) => {
                if let Some((generation, _)) = conn.take() {
                    self.forget(generation);
                }
                Err(e)
            }
        }
    }

    /// A connection for this lane: its own for HTTP/1.1, the shared one
    /// for HTTP/2 (opened by the first lane that needs it).
    async fn open(&self, connector: &Connector) -> io::Result<(u64, Conn)> {
        if connector.protocol() == Protocol::Http1 {
            return Ok((0, connector.connect().await?));
        }
        loop {
            if let Some((generation, c)) = self.conn.h2.borrow().as_ref() {
                return Ok((*generation, Conn::Http2(c.clone())));
            }
            let _connecting = self.conn.connecting.lock().await;
            if self.conn.h2.borrow().is_some() {
                continue;
            }
            let Conn::Http2(c) = connector.connect().await? else {
                return Err(io::ErrorKind::Unsupported.into());
            };
            let generation = self.conn.generation.get() + 1;
            self.conn.generation.set(generation);
            *self.conn.h2.borrow_mut() = Some((generation, c));
        }
    }

    /// Drops the shared HTTP/2 connection if it is still the one that
    /// failed, so the next request opens a new one.
    fn forget(&self, generation: u64) {
        let mut h2 = self.conn.h2.borrow_mut();
        if h2.as_ref().is_some_and(|(g, _)| *g == generation) {
            *h2 = None;
        }
    }
}

/// Takes one request from the run's budget; `None` when it is spent.
fn take_one(budget: &AtomicU64) -> Option<()> {
    budget
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .ok()
        .map(|_| ())
}

//! `streamgate loadtest run`: the schedule and the connections.
//!
//! Each connection runs on a thread of its own with blocking I/O and one
//! request in flight (HTTP/1.1 keep-alive; a closed connection is opened
//! again). Open loop: request `k` of the whole run is *meant* to go out at
//! `start + k / rate`, the requests dealt to the connections in turn, and
//! its corrected latency runs from that moment to the last byte of the
//! answer; a connection that falls behind sends at once and the lateness
//! counts. Closed loop: each connection sends as soon as the previous
//! answer is in, and both latencies are the same.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::report::{Outcome, Tally};
use crate::urls::{Picker, Weighted};
use crate::{LoadError, Report, Target};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The URL under load (with [`RunOptions::list`], only its origin).
    pub target: Target,
    /// `GET` or `HEAD`.
    pub method: &'static str,
    /// Requests to spread the load over (`--urls`); empty: the target's
    /// path alone.
    pub list: Vec<Weighted>,
    /// Extra header lines (`Name: value`).
    pub headers: Vec<String>,
    /// Connections, each with one request in flight.
    pub connections: usize,
    /// Requests per second over all connections; `None`: closed loop.
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

/// Counts the connections share for the live status.
#[derive(Default)]
struct Live {
    requests: AtomicU64,
    errors: AtomicU64,
}

/// Runs the load and returns what it measured, calling `status` about once
/// a second meanwhile.
pub fn run(o: &RunOptions, status: &mut dyn FnMut(Status)) -> Result<Report, LoadError> {
    if o.connections == 0 {
        return Err(LoadError::BadOption(
            "--connections must be at least 1".into(),
        ));
    }
    if let Some(rate) = o.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(LoadError::BadOption(format!(
                "--rate must be a positive number of requests per second, not {rate}"
            )));
        }
    }
    // Fail early and clearly when nothing listens.
    TcpStream::connect_timeout(&o.target.addr, Duration::from_secs(3)).map_err(|source| {
        LoadError::Unreachable {
            addr: o.target.addr,
            source,
        }
    })?;
    let list = if o.list.is_empty() {
        vec![Weighted {
            method: o.method,
            path: o.target.path.clone(),
            weight: 1,
        }]
    } else {
        o.list.clone()
    };
    let extra: String = o.headers.iter().map(|h| format!("{h}\r\n")).collect();
    let requests: Arc<Vec<Request>> = Arc::new(
        list.iter()
            .map(|w| Request {
                bytes: format!(
                    "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: streamgate-loadtest\r\n{extra}\r\n",
                    w.method, w.path, o.target.host
                )
                .into_bytes(),
                head_only: w.method == "HEAD",
            })
            .collect(),
    );
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + o.warmup;
    let end = measure_from + o.duration;
    let budget = Arc::new(AtomicU64::new(o.requests.unwrap_or(u64::MAX)));
    let live = Arc::new(Live::default());
    let threads: Vec<_> = (0..o.connections)
        .map(|index| {
            let o = o.clone();
            let requests = Arc::clone(&requests);
            let picker = Picker::new(&list, index as u64 + 1);
            let budget = Arc::clone(&budget);
            let live = Arc::clone(&live);
            std::thread::Builder::new()
                .name(format!("sg-load-{index}"))
                .spawn(move || {
                    let plan = Plan {
                        start,
                        measure_from,
                        end,
                        index,
                    };
                    connection(&o, &requests, picker, &plan, &budget, &live)
                })
        })
        .collect::<Result<_, _>>()
        .map_err(|e| LoadError::BadOption(format!("cannot start a connection thread: {e}")))?;
    watch(&threads, &live, measure_from, status);
    let mut tally = Tally::new();
    for t in threads {
        if let Ok(part) = t.join() {
            tally.merge(&part);
        }
    }
    let measured = Instant::now()
        .min(end)
        .saturating_duration_since(measure_from);
    Ok(Report::new(tally, measured, o.rate.is_some()))
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

/// Calls `status` about once a second until every connection is done.
fn watch<T>(
    threads: &[std::thread::JoinHandle<T>],
    live: &Live,
    since: Instant,
    status: &mut dyn FnMut(Status),
) {
    let mut last = Instant::now();
    while threads.iter().any(|t| !t.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            status(Status {
                elapsed: since.elapsed(),
                requests: live.requests.load(Ordering::Relaxed),
                errors: live.errors.load(Ordering::Relaxed),
            });
        }
    }
}

/// When one connection's requests are due.
struct Plan {
    start: Instant,
    measure_from: Instant,
    end: Instant,
    index: usize,
}

/// One request, ready to send.
struct Request {
    bytes: Vec<u8>,
    head_only: bool,
}

/// One connection's loop; returns its tally.
fn connection(
    o: &RunOptions,
    requests: &[Request],
    mut picker: Picker,
    plan: &Plan,
    budget: &AtomicU64,
    live: &Live,
) -> Tally {
    let mut tally = Tally::new();
    let mut conn: Option<Client> = None;
    let interval = o
        .rate
        .map(|r| Duration::from_secs_f64(o.connections as f64 / r));
    let mut next = plan.start
        + o.rate.map_or(Duration::ZERO, |r| {
            Duration::from_secs_f64(plan.index as f64 / r)
        });
    loop {
        let now = Instant::now();
        let intended = match interval {
            Some(step) => {
                let due = next;
                next += step;
                due
            }
            None => now.max(plan.start),
        };
        if intended >= plan.end {
            break;
        }
        let measured = intended >= plan.measure_from;
        if measured && take_one(budget).is_none() {
            break;
        }
        if let Some(wait) = intended.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let request = &requests[picker.pick().min(requests.len() - 1)];
        let sent = Instant::now();
        let outcome = match exchange(&mut conn, o, request) {
            Ok((status, bytes)) => Outcome::Answered { status, bytes },
            Err(e) => {
                conn = None;
                Outcome::Failed(e.kind())
            }
        };
        let done = Instant::now();
        if measured {
            tally.record(&outcome, done - intended, done - sent);
            live.requests.fetch_add(1, Ordering::Relaxed);
            if !matches!(outcome, Outcome::Answered { status, .. } if status < 400) {
                live.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    tally
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

/// Sends the request on the open connection (opening one if needed) and
/// reads the whole answer; returns its status and body bytes.
fn exchange(
    conn: &mut Option<Client>,
    o: &RunOptions,
    request: &Request,
) -> io::Result<(u16, u64)> {
    if conn.is_none() {
        *conn = Some(Client::open(o)?);
    }
    let client = conn
        .as_mut()
        .ok_or_else(|| io::Error::other("no connection"))?;
    let answer = client.exchange(&request.bytes, request.head_only);
    if matches!(answer, Ok((_, _, true))) {
        *conn = None; // the server closes after this answer
    }
    answer.map(|(status, bytes, _)| (status, bytes))
}

/// One HTTP/1.1 connection with a reused read buffer: bodies are counted
/// and dropped, never kept.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes in `buf` not yet consumed.
    filled: usize,
}

impl Client {
    fn open(o: &RunOptions) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&o.target.addr, o.timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(o.timeout))?;
        stream.set_write_timeout(Some(o.timeout))?;
        Ok(Self {
            stream,
            buf: vec![0; 64 << 10],
            filled: 0,
        })
    }

    /// (status, body bytes, whether the server closes after it).
    fn exchange(&mut self, request: &[u8], head_only: bool) -> io::Result<(u16, u64, bool)> {
        self.stream.write_all(request)?;
        let head_end = loop {
            if let Some(i) = find(&self.buf[..self.filled], b"\r\n\r\n") {
                break i + 4;
            }
            if self.filled == self.buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "response head too large",
                ));
            }
            let n = self.stream.read(&mut self.buf[self.filled..])?;
            if n == 0 {
                return Err(io::ErrorKind::ConnectionAborted.into());
            }
            self.filled += n;
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "response head not text"))?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status line"))?;
        let mut length = 0u64;
        let mut close = false;
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, "bad Content-Length")
                })?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "chunked answers are not supported yet",
                ));
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close")
            {
                close = true;
            }
        }
        if head_only || status == 204 || status == 304 || status < 200 {
            length = 0;
        }
        // The body: what is buffered past the head, then the socket.
        let buffered = (self.filled - head_end) as u64;
        let from_buffer = buffered.min(length) as usize;
        let mut left = length - from_buffer as u64;
        self.buf.copy_within(head_end + from_buffer..self.filled, 0);
        self.filled -= head_end + from_buffer;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = self.stream.read(&mut self.buf[..want])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            left -= n as u64;
        }
        Ok((status, length, close))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

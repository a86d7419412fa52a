//! What a run measured: [`Tally`] while it runs (per connection, merged at
//! the end), [`Report`] after, as a table for people and as JSON
//! (`docs/loadtest.md` documents every field).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::ErrorKind;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::LoadError;

/// Latencies are kept in microseconds, 3 significant digits, up to an hour.
const MAX_MICROS: u64 = 3_600_000_000;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer arrived whole.
    Answered {
        /// Its status.
        status: u16,
        /// Body bytes.
        bytes: u64,
    },
    /// No (whole) answer.
    Failed(ErrorKind),
}

/// Counts and latency distributions of the requests measured so far.
#[derive(Debug, Clone)]
pub struct Tally {
    corrected: Histogram<u64>,
    raw: Histogram<u64>,
    requests: u64,
    bytes: u64,
    statuses: BTreeMap<u16, u64>,
    failures: BTreeMap<&'static str, u64>,
    /// Per second of the measured time, for the plots.
    timeline: Vec<Second>,
}

/// What one second of a run counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Second {
    /// Requests that ended in it.
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
    /// Body bytes received.
    pub bytes: u64,
}

/// Adds `other` into `into`, second by second.
pub(crate) fn add_timeline(into: &mut Vec<Second>, other: &[Second]) {
    if into.len() < other.len() {
        into.resize(other.len(), Second::default());
    }
    for (a, b) in into.iter_mut().zip(other) {
        a.requests += b.requests;
        a.errors += b.errors;
        a.bytes += b.bytes;
    }
}

/// The most seconds a timeline keeps (a day); later ones count in the last.
const MAX_SECONDS: usize = 86_400;

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    /// Nothing yet.
    pub fn new() -> Self {
        let histogram =
            || Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds");
        Self {
            corrected: histogram(),
            raw: histogram(),
            requests: 0,
            bytes: 0,
            statuses: BTreeMap::new(),
            failures: BTreeMap::new(),
            timeline: Vec::new(),
        }
    }

    /// Records one request that ended `at` (since measuring began): its
    /// latency from when it was meant to go out (`corrected`) and from when
    /// it did (`raw`).
    pub fn record(&mut self, outcome: &Outcome, corrected: Duration, raw: Duration, at: Duration) {
        self.requests += 1;
        let micros = |d: Duration| (d.as_micros() as u64).clamp(1, MAX_MICROS);
        self.corrected.saturating_record(micros(corrected));
        self.raw.saturating_record(micros(raw));
        let second = (at.as_secs() as usize).min(MAX_SECONDS - 1);
        if self.timeline.len() <= second {
            self.timeline.resize(second + 1, Second::default());
        }
        let slot = &mut self.timeline[second];
        slot.requests += 1;
        match *outcome {
            Outcome::Answered { status, bytes } => {
                self.bytes += bytes;
                slot.bytes += bytes;
                slot.errors += u64::from(status >= 400);
                *self.statuses.entry(status).or_default() += 1;
            }
            Outcome::Failed(kind) => {
                slot.errors += 1;
                *self.failures.entry(failure_name(kind)).or_default() += 1
            }
        }
    }

    /// The latency distribution from the intended send (`corrected`) or
    /// the actual one.
    pub fn latency(&self, corrected: bool) -> &Histogram<u64> {
        if corrected {
            &self.corrected
        } else {
            &self.raw
        }
    }

    /// Counts per second of the measured time.
    pub fn timeline(&self) -> &[Second] {
        &self.timeline
    }

    /// Adds another tally (another connection's) to this one.
    pub fn merge(&mut self, other: &Tally) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.corrected.add(&other.corrected);
        let _ = self.raw.add(&other.raw);
        self.requests += other.requests;
        self.bytes += other.bytes;
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        for (kind, n) in &other.failures {
            *self.failures.entry(kind).or_default() += n;
        }
        add_timeline(&mut self.timeline, &other.timeline);
    }
}

/// The names failures are counted under.
const FAILURE_NAMES: [&str; 6] = ["timeout", "refused", "reset", "closed", "protocol", "other"];

/// The name a failure is counted under.
pub(crate) fn failure_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => "timeout",
        ErrorKind::ConnectionRefused => "refused",
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => "reset",
        ErrorKind::ConnectionAborted | ErrorKind::UnexpectedEof => "closed",
        ErrorKind::InvalidData | ErrorKind::Unsupported => "protocol",
        _ => "other",
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Report {
    tally: Tally,
    duration: Duration,
    open_loop: bool,
}

impl Report {
    /// A report over `tally`, measured for `duration`.
    pub fn new(tally: Tally, duration: Duration, open_loop: bool) -> Self {
        Self {
            tally,
            duration,
            open_loop,
        }
    }

    /// The counts and distributions.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Requests measured.
    pub fn requests(&self) -> u64 {
        self.tally.requests
    }

    /// Requests that got no answer, or an answer of 400 or above.
    pub fn errors(&self) -> u64 {
        let failed: u64 = self.tally.failures.values().sum();
        let refused: u64 = self
            .tally
            .statuses
            .iter()
            .filter(|(s, _)| **s >= 400)
            .map(|(_, n)| n)
            .sum();
        failed + refused
    }

    fn seconds(&self) -> f64 {
        self.duration.as_secs_f64().max(1e-9)
    }

    fn percentiles(h: &Histogram<u64>) -> Value {
        let ms = |micros: u64| micros as f64 / 1000.0;
        if h.is_empty() {
            return json!({"p50": null, "p90": null, "p99": null, "p999": null, "max": null});
        }
        json!({
            "p50": ms(h.value_at_quantile(0.50)),
            "p90": ms(h.value_at_quantile(0.90)),
            "p99": ms(h.value_at_quantile(0.99)),
            "p999": ms(h.value_at_quantile(0.999)),
            "max": ms(h.max()),
        })
    }

    /// Combines reports of runs made at the same time (on several load
    /// machines) into one: counts add, histograms merge exactly, the
    /// duration is the longest.
    pub fn merge(reports: &[Report]) -> Option<Report> {
        let (first, rest) = reports.split_first()?;
        let mut merged = first.clone();
        for r in rest {
            merged.tally.merge(&r.tally);
            merged.duration = merged.duration.max(r.duration);
            merged.open_loop &= r.open_loop;
        }
        Some(merged)
    }

    /// Reads back what [`Report::to_json`] wrote.
    pub fn from_json(value: &Value) -> Result<Report, LoadError> {
        let bad = |what: &str| LoadError::BadOption(format!("not a loadtest report: {what}"));
        let histogram = |key: &str| -> Result<Histogram<u64>, LoadError> {
            let text = value["histograms"][key].as_str().ok_or_else(|| bad(key))?;
            let bytes = B64.decode(text).map_err(|_| bad(key))?;
            Deserializer::new()
                .deserialize(&mut bytes.as_slice())
                .map_err(|_| bad(key))
        };
        let count = |v: &Value| v.as_u64().ok_or_else(|| bad("a count"));
        let mut statuses = BTreeMap::new();
        for (status, n) in value["status"].as_object().ok_or_else(|| bad("status"))? {
            statuses.insert(status.parse().map_err(|_| bad("status"))?, count(n)?);
        }
        let mut failures = BTreeMap::new();
        for (kind, n) in value["errors"]["by_kind"]
            .as_object()
            .ok_or_else(|| bad("errors.by_kind"))?
        {
            let name = FAILURE_NAMES
                .iter()
                .find(|k| *k == kind)
                .copied()
                .unwrap_or("other");
            *failures.entry(name).or_default() += count(n)?;
        }
        let tally = Tally {
            corrected: histogram("corrected")?,
            raw: histogram("uncorrected")?,
            requests: count(&value["requests"])?,
            bytes: count(&value["bytes"])?,
            statuses,
            failures,
            timeline: timeline_from_json(&value["timeline"]),
        };
        let seconds = value["duration_s"]
            .as_f64()
            .ok_or_else(|| bad("duration_s"))?;
        Ok(Report::new(
            tally,
            Duration::from_secs_f64(seconds.max(0.0)),
            value["mode"] == "open",
        ))
    }

    fn encoded(h: &Histogram<u64>) -> Value {
        let mut bytes = Vec::new();
        match V2DeflateSerializer::new().serialize(h, &mut bytes) {
            Ok(_) => Value::String(B64.encode(bytes)),
            Err(_) => Value::Null,
        }
    }

    /// Every figure, as documented in `docs/loadtest.md`.
    pub fn to_json(&self) -> Value {
        let t = &self.tally;
        let by_status: BTreeMap<String, u64> = t
            .statuses
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect();
        let errors_by_status: BTreeMap<String, u64> = t
            .statuses
            .iter()
            .filter(|(s, _)| **s >= 400)
            .map(|(s, n)| (s.to_string(), *n))
            .collect();
        json!({
            "mode": if self.open_loop { "open" } else { "closed" },
            "requests": t.requests,
            "duration_s": self.duration.as_secs_f64(),
            "rps": t.requests as f64 / self.seconds(),
            "bytes": t.bytes,
            "throughput_bps": t.bytes as f64 * 8.0 / self.seconds(),
            "status": by_status,
            "errors": {
                "total": self.errors(),
                "by_kind": t.failures,
                "by_status": errors_by_status,
            },
            "latency_ms": Self::percentiles(&t.corrected),
            "latency_uncorrected_ms": Self::percentiles(&t.raw),
            "timeline": timeline_to_json(&t.timeline),
            // Exact distributions (HdrHistogram V2, deflated, base64), so
            // that `merge` can combine runs.
            "histograms": {
                "corrected": Self::encoded(&t.corrected),
                "uncorrected": Self::encoded(&t.raw),
            },
        })
    }

    /// A summary table for a terminal.
    pub fn to_table(&self, uncorrected: bool) -> String {
        let j = self.to_json();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} requests in {:.1} s ({} loop): {:.1} req/s, {:.2} MB/s, {} errors",
            self.tally.requests,
            self.duration.as_secs_f64(),
            j["mode"].as_str().unwrap_or(""),
            j["rps"].as_f64().unwrap_or(0.0),
            self.tally.bytes as f64 / self.seconds() / 1e6,
            self.errors()
        );
        let mut rows = vec![("latency (ms)", &j["latency_ms"])];
        if uncorrected {
            rows.push(("uncorrected (ms)", &j["latency_uncorrected_ms"]));
        }
        let _ = writeln!(
            out,
            "{:<18} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "", "p50", "p90", "p99", "p99.9", "max"
        );
        for (name, p) in rows {
            let cell = |k: &str| p[k].as_f64().map_or("-".to_string(), |v| format!("{v:.2}"));
            let _ = writeln!(
                out,
                "{name:<18} {:>9} {:>9} {:>9} {:>9} {:>9}",
                cell("p50"),
                cell("p90"),
                cell("p99"),
                cell("p999"),
                cell("max")
            );
        }
        for (kind, n) in &self.tally.failures {
            let _ = writeln!(out, "failed: {kind} × {n}");
        }
        for (status, n) in self.tally.statuses.iter().filter(|(s, _)| **s >= 400) {
            let _ = writeln!(out, "status {status} × {n}");
        }
        out
    }
}

/// Per-second counts as three arrays (index = second of the run).
pub(crate) fn timeline_to_json(timeline: &[Second]) -> Value {
    json!({
        "requests": timeline.iter().map(|s| s.requests).collect::<Vec<_>>(),
        "errors": timeline.iter().map(|s| s.errors).collect::<Vec<_>>(),
        "bytes": timeline.iter().map(|s| s.bytes).collect::<Vec<_>>(),
    })
}

/// Reads back [`timeline_to_json`] (empty when absent).
pub(crate) fn timeline_from_json(value: &Value) -> Vec<Second> {
    let column = |k: &str| -> Vec<u64> {
        value[k]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(0)).collect())
            .unwrap_or_default()
    };
    let (requests, errors, bytes) = (column("requests"), column("errors"), column("bytes"));
    (0..requests.len().min(MAX_SECONDS))
        .map(|i| Second {
            requests: requests[i],
            errors: errors.get(i).copied().unwrap_or(0),
            bytes: bytes.get(i).copied().unwrap_or(0),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_merge_and_count_errors_by_kind_and_status() {
        let ms = Duration::from_millis;
        let mut a = Tally::new();
        a.record(
            &Outcome::Answered {
                status: 200,
                bytes: 10,
            },
            ms(5),
            ms(1),
            ms(100),
        );
        a.record(
            &Outcome::Answered {
                status: 404,
                bytes: 3,
            },
            ms(6),
            ms(2),
            ms(1500),
        );
        let mut b = Tally::new();
        b.record(
            &Outcome::Failed(ErrorKind::ConnectionReset),
            ms(1000),
            ms(3),
            ms(1900),
        );
        a.merge(&b);
        let r = Report::new(a, Duration::from_secs(2), true);
        let j = r.to_json();
        assert_eq!(j["requests"], 3);
        assert_eq!(j["bytes"], 13);
        assert_eq!(j["errors"]["total"], 2);
        assert_eq!(j["errors"]["by_kind"]["reset"], 1);
        assert_eq!(j["errors"]["by_status"]["404"], 1);
        assert_eq!(j["rps"], 1.5);
        let max = j["latency_ms"]["max"].as_f64().unwrap();
        assert!((999.0..=1001.0).contains(&max), "{max}");
        assert!(j["latency_uncorrected_ms"]["max"].as_f64().unwrap() < 4.0);
        // Read back and merged with itself: every count doubles, the
        // distribution keeps its shape.
        let back = Report::from_json(&j).unwrap();
        let twice = Report::merge(&[back.clone(), back]).unwrap().to_json();
        assert_eq!(twice["requests"], 6);
        assert_eq!(twice["errors"]["by_kind"]["reset"], 2);
        assert_eq!(twice["status"]["404"], 2);
        assert_eq!(twice["latency_ms"]["max"], j["latency_ms"]["max"]);
        assert_eq!(twice["duration_s"], 2.0);
        assert_eq!(j["timeline"]["requests"], json!([1, 2]));
        assert_eq!(j["timeline"]["errors"], json!([0, 2]));
        assert_eq!(twice["timeline"]["requests"], json!([2, 4]));
        assert!(Report::from_json(&json!({"requests": 1})).is_err());
    }
}

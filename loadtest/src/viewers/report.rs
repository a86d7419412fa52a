//! What the viewers lived through: [`ViewerTally`] per thread while they
//! play, [`ViewersReport`] after (table, JSON, merge).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::report::{Report, Tally};
use crate::LoadError;

/// Milliseconds, 3 significant digits, up to an hour.
const MAX_MS: u64 = 3_600_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MS, 3).expect("valid histogram bounds")
}

/// How many viewers were in each state during one second (averaged over
/// the second: 10 viewers stalled for half of it count 5).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct States {
    /// Waiting for the first frame.
    pub starting: f64,
    /// Playing.
    pub playing: f64,
    /// Stalled (buffer empty).
    pub stalled: f64,
}

/// Counts of one thread's viewers.
#[derive(Debug, Clone)]
pub struct ViewerTally {
    /// Every request the viewers made (manifests, tokens, segments).
    pub requests: Tally,
    /// From a session's start to its first frame.
    pub startup: Histogram<u64>,
    /// Segment download times.
    pub segment: Histogram<u64>,
    /// Sessions begun.
    pub sessions: u64,
    /// Sessions that played to the end.
    pub completed: u64,
    /// Sessions given up on an error.
    pub failed: u64,
    /// Failures by kind (`status_404`, `timeout`, `manifest`, …).
    pub failures: BTreeMap<String, u64>,
    /// Stalls after playback started.
    pub stalls: u64,
    /// Seconds of media played.
    pub played_s: f64,
    /// Seconds spent stalled.
    pub stalled_s: f64,
    /// Rendition switches.
    pub switches: u64,
    /// Seconds of media fetched, by rendition name, and their bitrate.
    pub renditions: BTreeMap<String, (f64, u64)>,
    /// Per second of the run.
    pub timeline: Vec<States>,
}

impl Default for ViewerTally {
    fn default() -> Self {
        Self {
            requests: Tally::new(),
            startup: histogram(),
            segment: histogram(),
            sessions: 0,
            completed: 0,
            failed: 0,
            failures: BTreeMap::new(),
            stalls: 0,
            played_s: 0.0,
            stalled_s: 0.0,
            switches: 0,
            renditions: BTreeMap::new(),
            timeline: Vec::new(),
        }
    }
}

/// The most seconds a timeline keeps (a day).
const MAX_SECONDS: f64 = 86_400.0;

impl ViewerTally {
    /// Records a duration in milliseconds.
    pub fn ms(h: &mut Histogram<u64>, d: Duration) {
        h.saturating_record((d.as_millis() as u64).clamp(1, MAX_MS));
    }

    /// Adds a state held from `from` to `to` (seconds of the run) to the
    /// timeline.
    pub fn span(&mut self, from: f64, to: f64, pick: fn(&mut States) -> &mut f64) {
        let (from, to) = (from.max(0.0), to.min(MAX_SECONDS));
        if to <= from {
            return;
        }
        let last = to.ceil() as usize;
        if self.timeline.len() < last {
            self.timeline.resize(last, States::default());
        }
        let mut t = from;
        while t < to {
            let second = t.floor();
            let end = (second + 1.0).min(to);
            *pick(&mut self.timeline[second as usize]) += end - t;
            t = end;
        }
    }

    /// Adds another tally (another thread's) to this one.
    pub fn merge(&mut self, o: &ViewerTally) {
        self.requests.merge(&o.requests);
        let _ = self.startup.add(&o.startup);
        let _ = self.segment.add(&o.segment);
        self.sessions += o.sessions;
        self.completed += o.completed;
        self.failed += o.failed;
        for (k, n) in &o.failures {
            *self.failures.entry(k.clone()).or_default() += n;
        }
        self.stalls += o.stalls;
        self.played_s += o.played_s;
        self.stalled_s += o.stalled_s;
        self.switches += o.switches;
        for (name, (seconds, bitrate)) in &o.renditions {
            let e = self
                .renditions
                .entry(name.clone())
                .or_insert((0.0, *bitrate));
            e.0 += seconds;
        }
        if self.timeline.len() < o.timeline.len() {
            self.timeline.resize(o.timeline.len(), States::default());
        }
        for (a, b) in self.timeline.iter_mut().zip(&o.timeline) {
            a.starting += b.starting;
            a.playing += b.playing;
            a.stalled += b.stalled;
        }
    }
}

/// The result of a `viewers` run.
#[derive(Debug, Clone)]
pub struct ViewersReport {
    /// Everything counted.
    pub tally: ViewerTally,
    /// Viewers asked for.
    pub viewers: u64,
    /// Measured time.
    pub duration: Duration,
}

fn percentiles(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"p50": null, "p90": null, "p99": null, "max": null});
    }
    json!({
        "p50": h.value_at_quantile(0.50),
        "p90": h.value_at_quantile(0.90),
        "p99": h.value_at_quantile(0.99),
        "max": h.max(),
    })
}

fn encoded(h: &Histogram<u64>) -> Value {
    let mut bytes = Vec::new();
    match V2DeflateSerializer::new().serialize(h, &mut bytes) {
        Ok(_) => Value::String(B64.encode(bytes)),
        Err(_) => Value::Null,
    }
}

impl ViewersReport {
    /// The share of watch time spent stalled.
    pub fn stall_ratio(&self) -> f64 {
        let t = &self.tally;
        let watch = t.played_s + t.stalled_s;
        if watch > 0.0 {
            t.stalled_s / watch
        } else {
            0.0
        }
    }

    /// Time-average bitrate of the media fetched, bits per second.
    pub fn avg_bitrate_bps(&self) -> f64 {
        let (seconds, bits) = self
            .tally
            .renditions
            .values()
            .fold((0.0, 0.0), |(s, b), (secs, rate)| {
                (s + secs, b + secs * *rate as f64)
            });
        if seconds > 0.0 {
            bits / seconds
        } else {
            0.0
        }
    }

    /// Each rendition's share of the media fetched (0..1).
    pub fn shares(&self) -> BTreeMap<String, f64> {
        let total: f64 = self.tally.renditions.values().map(|(s, _)| s).sum();
        self.tally
            .renditions
            .iter()
            .map(|(name, (s, _))| (name.clone(), if total > 0.0 { s / total } else { 0.0 }))
            .collect()
    }

    /// The requests as a `run` report.
    pub fn requests(&self) -> Report {
        Report::new(self.tally.requests.clone(), self.duration, false)
    }

    /// Errors: failed requests plus answers of 400 and above.
    pub fn errors(&self) -> u64 {
        self.requests().errors()
    }

    /// Every figure, as documented in `docs/loadtest.md`.
    pub fn to_json(&self) -> Value {
        let t = &self.tally;
        let requests = self.requests().to_json();
        let renditions: BTreeMap<String, Value> = t
            .renditions
            .iter()
            .map(|(name, (seconds, bitrate))| {
                (
                    name.clone(),
                    json!({"seconds": seconds, "bitrate_bps": bitrate}),
                )
            })
            .collect();
        json!({
            "kind": "viewers",
            "viewers": self.viewers,
            "duration_s": self.duration.as_secs_f64(),
            "sessions": {"started": t.sessions, "completed": t.completed, "failed": t.failed},
            "startup_ms": percentiles(&t.startup),
            "stalls": t.stalls,
            "stall_ratio": self.stall_ratio(),
            "played_s": t.played_s,
            "stalled_s": t.stalled_s,
            "switches": t.switches,
            "avg_bitrate_bps": self.avg_bitrate_bps(),
            "rendition_share": self.shares(),
            "renditions": renditions,
            "segment_ms": percentiles(&t.segment),
            "errors": {
                "total": requests["errors"]["total"],
                "by_kind": requests["errors"]["by_kind"],
                "by_status": requests["errors"]["by_status"],
                "sessions_by_kind": t.failures,
            },
            "requests": requests,
            "timeline": {
                "starting": t.timeline.iter().map(|s| s.starting).collect::<Vec<_>>(),
                "playing": t.timeline.iter().map(|s| s.playing).collect::<Vec<_>>(),
                "stalled": t.timeline.iter().map(|s| s.stalled).collect::<Vec<_>>(),
            },
            "histograms": {"startup": encoded(&t.startup), "segment": encoded(&t.segment)},
        })
    }

    /// Reads back what [`ViewersReport::to_json`] wrote.
    pub fn from_json(v: &Value) -> Result<Self, LoadError> {
        let bad = |what: &str| LoadError::BadOption(format!("not a viewers report: {what}"));
        let hist = |key: &str| -> Result<Histogram<u64>, LoadError> {
            let text = v["histograms"][key].as_str().ok_or_else(|| bad(key))?;
            let bytes = B64.decode(text).map_err(|_| bad(key))?;
            Deserializer::new()
                .deserialize(&mut bytes.as_slice())
                .map_err(|_| bad(key))
        };
        let count = |x: &Value, what: &str| x.as_u64().ok_or_else(|| bad(what));
        let float = |x: &Value, what: &str| x.as_f64().ok_or_else(|| bad(what));
        let requests = Report::from_json(&v["requests"])?;
        let mut renditions = BTreeMap::new();
        for (name, r) in v["renditions"]
            .as_object()
            .ok_or_else(|| bad("renditions"))?
        {
            renditions.insert(
                name.clone(),
                (
                    float(&r["seconds"], "seconds")?,
                    count(&r["bitrate_bps"], "bitrate")?,
                ),
            );
        }
        let mut failures = BTreeMap::new();
        if let Some(kinds) = v["errors"]["sessions_by_kind"].as_object() {
            for (k, n) in kinds {
                failures.insert(k.clone(), count(n, "sessions_by_kind")?);
            }
        }
        let column = |k: &str| -> Vec<f64> {
            v["timeline"][k]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(0.0)).collect())
                .unwrap_or_default()
        };
        let (starting, playing, stalled) =
            (column("starting"), column("playing"), column("stalled"));
        let timeline = (0..playing.len())
            .map(|i| States {
                starting: starting.get(i).copied().unwrap_or(0.0),
                playing: playing[i],
                stalled: stalled.get(i).copied().unwrap_or(0.0),
            })
            .collect();
        let tally = ViewerTally {
            requests: requests.tally().clone(),
            startup: hist("startup")?,
            segment: hist("segment")?,
            sessions: count(&v["sessions"]["started"], "sessions")?,
            completed: count(&v["sessions"]["completed"], "sessions")?,
            failed: count(&v["sessions"]["failed"], "sessions")?,
            failures,
            stalls: count(&v["stalls"], "stalls")?,
            played_s: float(&v["played_s"], "played_s")?,
            stalled_s: float(&v["stalled_s"], "stalled_s")?,
            switches: count(&v["switches"], "switches")?,
            renditions,
            timeline,
        };
        Ok(Self {
            tally,
            viewers: count(&v["viewers"], "viewers")?,
            duration: Duration::from_secs_f64(float(&v["duration_s"], "duration_s")?.max(0.0)),
        })
    }

    /// Combines reports of runs made at the same time on several machines.
    pub fn merge(reports: &[ViewersReport]) -> Option<ViewersReport> {
        let (first, rest) = reports.split_first()?;
        let mut merged = first.clone();
        for r in rest {
            merged.tally.merge(&r.tally);
            merged.viewers += r.viewers;
            merged.duration = merged.duration.max(r.duration);
        }
        Some(merged)
    }

    /// A summary table for a terminal.
    pub fn to_table(&self) -> String {
        let t = &self.tally;
        let j = self.to_json();
        let mut out = String::new();
        let cell = |v: &Value| v.as_u64().map_or("-".to_string(), |x| x.to_string());
        let _ = writeln!(
            out,
            "{} viewers, {} sessions ({} completed, {} failed) in {:.1} s",
            self.viewers,
            t.sessions,
            t.completed,
            t.failed,
            self.duration.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "startup ms      p50 {}  p90 {}  p99 {}  max {}",
            cell(&j["startup_ms"]["p50"]),
            cell(&j["startup_ms"]["p90"]),
            cell(&j["startup_ms"]["p99"]),
            cell(&j["startup_ms"]["max"])
        );
        let _ = writeln!(
            out,
            "stalls          {} ({:.2} % of watch time: {:.1} s stalled, {:.1} s played)",
            t.stalls,
            self.stall_ratio() * 100.0,
            t.stalled_s,
            t.played_s
        );
        let _ = writeln!(
            out,
            "bitrate         {:.0} kbit/s time-average, {} switches",
            self.avg_bitrate_bps() / 1000.0,
            t.switches
        );
        let shares: Vec<String> = self
            .shares()
            .iter()
            .map(|(n, s)| format!("{n} {:.1} %", s * 100.0))
            .collect();
        let _ = writeln!(out, "renditions      {}", shares.join(", "));
        let _ = writeln!(
            out,
            "segment ms      p50 {}  p90 {}  p99 {}  max {}",
            cell(&j["segment_ms"]["p50"]),
            cell(&j["segment_ms"]["p90"]),
            cell(&j["segment_ms"]["p99"]),
            cell(&j["segment_ms"]["max"])
        );
        let r = &j["requests"];
        let ms = |k: &str| {
            r["latency_ms"][k]
                .as_f64()
                .map_or("-".to_string(), |v| format!("{v:.2}"))
        };
        let _ = writeln!(
            out,
            "requests        {} ({:.1}/s), {:.2} MB/s, {} errors; latency ms p50 {}  p99 {}  max {}",
            r["requests"],
            r["rps"].as_f64().unwrap_or(0.0),
            r["throughput_bps"].as_f64().unwrap_or(0.0) / 8e6,
            r["errors"]["total"],
            ms("p50"),
            ms("p99"),
            ms("max")
        );
        for (kind, n) in r["errors"]["by_kind"].as_object().into_iter().flatten() {
            let _ = writeln!(out, "failed: {kind} × {n}");
        }
        for (status, n) in r["errors"]["by_status"].as_object().into_iter().flatten() {
            let _ = writeln!(out, "status {status} × {n}");
        }
        for (kind, n) in &t.failures {
            let _ = writeln!(out, "sessions ended by {kind} × {n}");
        }
        out
    }
}

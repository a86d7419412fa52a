//! One simulated viewer: sessions one after another until the run ends.
//! A session fetches the manifest (after a token, with `--token-from`),
//! then segments one at a time while its buffer is below the target,
//! choosing each segment's rendition with the ABR rule; the playhead moves
//! on the simulated clock, and an empty buffer is a stall.
//!
//! Time: the simulated clock runs `--speed` times the wall clock, link
//! included (a `--throttle` of K kbit/s reads at K × speed on the wire), so
//! a run at 4× meets the same stalls as one at 1×, four times sooner.
//! Media and player figures (startup, stalls, ABR throughput) are in
//! simulated time; request and segment download latencies in wall time.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::abr::Abr;
use super::manifest::{self, Part, Presentation, Source, Track};
use super::report::{States, ViewerTally};
use super::shared;
use super::{Live, Shared, TokenFormat};
use crate::client::{Conn, Connector, Fetch};
use crate::report::{failure_name, Outcome};

/// The most bytes of a manifest or token answer kept.
const MAX_TEXT: usize = 16 << 20;
/// Tries per request before the session gives up (hls.js retries too).
const TRIES: u32 = 3;

/// Why a session ended early.
#[derive(Debug)]
enum Failure {
    /// A request failed every try: the name it is counted under.
    Request(String),
    /// A manifest or token answer that is not one.
    Manifest(String),
    /// The run ended.
    RunOver,
}

/// The simulated clock.
#[derive(Clone, Copy)]
pub(super) struct Clock {
    pub(super) start: Instant,
    pub(super) speed: f64,
    /// Run time (wall seconds) at which viewers stop.
    pub(super) end_s: f64,
}

impl Clock {
    /// Wall seconds since the run began.
    fn wall(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
    /// Simulated seconds since the run began.
    fn sim(&self) -> f64 {
        self.wall() * self.speed
    }
    fn over(&self) -> bool {
        self.wall() >= self.end_s
    }
    /// Sleeps `sim_s` simulated seconds, or until the run ends.
    async fn sleep(&self, sim_s: f64) {
        let until = (self.wall() + sim_s.max(0.0) / self.speed).min(self.end_s);
        let at = self.start + Duration::from_secs_f64(until.max(0.0));
        tokio::time::sleep_until(at.into()).await;
    }
}

/// Where playback stands, on the simulated clock.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Starting,
    Playing,
    Stalled,
}

/// One viewer.
pub(super) struct Viewer<'a> {
    pub(super) shared: &'a Shared,
    pub(super) tally: &'a RefCell<ViewerTally>,
    pub(super) conn: Option<Conn>,
    pub(super) api: Option<Conn>,
}

/// One session's playback state.
struct Playback {
    phase: Phase,
    /// Simulated time of the last update.
    last: f64,
    begun: f64,
    /// Media seconds played, and buffered, since the session's first segment.
    playhead: f64,
    buffered: f64,
    /// Every segment is in.
    complete: bool,
}

impl Viewer<'_> {
    /// Sessions until the run ends.
    pub(super) async fn watch(mut self) {
        let clock = self.shared.clock;
        while !clock.over() {
            let outcome = self.session().await;
            let failed = match outcome {
                Ok(()) => {
                    self.tally.borrow_mut().completed += 1;
                    false
                }
                Err(Failure::RunOver) => false,
                Err(Failure::Request(kind)) | Err(Failure::Manifest(kind)) => {
                    let mut t = self.tally.borrow_mut();
                    t.failed += 1;
                    *t.failures.entry(kind).or_default() += 1;
                    true
                }
            };
            if failed {
                // A person reloads the page after a moment.
                clock.sleep(clock.speed).await;
            }
        }
    }

    async fn session(&mut self) -> Result<(), Failure> {
        let clock = self.shared.clock;
        let mut p = Playback {
            phase: Phase::Starting,
            last: clock.sim(),
            begun: clock.sim(),
            playhead: 0.0,
            buffered: 0.0,
            complete: false,
        };
        self.tally.borrow_mut().sessions += 1;
        self.shared.live.starting.fetch_add(1, Ordering::Relaxed);
        let result = self.play(&mut p).await;
        // Close the session's books at the moment it ends.
        self.advance(&mut p, clock.sim());
        match p.phase {
            Phase::Starting => &self.shared.live.starting,
            Phase::Playing => &self.shared.live.playing,
            Phase::Stalled => &self.shared.live.stalled,
        }
        .fetch_sub(1, Ordering::Relaxed);
        result
    }

    async fn play(&mut self, p: &mut Playback) -> Result<(), Failure> {
        let clock = self.shared.clock;
        let o = &self.shared.options;
        let manifest_path = match &o.token_from {
            Some(_) => self.token().await?,
            None => o.target.path.clone(),
        };
        let text = self.text(&manifest_path).await?;
        let presentation: Rc<Presentation> = shared::presentation(&text, &manifest_path)
            .map_err(|_| Failure::Manifest("manifest".into()))?;
        let bitrates: Vec<u64> = presentation
            .renditions
            .iter()
            .map(|r| r.bandwidth)
            .collect();
        let mut abr = Abr::new(o.abr, &bitrates, o.buffer_s);
        let mut tracks: Vec<Option<Rc<Track>>> = vec![None; presentation.renditions.len()];
        let mut inits: Vec<bool> = vec![false; presentation.renditions.len()];
        let mut audio = match &presentation.audio {
            Some(source) => Some(self.track(source, None).await?),
            None => None,
        };
        let mut audio_next = 0usize;
        let mut audio_end = 0.0f64;
        let mut audio_init = false;
        let mut current: Option<usize> = None;
        // Next segment, by sequence number (index for VOD from 0).
        let mut next_sequence: Option<u64> = None;
        loop {
            if clock.over() {
                return Err(Failure::RunOver);
            }
            let now = clock.sim();
            self.advance(p, now);
            if p.complete {
                // Everything is in: play to the end.
                let left = p.buffered - p.playhead;
                if left <= 1e-6 || p.phase == Phase::Starting {
                    return Ok(());
                }
                clock.sleep(left).await;
                continue;
            }
            let level = p.buffered - p.playhead;
            if level >= o.buffer_s {
                clock.sleep(level - o.buffer_s + 0.01).await;
                continue;
            }
            let q = abr.choose(current, level, p.phase != Phase::Starting);
            let rendition = &presentation.renditions[q];
            // A live playlist is reloaded when the next segment is past
            // what it listed (hls.js reloads about once a target duration).
            let stale = tracks[q].as_ref().is_some_and(|t| {
                !t.ended
                    && next_sequence
                        .is_some_and(|n| t.segments.last().is_none_or(|s| s.sequence < n))
            });
            if tracks[q].is_none() || stale {
                let track = self.track(&rendition.source, tracks[q].take()).await?;
                tracks[q] = Some(track);
            }
            let Some(track) = tracks[q].as_ref() else {
                continue;
            };
            let sequence = *next_sequence.get_or_insert_with(|| {
                let first = track.segments.first().map_or(0, |s| s.sequence);
                // Live: three segments behind the edge, as hls.js starts.
                if track.ended {
                    first
                } else {
                    first + track.segments.len().saturating_sub(3) as u64
                }
            });
            let Some(segment) = track
                .segments
                .iter()
                .find(|s| s.sequence == sequence)
                .cloned()
            else {
                if track.ended {
                    p.complete = true;
                } else {
                    // Not published yet: look again after a target duration.
                    clock.sleep(track.target_duration.max(1.0) / 2.0).await;
                }
                continue;
            };
            if current != Some(q) {
                if current.is_some() {
                    self.tally.borrow_mut().switches += 1;
                }
                current = Some(q);
            }
            if !inits[q] {
                if let Some(init) = &track.init {
                    self.fetch(init).await?;
                }
                inits[q] = true;
            }
            let started = Instant::now();
            let bytes = self.fetch(&segment.part).await?;
            let wall = started.elapsed();
            abr.sample(bytes, wall.as_secs_f64() * clock.speed);
            {
                let mut t = self.tally.borrow_mut();
                ViewerTally::ms(&mut t.segment, wall);
                t.renditions
                    .entry(rendition.name.clone())
                    .or_insert((0.0, rendition.bandwidth))
                    .0 += segment.duration;
            }
            let video_end = p.buffered + segment.duration;
            // The audio that plays alongside.
            if let Some(a) = audio.as_mut() {
                if !audio_init {
                    if let Some(init) = &a.init {
                        self.fetch(&init.clone()).await?;
                    }
                    audio_init = true;
                }
                while audio_end < video_end - 1e-3 {
                    if audio_next >= a.segments.len() {
                        if a.ended {
                            break;
                        }
                        if let Some(source) = &presentation.audio {
                            *a = self.track(source, Some(a.clone())).await?;
                        }
                        if audio_next >= a.segments.len() {
                            break;
                        }
                    }
                    let s = a.segments[audio_next].clone();
                    self.fetch(&s.part).await?;
                    audio_end += s.duration;
                    audio_next += 1;
                }
            }
            self.advance(p, clock.sim());
            p.buffered = video_end;
            next_sequence = Some(sequence + 1);
            let last_of_vod = track.ended
                && track
                    .segments
                    .last()
                    .is_some_and(|s| s.sequence == sequence);
            if last_of_vod {
                p.complete = true;
            }
            let now = clock.sim();
            match p.phase {
                Phase::Starting => {
                    let startup = Duration::from_secs_f64(now - p.begun);
                    {
                        let mut t = self.tally.borrow_mut();
                        ViewerTally::ms(&mut t.startup, startup);
                    }
                    if let Ok(mut h) = self.shared.live.startup.lock() {
                        ViewerTally::ms(&mut h, startup);
                    }
                    self.enter(p, Phase::Playing);
                }
                Phase::Stalled
                    if p.buffered - p.playhead >= segment.duration.min(2.0) || p.complete =>
                {
                    self.enter(p, Phase::Playing);
                }
                _ => {}
            }
        }
    }

    /// Moves the playhead to `now`, and stalls it where the buffer ran out.
    fn advance(&self, p: &mut Playback, now: f64) {
        let speed = self.shared.clock.speed;
        let from = p.last;
        if now <= from {
            return;
        }
        p.last = now;
        let mut t = self.tally.borrow_mut();
        match p.phase {
            Phase::Starting => t.span(from / speed, now / speed, |s: &mut States| &mut s.starting),
            Phase::Stalled => {
                t.stalled_s += now - from;
                t.span(from / speed, now / speed, |s: &mut States| &mut s.stalled);
            }
            Phase::Playing => {
                let room = p.buffered - p.playhead;
                if now - from < room || p.complete {
                    let played = (now - from).min(room);
                    p.playhead += played;
                    t.played_s += played;
                    t.span(from / speed, (from + played) / speed, |s: &mut States| {
                        &mut s.playing
                    });
                } else {
                    // The buffer ran dry at `from + room`: a stall from then.
                    let dry = from + room;
                    p.playhead = p.buffered;
                    t.played_s += room;
                    t.span(from / speed, dry / speed, |s: &mut States| &mut s.playing);
                    t.stalls += 1;
                    t.stalled_s += now - dry;
                    t.span(dry / speed, now / speed, |s: &mut States| &mut s.stalled);
                    drop(t);
                    self.enter(p, Phase::Stalled);
                }
            }
        }
    }

    fn enter(&self, p: &mut Playback, phase: Phase) {
        let live = &self.shared.live;
        let counter = |ph: Phase| match ph {
            Phase::Starting => &live.starting,
            Phase::Playing => &live.playing,
            Phase::Stalled => &live.stalled,
        };
        counter(p.phase).fetch_sub(1, Ordering::Relaxed);
        counter(phase).fetch_add(1, Ordering::Relaxed);
        p.phase = phase;
    }

    /// A track's segments: known, or its HLS playlist (re)loaded.
    async fn track(
        &mut self,
        source: &Source,
        old: Option<Rc<Track>>,
    ) -> Result<Rc<Track>, Failure> {
        match source {
            Source::Known(t) => Ok(old.unwrap_or_else(|| Rc::clone(t))),
            Source::Playlist(path) => {
                if let Some(t) = old.filter(|t| t.ended) {
                    return Ok(t);
                }
                let text = self.text(path).await?;
                shared::media_playlist(&text, path)
                    .map_err(|_| Failure::Manifest("manifest".into()))
            }
        }
    }

    /// A playback token from the JSON API: the manifest path to play.
    async fn token(&mut self) -> Result<String, Failure> {
        let o = &self.shared.options;
        let Some(from) = &o.token_from else {
            return Err(Failure::Manifest("token".into()));
        };
        let api = self
            .shared
            .api
            .as_ref()
            .ok_or_else(|| Failure::Manifest("token".into()))?;
        let fetch = Fetch {
            method: "POST",
            path: &from.target.path,
            headers: &from.headers,
            keep: Some(MAX_TEXT),
            pace_bps: None,
        };
        let reply = Self::exchange(self.shared, self.tally, &mut self.api, api, &fetch).await?;
        let value: serde_json::Value =
            serde_json::from_slice(&reply).map_err(|_| Failure::Manifest("token".into()))?;
        let key = match from.format {
            TokenFormat::Hls => "hls",
            TokenFormat::Dash => "dash",
        };
        value[key]
            .as_str()
            .map(|p| manifest::resolve(&o.target.path, p))
            .ok_or_else(|| Failure::Manifest("token".into()))
    }

    /// A manifest's text.
    async fn text(&mut self, path: &str) -> Result<Vec<u8>, Failure> {
        let o = &self.shared.options;
        let fetch = Fetch {
            method: "GET",
            path,
            headers: &o.headers,
            keep: Some(MAX_TEXT),
            pace_bps: self.shared.pace_bps,
        };
        let connector = &self.shared.connector;
        Self::exchange(self.shared, self.tally, &mut self.conn, connector, &fetch).await
    }

    /// A segment (paced to the link); returns its bytes.
    async fn fetch(&mut self, part: &Part) -> Result<u64, Failure> {
        let o = &self.shared.options;
        let mut headers = o.headers.clone();
        if let Some((offset, length)) = part.range {
            headers.push((
                "Range".into(),
                format!("bytes={offset}-{}", offset + length.max(1) - 1),
            ));
        }
        let fetch = Fetch {
            method: "GET",
            path: &part.path,
            headers: &headers,
            keep: None,
            pace_bps: self.shared.pace_bps,
        };
        let connector = &self.shared.connector;
        let mut bytes = 0;
        Self::exchange_counted(
            self.shared,
            self.tally,
            &mut self.conn,
            connector,
            &fetch,
            &mut bytes,
        )
        .await?;
        Ok(bytes)
    }

    async fn exchange(
        shared: &Shared,
        tally: &RefCell<ViewerTally>,
        conn: &mut Option<Conn>,
        connector: &Connector,
        fetch: &Fetch<'_>,
    ) -> Result<Vec<u8>, Failure> {
        let mut bytes = 0;
        Self::exchange_counted(shared, tally, conn, connector, fetch, &mut bytes).await
    }

    /// One request, tried up to [`TRIES`] times; every try is counted.
    async fn exchange_counted(
        shared: &Shared,
        tally: &RefCell<ViewerTally>,
        conn: &mut Option<Conn>,
        connector: &Connector,
        fetch: &Fetch<'_>,
        bytes: &mut u64,
    ) -> Result<Vec<u8>, Failure> {
        let clock = shared.clock;
        let mut last = String::new();
        for attempt in 0..TRIES {
            if clock.over() {
                return Err(Failure::RunOver);
            }
            if attempt > 0 {
                // Back off, as players do, before the next try.
                clock.sleep(0.5 * f64::from(attempt) * clock.speed).await;
            }
            let sent = Instant::now();
            let result = tokio::time::timeout(shared.options.timeout, async {
                if conn.is_none() {
                    *conn = Some(connector.connect().await?);
                }
                match conn.as_mut() {
                    Some(c) => c.fetch(fetch).await,
                    None => Err(io::ErrorKind::NotConnected.into()),
                }
            })
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "answer timed out")));
            let took = sent.elapsed();
            let outcome = match &result {
                Ok(r) => Outcome::Answered {
                    status: r.status,
                    bytes: r.bytes,
                },
                Err(e) => Outcome::Failed(e.kind()),
            };
            let at = sent.saturating_duration_since(clock.start) + took;
            tally.borrow_mut().requests.record(&outcome, took, took, at);
            shared.live.requests.fetch_add(1, Ordering::Relaxed);
            match result {
                Ok(reply) if reply.status < 400 => {
                    if reply.closes {
                        *conn = None;
                    }
                    *bytes = reply.bytes;
                    return Ok(reply.body);
                }
                Ok(reply) => {
                    shared.live.errors.fetch_add(1, Ordering::Relaxed);
                    if reply.closes {
                        *conn = None;
                    }
                    last = format!("status_{}", reply.status);
                    // A client error will not change by asking again.
                    if (400..500).contains(&reply.status) && reply.status != 429 {
                        break;
                    }
                }
                Err(e) => {
                    shared.live.errors.fetch_add(1, Ordering::Relaxed);
                    *conn = None;
                    last = failure_name(e.kind()).to_string();
                }
            }
        }
        Err(Failure::Request(last))
    }
}

/// For the live status.
impl Live {
    pub(super) fn viewers(&self) -> (i64, i64, i64) {
        (
            self.starting.load(Ordering::Relaxed),
            self.playing.load(Ordering::Relaxed),
            self.stalled.load(Ordering::Relaxed),
        )
    }
}

//! The durable job spool: one TOML file per job under a spool directory,
//! every state change written to a temporary file, fsynced and renamed over
//! the old one, so a `kill -9` at any instant leaves each job either in its
//! old state or its new one.
//!
//! A job found `running` when the spool is opened was interrupted (its
//! process died): it goes back to `queued`, and its attempt already counts.
//! After `max_attempts` failed attempts a job is `failed` with its last
//! error. Half-built output of an interrupted attempt (a staging directory)
//! is removed before the retry.
//!
//! Finished jobs (done or failed) are pruned once their file — last written
//! when they finished — is older than the retention: every listing reads the
//! whole spool, and an asset's outcome lives on in the control plane.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{io, TranscodeError};
use crate::pipeline::{transcode, Options, Progress};
use crate::{ladder, GpuMode};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for a worker.
    Queued,
    /// A worker is on it (or was, when its process died).
    Running,
    /// Published.
    Done,
    /// Gave up after `max_attempts`; `error` says why.
    Failed,
}

impl State {
    /// Lower-case name, for metrics and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// One job as stored on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// Spool-unique id (sortable: submission order).
    pub id: String,
    /// Source file.
    pub input: PathBuf,
    /// Asset directory to publish.
    pub out: PathBuf,
    /// `--ladder` text.
    pub ladder: String,
    /// Segment length in seconds.
    pub segment_seconds: u32,
    /// Current state.
    pub state: State,
    /// Attempts started so far.
    pub attempts: u32,
    /// The last attempt's error.
    #[serde(default)]
    pub error: Option<String>,
}

/// Live progress of running jobs, by id (not persisted).
#[derive(Debug, Clone, Copy, Default)]
pub struct Live {
    /// Percent done, when known.
    pub percent: f64,
    /// Frames per second.
    pub fps: f64,
    /// Seconds left, when known.
    pub eta_seconds: f64,
}

/// A spool directory.
pub struct Spool {
    dir: PathBuf,
    max_attempts: u32,
    live: Mutex<HashMap<String, Live>>,
    claim: Mutex<()>,
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl Spool {
    /// Opens (creating) a spool, e.g. to submit to it.
    pub fn open(dir: &Path, max_attempts: u32) -> Result<Self, TranscodeError> {
        fs::create_dir_all(dir).map_err(|e| io(format!("creating {}", dir.display()), e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            max_attempts: max_attempts.max(1),
            live: Mutex::default(),
            claim: Mutex::default(),
        })
    }

    /// Requeues (or fails, past `max_attempts`) jobs whose process died while
    /// running them. Only the runner that owns the spool calls this, before
    /// its workers start.
    pub fn recover(&self) -> Result<usize, TranscodeError> {
        let mut recovered = 0;
        for mut job in self.list()? {
            if job.state == State::Running {
                self.settle_interrupted(&mut job)?;
                recovered += 1;
            }
        }
        Ok(recovered)
    }

    /// Adds a queued job; returns its id.
    pub fn submit(
        &self,
        input: &Path,
        out: &Path,
        ladder: &str,
        segment_seconds: u32,
    ) -> Result<String, TranscodeError> {
        ladder::parse(ladder).map_err(|e| TranscodeError::Encode(e.to_string()))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let id = format!(
            "{:013}-{}-{}",
            now.as_millis(),
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::SeqCst)
        );
        let job = Job {
            id: id.clone(),
            input: input.to_path_buf(),
            out: out.to_path_buf(),
            ladder: ladder.to_string(),
            segment_seconds,
            state: State::Queued,
            attempts: 0,
            error: None,
        };
        self.save(&job)?;
        Ok(id)
    }

    /// Every job, oldest first.
    pub fn list(&self) -> Result<Vec<Job>, TranscodeError> {
        let mut jobs = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| io("listing the job spool", e))? {
            let path = entry.map_err(|e| io("listing the job spool", e))?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = fs::read_to_string(&path)
                    .map_err(|e| io(format!("reading {}", path.display()), e))?;
                match toml::from_str::<Job>(&text) {
                    Ok(job) => jobs.push(job),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "jobs: ignoring an unreadable job")
                    }
                }
            }
        }
        jobs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(jobs)
    }

    /// Removes finished (done or failed) jobs whose last state change is
    /// older than `keep`; returns how many went. Queued and running jobs
    /// stay whatever their age.
    pub fn prune(&self, keep: Duration) -> Result<usize, TranscodeError> {
        let cutoff = SystemTime::now().checked_sub(keep).unwrap_or(UNIX_EPOCH);
        let mut removed = 0;
        for job in self.list()? {
            if !matches!(job.state, State::Done | State::Failed) {
                continue;
            }
            let path = self.job_path(&job.id);
            let finished = fs::metadata(&path).and_then(|m| m.modified());
            if finished.is_ok_and(|t| t < cutoff) && fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn job_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.toml"))
    }

    /// Live progress of every running job.
    pub fn live(&self) -> HashMap<String, Live> {
        self.live.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Claims the oldest queued job, marking it running (attempt counted).
    fn claim(&self) -> Result<Option<Job>, TranscodeError> {
        let _one_at_a_time = self
            .claim
            .lock()
            .map_err(|_| TranscodeError::Encode("spool lock poisoned".into()))?;
        let Some(mut job) = self.list()?.into_iter().find(|j| j.state == State::Queued) else {
            return Ok(None);
        };
        job.state = State::Running;
        job.attempts += 1;
        self.save(&job)?;
        Ok(Some(job))
    }

    /// Runs queued jobs until `stop` is set, polling the spool when idle.
    pub fn work(&self, gpu: GpuMode, preset: &str, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) {
            match self.claim() {
                Ok(Some(job)) => self.run(job, gpu, preset),
                Ok(None) => std::thread::sleep(Duration::from_millis(300)),
                Err(e) => {
                    tracing::warn!(error = %e, "jobs: reading the spool");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    fn run(&self, mut job: Job, gpu: GpuMode, preset: &str) {
        crate::publish::remove_stale(&job.out);
        let result = if job.out.exists() {
            // The previous attempt published, then died before saying so.
            Ok(())
        } else {
            match ladder::parse(&job.ladder) {
                Ok(rungs) => self.transcode(&job, rungs, gpu, preset),
                // A ladder that does not parse never will: fail the job now
                // with the reason instead of encoding something else.
                Err(e) => {
                    job.attempts = job.attempts.max(self.max_attempts);
                    Err(TranscodeError::BadLadder(format!("{:?}: {e}", job.ladder)))
                }
            }
        };
        if let Ok(mut live) = self.live.lock() {
            live.remove(&job.id);
        }
        self.settle(job, result);
    }

    fn transcode(
        &self,
        job: &Job,
        rungs: Vec<ladder::Rung>,
        gpu: GpuMode,
        preset: &str,
    ) -> Result<(), TranscodeError> {
        let mut opts = Options::new(job.input.clone(), job.out.clone());
        opts.ladder = rungs;
        opts.segment_seconds = job.segment_seconds;
        opts.gpu = gpu;
        opts.preset = preset.to_string();
        let id = job.id.clone();
        let mut report = |p: Progress| self.report(&id, p);
        transcode(&opts, &mut report).map(|_| ())
    }

    /// Records how an attempt ended: done, queued again, or failed for good.
    fn settle(&self, mut job: Job, result: Result<(), TranscodeError>) {
        match result {
            Ok(()) => {
                job.state = State::Done;
                job.error = None;
            }
            Err(e) => {
                job.error = Some(e.to_string());
                job.state = if job.attempts >= self.max_attempts {
                    State::Failed
                } else {
                    State::Queued
                };
                tracing::warn!(job = job.id, attempt = job.attempts, error = %e, "jobs: attempt failed");
            }
        }
        if let Err(e) = self.save(&job) {
            tracing::error!(job = job.id, error = %e, "jobs: cannot record the job's state");
        }
    }

    fn report(&self, id: &str, p: Progress) {
        if let Ok(mut live) = self.live.lock() {
            live.insert(
                id.to_string(),
                Live {
                    percent: p.percent().unwrap_or(0.0),
                    fps: p.fps,
                    eta_seconds: p.eta_seconds().unwrap_or(0.0),
                },
            );
        }
    }

    fn settle_interrupted(&self, job: &mut Job) -> Result<(), TranscodeError> {
        job.error = Some("interrupted: the process stopped while the job ran".into());
        job.state = if job.attempts >= self.max_attempts {
            State::Failed
        } else {
            State::Queued
        };
        self.save(job)
    }

    /// Writes a job atomically: temporary file, fsync, rename, fsync dir.
    fn save(&self, job: &Job) -> Result<(), TranscodeError> {
        let text = toml::to_string(job)
            .map_err(|e| TranscodeError::Encode(format!("encoding job {}: {e}", job.id)))?;
        let path = self.job_path(&job.id);
        let tmp = self.dir.join(format!(".{}.toml.tmp", job.id));
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| io(format!("saving job {}", job.id), e))
    }
}

/// Convenience for callers holding the spool in an `Arc`.
pub fn spawn_workers(
    spool: Arc<Spool>,
    workers: usize,
    gpu: GpuMode,
    preset: String,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    for n in 0..workers {
        let (spool, stop, preset) = (Arc::clone(&spool), Arc::clone(&stop), preset.clone());
        std::thread::Builder::new()
            .name(format!("sg-job-{n}"))
            .spawn(move || spool.work(gpu, &preset, &stop))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_removes_only_old_finished_jobs() {
        let dir = std::env::temp_dir().join(format!("sg-spool-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let spool = Spool::open(&dir, 3).unwrap();
        let mut ids = Vec::new();
        for state in [State::Done, State::Failed, State::Queued, State::Done] {
            let id = spool
                .submit(Path::new("in.mp4"), Path::new("out"), "240", 4)
                .unwrap();
            let mut job = spool
                .list()
                .unwrap()
                .into_iter()
                .find(|j| j.id == id)
                .unwrap();
            job.state = state;
            spool.save(&job).unwrap();
            ids.push(id);
        }
        // The first three finished (or were queued) two days ago.
        let long_ago = SystemTime::now() - Duration::from_secs(2 * 86_400);
        for id in &ids[..3] {
            File::options()
                .write(true)
                .open(spool.job_path(id))
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
        assert_eq!(spool.prune(Duration::from_secs(86_400)).unwrap(), 2);
        let left: Vec<String> = spool.list().unwrap().into_iter().map(|j| j.id).collect();
        // The old queued job and the recent done one stay.
        assert_eq!(left, vec![ids[2].clone(), ids[3].clone()]);
        assert_eq!(spool.prune(Duration::from_secs(86_400)).unwrap(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_stored_ladder_that_does_not_parse_fails_the_job_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("sg-spool-ladder-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let spool = Spool::open(&dir, 3).unwrap();
        let id = spool
            .submit(Path::new("in.mp4"), &dir.join("out"), "240", 4)
            .unwrap();
        // Written by another version, or edited by hand.
        let mut job = spool.claim().unwrap().unwrap();
        assert_eq!(job.id, id);
        job.ladder = "banana".into();
        spool.run(job, GpuMode::Off, "veryfast");
        let job = spool
            .list()
            .unwrap()
            .into_iter()
            .find(|j| j.id == id)
            .unwrap();
        assert_eq!(job.state, State::Failed, "not retried: it can never parse");
        let error = job.error.unwrap();
        assert!(
            error.contains("ladder") && error.contains("banana"),
            "{error}"
        );
        assert!(!dir.join("out").exists(), "nothing was encoded");
        fs::remove_dir_all(&dir).unwrap();
    }
}

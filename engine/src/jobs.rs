//! The transcode job runner: worker threads taking jobs from the durable
//! spool, at lower scheduling priority than the serving workers (each
//! encoder thread lowers itself to nice 10), plus what the admin listener
//! shows of them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics::gauge;
use streamgate_api::v1::AssetStatus;
use streamgate_api::ErrorCode;
use streamgate_transcode_gpu::jobs::{self, Spool, State};
use streamgate_transcode_gpu::GpuMode;

use crate::config::JobsConfig;
use crate::control::ControlClient;

/// A running job runner.
pub struct Runner {
    spool: Arc<Spool>,
    stop: Arc<AtomicBool>,
}

impl Runner {
    /// Opens the spool (requeueing interrupted jobs) and starts the workers.
    pub fn start(config: &JobsConfig) -> Result<Self, String> {
        let spool =
            Arc::new(Spool::open(&config.spool, config.max_attempts).map_err(|e| e.to_string())?);
        let recovered = spool.recover().map_err(|e| e.to_string())?;
        if recovered > 0 {
            tracing::info!(
                jobs = recovered,
                "requeued jobs interrupted by the last stop"
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        prune_finished(Arc::clone(&spool), config.retention, Arc::clone(&stop))
            .map_err(|e| e.to_string())?;
        jobs::spawn_workers(
            Arc::clone(&spool),
            config.workers,
            GpuMode::Auto,
            config.preset.clone(),
            Arc::clone(&stop),
        )
        .map_err(|e| e.to_string())?;
        Ok(Self { spool, stop })
    }

    /// Asks the workers to stop after their current job. A job cut short by
    /// the process exiting is requeued at the next start.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// The spool, for submitting jobs (ingest).
    pub fn spool(&self) -> Arc<Spool> {
        Arc::clone(&self.spool)
    }

    /// Reports the status of jobs that build an asset under `root`
    /// (`<root>/<asset-id>`) to the control plane, once a second and only
    /// when it changed: queued, transcoding n %, ready, failed with the error.
    pub fn report_to(&self, control: Arc<ControlClient>, root: PathBuf) -> std::io::Result<()> {
        let spool = Arc::clone(&self.spool);
        let stop = Arc::clone(&self.stop);
        std::thread::Builder::new()
            .name("sg-job-report".into())
            .spawn(move || {
                let mut reported: HashMap<String, (i32, u32)> = HashMap::new();
                while !stop.load(Ordering::SeqCst) {
                    report_once(&spool, &control, &root, &mut reported);
                    std::thread::sleep(Duration::from_secs(1));
                }
            })?;
        Ok(())
    }

    /// Jobs queued and running.
    pub fn counts(&self) -> (usize, usize) {
        let jobs = self.spool.list().unwrap_or_default();
        let count = |state: State| jobs.iter().filter(|j| j.state == state).count();
        (count(State::Queued), count(State::Running))
    }

    /// Refreshes the job gauges (called before each scrape).
    pub fn export_metrics(&self) {
        let jobs = self.spool.list().unwrap_or_default();
        for state in [State::Queued, State::Running, State::Done, State::Failed] {
            let n = jobs.iter().filter(|j| j.state == state).count();
            gauge!("streamgate_jobs", "state" => state.as_str()).set(n as f64);
        }
        for (id, live) in self.spool.live() {
            gauge!("streamgate_job_progress_percent", "job" => id.clone()).set(live.percent);
            gauge!("streamgate_job_fps", "job" => id.clone()).set(live.fps);
            gauge!("streamgate_job_eta_seconds", "job" => id).set(live.eta_seconds);
        }
    }

    /// `/jobs`: one line per job — id, state, attempts, progress, error.
    pub fn listing(&self) -> String {
        let live = self.spool.live();
        let mut out = String::new();
        for job in self.spool.list().unwrap_or_default() {
            let _ = write!(
                out,
                "{} {} attempts={} out={}",
                job.id,
                job.state.as_str(),
                job.attempts,
                job.out.display()
            );
            if let Some(p) = live.get(&job.id) {
                let _ = write!(
                    out,
                    " percent={:.1} fps={:.1} eta={:.0}s",
                    p.percent, p.fps, p.eta_seconds
                );
            }
            if let Some(e) = &job.error {
                let _ = write!(out, " error={e:?}");
            }
            out.push('\n');
        }
        out
    }
}

/// Prunes finished jobs older than `retention`, at start and then every
/// quarter of it (at most an hour apart).
fn prune_finished(
    spool: Arc<Spool>,
    retention: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let every = (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    std::thread::Builder::new()
        .name("sg-job-prune".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match spool.prune(retention) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(jobs = n, "pruned finished jobs"),
                    Err(e) => tracing::warn!(error = %e, "pruning jobs"),
                }
                std::thread::sleep(every);
            }
        })?;
    Ok(())
}

/// The asset a job publishes, when its output is `<root>/<asset-id>`.
fn asset_of(out: &Path, root: &Path) -> Option<String> {
    if out.parent()? != root {
        return None;
    }
    let name = out.file_name()?.to_str()?;
    streamgate_token::is_asset_id(name).then(|| name.to_string())
}

fn report_once(
    spool: &Spool,
    control: &ControlClient,
    root: &Path,
    reported: &mut HashMap<String, (i32, u32)>,
) {
    let live = spool.live();
    for job in spool.list().unwrap_or_default() {
        let Some(asset) = asset_of(&job.out, root) else {
            continue;
        };
        let (status, percent, error) = match job.state {
            State::Queued => (AssetStatus::Queued, 0, String::new()),
            State::Running => (
                AssetStatus::Transcoding,
                live.get(&job.id)
                    .map_or(0, |l| l.percent.clamp(0.0, 100.0) as u32),
                String::new(),
            ),
            State::Done => (AssetStatus::Ready, 100, String::new()),
            State::Failed => (
                AssetStatus::Failed,
                0,
                job.error.clone().unwrap_or_default(),
            ),
        };
        let now = (status as i32, percent);
        if reported.get(&job.id) == Some(&now) {
            continue;
        }
        match control.update_status(&asset, status, percent, &error) {
            Ok(()) => {}
            // Not an asset the control plane knows (`transcode --queue`
            // into the root by hand): nothing to report, ever.
            Err(e) if e.code() == Some(ErrorCode::NotFound) => {}
            // Unreachable: try again next round.
            Err(_) => continue,
        }
        reported.insert(job.id, now);
    }
}

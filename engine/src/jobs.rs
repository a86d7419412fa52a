//! The transcode job runner: worker threads taking jobs from the durable
//! spool, at lower scheduling priority than the serving workers (each
//! encoder thread lowers itself to nice 10), plus what the admin listener
//! shows of them.

use std::fmt::Write as _;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use metrics::gauge;
use streamgate_transcode_gpu::jobs::{self, Spool, State};
use streamgate_transcode_gpu::GpuMode;

use crate::config::JobsConfig;

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
            eprintln!(
                "streamgate engine: requeued {recovered} job(s) interrupted by the last stop"
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
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
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
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

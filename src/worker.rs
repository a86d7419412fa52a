//! `streamgate worker`: a job runner on its own node (a GPU box, say),
//! taking transcode jobs from the shared queue — the control plane's, with
//! sources and results in the bucket. Needs `[storage] kind = "s3"`; one
//! box runs its jobs inside `serve` and needs no worker.

use std::path::PathBuf;

use clap::Args;
use streamgate_engine::queue::{QueueConfig, SharedRunner, LEASE};

use crate::config::FileConfig;
use crate::{log, systemd};

/// `streamgate worker`.
#[derive(Args)]
pub struct WorkerArgs {
    /// Configuration file (TOML, Contract 6).
    #[arg(long, env = "STREAMGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Jobs at once (default `[engine] job_workers`, else 1).
    #[arg(long)]
    jobs: Option<usize>,
}

/// Runs until SIGTERM or SIGINT. A job cut short is not lost: its lease
/// runs out and another runner takes it over.
pub fn run(args: WorkerArgs) -> Result<(), String> {
    streamgate_engine::block_termination_signals();
    let file = FileConfig::load(args.config.as_deref())?;
    log::set_level(file.log_level()?);
    let bucket = file.bucket_config()?.ok_or(
        "streamgate worker takes jobs from the shared queue, which needs [storage] kind = \"s3\" \
         (on one box, serve runs the jobs itself)",
    )?;
    let engine = file.engine_config()?;
    let (workers, preset, lease) = match &engine.jobs {
        Some(jobs) => (jobs.workers, jobs.preset.clone(), jobs.lease),
        None => (1, "veryfast".to_string(), LEASE),
    };
    let workers = args.jobs.unwrap_or(workers).max(1);
    let endpoint = file.control_endpoint()?;
    let runner = SharedRunner::standalone(
        &endpoint,
        file.operator_token_path(),
        &bucket,
        QueueConfig {
            workers,
            preset,
            lease,
            scratch: file.data_dir.join("staging"),
        },
    )?;
    eprintln!(
        "streamgate worker: {workers} job(s) at once from the queue at {endpoint}, publishing to bucket {}",
        bucket.bucket
    );
    let served = systemd::Served {
        engine: None,
        control: None,
    };
    let watchdog = systemd::started(&served);
    let signal = streamgate_engine::wait_for_termination_signal();
    eprintln!("streamgate worker: signal {signal}, stopping (a job in progress is taken over by another runner when its lease runs out)");
    drop(watchdog);
    systemd::stopping("stopping");
    runner.stop();
    Ok(())
}

//! `streamgate jobs`: the shared transcode queue (`[storage] kind = "s3"`),
//! as the control plane holds it — each job's asset, state, attempts, the
//! runner holding it and why it failed. (One box's spool is listed at
//! `/jobs` on the engine's admin address instead.)

use std::path::PathBuf;

use clap::Args;
use streamgate_api::v1 as pb;
use streamgate_api::v1::jobs_client::JobsClient;

use crate::client::Operator;
use crate::config::FileConfig;

/// `streamgate jobs`
#[derive(Args)]
pub struct JobsArgs {
    /// Configuration file (finds the data dir and the control plane).
    #[arg(long, env = "STREAMGATE_CONFIG")]
    config: Option<PathBuf>,
}

/// Prints one line per job, oldest first.
pub fn run(args: JobsArgs) -> Result<(), String> {
    let file = FileConfig::load(args.config.as_deref())?;
    let op = Operator::connect(&file)?;
    let list =
        op.call(JobsClient::new(op.channel()).list_jobs(op.request(pb::ListJobsRequest {})))?;
    println!(
        "{:<28} {:<24} {:<8} {:>8}  RUNNER / ERROR",
        "JOB", "ASSET", "STATE", "ATTEMPTS"
    );
    for j in &list.jobs {
        let detail = if j.error.is_empty() {
            j.runner.as_str()
        } else {
            j.error.as_str()
        };
        println!(
            "{:<28} {:<24} {:<8} {:>8}  {detail}",
            j.id, j.asset_id, j.state, j.attempts
        );
    }
    Ok(())
}

//! The shared transcode queue (scale-out): engines that receive an upload
//! submit a job naming the source in the bucket; runners (`streamgate
//! worker`, or an engine's own) claim jobs under a lease they renew while
//! they work, and finish them. The asset's status follows the job: queued,
//! transcoding n %, ready, failed.

use super::{ApiError, Service};
use crate::model::{is_asset_id, random_id, AssetStatus};
use crate::store::{JobRecord, JobState};
use streamgate_api::ErrorCode;

/// The longest lease a runner may ask for.
const MAX_LEASE_SECONDS: u32 = 600;

/// How a runner's attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Published.
    Published,
    /// Not published; `retry` when another attempt may succeed (the bucket,
    /// the machine) rather than the source being at fault.
    Failed {
        /// Why.
        error: String,
        /// Worth another attempt.
        retry: bool,
    },
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn lease(seconds: u32) -> Result<i64, ApiError> {
    if seconds == 0 || seconds > MAX_LEASE_SECONDS {
        return Err(ApiError::malformed(format!(
            "lease_seconds {seconds}: want 1 to {MAX_LEASE_SECONDS}"
        )));
    }
    Ok(i64::from(seconds) * 1000)
}

impl Service {
    /// Queues a transcode of the source at `source_key` into `asset_id`
    /// (which must exist); the asset turns `queued`.
    pub async fn submit_job(
        &self,
        asset_id: &str,
        source_key: &str,
        ladder: &str,
        segment_seconds: u32,
    ) -> Result<JobRecord, ApiError> {
        if !is_asset_id(asset_id) || source_key.is_empty() || ladder.is_empty() {
            return Err(ApiError::malformed(
                "a job needs an asset id, a source key and a ladder",
            ));
        }
        self.asset(asset_id).await?;
        let job = JobRecord {
            id: format!("{}-{}", now_ms(), random_id(6)),
            asset_id: asset_id.to_string(),
            source_key: source_key.to_string(),
            ladder: ladder.to_string(),
            segment_seconds: segment_seconds.clamp(1, 30),
            state: JobState::Queued,
            attempts: 0,
            runner: String::new(),
            error: String::new(),
        };
        self.store.insert_job(&job, now_ms()).await?;
        self.update_status(asset_id, AssetStatus::Queued, 0, "")
            .await?;
        tracing::info!(job = job.id, asset = asset_id, "job queued");
        Ok(job)
    }

    /// Gives `runner` the oldest claimable job under a lease of
    /// `lease_seconds`, or nothing. Jobs whose runner stopped answering on
    /// their last allowed attempt fail first (and their assets with them).
    pub async fn claim_job(
        &self,
        runner: &str,
        lease_seconds: u32,
    ) -> Result<Option<JobRecord>, ApiError> {
        let lease = lease(lease_seconds)?;
        if runner.is_empty() {
            return Err(ApiError::malformed("a claim names its runner"));
        }
        let max_attempts = self.config().job_attempts;
        let now = now_ms();
        for job in self.store.fail_abandoned_jobs(now, max_attempts).await? {
            tracing::warn!(
                job = job.id,
                asset = job.asset_id,
                error = job.error,
                "job failed"
            );
            let _ = self
                .update_status(&job.asset_id, AssetStatus::Failed, 0, &job.error)
                .await;
        }
        let Some(job) = self
            .store
            .claim_job(runner, now, now + lease, max_attempts)
            .await?
        else {
            return Ok(None);
        };
        if job.attempts > 1 {
            tracing::info!(
                job = job.id,
                runner,
                attempt = job.attempts,
                "job taken over (the previous runner's lease ran out)"
            );
        }
        let _ = self
            .update_status(&job.asset_id, AssetStatus::Transcoding, 0, "")
            .await;
        Ok(Some(job))
    }

    /// Extends `runner`'s lease and records progress;
    /// [`ErrorCode::LeaseLost`] when the job is no longer its.
    pub async fn renew_lease(
        &self,
        job_id: &str,
        runner: &str,
        lease_seconds: u32,
        percent: u32,
    ) -> Result<(), ApiError> {
        let lease = lease(lease_seconds)?;
        let now = now_ms();
        let Some(job) = self
            .store
            .renew_lease(job_id, runner, now + lease, now)
            .await?
        else {
            return Err(lease_lost(job_id, runner));
        };
        let _ = self
            .update_status(&job.asset_id, AssetStatus::Transcoding, percent.min(99), "")
            .await;
        Ok(())
    }

    /// Ends `runner`'s attempt: published → done and the asset ready; a
    /// failure → queued again while attempts are left and it is worth it,
    /// else failed with the asset.
    pub async fn finish_job(
        &self,
        job_id: &str,
        runner: &str,
        outcome: JobOutcome,
    ) -> Result<JobRecord, ApiError> {
        let now = now_ms();
        let attempts_left = |job: &JobRecord| job.attempts < self.config().job_attempts;
        let held = self
            .store
            .jobs()
            .await?
            .into_iter()
            .find(|j| j.id == job_id && j.runner == runner && j.state == JobState::Running)
            .ok_or_else(|| lease_lost(job_id, runner))?;
        let (state, error) = match &outcome {
            JobOutcome::Published => (JobState::Done, ""),
            JobOutcome::Failed { error, retry } if *retry && attempts_left(&held) => {
                (JobState::Queued, error.as_str())
            }
            JobOutcome::Failed { error, .. } => (JobState::Failed, error.as_str()),
        };
        let job = self
            .store
            .settle_job(job_id, runner, state, error, now)
            .await?
            .ok_or_else(|| lease_lost(job_id, runner))?;
        match state {
            JobState::Done => {
                self.update_status(&job.asset_id, AssetStatus::Ready, 100, "")
                    .await?;
                tracing::info!(job = job.id, asset = job.asset_id, runner, "job done");
            }
            JobState::Failed => {
                self.update_status(&job.asset_id, AssetStatus::Failed, 0, error)
                    .await?;
                tracing::warn!(job = job.id, asset = job.asset_id, error, "job failed");
            }
            _ => {
                self.update_status(&job.asset_id, AssetStatus::Queued, 0, "")
                    .await?;
                tracing::info!(job = job.id, error, "job queued again");
            }
        }
        Ok(job)
    }

    /// Every job, oldest first.
    pub async fn list_jobs(&self) -> Result<Vec<JobRecord>, ApiError> {
        Ok(self.store.jobs().await?)
    }
}

fn lease_lost(job_id: &str, runner: &str) -> ApiError {
    ApiError::new(
        ErrorCode::LeaseLost,
        format!(
            "{runner} no longer holds job {job_id:?} (its lease ran out; another runner has it)"
        ),
    )
}

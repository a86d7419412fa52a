//! The shared transcode queue's table (`jobs`, migration 4).
//!
//! A claim is one statement: the oldest job that is queued, or running with
//! a lease that ran out (its runner died), becomes running under the
//! claimer with a fresh lease and one more attempt. On PostgreSQL the
//! candidate row is taken `FOR UPDATE SKIP LOCKED`, so runners claiming at
//! once never wait on each other and never get the same job; SQLite has one
//! writer at a time, which gives the same guarantee without the clause.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreError};

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for a runner.
    Queued,
    /// Held by a runner under a lease.
    Running,
    /// Published.
    Done,
    /// Given up on (its error says why).
    Failed,
}

impl JobState {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    fn parse(word: &str) -> Result<Self, StoreError> {
        Ok(match word {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            other => return Err(StoreError::Corrupt(format!("job state {other:?}"))),
        })
    }
}

/// One job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Its id.
    pub id: String,
    /// The asset it publishes.
    pub asset_id: String,
    /// The source's key in the bucket.
    pub source_key: String,
    /// Ladder spec.
    pub ladder: String,
    /// Segment length, seconds.
    pub segment_seconds: u32,
    /// Where it is.
    pub state: JobState,
    /// Claims so far.
    pub attempts: u32,
    /// The runner holding (or last holding) it.
    pub runner: String,
    /// Why it failed.
    pub error: String,
}

const COLUMNS: &str =
    "id, asset_id, source_key, ladder, segment_seconds, state, attempts, runner, error";

fn job_from_row(row: &AnyRow) -> Result<JobRecord, StoreError> {
    Ok(JobRecord {
        id: row.try_get("id")?,
        asset_id: row.try_get("asset_id")?,
        source_key: row.try_get("source_key")?,
        ladder: row.try_get("ladder")?,
        segment_seconds: u32::try_from(row.try_get::<i64, _>("segment_seconds")?).unwrap_or(4),
        state: JobState::parse(&row.try_get::<String, _>("state")?)?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        runner: row.try_get("runner")?,
        error: row.try_get("error")?,
    })
}

impl Store {
    /// Queues a job; `now` in milliseconds.
    pub async fn insert_job(&self, job: &JobRecord, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO jobs (id, asset_id, source_key, ladder, segment_seconds, state, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'queued', $6, $6)",
        )
        .bind(&job.id)
        .bind(&job.asset_id)
        .bind(&job.source_key)
        .bind(&job.ladder)
        .bind(i64::from(job.segment_seconds))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Fails the running jobs whose lease ran out on their last allowed
    /// attempt, and returns them (their assets fail too).
    pub async fn fail_abandoned_jobs(
        &self,
        now: i64,
        max_attempts: u32,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let sql = format!(
            "UPDATE jobs SET state = 'failed', updated_at = $1, \
             error = 'its runner stopped answering on each of ' || attempts || ' attempts' \
             WHERE state = 'running' AND lease_until < $1 AND attempts >= $2 RETURNING {COLUMNS}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(i64::from(max_attempts))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Takes the oldest claimable job for `runner` until `lease_until`
    /// (milliseconds): queued, or running with an expired lease and
    /// attempts left.
    pub async fn claim_job(
        &self,
        runner: &str,
        now: i64,
        lease_until: i64,
        max_attempts: u32,
    ) -> Result<Option<JobRecord>, StoreError> {
        let lock = if self.postgres {
            "FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, runner = $1, \
             lease_until = $3, updated_at = $2, error = '' \
             WHERE id = (SELECT id FROM jobs WHERE state = 'queued' \
               OR (state = 'running' AND lease_until < $2 AND attempts < $4) \
               ORDER BY created_at, id LIMIT 1 {lock}) \
             RETURNING {COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(runner)
            .bind(now)
            .bind(lease_until)
            .bind(i64::from(max_attempts))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Extends `runner`'s lease on job `id`; false when it no longer holds
    /// it.
    pub async fn renew_lease(
        &self,
        id: &str,
        runner: &str,
        lease_until: i64,
        now: i64,
    ) -> Result<Option<JobRecord>, StoreError> {
        let sql = format!(
            "UPDATE jobs SET lease_until = $3, updated_at = $4 \
             WHERE id = $1 AND runner = $2 AND state = 'running' RETURNING {COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(runner)
            .bind(lease_until)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Ends `runner`'s attempt at job `id` in `state` (queued again for a
    /// retry, done, failed); `None` when it no longer holds the job.
    pub async fn settle_job(
        &self,
        id: &str,
        runner: &str,
        state: JobState,
        error: &str,
        now: i64,
    ) -> Result<Option<JobRecord>, StoreError> {
        let sql = format!(
            "UPDATE jobs SET state = $3, error = $4, updated_at = $5, lease_until = 0 \
             WHERE id = $1 AND runner = $2 AND state = 'running' RETURNING {COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(runner)
            .bind(state.as_str())
            .bind(error)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Every job, oldest first.
    pub async fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM jobs ORDER BY created_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(job_from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> JobRecord {
        JobRecord {
            id: id.into(),
            asset_id: format!("asset-{id}"),
            source_key: format!("sources/{id}"),
            ladder: "240".into(),
            segment_seconds: 2,
            state: JobState::Queued,
            attempts: 0,
            runner: String::new(),
            error: String::new(),
        }
    }

    #[tokio::test]
    async fn claims_leases_take_overs_and_the_attempt_limit() {
        let dir = std::env::temp_dir().join(format!("sg-jobs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&format!("sqlite://{}/db", dir.display()))
            .await
            .unwrap();
        store.insert_job(&job("j1"), 1_000).await.unwrap();
        store.insert_job(&job("j2"), 2_000).await.unwrap();

        // Oldest first, one runner each; nothing left for a third.
        let a = store
            .claim_job("a", 10_000, 12_000, 2)
            .await
            .unwrap()
            .unwrap();
        let b = store
            .claim_job("b", 10_000, 12_000, 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((a.id.as_str(), a.attempts), ("j1", 1));
        assert_eq!((b.id.as_str(), b.runner.as_str()), ("j2", "b"));
        assert!(store
            .claim_job("c", 10_000, 12_000, 2)
            .await
            .unwrap()
            .is_none());

        // b renews; a goes quiet. Once a's lease is past, c takes j1 over.
        assert!(store
            .renew_lease("j2", "b", 20_000, 11_000)
            .await
            .unwrap()
            .is_some());
        assert!(store
            .renew_lease("j2", "a", 20_000, 11_000)
            .await
            .unwrap()
            .is_none());
        let taken = store
            .claim_job("c", 13_000, 15_000, 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (taken.id.as_str(), taken.runner.as_str(), taken.attempts),
            ("j1", "c", 2)
        );
        // a's late report is refused: the job is c's now.
        assert!(store
            .settle_job("j1", "a", JobState::Done, "", 13_500)
            .await
            .unwrap()
            .is_none());

        // c dies too, on the last attempt: the job fails, it is not claimed.
        assert!(store
            .fail_abandoned_jobs(14_000, 2)
            .await
            .unwrap()
            .is_empty());
        let failed = store.fail_abandoned_jobs(16_000, 2).await.unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].state, JobState::Failed);
        assert!(
            failed[0].error.contains("2 attempts"),
            "{}",
            failed[0].error
        );
        assert!(store
            .claim_job("d", 16_000, 18_000, 2)
            .await
            .unwrap()
            .is_none());

        // b finishes.
        let done = store
            .settle_job("j2", "b", JobState::Done, "", 17_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.state, JobState::Done);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Metadata storage through sqlx: SQLite under the data dir by default (WAL),
//! PostgreSQL when several nodes share it. The SQL is portable (TEXT and
//! BIGINT only, `$n` placeholders), so one code path serves both drivers.

use std::fmt;
use std::str::FromStr;

use alloy::primitives::{Address, U256};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::model::{Asset, AssetStatus, GateRule, RuleKind};

mod jobs;
pub use jobs::{JobRecord, JobState};

/// Applies the migrations not yet applied, each in its own transaction.
async fn migrate_on(conn: &mut sqlx::AnyConnection) -> Result<(), StoreError> {
    use sqlx::Connection as _;
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)")
        .execute(&mut *conn)
        .await?;
    for &(version, sql) in MIGRATIONS {
        let mut tx = conn.begin().await?;
        let done = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_some() {
            continue;
        }
        for statement in sql.split(';').map(strip_comments) {
            if !statement.is_empty() {
                // Our own migration files, compiled in: not user input.
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Versioned schema changes, applied in order once each.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/0001_initial.sql")),
    (2, include_str!("../../migrations/0002_deleted_assets.sql")),
    (3, include_str!("../../migrations/0003_asset_duration.sql")),
    (4, include_str!("../../migrations/0004_jobs.sql")),
];

/// How long a deleted asset's id is reported to engines (they poll every
/// second; a week covers an engine that was down for days).
pub const DELETED_ASSET_RETENTION: i64 = 7 * 86_400;

/// A storage failure (the caller answers 503 `database_unavailable`). The
/// driver's error stays attached as [`std::error::Error::source`].
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused or failed a statement, or cannot be reached.
    Database(sqlx::Error),
    /// A stored row does not hold what this version writes.
    Corrupt(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Database(e) => write!(f, "database: {e}"),
            Self::Corrupt(what) => write!(f, "database holds an unreadable row: {what}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Database(e) => Some(e),
            Self::Corrupt(_) => None,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e)
    }
}

/// A challenge issued to a wallet, waiting for its signature.
#[derive(Debug, Clone)]
pub struct ChallengeRecord {
    /// "siwe" | "eip712" | "solana".
    pub kind: String,
    /// The wallet it was issued to, as the client gave it (checked later).
    pub address: String,
    /// Chain the sign-in is for.
    pub chain_id: u64,
    /// What was signed: the message text or the typed-data JSON.
    pub payload: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds when it was spent.
    pub used_at: Option<i64>,
}

/// A signed-in wallet.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// The wallet (0x-hex lowercase or base58).
    pub address: String,
    /// The sign-in kind that created it.
    pub kind: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// The metadata database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// PostgreSQL (row locks: `FOR UPDATE SKIP LOCKED`) rather than SQLite.
    postgres: bool,
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and migrates.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let url = if sqlite && !url.contains("mode=") {
            // Create the file on first start.
            format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
        } else {
            url.to_string()
        };
        let pool = AnyPoolOptions::new()
            // SQLite allows one writer at a time; a small pool avoids
            // piling connections onto the write lock.
            .max_connections(if sqlite { 4 } else { 16 })
            .connect(&url)
            .await?;
        if sqlite {
            // WAL: readers never block the writer; persistent in the file.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
        }
        let store = Self {
            pool,
            postgres: !sqlite,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to an existing database without creating or migrating
    /// anything (`streamgate doctor`): how many of this version's
    /// migrations it has, of how many.
    pub async fn schema(url: &str) -> Result<(usize, usize), StoreError> {
        sqlx::any::install_default_drivers();
        let url = if url.starts_with("sqlite:") && !url.contains("mode=") {
            format!("{url}{}mode=ro", if url.contains('?') { '&' } else { '?' })
        } else {
            url.to_string()
        };
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&url)
            .await?;
        let applied: Vec<(i64,)> = sqlx::query_as("SELECT version FROM schema_migrations")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
        let have = MIGRATIONS
            .iter()
            .filter(|(v, _)| applied.iter().any(|(a,)| a == v))
            .count();
        pool.close().await;
        Ok((have, MIGRATIONS.len()))
    }

    /// A consistent copy of the SQLite database at `url` written to `to`,
    /// taken while it is in use by a running control plane (`VACUUM
    /// INTO`: one read transaction, so its writers go on). PostgreSQL is
    /// backed up with `pg_dump` instead.
    pub async fn backup_sqlite(url: &str, to: &std::path::Path) -> Result<(), StoreError> {
        sqlx::any::install_default_drivers();
        let to = to.to_str().ok_or_else(|| {
            StoreError::Corrupt(format!("backup path {} is not UTF-8", to.display()))
        })?;
        let url = if url.contains('?') {
            format!("{url}&mode=ro")
        } else {
            format!("{url}?mode=ro")
        };
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(&url)
            .await?;
        let copied = sqlx::query("VACUUM INTO $1")
            .bind(to.to_string())
            .execute(&pool)
            .await;
        pool.close().await;
        copied?;
        Ok(())
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        if self.postgres {
            // Replicas starting together migrate one at a time (the lock
            // is the connection's, released below or when it closes).
            sqlx::query("SELECT pg_advisory_lock(7261001)")
                .execute(&mut *conn)
                .await?;
        }
        let migrated = migrate_on(&mut conn).await;
        if self.postgres {
            let _ = sqlx::query("SELECT pg_advisory_unlock(7261001)")
                .execute(&mut *conn)
                .await;
        }
        migrated
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    // ------------------------------------------------------------ assets

    /// Inserts a new asset; `Ok(false)` when the id is taken.
    pub async fn insert_asset(
        &self,
        id: &str,
        title: &str,
        status: AssetStatus,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO assets (id, title, status, progress, error, created_at, updated_at) \
             VALUES ($1, $2, $3, 0, '', $4, $4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(title)
        .bind(status.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 1 {
            // The id is in use again: engines must no longer remove it.
            sqlx::query("DELETE FROM deleted_assets WHERE id = $1")
                .bind(id)
                .execute(&self.pool)
                .await?;
        }
        Ok(result.rows_affected() == 1)
    }

    /// Sets status, progress and error; `Ok(false)` for an unknown id.
    pub async fn update_status(
        &self,
        id: &str,
        status: AssetStatus,
        progress: u32,
        error: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE assets SET status = $2, progress = $3, error = $4, updated_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(i64::from(progress.min(100)))
        .bind(error)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// One asset with its rules.
    pub async fn asset(&self, id: &str) -> Result<Option<Asset>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM assets WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let mut asset = asset_from_row(&row)?;
        asset.rules = self.rules(id).await?;
        Ok(Some(asset))
    }

    /// Records how long an asset plays.
    pub async fn set_duration(&self, id: &str, duration_ms: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE assets SET duration_ms = $1 WHERE id = $2")
            .bind(i64::try_from(duration_ms).unwrap_or(i64::MAX))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every asset, oldest first, with rules.
    pub async fn assets(&self) -> Result<Vec<Asset>, StoreError> {
        let rows = sqlx::query("SELECT * FROM assets ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        let mut assets = rows
            .iter()
            .map(asset_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let rules = sqlx::query("SELECT * FROM gate_rules ORDER BY asset_id, position")
            .fetch_all(&self.pool)
            .await?;
        for row in &rules {
            let asset_id: String = row.try_get("asset_id")?;
            if let Some(asset) = assets.iter_mut().find(|a| a.id == asset_id) {
                asset.rules.push(rule_from_row(row)?);
            }
        }
        Ok(assets)
    }

    /// Removes an asset and its rules; `Ok(false)` for an unknown id.
    pub async fn delete_asset(
        &self,
        id: &str,
        tombstone_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM gate_rules WHERE asset_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let result = sqlx::query("DELETE FROM assets WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let deleted = result.rows_affected() == 1;
        if let (true, Some(now)) = (deleted, tombstone_at) {
            sqlx::query(
                "INSERT INTO deleted_assets (id, deleted_at) VALUES ($1, $2) \
                 ON CONFLICT (id) DO UPDATE SET deleted_at = excluded.deleted_at",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    /// Ids of assets deleted since `since` (Unix seconds) and not created
    /// again.
    pub async fn deleted_assets(&self, since: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id FROM deleted_assets WHERE deleted_at >= $1 ORDER BY id")
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// Replaces the asset's rules (empty opens it); `Ok(false)` for an
    /// unknown id.
    pub async fn set_rules(
        &self,
        id: &str,
        rules: &[GateRule],
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let touched = sqlx::query("UPDATE assets SET updated_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if touched.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM gate_rules WHERE asset_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for (position, rule) in rules.iter().enumerate() {
            sqlx::query(
                "INSERT INTO gate_rules (asset_id, position, kind, chain_id, contract, token_id, min_balance) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(position as i64)
            .bind(rule.kind.as_str())
            .bind(rule.chain_id as i64)
            .bind(rule.contract.to_string())
            .bind(rule.token_id.to_string())
            .bind(rule.min_balance.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn rules(&self, id: &str) -> Result<Vec<GateRule>, StoreError> {
        sqlx::query("SELECT * FROM gate_rules WHERE asset_id = $1 ORDER BY position")
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rule_from_row)
            .collect()
    }

    // ------------------------------------------------------------ sign-in

    /// Stores a fresh challenge under `id`.
    pub async fn insert_challenge(
        &self,
        id: &str,
        challenge: &ChallengeRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO challenges (id, kind, address, chain_id, payload, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(id)
        .bind(&challenge.kind)
        .bind(&challenge.address)
        .bind(challenge.chain_id as i64)
        .bind(&challenge.payload)
        .bind(challenge.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Unanswered, unexpired challenges at `now`: for `address` (compared
    /// without case, as EVM addresses are written either way) and in all.
    pub async fn live_challenges(&self, address: &str, now: i64) -> Result<(i64, i64), StoreError> {
        let for_address = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM challenges \
             WHERE used_at IS NULL AND expires_at >= $1 AND LOWER(address) = LOWER($2)",
        )
        .bind(now)
        .bind(address)
        .fetch_one(&self.pool)
        .await?;
        let total = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM challenges WHERE used_at IS NULL AND expires_at >= $1",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok((for_address, total))
    }

    /// A challenge by id.
    pub async fn challenge(&self, id: &str) -> Result<Option<ChallengeRecord>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM challenges WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(ChallengeRecord {
            kind: row.try_get("kind")?,
            address: row.try_get("address")?,
            chain_id: row.try_get::<i64, _>("chain_id")? as u64,
            payload: row.try_get("payload")?,
            expires_at: row.try_get("expires_at")?,
            used_at: row.try_get("used_at")?,
        }))
    }

    /// Marks a challenge used; `Ok(false)` when it was already spent (a
    /// replay racing the first use loses here, atomically).
    pub async fn spend_challenge(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let result =
            sqlx::query("UPDATE challenges SET used_at = $2 WHERE id = $1 AND used_at IS NULL")
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Stores a session under the hash of its bearer secret.
    pub async fn insert_session(
        &self,
        id_hash: &str,
        session: &SessionRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, address, kind, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id_hash)
        .bind(&session.address)
        .bind(&session.kind)
        .bind(session.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A session by the hash of its bearer secret.
    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(SessionRecord {
            address: row.try_get("address")?,
            kind: row.try_get("kind")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }

    /// Ends a session; `Ok(false)` when there was none.
    pub async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Drops expired challenges, sessions and revocations.
    pub async fn purge_expired(&self, now: i64) -> Result<(), StoreError> {
        for statement in [
            "DELETE FROM challenges WHERE expires_at < $1",
            "DELETE FROM sessions WHERE expires_at < $1",
            "DELETE FROM revocations WHERE expires_at < $1",
        ] {
            sqlx::query(statement).bind(now).execute(&self.pool).await?;
        }
        sqlx::query("DELETE FROM deleted_assets WHERE deleted_at < $1")
            .bind(now - DELETED_ASSET_RETENTION)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ------------------------------------------------------------ keys

    /// Publishes a signing key's public half (idempotent).
    pub async fn insert_public_key(
        &self,
        kid: &str,
        public: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, public_key, created_at, retired_at) \
             VALUES ($1, $2, $3, NULL) ON CONFLICT (kid) DO NOTHING",
        )
        .bind(kid)
        .bind(public)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a key retired: it keeps verifying tokens until they expire.
    pub async fn retire_key(&self, kid: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE signing_keys SET retired_at = $2 WHERE kid = $1 AND retired_at IS NULL",
        )
        .bind(kid)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `(kid, base64url public key)` of keys in use or retired after
    /// `retired_after` (their tokens may still be live).
    pub async fn public_keys(
        &self,
        retired_after: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, public_key FROM signing_keys \
             WHERE retired_at IS NULL OR retired_at > $1 ORDER BY kid",
        )
        .bind(retired_after)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("kid")?, r.try_get("public_key")?)))
            .collect()
    }

    /// Revokes a token id until `expires_at`.
    pub async fn revoke(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revocations (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Token ids revoked and not yet expired.
    pub async fn revoked(&self, now: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT jti FROM revocations WHERE expires_at >= $1 ORDER BY jti")
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("jti")?)).collect()
    }

    /// Ids of ready assets without rules (served under `/v/`).
    pub async fn open_assets(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM assets WHERE status = 'ready' \
             AND NOT EXISTS (SELECT 1 FROM gate_rules r WHERE r.asset_id = assets.id) ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }
}

/// Drops `--` comment lines so that splitting on `;` leaves bare statements.
fn strip_comments(statement: &str) -> String {
    statement
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

fn asset_from_row(row: &AnyRow) -> Result<Asset, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(Asset {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        status: AssetStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown asset status {status:?}")))?,
        progress: row.try_get::<i64, _>("progress")?.clamp(0, 100) as u32,
        error: row.try_get("error")?,
        rules: Vec::new(),
        duration_ms: row.try_get::<i64, _>("duration_ms")?.max(0) as u64,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn rule_from_row(row: &AnyRow) -> Result<GateRule, StoreError> {
    let kind: String = row.try_get("kind")?;
    let contract: String = row.try_get("contract")?;
    let token_id: String = row.try_get("token_id")?;
    let min_balance: String = row.try_get("min_balance")?;
    let bad = |what: &str| StoreError::Corrupt(format!("stored rule has a bad {what}"));
    Ok(GateRule {
        kind: RuleKind::parse(&kind).ok_or_else(|| bad("kind"))?,
        chain_id: row.try_get::<i64, _>("chain_id")? as u64,
        contract: Address::from_str(&contract).map_err(|_| bad("contract"))?,
        token_id: U256::from_str(&token_id).map_err(|_| bad("token id"))?,
        min_balance: U256::from_str(&min_balance).map_err(|_| bad("balance"))?,
    })
}

#[cfg(test)]
mod error_tests {
    use super::*;

    #[test]
    fn the_driver_error_is_the_source() {
        let e = StoreError::from(sqlx::Error::PoolTimedOut);
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.downcast_ref::<sqlx::Error>().is_some());
        assert!(e.to_string().starts_with("database: "), "{e}");
    }
}

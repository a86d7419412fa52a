//! Every control-plane operation, once. The gRPC services and the JSON API
//! only translate requests into these calls and [`ApiError`] into their
//! status codes. By job: who is calling (here), [`signin`] (challenges,
//! login, logout), [`assets`] (records, import, delete, gating),
//! [`playback`] (ownership, tokens, revocation), [`keys`] (rotation and the
//! state engines pull).

mod assets;
mod jobs;
mod keys;
mod playback;
mod signin;

pub use assets::Deleted;
pub use jobs::JobOutcome;
pub use keys::EngineState;
pub use playback::Playback;
pub use signin::{Challenge, Session};

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};
use streamgate_token::{constant_time_eq, new_jti, Claims, TokenSigner};
use time::OffsetDateTime;

use crate::auth::{self, AuthError, Expect, SignInKind};
use crate::chain::{Decision, Gatekeeper};
use crate::config::ControlConfig;
pub use crate::error::ApiError;
use crate::metrics;
use crate::model::{
    is_asset_id, random_asset_id, random_id, unix_now, Asset, AssetStatus, GateRule,
};
use crate::secrets::{self, KeyDir};
use crate::store::{ChallengeRecord, SessionRecord, Store};
use streamgate_api::ErrorCode;
use streamgate_assets::{AssetError, AssetStore, LocalStore};

/// Longest token id `revoke` accepts (ours are 22 characters).
pub const MAX_JTI_LEN: usize = 128;

/// Seconds a client should wait before retrying after a chain outage.
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Holder of the operator token.
    Operator,
    /// A signed-in wallet.
    Viewer {
        /// Canonical wallet address.
        address: String,
    },
}

/// The control plane's state and operations.
pub struct Service {
    /// Replaced whole by a reload (SIGHUP): TTLs, limits, RPC URLs.
    config: RwLock<Arc<ControlConfig>>,
    expect: Expect,
    store: Store,
    /// Rebuilt by a reload from the new chains (its NFT cache starts over).
    gate: RwLock<Arc<Gatekeeper>>,
    keys: KeyDir,
    signer: RwLock<Arc<TokenSigner>>,
    operator_token: String,
    /// The assets' bucket (`[storage] kind = "s3"`); `None`: the local root.
    bucket: Option<Arc<streamgate_assets::BucketStore>>,
}

impl Service {
    /// Wires the parts together and publishes this node's signing key.
    pub async fn new(
        config: ControlConfig,
        store: Store,
        operator_token: String,
    ) -> Result<Self, String> {
        let expect = Expect::from_public_url(&config.public_url)?;
        let gate = Gatekeeper::new(
            &config.chains,
            config.nft_cache_ttl,
            config.nft_negative_ttl,
        )?;
        let keys = KeyDir::open(config.keys_dir()).map_err(|e| e.to_string())?;
        let bucket = match &config.bucket {
            Some(b) => {
                let client = streamgate_assets::Bucket::connect(b).map_err(|e| e.to_string())?;
                let scratch = config.data_dir.join("staging");
                Some(Arc::new(
                    streamgate_assets::BucketStore::new(client, &scratch)
                        .map_err(|e| format!("creating {}: {e}", scratch.display()))?,
                ))
            }
            None => None,
        };
        let (signer, _) = keys.current().map_err(|e| e.to_string())?;
        store
            .insert_public_key(
                signer.kid(),
                &secrets::encode_public(&signer.public()),
                unix_now(),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            config: RwLock::new(Arc::new(config)),
            expect,
            store,
            gate: RwLock::new(Arc::new(gate)),
            keys,
            signer: RwLock::new(Arc::new(signer)),
            operator_token,
            bucket,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<ControlConfig> {
        match self.config.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The NFT gate in force.
    fn gate(&self) -> Arc<Gatekeeper> {
        match self.gate.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// What SIGHUP does: takes the configuration as it now reads. TTLs,
    /// challenge limits and the chains' RPC URLs apply to the next call
    /// (the NFT cache starts over); the returned keys changed but take
    /// effect only at a restart. A configuration that does not build (a
    /// bad RPC URL) changes nothing.
    pub fn reload(&self, next: ControlConfig) -> Result<Vec<&'static str>, String> {
        let gate = Gatekeeper::new(&next.chains, next.nft_cache_ttl, next.nft_negative_ttl)?;
        let running = self.config();
        let mut restart = Vec::new();
        for (key, differs) in [
            ("control.grpc", running.grpc != next.grpc),
            ("control.http", running.http != next.http),
            ("control.database", running.database != next.database),
            ("control.public_url", running.public_url != next.public_url),
            ("control.tls", running.tls.is_some() != next.tls.is_some()),
            ("data_dir", running.data_dir != next.data_dir),
        ] {
            if differs {
                restart.push(key);
            }
        }
        // Keep what only a restart changes; take the rest.
        let taken = ControlConfig {
            grpc: running.grpc,
            http: running.http,
            database: running.database.clone(),
            public_url: running.public_url.clone(),
            tls: running.tls.clone(),
            data_dir: running.data_dir.clone(),
            assets_root: running.assets_root.clone(),
            own_metrics: running.own_metrics,
            ..next
        };
        if let Ok(mut g) = self.gate.write() {
            *g = Arc::new(gate);
        }
        if let Ok(mut c) = self.config.write() {
            *c = Arc::new(taken);
        }
        Ok(restart)
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    // ------------------------------------------------------------ callers

    /// Who presents `bearer` (the operator token or a live session).
    pub async fn caller(&self, bearer: Option<&str>) -> Result<Caller, ApiError> {
        let bearer = bearer.ok_or_else(|| {
            ApiError::new(
                ErrorCode::MissingCredentials,
                "an Authorization: Bearer header is required",
            )
        })?;
        if constant_time_eq(bearer.as_bytes(), self.operator_token.as_bytes()) {
            return Ok(Caller::Operator);
        }
        match self.store.session(&session_hash(bearer)).await? {
            Some(s) if s.expires_at > unix_now() => Ok(Caller::Viewer { address: s.address }),
            _ => Err(ApiError::new(
                ErrorCode::InvalidSession,
                "session unknown, expired or logged out",
            )),
        }
    }

    /// Refuses anyone but the operator.
    pub async fn operator(&self, bearer: Option<&str>) -> Result<(), ApiError> {
        match self.caller(bearer).await? {
            Caller::Operator => Ok(()),
            Caller::Viewer { .. } => Err(ApiError::new(
                ErrorCode::OperatorOnly,
                "this call needs the operator token",
            )),
        }
    }

    /// Whether the database answers, and how many assets there are and
    /// how many of them are ready (for the service manager's status line).
    pub async fn health(&self) -> Result<(usize, usize), String> {
        let assets = self.store.assets().await.map_err(|e| e.to_string())?;
        let ready = assets
            .iter()
            .filter(|a| a.status == crate::model::AssetStatus::Ready)
            .count();
        Ok((assets.len(), ready))
    }

    /// Deletes expired challenges, sessions and revocations.
    pub async fn purge(&self) {
        if let Err(e) = self.store.purge_expired(unix_now()).await {
            tracing::warn!(error = %e, "purging expired rows");
        }
    }
}

/// What sessions are stored under: their bearer secret never is.
fn session_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The token's `wal` claim: the wallet, hashed (Contract 4).
fn wallet_hash(address: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(&Sha256::digest(address.as_bytes())[..16])
}

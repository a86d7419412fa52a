//! Every control-plane operation, once. The gRPC services and the JSON API
//! only translate requests into these calls and [`ApiError`] into their
//! status codes.

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

/// A challenge to sign.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// Pass back to login.
    pub id: String,
    /// What to sign: message text, or typed-data JSON for EIP-712.
    pub payload: String,
    /// The scheme.
    pub kind: SignInKind,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A new session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Bearer secret.
    pub token: String,
    /// Canonical wallet address.
    pub address: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// An issued playback token and the URLs that carry it.
#[derive(Debug, Clone)]
pub struct Playback {
    /// The JWS.
    pub token: String,
    /// Its id (for revocation).
    pub jti: String,
    /// `/p/<token>/<id>/master.m3u8`
    pub hls: String,
    /// `/p/<token>/<id>/manifest.mpd`
    pub dash: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// What the engine needs to decide requests locally.
#[derive(Debug, Clone, Default)]
pub struct EngineState {
    /// Changes whenever anything else does.
    pub version: String,
    /// `(kid, Ed25519 public key)`.
    pub keys: Vec<(String, [u8; 32])>,
    /// Revoked token ids.
    pub revoked: Vec<String>,
    /// Ready, ungated assets.
    pub open_assets: Vec<String>,
    /// Assets deleted recently: engines remove their files.
    pub deleted_assets: Vec<String>,
}

/// What deleting an asset removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The record and the files under this node's assets root.
    WithFiles,
    /// The record only: this node holds no files for it (a split
    /// deployment); engines remove theirs on their next poll.
    RecordOnly,
}

/// The control plane's state and operations.
pub struct Service {
    config: ControlConfig,
    expect: Expect,
    store: Store,
    gate: Gatekeeper,
    keys: KeyDir,
    signer: RwLock<Arc<TokenSigner>>,
    operator_token: String,
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
            config,
            expect,
            store,
            gate,
            keys,
            signer: RwLock::new(Arc::new(signer)),
            operator_token,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &ControlConfig {
        &self.config
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

    // ------------------------------------------------------------ sign-in

    /// Issues a challenge for `address` to sign.
    pub async fn challenge(
        &self,
        address: &str,
        chain_id: u64,
        kind: &str,
    ) -> Result<Challenge, ApiError> {
        let kind = SignInKind::parse(kind).ok_or_else(|| {
            ApiError::malformed("kind must be \"siwe\", \"eip712\" or \"solana\"")
        })?;
        if kind != SignInKind::Solana && chain_id == 0 {
            return Err(ApiError::malformed("chain_id is required"));
        }
        let now = OffsetDateTime::now_utc();
        let ttl = time::Duration::try_from(self.config.challenge_ttl)
            .unwrap_or(time::Duration::minutes(5));
        let nonce = siwe::generate_nonce();
        let spec = auth::ChallengeSpec {
            expect: &self.expect,
            address,
            chain_id,
            nonce: &nonce,
            now,
            ttl,
        };
        let payload = auth::build(kind, &spec).map_err(|_| {
            ApiError::malformed("address is not a valid wallet address for this kind")
        })?;
        // Soft caps (two requests racing may both pass): enough to keep a
        // flood of this public endpoint from writing without bound.
        let (for_address, total) = self
            .store
            .live_challenges(address, now.unix_timestamp())
            .await?;
        if for_address >= i64::from(self.config.challenge_limit_per_address)
            || total >= i64::from(self.config.challenge_limit)
        {
            metrics::sign_in(kind.as_str(), "too_many_challenges");
            return Err(ApiError::new(
                ErrorCode::TooManyChallenges,
                "too many unanswered sign-in challenges; answer one or wait for them to expire",
            )
            .retry_after(self.config.challenge_ttl.as_secs().max(1)));
        }
        let id = random_id(18);
        let expires_at = (now + ttl).unix_timestamp();
        self.store
            .insert_challenge(
                &id,
                &ChallengeRecord {
                    kind: kind.as_str().into(),
                    address: address.to_string(),
                    chain_id,
                    payload: payload.clone(),
                    expires_at,
                    used_at: None,
                },
            )
            .await?;
        Ok(Challenge {
            id,
            payload,
            kind,
            expires_at,
        })
    }

    /// Verifies a signed challenge and opens a session.
    pub async fn login(&self, challenge_id: &str, signature: &str) -> Result<Session, ApiError> {
        let record = self.store.challenge(challenge_id).await?;
        let kind = record
            .as_ref()
            .and_then(|r| SignInKind::parse(&r.kind))
            .map_or("unknown", SignInKind::as_str);
        let result = self.login_inner(record, challenge_id, signature).await;
        metrics::sign_in(
            kind,
            result.as_ref().map_or_else(|e| e.code.as_str(), |_| "ok"),
        );
        result
    }

    async fn login_inner(
        &self,
        record: Option<ChallengeRecord>,
        challenge_id: &str,
        signature: &str,
    ) -> Result<Session, ApiError> {
        let record = record
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidChallenge, "unknown challenge"))?;
        if record.used_at.is_some() {
            return Err(ApiError::new(
                ErrorCode::ChallengeUsed,
                "challenge already used",
            ));
        }
        let now = OffsetDateTime::now_utc();
        if now.unix_timestamp() >= record.expires_at {
            return Err(ApiError::new(
                ErrorCode::ChallengeExpired,
                "challenge expired",
            ));
        }
        let kind = SignInKind::parse(&record.kind)
            .ok_or_else(|| ApiError::internal("stored challenge of unknown kind"))?;
        let address = auth::verify(
            kind,
            &record.payload,
            signature,
            &self.expect,
            &record.address,
            record.chain_id,
            now,
        )
        .map_err(|e| match e {
            AuthError::Malformed => ApiError::malformed("signature is malformed"),
            AuthError::Expired => ApiError::new(ErrorCode::ChallengeExpired, "challenge expired"),
            _ => ApiError::new(
                ErrorCode::BadSignature,
                "signature does not match the address",
            ),
        })?;
        // Spent only by an otherwise valid sign-in, atomically: of two
        // racing replays exactly one wins.
        if !self
            .store
            .spend_challenge(challenge_id, now.unix_timestamp())
            .await?
        {
            return Err(ApiError::new(
                ErrorCode::ChallengeUsed,
                "challenge already used",
            ));
        }
        let token = format!("sgs_{}", random_id(32));
        let expires_at = now.unix_timestamp() + self.config.session_ttl.as_secs() as i64;
        self.store
            .insert_session(
                &session_hash(&token),
                &SessionRecord {
                    address: address.clone(),
                    kind: kind.as_str().into(),
                    expires_at,
                },
            )
            .await?;
        Ok(Session {
            token,
            address,
            expires_at,
        })
    }

    /// Ends the session presented as `bearer`.
    pub async fn logout(&self, bearer: Option<&str>) -> Result<(), ApiError> {
        let bearer =
            bearer.ok_or_else(|| ApiError::new(ErrorCode::MissingCredentials, "no session"))?;
        if self.store.delete_session(&session_hash(bearer)).await? {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::InvalidSession,
                "session unknown, expired or logged out",
            ))
        }
    }

    // ------------------------------------------------------------ assets

    /// Every asset.
    pub async fn assets(&self) -> Result<Vec<Asset>, ApiError> {
        Ok(self.store.assets().await?)
    }

    /// One asset.
    pub async fn asset(&self, id: &str) -> Result<Asset, ApiError> {
        self.store
            .asset(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no asset {id:?}")))
    }

    /// Registers an asset (an empty id picks one).
    pub async fn create_asset(
        &self,
        id: &str,
        title: &str,
        status: AssetStatus,
    ) -> Result<Asset, ApiError> {
        let id = if id.is_empty() {
            random_asset_id(12)
        } else {
            id.to_string()
        };
        if !is_asset_id(&id) {
            return Err(ApiError::malformed("asset ids are [A-Za-z0-9_-]{1,64}"));
        }
        if !self
            .store
            .insert_asset(&id, title, status, unix_now())
            .await?
        {
            return Err(ApiError::new(
                ErrorCode::AssetExists,
                format!("asset {id:?} already exists"),
            ));
        }
        self.asset(&id).await
    }

    /// Registers an already packaged directory and moves it under the root.
    pub async fn import_asset(&self, path: &str, id: &str, title: &str) -> Result<Asset, ApiError> {
        let source = PathBuf::from(path);
        if !source.join("master.m3u8").is_file() && !source.join("manifest.mpd").is_file() {
            return Err(ApiError::malformed(format!(
                "{path} is not a packaged asset (no master.m3u8 or manifest.mpd)"
            )));
        }
        let id = if id.is_empty() {
            source
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            id.to_string()
        };
        if !is_asset_id(&id) {
            return Err(ApiError::malformed(format!(
                "{id:?} is not an asset id; pass --id"
            )));
        }
        let target = self.config.assets_root.join(&id);
        if target.exists() {
            return Err(ApiError::new(
                ErrorCode::AssetExists,
                format!("{} already exists", target.display()),
            ));
        }
        let title = if title.is_empty() { id.as_str() } else { title };
        if !self
            .store
            .insert_asset(&id, title, AssetStatus::Ready, unix_now())
            .await?
        {
            return Err(ApiError::new(
                ErrorCode::AssetExists,
                format!("asset {id:?} already exists"),
            ));
        }
        let imported = LocalStore::create(&self.config.assets_root)
            .map_err(|e| AssetError::io("opening the assets root", e))
            .and_then(|store| store.import(&source, &id));
        if let Err(e) = imported {
            // Never published anywhere: no engine has files to remove.
            let _ = self.store.delete_asset(&id, None).await;
            return Err(match e {
                AssetError::Exists(path) => ApiError::new(
                    ErrorCode::AssetExists,
                    format!("{} already exists", path.display()),
                ),
                e => ApiError::internal(format!("importing {path}: {e}")),
            });
        }
        self.asset(&id).await
    }

    /// Removes an asset: metadata first (the engine stops serving it within
    /// a second), then its files.
    pub async fn delete_asset(&self, id: &str) -> Result<Deleted, ApiError> {
        if !is_asset_id(id) || !self.store.delete_asset(id, Some(unix_now())).await? {
            return Err(ApiError::not_found(format!("no asset {id:?}")));
        }
        let root = &self.config.assets_root;
        let removed = match LocalStore::open(root) {
            Ok(store) => store
                .remove(id)
                .map_err(|e| ApiError::internal(e.to_string()))?,
            Err(_) => false, // no assets root on this node
        };
        // Nothing here: a split deployment, where the files are on the
        // engines; each removes them when its next poll reports the deletion.
        Ok(if removed {
            Deleted::WithFiles
        } else {
            Deleted::RecordOnly
        })
    }

    /// Sets status and progress (job runner, ingest).
    pub async fn update_status(
        &self,
        id: &str,
        status: AssetStatus,
        progress: u32,
        error: &str,
    ) -> Result<Asset, ApiError> {
        if !self
            .store
            .update_status(id, status, progress, error, unix_now())
            .await?
        {
            return Err(ApiError::not_found(format!("no asset {id:?}")));
        }
        self.asset(id).await
    }

    /// Replaces an asset's rules; empty opens it.
    pub async fn set_gate(&self, id: &str, rules: &[GateRule]) -> Result<Asset, ApiError> {
        for rule in rules {
            if rule.chain_id == 0 {
                return Err(ApiError::malformed("every rule needs a chain id"));
            }
            if !self.config.chains.contains_key(&rule.chain_id) {
                // Allowed (the operator may add the chain later), but the
                // asset stays closed until then: say so now.
                tracing::warn!(
                    asset = id,
                    chain = rule.chain_id,
                    "asset gated on a chain with no [chains.N] rpc configured: closed to every viewer"
                );
            }
        }
        if !self.store.set_rules(id, rules, unix_now()).await? {
            return Err(ApiError::not_found(format!("no asset {id:?}")));
        }
        self.asset(id).await
    }

    // ------------------------------------------------------------ access

    /// Whether `address` may watch `asset` now.
    pub async fn verify_ownership(&self, address: &str, asset: &Asset) -> Decision {
        if !asset.gated() {
            return Decision::Allowed { cached: true };
        }
        self.gate.check(address, &asset.rules).await
    }

    /// Issues a playback token for `asset_id` to `caller`: a viewer must
    /// pass the asset's NFT rules; the operator needs none.
    pub async fn playback(
        &self,
        caller: &Caller,
        asset_id: &str,
        ttl_seconds: u64,
    ) -> Result<Playback, ApiError> {
        let result = self.playback_inner(caller, asset_id, ttl_seconds).await;
        match &result {
            Ok(_) => metrics::token_issued(match caller {
                Caller::Operator => "operator",
                Caller::Viewer { .. } => "viewer",
            }),
            Err(e) => metrics::token_refused(e.code.as_str()),
        }
        result
    }

    async fn playback_inner(
        &self,
        caller: &Caller,
        asset_id: &str,
        ttl_seconds: u64,
    ) -> Result<Playback, ApiError> {
        let asset = self.asset(asset_id).await?;
        if asset.status != AssetStatus::Ready {
            return Err(ApiError::new(
                ErrorCode::NotReady,
                format!("asset {asset_id:?} is {}", asset.status.as_str()),
            ));
        }
        let wallet = match caller {
            Caller::Operator => None,
            Caller::Viewer { address } => {
                match self.verify_ownership(address, &asset).await {
                    Decision::Allowed { .. } => {}
                    Decision::Denied { .. } => {
                        return Err(ApiError::new(
                            ErrorCode::NftRequired,
                            "this wallet holds none of the NFTs this asset requires",
                        )
                        .with_rules(asset.rules.clone()))
                    }
                    Decision::Unavailable(detail) => {
                        tracing::warn!(asset = asset_id, %detail, "NFT check could not be answered");
                        return Err(ApiError::new(
                            ErrorCode::ChainUnavailable,
                            "the chain cannot be reached to check ownership; try again",
                        )
                        .retry_after(RETRY_AFTER_SECONDS));
                    }
                }
                Some(address.as_str())
            }
        };
        let max = self.config.playback_max_ttl.as_secs();
        let ttl = match ttl_seconds {
            0 => self.config.playback_ttl.as_secs(),
            n => n,
        }
        .clamp(1, max.max(1));
        let now = unix_now() as u64;
        let claims = Claims {
            sub: asset.id.clone(),
            exp: now + ttl,
            iat: now,
            jti: new_jti().map_err(|e| ApiError::internal(e.to_string()))?,
            nbf: None,
            wal: wallet.map(wallet_hash),
        };
        let signer = self
            .signer
            .read()
            .map(|s| Arc::clone(&s))
            .map_err(|_| ApiError::internal("signer lock poisoned"))?;
        let token = signer.sign(&claims);
        Ok(Playback {
            hls: format!("/p/{token}/{}/master.m3u8", asset.id),
            dash: format!("/p/{token}/{}/manifest.mpd", asset.id),
            expires_at: claims.exp as i64,
            jti: claims.jti,
            token,
        })
    }

    /// Revokes a playback token by id until `expires_at` (0: the longest
    /// lifetime a token can have).
    pub async fn revoke(&self, jti: &str, expires_at: i64) -> Result<(), ApiError> {
        if jti.is_empty() {
            return Err(ApiError::malformed("jti is required"));
        }
        if jti.len() > MAX_JTI_LEN {
            return Err(ApiError::malformed(format!(
                "jti is {} bytes long; token ids are at most {MAX_JTI_LEN}",
                jti.len()
            )));
        }
        let until = if expires_at > 0 {
            expires_at
        } else {
            unix_now() + self.config.playback_max_ttl.as_secs() as i64
        };
        Ok(self.store.revoke(jti, until).await?)
    }

    /// A new signing key; older keys keep verifying until their tokens
    /// expire.
    pub async fn rotate_key(&self) -> Result<String, ApiError> {
        let next = self
            .keys
            .create()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let now = unix_now();
        self.store
            .insert_public_key(next.kid(), &secrets::encode_public(&next.public()), now)
            .await?;
        let kid = next.kid().to_string();
        let previous = {
            let mut slot = self
                .signer
                .write()
                .map_err(|_| ApiError::internal("signer lock poisoned"))?;
            std::mem::replace(&mut *slot, Arc::new(next))
        };
        self.store.retire_key(previous.kid(), now).await?;
        Ok(kid)
    }

    /// Keys, revocations and open assets for the engine.
    pub async fn engine_state(&self) -> Result<EngineState, ApiError> {
        let now = unix_now();
        let retired_after = now - self.config.playback_max_ttl.as_secs() as i64;
        let keys: Vec<(String, [u8; 32])> = self
            .store
            .public_keys(retired_after)
            .await?
            .into_iter()
            .filter_map(|(kid, public)| Some((kid, secrets::decode_public(&public)?)))
            .collect();
        let revoked = self.store.revoked(now).await?;
        let open_assets = self.store.open_assets().await?;
        let deleted_assets = self
            .store
            .deleted_assets(now - crate::store::DELETED_ASSET_RETENTION)
            .await?;
        let mut digest = Sha256::new();
        for (kid, public) in &keys {
            digest.update(kid.as_bytes());
            digest.update(public);
        }
        for item in revoked
            .iter()
            .chain(std::iter::once(&String::new()))
            .chain(&open_assets)
            .chain(std::iter::once(&String::new()))
            .chain(&deleted_assets)
        {
            digest.update(item.as_bytes());
            digest.update([0]);
        }
        Ok(EngineState {
            version: hex::encode(&digest.finalize()[..12]),
            keys,
            revoked,
            open_assets,
            deleted_assets,
        })
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

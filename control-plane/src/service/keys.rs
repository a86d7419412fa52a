//! Signing keys and the state engines pull (keys, revocations, open and deleted assets).

use super::*;

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

impl Service {
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
        let retired_after = now - self.config().playback_max_ttl.as_secs() as i64;
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
}

//! Playback: NFT ownership, issuing tokens, revoking them.

use super::*;

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

impl Service {
    /// Whether `address` may watch `asset` now.
    pub async fn verify_ownership(&self, address: &str, asset: &Asset) -> Decision {
        if !asset.gated() {
            return Decision::Allowed { cached: true };
        }
        self.gate().check(address, &asset.rules).await
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
        let max = self.config().playback_max_ttl.as_secs();
        let ttl = match ttl_seconds {
            0 => self.config().playback_ttl.as_secs(),
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
            unix_now() + self.config().playback_max_ttl.as_secs() as i64
        };
        Ok(self.store.revoke(jti, until).await?)
    }
}

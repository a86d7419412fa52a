//! Wallet sign-in: challenges to sign, login by signature, logout.

use super::*;

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

impl Service {
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
        let ttl = time::Duration::try_from(self.config().challenge_ttl)
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
        if for_address >= i64::from(self.config().challenge_limit_per_address)
            || total >= i64::from(self.config().challenge_limit)
        {
            metrics::sign_in(kind.as_str(), "too_many_challenges");
            return Err(ApiError::new(
                ErrorCode::TooManyChallenges,
                "too many unanswered sign-in challenges; answer one or wait for them to expire",
            )
            .retry_after(self.config().challenge_ttl.as_secs().max(1)));
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
        let expires_at = now.unix_timestamp() + self.config().session_ttl.as_secs() as i64;
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
}

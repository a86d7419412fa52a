//! Playback tokens (Contract 4).
//!
//! A token is a JWS in compact form, `alg: EdDSA` (Ed25519, RFC 8037), so
//! any JWT library can mint one with the private key. The header carries
//! `kid`; the claims are `sub` (asset id), `exp`, `iat`, `jti`, and optionally
//! `nbf` and `wal` (a hash of the wallet). The engine holds only public keys
//! ([`KeySet`]) and checks signature, `sub` against the path, time with a
//! small skew, and a revocation list.
//!
//! Rejections are a precise enum for logs and metrics ([`Rejection`]); what a
//! client sees is only 401 or 403 ([`Rejection::status`]), with no detail that
//! helps an attacker.

use std::collections::{HashMap, HashSet};
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Longest token accepted, in bytes (far above any real one).
pub const MAX_TOKEN_LEN: usize = 2048;

/// The claims of a playback token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Asset id the token opens.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Unique id, for revocation.
    pub jti: String,
    /// Not before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Hash of the wallet the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not three base64url parts, bad JSON, or over [`MAX_TOKEN_LEN`].
    Malformed,
    /// `alg` is not EdDSA.
    WrongAlgorithm,
    /// No public key with this `kid`.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// Past `exp` (beyond the skew).
    Expired,
    /// Before `nbf` or `iat` (beyond the skew).
    NotYetValid,
    /// `sub` names another asset.
    WrongAsset,
    /// `jti` is revoked.
    Revoked,
}

impl Rejection {
    /// What the client is told: 401 for tokens that prove nothing, 403 for
    /// valid tokens that do not open this asset.
    pub fn status(self) -> u16 {
        match self {
            Self::WrongAsset | Self::Revoked => 403,
            _ => 401,
        }
    }

    /// A stable label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::WrongAlgorithm => "wrong_algorithm",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongAsset => "wrong_asset",
            Self::Revoked => "revoked",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Rejection {}

/// A signing key with its id (control plane side).
pub struct TokenSigner {
    kid: String,
    key: SigningKey,
}

impl TokenSigner {
    /// A fresh random key.
    pub fn generate(kid: &str) -> Result<Self, getrandom::Error> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)?;
        Ok(Self::from_secret(kid, &secret))
    }

    /// A key from its 32 secret bytes.
    pub fn from_secret(kid: &str, secret: &[u8; 32]) -> Self {
        Self {
            kid: kid.to_string(),
            key: SigningKey::from_bytes(secret),
        }
    }

    /// The secret bytes (to store, mode 0600).
    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, for [`KeySet`].
    pub fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs `claims` into a compact JWS.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = Header {
            alg: "EdDSA".into(),
            kid: self.kid.clone(),
            typ: Some("JWT".into()),
        };
        // Serialising plain structs of strings and numbers cannot fail.
        let header = B64.encode(serde_json::to_vec(&header).unwrap_or_default());
        let payload = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
        let input = format!("{header}.{payload}");
        let signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(signature.to_bytes()))
    }
}

/// Public keys by `kid` plus revoked `jti`s (engine side).
#[derive(Default, Clone)]
pub struct KeySet {
    keys: HashMap<String, VerifyingKey>,
    revoked: HashSet<String>,
}

impl KeySet {
    /// Adds a public key; several may be live at once (rotation).
    pub fn add(&mut self, kid: &str, public: &[u8; 32]) -> Result<(), Rejection> {
        let key = VerifyingKey::from_bytes(public).map_err(|_| Rejection::Malformed)?;
        self.keys.insert(kid.to_string(), key);
        Ok(())
    }

    /// Revokes a token id.
    pub fn revoke(&mut self, jti: &str) {
        self.revoked.insert(jti.to_string());
    }

    /// Whether a token id is revoked.
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.contains(jti)
    }

    /// Verifies signature and `kid` and decodes the claims, without the
    /// time, asset and revocation checks (see [`check`]).
    pub fn verify_signature(&self, token: &str) -> Result<Claims, Rejection> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Rejection::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejection::Malformed);
        };
        let header: Header = decode_json(h)?;
        if header.alg != "EdDSA" {
            return Err(Rejection::WrongAlgorithm);
        }
        let key = self.keys.get(&header.kid).ok_or(Rejection::UnknownKey)?;
        let sig_bytes: [u8; 64] = B64
            .decode(s)
            .map_err(|_| Rejection::Malformed)?
            .try_into()
            .map_err(|_| Rejection::Malformed)?;
        let signature = Signature::from_bytes(&sig_bytes);
        let signed = &token[..h.len() + 1 + p.len()];
        key.verify_strict(signed.as_bytes(), &signature)
            .map_err(|_| Rejection::BadSignature)?;
        decode_json(p)
    }
}

/// Checks already-verified claims against the requested asset, the time
/// (with `skew` seconds of tolerance) and the revocation list.
pub fn check(
    claims: &Claims,
    asset: &str,
    now: u64,
    skew: u64,
    keys: &KeySet,
) -> Result<(), Rejection> {
    if claims.sub != asset {
        return Err(Rejection::WrongAsset);
    }
    if now > claims.exp.saturating_add(skew) {
        return Err(Rejection::Expired);
    }
    let not_before = claims.nbf.unwrap_or(claims.iat);
    if now.saturating_add(skew) < not_before {
        return Err(Rejection::NotYetValid);
    }
    if keys.is_revoked(&claims.jti) {
        return Err(Rejection::Revoked);
    }
    Ok(())
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, Rejection> {
    let bytes = B64.decode(part).map_err(|_| Rejection::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Rejection::Malformed)
}

/// Whether `id` is a valid asset id, `[A-Za-z0-9_-]{1,64}` (Contract 2);
/// the `sub` of every playback token is one.
pub fn is_asset_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Compares secrets (bearer tokens) in time independent of where they
/// differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh random token id (128 bits, base64url).
pub fn new_jti() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(B64.encode(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn asset_ids() {
        use super::is_asset_id;
        assert!(is_asset_id("abc_DEF-123"));
        assert!(!is_asset_id(""));
        assert!(!is_asset_id(".staging"));
        assert!(!is_asset_id(&"a".repeat(65)));
        assert!(!is_asset_id("a b"));
    }

    use super::*;

    fn claims(sub: &str) -> Claims {
        Claims {
            sub: sub.into(),
            exp: 2_000,
            iat: 1_000,
            jti: "j1".into(),
            nbf: None,
            wal: None,
        }
    }

    fn setup() -> (TokenSigner, KeySet) {
        let signer = TokenSigner::from_secret("k1", &[7u8; 32]);
        let mut keys = KeySet::default();
        keys.add("k1", &signer.public()).unwrap();
        (signer, keys)
    }

    #[test]
    fn round_trip_and_checks() {
        let (signer, mut keys) = setup();
        let token = signer.sign(&claims("a1"));
        let c = keys.verify_signature(&token).unwrap();
        assert_eq!(c, claims("a1"));
        assert_eq!(check(&c, "a1", 1_500, 30, &keys), Ok(()));
        assert_eq!(
            check(&c, "a2", 1_500, 30, &keys),
            Err(Rejection::WrongAsset)
        );
        assert_eq!(check(&c, "a1", 2_031, 30, &keys), Err(Rejection::Expired));
        assert_eq!(check(&c, "a1", 2_030, 30, &keys), Ok(()));
        assert_eq!(check(&c, "a1", 969, 30, &keys), Err(Rejection::NotYetValid));
        keys.revoke("j1");
        assert_eq!(check(&c, "a1", 1_500, 30, &keys), Err(Rejection::Revoked));
    }

    #[test]
    fn tampering_is_caught() {
        let (signer, keys) = setup();
        let token = signer.sign(&claims("a1"));
        let parts: Vec<&str> = token.split('.').collect();
        // Claims swapped for another asset, old signature kept.
        let forged_payload = B64.encode(serde_json::to_vec(&claims("a2")).unwrap());
        let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert_eq!(keys.verify_signature(&forged), Err(Rejection::BadSignature));
        // A flipped signature byte.
        let mut sig = B64.decode(parts[2]).unwrap();
        sig[0] ^= 1;
        let bad = format!("{}.{}.{}", parts[0], parts[1], B64.encode(sig));
        assert_eq!(keys.verify_signature(&bad), Err(Rejection::BadSignature));
        // Another key with the same kid.
        let other = TokenSigner::from_secret("k1", &[8u8; 32]);
        assert_eq!(
            keys.verify_signature(&other.sign(&claims("a1"))),
            Err(Rejection::BadSignature)
        );
        // Unknown kid, wrong alg, garbage.
        let stranger = TokenSigner::from_secret("k9", &[7u8; 32]);
        assert_eq!(
            keys.verify_signature(&stranger.sign(&claims("a1"))),
            Err(Rejection::UnknownKey)
        );
        let none_header = B64.encode(br#"{"alg":"none","kid":"k1"}"#);
        assert_eq!(
            keys.verify_signature(&format!("{none_header}.{}.", parts[1])),
            Err(Rejection::WrongAlgorithm)
        );
        for junk in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.!!.!!",
            &"x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(keys.verify_signature(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn matches_rfc8037_test_vector() {
        // RFC 8037 appendix A.4: Ed25519 signature of the JWS example.
        let secret: [u8; 32] = B64
            .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .unwrap()
            .try_into()
            .unwrap();
        let public = B64
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        let signer = TokenSigner::from_secret("k", &secret);
        assert_eq!(signer.public().to_vec(), public);
        let input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
        let sig = signer.key.sign(input.as_bytes());
        assert_eq!(
            B64.encode(sig.to_bytes()),
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
    }
}

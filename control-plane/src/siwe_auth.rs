//! Sign-In with Ethereum (EIP-4361), verified by EIP-191 signature recovery.
//!
//! The server builds the message (domain and URI from the public URL, chain,
//! nonce, issued-at, expiration), so a wallet can only sign what we issued;
//! verification re-checks every one of those fields against what this server
//! expects, the time window, the single-use nonce, and that the signature
//! recovers to the message's address.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use siwe::{Message, TimeStamp, Version};
use time::{Duration, OffsetDateTime};

/// Why a sign-in was refused (all answer 401, except `Malformed`: 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// Not an EIP-4361 message, or a signature that is not 65 hex bytes.
    Malformed,
    /// The message names another domain.
    WrongDomain,
    /// The message names another URI.
    WrongUri,
    /// The message names another chain.
    WrongChain,
    /// Outside the message's validity window.
    Expired,
    /// The nonce was never issued here, already used, or expired.
    BadNonce,
    /// The signature does not recover to the message's address.
    BadSignature,
}

impl AuthError {
    /// HTTP status for the JSON API.
    pub fn status(self) -> u16 {
        if self == Self::Malformed {
            400
        } else {
            401
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed sign-in message or signature",
            Self::WrongDomain => "message is for another domain",
            Self::WrongUri => "message is for another URI",
            Self::WrongChain => "message is for another chain",
            Self::Expired => "challenge expired",
            Self::BadNonce => "unknown, used or expired nonce",
            Self::BadSignature => "signature does not match the address",
        })
    }
}

impl std::error::Error for AuthError {}

/// What this server expects in every message it verifies.
#[derive(Debug, Clone)]
pub struct Expect {
    /// RFC 3986 authority, e.g. `video.example.com` (from `public_url`).
    pub domain: String,
    /// The URI the user signs in to (the public URL).
    pub uri: String,
}

/// Builds the EIP-4361 message for `address` (0x-hex, 20 bytes).
pub fn challenge(
    expect: &Expect,
    address: &str,
    chain_id: u64,
    nonce: &str,
    now: OffsetDateTime,
    ttl: Duration,
) -> Result<String, AuthError> {
    let address: [u8; 20] = hex::decode(address.trim_start_matches("0x"))
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(AuthError::Malformed)?;
    let message = Message {
        domain: expect.domain.parse().map_err(|_| AuthError::Malformed)?,
        address,
        statement: Some("Sign in to StreamGate to watch gated videos.".into()),
        uri: expect.uri.parse().map_err(|_| AuthError::Malformed)?,
        version: Version::V1,
        chain_id,
        nonce: nonce.to_string(),
        issued_at: TimeStamp::from(now),
        expiration_time: Some(TimeStamp::from(now + ttl)),
        not_before: None,
        request_id: None,
        resources: Vec::new(),
    };
    Ok(message.to_string())
}

/// Verifies a signed message; returns the signer's address.
pub fn verify(
    text: &str,
    signature_hex: &str,
    expect: &Expect,
    chain_id: u64,
    now: OffsetDateTime,
    nonces: &Nonces,
) -> Result<[u8; 20], AuthError> {
    let message: Message = text.parse().map_err(|_| AuthError::Malformed)?;
    let signature: [u8; 65] = hex::decode(signature_hex.trim_start_matches("0x"))
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(AuthError::Malformed)?;
    if message.domain.as_str() != expect.domain {
        return Err(AuthError::WrongDomain);
    }
    if message.uri.as_str() != expect.uri {
        return Err(AuthError::WrongUri);
    }
    if message.chain_id != chain_id {
        return Err(AuthError::WrongChain);
    }
    if !message.valid_at(&now) {
        return Err(AuthError::Expired);
    }
    message
        .verify_eip191(&signature)
        .map_err(|_| AuthError::BadSignature)?;
    // Last: a nonce is spent only by an otherwise valid sign-in, so a forged
    // attempt cannot burn a real user's challenge.
    if !nonces.take(&message.nonce, now) {
        return Err(AuthError::BadNonce);
    }
    Ok(message.address)
}

/// Issued nonces, each usable once before it expires.
#[derive(Default)]
pub struct Nonces {
    live: Mutex<HashMap<String, OffsetDateTime>>,
}

impl Nonces {
    /// Issues a fresh nonce (EIP-4361: alphanumeric, ≥ 8 characters).
    pub fn issue(&self, now: OffsetDateTime, ttl: Duration) -> String {
        let nonce = siwe::generate_nonce();
        if let Ok(mut live) = self.live.lock() {
            live.retain(|_, expires| *expires > now);
            live.insert(nonce.clone(), now + ttl);
        }
        nonce
    }

    /// Spends a nonce: true once, if it was issued and has not expired.
    pub fn take(&self, nonce: &str, now: OffsetDateTime) -> bool {
        let Ok(mut live) = self.live.lock() else {
            return false;
        };
        matches!(live.remove(nonce), Some(expires) if expires > now)
    }
}

#[cfg(test)]
mod tests {
    use k256::ecdsa::SigningKey;
    use sha3::{Digest, Keccak256};

    use super::*;

    /// anvil's first well-known test account.
    const KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    const ADDRESS: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

    /// `personal_sign` (EIP-191 version 0x45) with the test key.
    fn personal_sign(text: &str) -> String {
        let key = SigningKey::from_slice(&hex::decode(KEY).unwrap()).unwrap();
        let prefixed = format!("\x19Ethereum Signed Message:\n{}{text}", text.len());
        let (sig, recid) = key
            .sign_digest_recoverable(Keccak256::new_with_prefix(prefixed.as_bytes()))
            .unwrap();
        let mut bytes = sig.to_bytes().to_vec();
        bytes.push(27 + recid.to_byte());
        format!("0x{}", hex::encode(bytes))
    }

    fn expect() -> Expect {
        Expect {
            domain: "video.example.com".into(),
            uri: "https://video.example.com".into(),
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[test]
    fn siwe_notepad_vector_recovers() {
        // The EIP-191 vector published with the siwe crate.
        let text = "localhost:4361 wants you to sign in with your Ethereum account:\n\
            0x6Da01670d8fc844e736095918bbE11fE8D564163\n\nSIWE Notepad Example\n\n\
            URI: http://localhost:4361\nVersion: 1\nChain ID: 1\nNonce: kEWepMt9knR6lWJ6A\n\
            Issued At: 2021-12-07T18:28:18.807Z";
        let sig = "6228b3ecd7bf2df018183aeab6b6f1db1e9f4e3cbe24560404112e25363540eb679934908143224d746bbb5e1aa65ab435684081f4dbb74a0fec57f98f40f5051c";
        let nonces = Nonces::default();
        nonces.live.lock().unwrap().insert(
            "kEWepMt9knR6lWJ6A".into(),
            OffsetDateTime::now_utc() + Duration::hours(1),
        );
        let local = Expect {
            domain: "localhost:4361".into(),
            uri: "http://localhost:4361".into(),
        };
        let at = OffsetDateTime::from_unix_timestamp(1_638_901_000).unwrap();
        let address = verify(text, sig, &local, 1, at, &nonces).unwrap();
        assert_eq!(
            hex::encode(address),
            "6da01670d8fc844e736095918bbe11fe8d564163"
        );
    }

    #[test]
    fn sign_in_round_trip_and_every_refusal() {
        let nonces = Nonces::default();
        let nonce = nonces.issue(now(), Duration::minutes(5));
        let text = challenge(&expect(), ADDRESS, 137, &nonce, now(), Duration::minutes(5)).unwrap();
        assert!(
            text.starts_with("video.example.com wants you to sign in with your Ethereum account:")
        );
        let sig = personal_sign(&text);
        let later = now() + Duration::seconds(10);

        // Each refusal leaves the nonce unspent.
        let other_domain = Expect {
            domain: "evil.example".into(),
            ..expect()
        };
        assert_eq!(
            verify(&text, &sig, &other_domain, 137, later, &nonces),
            Err(AuthError::WrongDomain)
        );
        let other_uri = Expect {
            uri: "https://evil.example".into(),
            ..expect()
        };
        assert_eq!(
            verify(&text, &sig, &other_uri, 137, later, &nonces),
            Err(AuthError::WrongUri)
        );
        assert_eq!(
            verify(&text, &sig, &expect(), 1, later, &nonces),
            Err(AuthError::WrongChain)
        );
        let too_late = now() + Duration::minutes(6);
        assert_eq!(
            verify(&text, &sig, &expect(), 137, too_late, &nonces),
            Err(AuthError::Expired)
        );
        let tampered = text.replace("Chain ID: 137", "Chain ID: 1");
        assert_eq!(
            verify(&tampered, &sig, &expect(), 1, later, &nonces),
            Err(AuthError::BadSignature)
        );
        let someone_else = challenge(
            &expect(),
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            137,
            &nonce,
            now(),
            Duration::minutes(5),
        )
        .unwrap();
        assert_eq!(
            verify(&someone_else, &sig, &expect(), 137, later, &nonces),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify("hello", &sig, &expect(), 137, later, &nonces),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            verify(&text, "0x1234", &expect(), 137, later, &nonces),
            Err(AuthError::Malformed)
        );

        let address = verify(&text, &sig, &expect(), 137, later, &nonces).unwrap();
        assert_eq!(
            format!("0x{}", hex::encode(address)),
            ADDRESS.to_lowercase()
        );
        // Replay: the nonce is spent.
        assert_eq!(
            verify(&text, &sig, &expect(), 137, later, &nonces),
            Err(AuthError::BadNonce)
        );
        // A nonce never issued here.
        let forged = challenge(
            &expect(),
            ADDRESS,
            137,
            "abcdefgh12345",
            now(),
            Duration::minutes(5),
        )
        .unwrap();
        assert_eq!(
            verify(
                &forged,
                &personal_sign(&forged),
                &expect(),
                137,
                later,
                &nonces
            ),
            Err(AuthError::BadNonce)
        );
    }
}

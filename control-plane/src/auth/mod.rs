//! Wallet sign-in: the server builds what the wallet signs, then verifies
//! the signature against exactly that.
//!
//! Three kinds: [`siwe`] (EIP-4361 text, EIP-191 recovery), [`eip712`]
//! (typed data, `eth_signTypedData_v4`) and [`solana`] (ed25519 over a
//! sign-in text). Single use and expiry of a challenge are the store's job
//! (`service::Service::login` spends it atomically).

pub mod eip712;
pub mod siwe;
pub mod solana;

use std::fmt;

use time::{Duration, OffsetDateTime};

/// The sentence every sign-in text carries.
pub const STATEMENT: &str = "Sign in to StreamGate to watch gated videos.";

/// Which signature scheme a challenge uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInKind {
    /// EIP-4361 message, EIP-191 `personal_sign`.
    Siwe,
    /// EIP-712 typed data, `eth_signTypedData_v4`.
    Eip712,
    /// Ed25519 over a Sign-In-With-Solana style text.
    Solana,
}

impl SignInKind {
    /// The JSON / stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Siwe => "siwe",
            Self::Eip712 => "eip712",
            Self::Solana => "solana",
        }
    }

    /// Parses the JSON / stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "siwe" => Self::Siwe,
            "eip712" => Self::Eip712,
            "solana" => Self::Solana,
            _ => return None,
        })
    }
}

/// Why a sign-in was refused (all answer 401, except `Malformed`: 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// Not a message we could have issued, or a signature of the wrong shape.
    Malformed,
    /// The message names another domain.
    WrongDomain,
    /// The message names another URI.
    WrongUri,
    /// The message names another chain.
    WrongChain,
    /// Outside the message's validity window.
    Expired,
    /// The signature does not recover to (or verify for) the address.
    BadSignature,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed sign-in message or signature",
            Self::WrongDomain => "message is for another domain",
            Self::WrongUri => "message is for another URI",
            Self::WrongChain => "message is for another chain",
            Self::Expired => "challenge expired",
            Self::BadSignature => "signature does not match the address",
        })
    }
}

impl std::error::Error for AuthError {}

/// What this server expects in every message it verifies (from
/// `public_url`).
#[derive(Debug, Clone)]
pub struct Expect {
    /// RFC 3986 authority, e.g. `video.example.com:8443`.
    pub domain: String,
    /// The URI the user signs in to (the public URL).
    pub uri: String,
}

impl Expect {
    /// Domain and URI from the engine's public URL.
    pub fn from_public_url(public_url: &str) -> Result<Self, String> {
        let rest = public_url
            .strip_prefix("https://")
            .or_else(|| public_url.strip_prefix("http://"))
            .ok_or_else(|| {
                format!("public_url {public_url:?} must start with http:// or https://")
            })?;
        let domain = rest.split('/').next().unwrap_or_default();
        if domain.is_empty() {
            return Err(format!("public_url {public_url:?} has no host"));
        }
        Ok(Self {
            domain: domain.to_string(),
            uri: public_url.trim_end_matches('/').to_string(),
        })
    }
}

/// What a challenge is built from.
#[derive(Debug, Clone, Copy)]
pub struct ChallengeSpec<'a> {
    /// This server's domain and URI.
    pub expect: &'a Expect,
    /// The wallet that must sign: 0x-hex (EVM) or base58 (Solana).
    pub address: &'a str,
    /// The EVM chain (ignored for Solana).
    pub chain_id: u64,
    /// Unique per challenge.
    pub nonce: &'a str,
    /// Issued at.
    pub now: OffsetDateTime,
    /// How long the signature may take.
    pub ttl: Duration,
}

/// Parses a 0x-hex EVM address.
fn evm_address(text: &str) -> Result<alloy::primitives::Address, AuthError> {
    text.parse().map_err(|_| AuthError::Malformed)
}

/// Builds what the wallet must sign: message text (SIWE, Solana) or
/// typed-data JSON (EIP-712).
pub fn build(kind: SignInKind, spec: &ChallengeSpec<'_>) -> Result<String, AuthError> {
    match kind {
        SignInKind::Siwe => siwe::challenge(spec),
        SignInKind::Eip712 => eip712::challenge(spec),
        SignInKind::Solana => solana::challenge(spec),
    }
}

/// Verifies `signature` over `payload` (what [`build`] returned for
/// `address`); returns the wallet in canonical form (lowercase 0x-hex for
/// EVM, base58 for Solana).
pub fn verify(
    kind: SignInKind,
    payload: &str,
    signature: &str,
    expect: &Expect,
    address: &str,
    chain_id: u64,
    now: OffsetDateTime,
) -> Result<String, AuthError> {
    let signer = match kind {
        SignInKind::Siwe => {
            format!(
                "0x{}",
                hex::encode(siwe::verify(payload, signature, expect, chain_id, now)?)
            )
        }
        SignInKind::Eip712 => {
            format!(
                "0x{}",
                hex::encode(eip712::verify(payload, signature, expect, chain_id, now)?)
            )
        }
        SignInKind::Solana => solana::verify(payload, signature, address)?,
    };
    if kind != SignInKind::Solana && !signer.eq_ignore_ascii_case(address) {
        return Err(AuthError::BadSignature);
    }
    Ok(signer)
}

/// Test wallets: anvil's well-known keys, signing the way wallets do.
#[cfg(test)]
pub(crate) mod test_wallet {
    use k256::ecdsa::SigningKey;
    use sha3::{Digest, Keccak256};

    /// anvil's first well-known test account.
    pub const KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    /// Its address.
    pub const ADDRESS: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

    /// A 65-byte `r || s || v` signature (v = 27/28) over a 32-byte hash.
    pub fn sign_hash(key_hex: &str, hash: &[u8; 32]) -> String {
        let key = SigningKey::from_slice(&hex::decode(key_hex).unwrap()).unwrap();
        let (sig, recid) = key.sign_prehash_recoverable(hash).unwrap();
        let mut bytes = sig.to_bytes().to_vec();
        bytes.push(27 + recid.to_byte());
        format!("0x{}", hex::encode(bytes))
    }

    /// `personal_sign` (EIP-191 version 0x45).
    pub fn personal_sign(key_hex: &str, text: &str) -> String {
        let prefixed = format!("\x19Ethereum Signed Message:\n{}{text}", text.len());
        sign_hash(key_hex, &Keccak256::digest(prefixed.as_bytes()).into())
    }
}

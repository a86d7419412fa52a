//! The control plane's domain types: assets, their status, gating rules.
//! One definition, converted at the edges (SQL rows, protobuf, JSON).

use alloy::primitives::{Address, U256};
use serde::Serialize;

/// Where an asset is in its life (stored as its lowercase name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetStatus {
    /// Bytes are still arriving.
    Uploading,
    /// Waiting for a transcode worker.
    Queued,
    /// Being transcoded.
    Transcoding,
    /// Published under the assets root.
    Ready,
    /// Transcoding failed; see the asset's error.
    Failed,
}

impl AssetStatus {
    /// The stored / JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uploading => "uploading",
            Self::Queued => "queued",
            Self::Transcoding => "transcoding",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "uploading" => Self::Uploading,
            "queued" => Self::Queued,
            "transcoding" => Self::Transcoding,
            "ready" => Self::Ready,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// What an NFT rule asks of the wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// ERC-721 `ownerOf(token_id) == wallet`.
    Erc721Token,
    /// ERC-721 `balanceOf(wallet) >= min_balance`.
    Erc721Balance,
    /// ERC-1155 `balanceOf(wallet, token_id) >= min_balance`.
    Erc1155Balance,
}

impl RuleKind {
    /// The stored / JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Erc721Token => "erc721_token",
            Self::Erc721Balance => "erc721_balance",
            Self::Erc1155Balance => "erc1155_balance",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "erc721_token" => Self::Erc721Token,
            "erc721_balance" => Self::Erc721Balance,
            "erc1155_balance" => Self::Erc1155Balance,
            _ => return None,
        })
    }
}

/// One any-of access rule of a gated asset.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct GateRule {
    /// What is checked.
    pub kind: RuleKind,
    /// EVM chain id; its RPC URLs come from `[chains.<id>]`.
    pub chain_id: u64,
    /// The NFT contract.
    pub contract: Address,
    /// The token (ERC-721 token rule, ERC-1155); zero otherwise.
    #[serde(serialize_with = "decimal")]
    pub token_id: U256,
    /// Least balance (balance rules); 1 for the token rule.
    #[serde(serialize_with = "decimal")]
    pub min_balance: U256,
}

fn decimal<S: serde::Serializer>(value: &U256, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// An asset as the control plane knows it.
#[derive(Debug, Clone, Serialize)]
pub struct Asset {
    /// URL-safe id (Contract 2).
    pub id: String,
    /// Human title.
    pub title: String,
    /// Life-cycle state.
    pub status: AssetStatus,
    /// Transcode progress, 0..=100.
    pub progress: u32,
    /// Why it failed (empty otherwise).
    pub error: String,
    /// Any-of rules; empty = open.
    pub rules: Vec<GateRule>,
    /// How long it plays, in milliseconds (0: not known yet).
    pub duration_ms: u64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl Asset {
    /// Whether a token is needed to watch it.
    pub fn gated(&self) -> bool {
        !self.rules.is_empty()
    }
}

pub use streamgate_token::is_asset_id;

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A random asset id of `len` letters and digits: URL-safe like every
/// asset id, and never starting with `-`, which command lines would take
/// for an option.
pub fn random_asset_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut buf = [0u8; 32];
        getrandom::fill(&mut buf).expect("the OS random source is available");
        // 62 * 4 = 248: reject the top of the byte range to stay uniform.
        out.extend(
            buf.iter()
                .filter(|&&b| b < 248)
                .map(|&b| ALPHABET[(b % 62) as usize] as char)
                .take(len - out.len()),
        );
    }
    out
}

/// `bytes` random bytes as unpadded base64url (ids, sessions, nonces).
pub fn random_id(bytes: usize) -> String {
    use base64::Engine as _;
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source is available");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

impl GateRule {
    /// A rule from what a front end received (gRPC or JSON): the token id
    /// is required for the token and ERC-1155 rules and ignored for the
    /// ERC-721 balance rule; the least balance is 1 for the token rule and
    /// at least 1 otherwise. Empty numbers take their defaults.
    pub fn build(
        kind: RuleKind,
        chain_id: u64,
        contract: &str,
        token_id: &str,
        min_balance: &str,
    ) -> Result<Self, crate::error::ApiError> {
        use std::str::FromStr;
        let bad = |what: &str| crate::error::ApiError::malformed(format!("rule {what}"));
        let number = |text: &str, default: u64| {
            if text.is_empty() {
                Ok(U256::from(default))
            } else {
                U256::from_str(text).map_err(|_| bad("number"))
            }
        };
        let needs_token = kind != RuleKind::Erc721Balance;
        if needs_token && token_id.is_empty() {
            return Err(bad("token id (required for this kind)"));
        }
        Ok(Self {
            kind,
            chain_id,
            contract: Address::from_str(contract).map_err(|_| bad("contract address"))?,
            token_id: if needs_token {
                number(token_id, 0)?
            } else {
                U256::ZERO
            },
            min_balance: if kind == RuleKind::Erc721Token {
                U256::from(1)
            } else {
                number(min_balance, 1)?.max(U256::from(1))
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_asset_ids_are_ids_and_never_look_like_options() {
        for _ in 0..2000 {
            let id = random_asset_id(12);
            assert_eq!(id.len(), 12);
            assert!(is_asset_id(&id));
            assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        }
    }
}

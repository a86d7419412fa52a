//! The NFT gate: whether a wallet satisfies any of an asset's rules.
//!
//! Answers are cached briefly (`[nft] cache_ttl` for yes, `negative_ttl`
//! for no). A failed RPC is never cached and never becomes "no": the whole
//! decision is [`Decision::Unavailable`] (503) unless another rule already
//! said yes. A rule that cannot be evaluated keeps the asset closed.

pub mod rpc;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::sol;
use alloy::sol_types::SolCall;

use crate::config::ChainConfig;
use crate::metrics;
use crate::model::{GateRule, RuleKind};
use rpc::{CallResult, RpcPool, Unavailable};

sol! {
    interface IERC721 {
        function ownerOf(uint256 tokenId) external view returns (address);
        function balanceOf(address owner) external view returns (uint256);
    }
    interface IERC1155 {
        function balanceOf(address account, uint256 id) external view returns (uint256);
    }
}

/// Past this many cached answers the cache starts over.
const CACHE_ENTRIES: usize = 100_000;

/// What the gate decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A rule holds.
    Allowed {
        /// Every answer used came from the cache.
        cached: bool,
    },
    /// Every rule was evaluated and none holds.
    Denied {
        /// Every answer used came from the cache.
        cached: bool,
    },
    /// No rule holds and at least one could not be evaluated.
    Unavailable(String),
}

/// Evaluates gating rules against the chains.
pub struct Gatekeeper {
    pools: BTreeMap<u64, RpcPool>,
    positive_ttl: Duration,
    negative_ttl: Duration,
    cache: Mutex<HashMap<(GateRule, Address), (bool, Instant)>>,
}

impl Gatekeeper {
    /// One RPC pool per configured chain.
    pub fn new(
        chains: &BTreeMap<u64, ChainConfig>,
        positive_ttl: Duration,
        negative_ttl: Duration,
    ) -> Result<Self, String> {
        let pools = chains
            .iter()
            .map(|(&id, c)| Ok((id, RpcPool::new(id, c)?)))
            .collect::<Result<_, String>>()?;
        Ok(Self {
            pools,
            positive_ttl,
            negative_ttl,
            cache: Mutex::default(),
        })
    }

    /// Whether `wallet` (0x-hex; anything else holds no EVM token) passes
    /// any of `rules`.
    pub async fn check(&self, wallet: &str, rules: &[GateRule]) -> Decision {
        let Ok(wallet) = wallet.parse::<Address>() else {
            metrics::nft_check("denied", true);
            return Decision::Denied { cached: true };
        };
        let mut all_cached = true;
        let mut failure = None;
        for rule in rules {
            let (answer, cached) = match self.cached(rule, wallet) {
                Some(answer) => (Ok(answer), true),
                None => (self.evaluate(rule, wallet).await, false),
            };
            all_cached &= cached;
            match answer {
                Ok(true) => {
                    metrics::nft_check("allowed", all_cached);
                    return Decision::Allowed { cached: all_cached };
                }
                Ok(false) => {}
                Err(Unavailable(e)) => failure = Some(e),
            }
        }
        match failure {
            Some(e) => {
                metrics::nft_check("unavailable", false);
                Decision::Unavailable(e)
            }
            None => {
                metrics::nft_check("denied", all_cached);
                Decision::Denied { cached: all_cached }
            }
        }
    }

    fn cached(&self, rule: &GateRule, wallet: Address) -> Option<bool> {
        let cache = self.cache.lock().ok()?;
        match cache.get(&(rule.clone(), wallet)) {
            Some(&(answer, expires)) if expires > Instant::now() => Some(answer),
            _ => None,
        }
    }

    /// Asks the chain; caches a definite answer, never a failure.
    async fn evaluate(&self, rule: &GateRule, wallet: Address) -> Result<bool, Unavailable> {
        let pool = self.pools.get(&rule.chain_id).ok_or_else(|| {
            Unavailable(format!(
                "no RPC URLs configured for chain {}",
                rule.chain_id
            ))
        })?;
        let data = match rule.kind {
            RuleKind::Erc721Token => IERC721::ownerOfCall {
                tokenId: rule.token_id,
            }
            .abi_encode(),
            RuleKind::Erc721Balance => IERC721::balanceOfCall { owner: wallet }.abi_encode(),
            RuleKind::Erc1155Balance => IERC1155::balanceOfCall {
                account: wallet,
                id: rule.token_id,
            }
            .abi_encode(),
        };
        let answer = match pool.call(rule.contract, data.into()).await? {
            CallResult::Reverted => false,
            // Undecodable return data (not a contract of that kind): a
            // definite no.
            CallResult::Data(bytes) => match rule.kind {
                RuleKind::Erc721Token => IERC721::ownerOfCall::abi_decode_returns(&bytes)
                    .is_ok_and(|owner| owner == wallet),
                RuleKind::Erc721Balance => IERC721::balanceOfCall::abi_decode_returns(&bytes)
                    .is_ok_and(|balance| balance >= rule.min_balance.max(U256::from(1))),
                RuleKind::Erc1155Balance => IERC1155::balanceOfCall::abi_decode_returns(&bytes)
                    .is_ok_and(|balance| balance >= rule.min_balance.max(U256::from(1))),
            },
        };
        let ttl = if answer {
            self.positive_ttl
        } else {
            self.negative_ttl
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert((rule.clone(), wallet), (answer, Instant::now() + ttl));
        }
        Ok(answer)
    }
}

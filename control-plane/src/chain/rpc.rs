//! JSON-RPC access to one chain over several URLs: per-URL timeouts, health
//! scoring, failover and a circuit breaker.
//!
//! Each call tries the healthiest URL first (fewest recent failures, then
//! lowest latency) and moves on when one fails or times out.
//! `breaker_failures` failures in a row (3) open a URL's breaker for
//! `breaker_open` (10 s); after that one trial call is let through
//! (half-open). When every URL fails the call fails: the
//! caller answers 503, never "no NFT".

use std::sync::Mutex;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, Bytes};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::client::RpcClient;
use alloy::rpc::types::TransactionRequest;
use alloy::transports::http::Http;
use alloy::transports::{RpcError, TransportErrorKind};

use crate::config::ChainConfig;
use crate::metrics;

/// What an `eth_call` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallResult {
    /// Return data.
    Data(Bytes),
    /// The call reverted (e.g. `ownerOf` of a token that does not exist):
    /// a definite answer, not a failure.
    Reverted,
}

/// No URL answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Default)]
struct Health {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    /// Exponentially weighted latency, seconds.
    latency: f64,
}

struct Endpoint {
    url: String,
    provider: RootProvider,
    health: Mutex<Health>,
}

/// The RPC URLs of one chain.
pub struct RpcPool {
    chain_id: u64,
    timeout: Duration,
    breaker_failures: u32,
    breaker_open: Duration,
    endpoints: Vec<Endpoint>,
}

impl RpcPool {
    /// A pool over the chain's URLs (in configured order, the tie-breaker).
    pub fn new(chain_id: u64, config: &ChainConfig) -> Result<Self, String> {
        let timeout = config.timeout;
        let urls = &config.rpc;
        // reqwest is built without a default crypto provider (its rustls
        // feature pulls aws-lc-rs): ring, like the rest of the product.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| format!("chain {chain_id}: HTTP client: {e}"))?;
        let endpoints = urls
            .iter()
            .map(|url| {
                let parsed = url
                    .parse()
                    .map_err(|e| format!("chain {chain_id}: bad RPC URL {url:?}: {e}"))?;
                let transport = Http::with_client(client.clone(), parsed);
                Ok(Endpoint {
                    url: url.clone(),
                    provider: RootProvider::new(RpcClient::new(transport, false)),
                    health: Mutex::new(Health::default()),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if endpoints.is_empty() {
            return Err(format!("chain {chain_id}: no RPC URLs"));
        }
        Ok(Self {
            chain_id,
            timeout,
            breaker_failures: config.breaker_failures.max(1),
            breaker_open: config.breaker_open,
            endpoints,
        })
    }

    /// Each URL's answer to `eth_chainId` (`streamgate doctor`): the id,
    /// or why there was none.
    pub async fn chain_ids(&self) -> Vec<(String, Result<u64, String>)> {
        use alloy::providers::Provider as _;
        let mut answers = Vec::new();
        for endpoint in &self.endpoints {
            let answer = tokio::time::timeout(self.timeout, endpoint.provider.get_chain_id())
                .await
                .map_err(|_| format!("no answer within {:?}", self.timeout))
                .and_then(|r| r.map_err(|e| e.to_string()));
            answers.push((endpoint.url.clone(), answer));
        }
        answers
    }

    /// The order to try URLs in now; URLs with an open breaker are left out.
    fn order(&self, now: Instant) -> Vec<usize> {
        let mut ranked: Vec<(u32, f64, usize)> = self
            .endpoints
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let h = e.health.lock().ok()?;
                match h.open_until {
                    Some(until) if until > now => None,
                    _ => Some((h.consecutive_failures, h.latency, i)),
                }
            })
            .collect();
        ranked.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
        ranked.into_iter().map(|(_, _, i)| i).collect()
    }

    /// `eth_call` of `data` on `to` at the latest block.
    pub async fn call(&self, to: Address, data: Bytes) -> Result<CallResult, Unavailable> {
        let order = self.order(Instant::now());
        if order.is_empty() {
            return Err(Unavailable(format!(
                "chain {}: every RPC URL is failing (circuit open)",
                self.chain_id
            )));
        }
        let mut last_error = String::new();
        for (attempt, index) in order.into_iter().enumerate() {
            if attempt > 0 {
                metrics::rpc_failover(self.chain_id);
            }
            let endpoint = &self.endpoints[index];
            let request = TransactionRequest::default()
                .to(to)
                .input(data.clone().into());
            let started = Instant::now();
            let answer = tokio::time::timeout(self.timeout, endpoint.provider.call(request)).await;
            let elapsed = started.elapsed();
            let outcome = match answer {
                Ok(Ok(bytes)) => Ok(CallResult::Data(bytes)),
                Ok(Err(RpcError::ErrorResp(payload)))
                    if payload.code == 3 || payload.message.contains("revert") =>
                {
                    Ok(CallResult::Reverted)
                }
                Ok(Err(e)) => Err(describe(&e)),
                Err(_) => Err(format!("timed out after {:?}", self.timeout)),
            };
            self.record(endpoint, elapsed, outcome.is_ok());
            match outcome {
                Ok(result) => return Ok(result),
                Err(e) => last_error = format!("{}: {e}", endpoint.url),
            }
        }
        Err(Unavailable(format!(
            "chain {}: no RPC URL answered (last: {last_error})",
            self.chain_id
        )))
    }

    fn record(&self, endpoint: &Endpoint, elapsed: Duration, ok: bool) {
        metrics::rpc_call(self.chain_id, elapsed.as_secs_f64(), ok);
        let Ok(mut h) = endpoint.health.lock() else {
            return;
        };
        let seconds = elapsed.as_secs_f64();
        h.latency = if h.latency == 0.0 {
            seconds
        } else {
            0.8 * h.latency + 0.2 * seconds
        };
        if ok {
            h.consecutive_failures = 0;
            h.open_until = None;
        } else {
            h.consecutive_failures += 1;
            if h.consecutive_failures >= self.breaker_failures {
                h.open_until = Some(Instant::now() + self.breaker_open);
            }
        }
    }
}

fn describe(e: &RpcError<TransportErrorKind>) -> String {
    match e {
        RpcError::ErrorResp(p) => format!("server error {}: {}", p.code, p.message),
        other => other.to_string(),
    }
}

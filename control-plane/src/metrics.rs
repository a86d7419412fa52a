//! Control-plane metrics, recorded through the process-wide `metrics`
//! recorder. Inside `streamgate serve` the engine installed it and its admin
//! listener (`/metrics`) shows these too; a standalone `streamgate control`
//! installs its own and serves it at `/metrics` on the HTTP listener.

use metrics::{counter, describe_counter, describe_histogram, histogram, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Metric names.
mod name {
    pub const SIGNINS: &str = "streamgate_signins_total";
    pub const NFT_CHECKS: &str = "streamgate_nft_checks_total";
    pub const RPC_LATENCY: &str = "streamgate_rpc_latency_seconds";
    pub const RPC_FAILOVERS: &str = "streamgate_rpc_failovers_total";
    pub const RPC_ERRORS: &str = "streamgate_rpc_errors_total";
    pub const TOKENS_ISSUED: &str = "streamgate_tokens_issued_total";
    pub const TOKENS_REFUSED: &str = "streamgate_token_requests_refused_total";
}

/// With `own`, installs a recorder, describes the series and returns its
/// handle (`None` if the process already has one); without, records into
/// whatever recorder the process installs (the engine's): call [`describe`]
/// once it is there.
pub fn install(own: bool) -> Option<PrometheusHandle> {
    if !own {
        return None;
    }
    // Buckets, so Prometheus can aggregate latency across nodes.
    let buckets = [
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(name::RPC_LATENCY.into()),
            &buckets,
        )
        .ok()
        .and_then(|b| b.install_recorder().ok());
    describe();
    handle
}

/// Registers the help text of every control-plane series with the
/// process's recorder.
pub fn describe() {
    describe_counter!(name::SIGNINS, "Wallet sign-ins, by kind and result");
    describe_counter!(
        name::NFT_CHECKS,
        "NFT gate decisions, by result (allowed, denied, unavailable) and cache (hit, miss)"
    );
    describe_histogram!(
        name::RPC_LATENCY,
        Unit::Seconds,
        "JSON-RPC call latency, by chain"
    );
    describe_counter!(
        name::RPC_FAILOVERS,
        "Moves to the next RPC URL after a failure, by chain"
    );
    describe_counter!(
        name::RPC_ERRORS,
        "Failed JSON-RPC calls (timeouts, transport, server), by chain"
    );
    describe_counter!(
        name::TOKENS_ISSUED,
        "Playback tokens issued, by caller (viewer, operator)"
    );
    describe_counter!(
        name::TOKENS_REFUSED,
        "Playback-token requests refused, by reason"
    );
}

/// A sign-in attempt ended.
pub fn sign_in(kind: &'static str, result: &'static str) {
    counter!(name::SIGNINS, "kind" => kind, "result" => result).increment(1);
}

/// The NFT gate decided.
pub fn nft_check(result: &'static str, cache_hit: bool) {
    let cache = if cache_hit { "hit" } else { "miss" };
    counter!(name::NFT_CHECKS, "result" => result, "cache" => cache).increment(1);
}

/// One JSON-RPC call finished (successfully or not) after `seconds`.
pub fn rpc_call(chain: u64, seconds: f64, ok: bool) {
    let chain = chain.to_string();
    histogram!(name::RPC_LATENCY, "chain" => chain.clone()).record(seconds);
    if !ok {
        counter!(name::RPC_ERRORS, "chain" => chain).increment(1);
    }
}

/// A call moved on to the next RPC URL.
pub fn rpc_failover(chain: u64) {
    counter!(name::RPC_FAILOVERS, "chain" => chain.to_string()).increment(1);
}

/// A playback token was issued.
pub fn token_issued(caller: &'static str) {
    counter!(name::TOKENS_ISSUED, "caller" => caller).increment(1);
}

/// A playback-token request was refused.
pub fn token_refused(reason: &'static str) {
    counter!(name::TOKENS_REFUSED, "reason" => reason).increment(1);
}

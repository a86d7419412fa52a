//! The control plane's outside world: the database (reachable, migrated),
//! each chain's RPC URLs (answering, with the configured chain id), and
//! the clock against the running control plane's.

use std::time::{Duration, SystemTime};

use streamgate_control_plane::chain::rpc::RpcPool;
use streamgate_control_plane::store::Store;
use streamgate_control_plane::ControlConfig;

use super::Finding;

pub fn checks(control: &ControlConfig) -> Vec<Finding> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return vec![Finding::fail("runtime", e.to_string(), "")],
    };
    let mut findings = vec![runtime.block_on(database(control))];
    for (id, chain) in &control.chains {
        findings.push(runtime.block_on(rpc(*id, chain)));
    }
    findings.push(clock(control));
    findings
}

async fn database(control: &ControlConfig) -> Finding {
    let url = &control.database;
    let shown = url.split('@').next_back().unwrap_or_default();
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or_default();
        if !std::path::Path::new(path).exists() {
            return Finding::warn(
                "database",
                format!("{path} does not exist yet"),
                "the first start creates and migrates it",
            );
        }
    }
    match Store::schema(url).await {
        Ok((have, known)) if have == known => Finding::ok(
            "database",
            format!("{shown} answers; schema current ({known} migrations)"),
        ),
        Ok((have, known)) => Finding::warn(
            "database",
            format!("{shown} answers; {have} of {known} migrations applied"),
            "the next start migrates it (back it up first: streamgate backup)",
        ),
        Err(e) => Finding::fail(
            "database",
            format!("{shown}: {e}"),
            "start the database or fix [control] database; the control plane answers 503 without it",
        ),
    }
}

async fn rpc(id: u64, chain: &streamgate_control_plane::ChainConfig) -> Finding {
    let pool = match RpcPool::new(id, chain) {
        Ok(pool) => pool,
        Err(e) => return Finding::fail("rpc", e, "fix [chains.<id>] rpc"),
    };
    let answers = pool.chain_ids().await;
    let mut good = 0;
    let mut problems = Vec::new();
    for (url, answer) in &answers {
        match answer {
            Ok(got) if *got == id => good += 1,
            Ok(got) => problems.push(format!("{url} is chain {got}, not {id}")),
            Err(e) => problems.push(format!("{url}: {e}")),
        }
    }
    let wrong_chain = answers
        .iter()
        .any(|(_, a)| matches!(a, Ok(got) if *got != id));
    if good == answers.len() {
        Finding::ok(
            "rpc",
            format!("chain {id}: {good} URL(s) answer with chain id {id}"),
        )
    } else if good == 0 || wrong_chain {
        Finding::fail(
            "rpc",
            format!("chain {id}: {}", problems.join("; ")),
            "fix [chains.<id>] rpc: gated assets on this chain answer 503 (never \"no NFT\") while none answers",
        )
    } else {
        Finding::warn(
            "rpc",
            format!(
                "chain {id}: {good} of {} answer; {}",
                answers.len(),
                problems.join("; ")
            ),
            "failover covers it; fix or remove the dead URL",
        )
    }
}

fn clock(control: &ControlConfig) -> Finding {
    if control.tls.is_some() {
        return Finding::ok("clock", "not compared (the JSON API is on TLS)");
    }
    let reply = streamgate_net::client::Connection::open(control.http)
        .and_then(|mut c| c.send("GET", "/healthz", &[], &[]));
    let Ok(reply) = reply else {
        return Finding::ok(
            "clock",
            format!(
                "not compared (no control plane answering on {})",
                control.http
            ),
        );
    };
    let Some(date) = reply
        .header("Date")
        .and_then(|d| httpdate::parse_http_date(d).ok())
    else {
        return Finding::warn("clock", "the control plane sent no Date", "");
    };
    let skew = match SystemTime::now().duration_since(date) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if skew > Duration::from_secs(5) {
        Finding::warn(
            "clock",
            format!("{:.0} s apart from the control plane's", skew.as_secs_f64()),
            "run NTP (timedatectl set-ntp true): tokens and SIWE messages carry times",
        )
    } else {
        Finding::ok("clock", "within 5 s of the control plane's")
    }
}

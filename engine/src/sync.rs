//! Pulls access state (public keys, revocations, open assets) from the
//! control plane over gRPC, so that every request is decided locally: no
//! control-plane call per segment.
//!
//! One thread with a small tokio runtime polls `Keys.GetEngineState`; only
//! a changed version is published to the workers (publishing empties their
//! verified-token caches). When the control plane is unreachable the last
//! state stays in force: tokens keep working through a control-plane
//! restart, and a revocation is picked up on the first poll after it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use streamgate_api::v1::keys_client::KeysClient;
use streamgate_api::v1::EngineStateRequest;
use streamgate_token::KeySet;

use crate::control::lazy_channel;
use crate::gate::{AccessState, SharedAccess};

/// Longest wait for one poll.
const POLL_TIMEOUT: Duration = Duration::from_secs(2);

/// Fetches once (bounded by [`POLL_TIMEOUT`]) so the engine starts with the
/// current state when the control plane is up, then keeps polling every
/// `interval` on a thread of its own.
pub fn start(
    endpoint: String,
    interval: Duration,
    shared: Arc<SharedAccess>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut client = KeysClient::new(lazy_channel(&runtime, &endpoint, POLL_TIMEOUT)?);
    let mut version = String::new();
    let mut failing = false;
    runtime.block_on(poll(
        &mut client,
        &shared,
        &mut version,
        &mut failing,
        &endpoint,
    ));
    std::thread::Builder::new()
        .name("sg-sync".into())
        .spawn(move || {
            runtime.block_on(async move {
                loop {
                    tokio::time::sleep(interval).await;
                    poll(&mut client, &shared, &mut version, &mut failing, &endpoint).await;
                }
            })
        })?;
    Ok(())
}

async fn poll(
    client: &mut KeysClient<tonic::transport::Channel>,
    shared: &SharedAccess,
    version: &mut String,
    failing: &mut bool,
    endpoint: &str,
) {
    match client.get_engine_state(EngineStateRequest {}).await {
        Ok(reply) => {
            let state = reply.into_inner();
            if *failing {
                eprintln!("streamgate engine: control plane at {endpoint} reachable again");
                *failing = false;
            }
            if state.version == *version {
                return;
            }
            let mut keys = KeySet::default();
            for key in &state.keys {
                match <[u8; 32]>::try_from(key.ed25519.as_slice()) {
                    Ok(public) if keys.add(&key.kid, &public).is_ok() => {}
                    _ => eprintln!("streamgate engine: ignoring malformed key {}", key.kid),
                }
            }
            for jti in &state.revoked {
                keys.revoke(jti);
            }
            shared.publish(AccessState {
                keys,
                open_assets: state.open_assets.into_iter().collect::<HashSet<_>>(),
            });
            *version = state.version;
        }
        Err(status) => {
            if !*failing {
                eprintln!(
                    "streamgate engine: control plane at {endpoint} unreachable ({}); keeping the last access state",
                    status.message()
                );
                *failing = true;
            }
        }
    }
}

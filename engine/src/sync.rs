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
use streamgate_assets::AssetStore;
use streamgate_token::KeySet;

use crate::control::Replicas;
use crate::gate::{AccessState, SharedAccess};

/// Longest wait for one poll.
const POLL_TIMEOUT: Duration = Duration::from_secs(2);

/// Fetches once (bounded by [`POLL_TIMEOUT`]) so the engine starts with the
/// current state when the control plane is up, then keeps polling every
/// `interval` on a thread of its own.
pub fn start(
    endpoint: crate::config::ControlEndpoint,
    interval: Duration,
    shared: Arc<SharedAccess>,
    assets: Arc<dyn AssetStore>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut client = Replicas::lazy(&runtime, &endpoint, POLL_TIMEOUT, Some(POLL_TIMEOUT))?;
    let mut poller = Poller {
        shared,
        assets,
        version: String::new(),
        failing: false,
    };
    runtime.block_on(poller.poll(&mut client));
    std::thread::Builder::new()
        .name("sg-sync".into())
        .spawn(move || {
            runtime.block_on(async move {
                loop {
                    tokio::time::sleep(interval).await;
                    poller.poll(&mut client).await;
                }
            })
        })?;
    Ok(())
}

/// What one engine remembers between polls.
struct Poller {
    shared: Arc<SharedAccess>,
    /// Where deleted assets' files are removed.
    assets: Arc<dyn AssetStore>,
    version: String,
    failing: bool,
}

impl Poller {
    async fn poll(&mut self, replicas: &mut Replicas) {
        let asked = replicas
            .call(|channel| async move {
                KeysClient::new(channel)
                    .get_engine_state(EngineStateRequest {})
                    .await
            })
            .await;
        let endpoint = replicas.current();
        let state = match asked {
            Ok(reply) => reply.into_inner(),
            Err(status) => {
                if !self.failing {
                    tracing::warn!(
                        %endpoint,
                        reason = status.message(),
                        "control plane unreachable; keeping the last access state"
                    );
                    self.failing = true;
                }
                return;
            }
        };
        if self.failing {
            tracing::info!(%endpoint, "control plane reachable again");
            self.failing = false;
        }
        if state.version == self.version {
            return;
        }
        let mut keys = KeySet::default();
        for key in &state.keys {
            match <[u8; 32]>::try_from(key.ed25519.as_slice()) {
                Ok(public) if keys.add(&key.kid, &public).is_ok() => {}
                _ => tracing::warn!(kid = key.kid, "ignoring a malformed public key"),
            }
        }
        for jti in &state.revoked {
            keys.revoke(jti);
        }
        let open_assets: HashSet<String> = state.open_assets.into_iter().collect();
        // Closed first (the deleted asset is not in open_assets), then its
        // files go.
        self.shared.publish(AccessState { keys, open_assets });
        for id in &state.deleted_assets {
            remove_deleted(&*self.assets, id);
        }
        self.version = state.version;
    }
}

/// Removes the files of an asset the control plane deleted, if this engine
/// has them (a split deployment, where the control plane cannot).
fn remove_deleted(assets: &dyn AssetStore, id: &str) {
    if !streamgate_token::is_asset_id(id) {
        return; // never a path: ids are [A-Za-z0-9_-]{1,64}
    }
    match assets.remove(id) {
        Ok(true) => tracing::info!(asset = id, "removed the files of a deleted asset"),
        Ok(false) => {}
        Err(e) => tracing::warn!(asset = id, error = %e, "removing a deleted asset's files"),
    }
}

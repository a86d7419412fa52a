//! Atomic publish through the asset store: everything is built in a
//! [`Staging`] area beside the destination, fsynced, and published in one
//! step (a rename that never replaces). A reader sees either no asset or the
//! complete one, even across a crash.

use std::path::Path;
use std::sync::Arc;

use streamgate_assets::{AssetStore, LocalStore, Staging};

use crate::error::{io, TranscodeError};

pub use streamgate_assets::staging::remove_stale;

/// The directory holding `out` and the asset name `out` has in it
/// (`transcode --out DIR` publishes `DIR` as an asset of its parent).
fn local_target_unopened(out: &Path) -> Result<(std::path::PathBuf, String), TranscodeError> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            io(
                format!("{} names no directory", out.display()),
                std::io::ErrorKind::InvalidInput.into(),
            )
        })?;
    Ok((parent.to_path_buf(), name))
}

/// Where a transcode publishes instead of the local directory its `out`
/// names: another store (a bucket), the asset named after `out`'s last
/// component.
#[derive(Clone)]
pub struct PublishTo(pub Arc<dyn AssetStore>);

impl std::fmt::Debug for PublishTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublishTo(store)")
    }
}

/// The store a transcode publishes into, and the asset's name there.
pub(crate) fn target(
    out: &Path,
    publish_to: Option<&PublishTo>,
) -> Result<(Arc<dyn AssetStore>, String), TranscodeError> {
    let (local, name) = local_target_unopened(out)?;
    Ok(match publish_to {
        Some(PublishTo(store)) => (Arc::clone(store), name),
        None => {
            let store = LocalStore::create(&local)
                .map_err(|e| io(format!("creating {}", local.display()), e))?;
            (Arc::new(store), name)
        }
    })
}

/// Stages asset `name` in `store`.
pub(crate) fn stage(store: &dyn AssetStore, name: &str) -> Result<Staging, TranscodeError> {
    Ok(store.stage(name)?)
}

//! Atomic publish through the asset store: everything is built in a
//! [`Staging`] area beside the destination, fsynced, and published in one
//! step (a rename that never replaces). A reader sees either no asset or the
//! complete one, even across a crash.

use std::path::Path;

use streamgate_assets::{AssetStore, LocalStore, Staging};

use crate::error::{io, TranscodeError};

pub use streamgate_assets::staging::remove_stale;

/// The local store holding `out` and the asset name `out` has in it
/// (`transcode --out DIR` publishes `DIR` as an asset of its parent).
pub(crate) fn local_target(out: &Path) -> Result<(LocalStore, String), TranscodeError> {
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
    let store =
        LocalStore::create(parent).map_err(|e| io(format!("creating {}", parent.display()), e))?;
    Ok((store, name))
}

/// Stages asset `name` in `store`.
pub(crate) fn stage(store: &dyn AssetStore, name: &str) -> Result<Staging, TranscodeError> {
    Ok(store.stage(name)?)
}

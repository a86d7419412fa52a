//! [`Staging`]: a build area beside the destination, removed unless
//! published.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::AssetError;
use crate::rename::rename_noreplace;

/// A directory an asset is built in before it is published. Dropped
/// unpublished (an error, a panic), it is removed with what it holds.
pub struct Staging {
    dir: PathBuf,
    target: PathBuf,
    published: bool,
}

impl Staging {
    /// Creates `<parent>/.<name>.staging-<pid>` for `target`, on the same
    /// file system so that publishing is a rename. The dot keeps the engine
    /// from ever serving it. [`AssetError::Exists`] if `target` exists.
    pub fn beside(target: &Path) -> Result<Self, AssetError> {
        if target.exists() {
            return Err(AssetError::Exists(target.to_path_buf()));
        }
        let (parent, prefix) = staging_place(target);
        fs::create_dir_all(parent)
            .map_err(|e| AssetError::io(format!("creating {}", parent.display()), e))?;
        let dir = parent.join(format!("{prefix}{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir)
            .map_err(|e| AssetError::io(format!("creating {}", dir.display()), e))?;
        Ok(Self {
            dir,
            target: target.to_path_buf(),
            published: false,
        })
    }

    /// The directory to write into.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where the asset will appear.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes every file and directory to disk, then renames into place;
    /// [`AssetError::Exists`] if someone published `target` meanwhile (it is
    /// never replaced).
    pub fn rename_into_place(mut self) -> Result<PathBuf, AssetError> {
        sync_tree(&self.dir)?;
        rename_noreplace(&self.dir, &self.target).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                AssetError::Exists(self.target.clone())
            } else {
                AssetError::io(format!("publishing {}", self.target.display()), e)
            }
        })?;
        self.published = true;
        if let Some(parent) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(self.target.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Where staging directories for `target` live, and their name prefix
/// (`.<name>.staging-`; the process id completes it).
fn staging_place(target: &Path) -> (&Path, String) {
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "asset".into());
    (parent, format!(".{name}.staging-"))
}

/// Removes staging directories that an interrupted attempt (any process)
/// left beside `target`.
pub fn remove_stale(target: &Path) {
    let (parent, prefix) = staging_place(target);
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn sync_tree(dir: &Path) -> Result<(), AssetError> {
    let listing =
        fs::read_dir(dir).map_err(|e| AssetError::io(format!("listing {}", dir.display()), e))?;
    for entry in listing {
        let path = entry
            .map_err(|e| AssetError::io("listing staging", e))?
            .path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| AssetError::io(format!("syncing {}", path.display()), e))?;
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), AssetError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| AssetError::io(format!("syncing {}", dir.display()), e))
}

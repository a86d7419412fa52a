//! Atomic publish: build in a staging directory beside the destination (so
//! on the same file system), fsync everything, then rename into place. A
//! reader sees either no asset or the complete one, even across a crash.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::error::{io, TranscodeError};

/// A staging directory removed on drop unless published.
pub struct Staging {
    dir: PathBuf,
    target: PathBuf,
    published: bool,
}

impl Staging {
    /// Creates `<parent>/.<name>.staging-<pid>` for `target`. The dot keeps
    /// the engine from ever serving it (asset ids never start with one).
    pub fn new(target: &Path) -> Result<Self, TranscodeError> {
        if target.exists() {
            return Err(TranscodeError::OutputExists(target.to_path_buf()));
        }
        let (parent, prefix) = staging_place(target);
        fs::create_dir_all(parent).map_err(|e| io(format!("creating {}", parent.display()), e))?;
        let dir = parent.join(format!("{prefix}{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).map_err(|e| io(format!("creating {}", dir.display()), e))?;
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

    /// Flushes every file and directory to disk and renames into place.
    pub fn publish(mut self) -> Result<PathBuf, TranscodeError> {
        sync_tree(&self.dir)?;
        if self.target.exists() {
            return Err(TranscodeError::OutputExists(self.target.clone()));
        }
        fs::rename(&self.dir, &self.target)
            .map_err(|e| io(format!("publishing {}", self.target.display()), e))?;
        if let Some(parent) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        self.published = true;
        Ok(self.target.clone())
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

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn sync_tree(dir: &Path) -> Result<(), TranscodeError> {
    for entry in fs::read_dir(dir).map_err(|e| io(format!("listing {}", dir.display()), e))? {
        let path = entry.map_err(|e| io("listing staging", e))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| io(format!("syncing {}", path.display()), e))?;
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), TranscodeError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(format!("syncing {}", dir.display()), e))
}

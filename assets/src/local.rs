//! [`LocalStore`]: assets as directories under one root on a local file
//! system — the default, and the fast path of one box (the engine sends
//! these files zero-copy).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::beneath::{FileStamp, Root};
use crate::error::AssetError;
use crate::index::{AssetIndex, INDEX_NAME};
use crate::rename::{copy_tree, rename_noreplace};
use crate::staging::Staging;
use crate::{is_storable_name, AssetStore};

/// Assets under `<root>/<asset-id>/`.
pub struct LocalStore {
    path: PathBuf,
    root: Root,
    /// Makes each removal's trash name unique within this process.
    removals: AtomicU64,
    /// Indexes read so far, each with the stamp of the file it came from
    /// (a replaced asset has a new index file, so a new stamp).
    indexes: Mutex<HashMap<String, (FileStamp, Arc<AssetIndex>)>>,
}

impl LocalStore {
    /// The store rooted at the existing directory `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            root: Root::open(path)?,
            path: path.to_path_buf(),
            removals: AtomicU64::new(0),
            indexes: Mutex::new(HashMap::new()),
        })
    }

    /// The store at `path`, creating the directory when it is missing.
    pub fn create(path: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(path)?;
        Self::open(path)
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn checked(&self, name: &str) -> Result<PathBuf, AssetError> {
        if is_storable_name(name) {
            Ok(self.path.join(name))
        } else {
            Err(AssetError::InvalidName(name.to_string()))
        }
    }
}

impl LocalStore {
    /// The index of asset `name` with the stamp of its file.
    fn indexed(&self, name: &str) -> io::Result<Option<(FileStamp, Arc<AssetIndex>)>> {
        if !is_storable_name(name) {
            return Err(io::ErrorKind::NotFound.into());
        }
        let relative = format!("{name}/{INDEX_NAME}");
        let (file, stamp) = match self.root.open_file(&relative) {
            Ok(opened) => opened,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // An asset from before indexes, or none at all.
                self.root.stamp(name)?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let mut indexes = self.indexes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known, index)) = indexes.get(name) {
            if *known == stamp {
                return Ok(Some((stamp, Arc::clone(index))));
            }
        }
        let mut bytes = Vec::with_capacity(stamp.size as usize);
        std::io::Read::read_to_end(&mut &file, &mut bytes)?;
        let index = Arc::new(AssetIndex::parse(&bytes)?);
        indexes.insert(name.to_string(), (stamp, Arc::clone(&index)));
        Ok(Some((stamp, index)))
    }
}

impl AssetStore for LocalStore {
    fn stage(&self, name: &str) -> Result<Staging, AssetError> {
        Staging::beside(&self.checked(name)?)
    }

    fn publish(&self, staging: Staging) -> Result<(), AssetError> {
        write_index(staging.path())?;
        staging.rename_into_place().map(|_| ())
    }

    fn import(&self, source: &Path, name: &str) -> Result<(), AssetError> {
        let target = self.checked(name)?;
        if target.exists() {
            return Err(AssetError::Exists(target));
        }
        write_index(source)?;
        match rename_noreplace(source, &target) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(AssetError::Exists(target)),
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                // Another file system: copy into a staging area under the
                // root, publish that, then drop the source.
                let staging = self.stage(name)?;
                copy_tree(source, staging.path()).map_err(|e| {
                    AssetError::io(format!("copying {} under the root", source.display()), e)
                })?;
                self.publish(staging)?;
                std::fs::remove_dir_all(source)
                    .map_err(|e| AssetError::io(format!("removing {}", source.display()), e))
            }
            Err(e) => Err(AssetError::io(
                format!("moving {} under the root", source.display()),
                e,
            )),
        }
    }

    fn open(&self, relative: &str) -> io::Result<(File, FileStamp)> {
        self.root.open_file(relative)
    }

    fn stamp(&self, relative: &str) -> io::Result<FileStamp> {
        self.root.stamp(relative)
    }

    fn index(&self, name: &str) -> io::Result<Option<Arc<AssetIndex>>> {
        Ok(self.indexed(name)?.map(|(_, index)| index))
    }

    /// The index's, while it describes the file: listed with this size and
    /// not modified after the index was written (a file edited by hand gets
    /// validators from its metadata, or a CDN would keep a stale copy).
    fn recorded(&self, relative: &str, stamp: &FileStamp) -> Option<(String, u64)> {
        let (asset, path) = relative.split_once('/')?;
        let (written, index) = self.indexed(asset).ok()??;
        let object = index.get(path)?;
        let unchanged =
            (stamp.mtime_secs, stamp.mtime_nanos) <= (written.mtime_secs, written.mtime_nanos);
        (object.size == stamp.size && unchanged).then(|| (object.etag.clone(), index.published))
    }

    fn contains(&self, name: &str) -> bool {
        is_storable_name(name) && self.path.join(name).is_dir()
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.path)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_storable_name(&name) && entry.file_type()?.is_dir() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn remove(&self, name: &str) -> Result<bool, AssetError> {
        let dir = self.checked(name)?;
        let n = self.removals.fetch_add(1, Ordering::Relaxed);
        // Renamed aside first (a dot name is never served), so no request
        // sees a half-removed asset.
        let trash = self
            .path
            .join(format!(".deleted-{name}-{}-{n}", std::process::id()));
        self.indexes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        match std::fs::rename(&dir, &trash) {
            Ok(()) => std::fs::remove_dir_all(&trash)
                .map(|()| true)
                .map_err(|e| AssetError::io(format!("removing {}", dir.display()), e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(AssetError::io(format!("removing {}", dir.display()), e)),
        }
    }
}

/// Indexes the asset being published in `dir` (before it becomes visible).
fn write_index(dir: &Path) -> Result<(), AssetError> {
    AssetIndex::of_dir(dir, SystemTime::now())
        .and_then(|index| index.write_into(dir))
        .map_err(|e| AssetError::io(format!("indexing {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn scratch(base: &Path, name: &str) -> PathBuf {
        let dir = base.join(format!("sg-local-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn packaged(dir: &Path) {
        std::fs::create_dir_all(dir.join("720p")).unwrap();
        std::fs::write(dir.join("master.m3u8"), b"#EXTM3U\n").unwrap();
        std::fs::write(dir.join("720p/1.m4s"), vec![7u8; 4096]).unwrap();
    }

    #[test]
    fn stage_publish_open_list_remove() {
        let root = scratch(&std::env::temp_dir(), "cycle");
        let store = LocalStore::open(&root).unwrap();
        let staging = store.stage("a1").unwrap();
        packaged(staging.path());
        assert!(store.list().unwrap().is_empty(), "staging is not an asset");
        store.publish(staging).unwrap();
        assert_eq!(store.list().unwrap(), ["a1"]);
        let (_, stamp) = store.open("a1/720p/1.m4s").unwrap();
        assert_eq!(stamp.size, 4096);
        let index = store.index("a1").unwrap().expect("published with an index");
        assert_eq!(index.get("720p/1.m4s").unwrap().size, 4096);
        assert_eq!(
            index.get("master.m3u8").unwrap().etag,
            crate::index::etag_of(b"#EXTM3U\n")
        );
        assert!(Arc::ptr_eq(&index, &store.index("a1").unwrap().unwrap()));
        let (_, stamp) = store.open("a1/master.m3u8").unwrap();
        assert_eq!(
            store.recorded("a1/master.m3u8", &stamp),
            Some((
                index.get("master.m3u8").unwrap().etag.clone(),
                index.published
            ))
        );
        // Edited by hand after publish, same size: no longer what was indexed.
        std::fs::write(root.join("a1/master.m3u8"), b"#EXTM3X\n").unwrap();
        let (_, edited) = store.open("a1/master.m3u8").unwrap();
        assert_eq!(store.recorded("a1/master.m3u8", &edited), None);
        assert_eq!(
            store.index("nothing").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(matches!(store.stage("a1"), Err(AssetError::Exists(_))));
        assert!(matches!(
            store.stage("../x"),
            Err(AssetError::InvalidName(_))
        ));
        assert!(store.remove("a1").unwrap());
        assert!(!store.remove("a1").unwrap());
        assert!(store.list().unwrap().is_empty());
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0, "nothing left");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn import_copies_across_file_systems() {
        // /dev/shm is tmpfs: a rename from there into the temp directory
        // fails with EXDEV, and the import copies instead.
        let shm = Path::new("/dev/shm");
        let root = scratch(&std::env::temp_dir(), "import");
        let source = scratch(shm, "source");
        packaged(&source);
        let crosses =
            std::fs::metadata(shm).unwrap().dev() != std::fs::metadata(&root).unwrap().dev();
        let store = LocalStore::open(&root).unwrap();
        store.import(&source, "moved").unwrap();
        assert!(root.join("moved/720p/1.m4s").is_file());
        assert!(!source.exists(), "the source is gone after the move");
        assert!(
            crosses,
            "this check needs /dev/shm and the temp dir on different file systems"
        );
        let other = scratch(shm, "again");
        packaged(&other);
        assert!(matches!(
            store.import(&other, "moved"),
            Err(AssetError::Exists(_))
        ));
        assert!(
            other.join("master.m3u8").exists(),
            "a refused import keeps its source"
        );
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&other);
    }
}

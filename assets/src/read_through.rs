//! [`ReadThrough`]: the engine's view of assets kept in a bucket — a local
//! copy under `<data_dir>/cache`, filled on demand and served from disk
//! exactly like a [`crate::LocalStore`] (zero-copy, hot cache and all).
//!
//! - **On a miss** [`AssetStore::open`] says `WouldBlock` and the caller asks
//!   [`AssetStore::fetch`] for the object, which it awaits off its thread's
//!   critical path. However many requests wait for one object, it is fetched
//!   once per node (single flight).
//! - **Never a partial file**: an object is downloaded into `.staging/`,
//!   checked against its index (size and content tag), then renamed into
//!   place.
//! - **Bounded** by `max_bytes`: least recently used objects are removed to
//!   make room. The copy survives restarts (rescanned at start).
//! - **Only whole assets**: an asset is served once its index
//!   ([`crate::index`]) is here, and the index goes up last at publish.
//!   Paths the index does not list are 404 without asking the bucket.
//! - **Revalidated**: an asset's index is checked against the bucket when it
//!   is older than `index_ttl` (in the background; the copy keeps serving).
//!   A changed index drops the asset's objects; a vanished one drops the
//!   asset. An unreachable bucket keeps what is here serving and turns what
//!   is not into an error (503 to the viewer, never 404).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use object_store::ObjectStoreExt;
use tokio::sync::watch;

use crate::beneath::{FileStamp, Root};
use crate::bucket::{get_to_file, to_io, Bucket};
use crate::error::AssetError;
use crate::index::{AssetIndex, INDEX_NAME};
use crate::staging::Staging;
use crate::{is_storable_name, AssetStore};

/// How a fetch ended: `NotFound` (the asset or object is not in the
/// bucket) or another kind (the bucket failed).
pub type Outcome = Result<(), io::ErrorKind>;

/// A fetch being waited for (see [`AssetStore::fetch`]).
pub struct Fetch {
    waiting: Option<watch::Receiver<Option<Outcome>>>,
    done: Outcome,
}

impl Fetch {
    /// A fetch that has already ended.
    pub fn done(outcome: Outcome) -> Self {
        Self {
            waiting: None,
            done: outcome,
        }
    }

    /// Waits for the fetch to end (any executor: no runtime is needed).
    pub async fn wait(self) -> Outcome {
        let Some(mut rx) = self.waiting else {
            return self.done;
        };
        let ended = rx
            .wait_for(Option::is_some)
            .await
            .map(|outcome| outcome.unwrap_or(Err(io::ErrorKind::Other)));
        ended.unwrap_or(Err(io::ErrorKind::Other))
    }
}

/// What the read-through copy did, for metrics.
#[derive(Debug, Default)]
pub struct ReadThroughStats {
    /// Objects brought in from the bucket.
    pub fetched: AtomicU64,
    /// Fetches that failed because of the bucket (not "not found").
    pub failed: AtomicU64,
    /// Objects removed to stay within the bound.
    pub evicted: AtomicU64,
    /// Bytes of objects held now.
    pub bytes: AtomicU64,
}

/// The local copy of a bucket's assets.
pub struct ReadThrough {
    shared: Arc<Shared>,
}

struct Shared {
    bucket: Arc<Bucket>,
    dir: PathBuf,
    root: Root,
    max_bytes: u64,
    index_ttl: Duration,
    staging_names: AtomicU64,
    state: Mutex<State>,
    stats: ReadThroughStats,
}

#[derive(Default)]
struct State {
    /// Objects here: `<asset>/<path>` → (last use, size).
    files: HashMap<String, (u64, u64)>,
    used: u64,
    clock: u64,
    indexes: HashMap<String, Known>,
    flights: HashMap<String, watch::Receiver<Option<Outcome>>>,
}

/// What is known of an asset's index, and since when.
struct Known {
    /// `None`: the bucket said there is no such asset.
    index: Option<Arc<AssetIndex>>,
    checked: Instant,
}

impl ReadThrough {
    /// The copy of `bucket` under `dir` (created; what a previous run left
    /// is kept, its half-downloaded files removed), at most `max_bytes` of
    /// objects, indexes revalidated after `index_ttl`.
    pub fn open(
        bucket: Arc<Bucket>,
        dir: &Path,
        max_bytes: u64,
        index_ttl: Duration,
    ) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let staging = dir.join(".staging");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging)?;
        // Objects as (`<asset>/<path>`, size, mtime); hidden names
        // (indexes, staging) are left out.
        let mut found = Vec::new();
        crate::index::visible_files(dir, &mut |relative, _, meta| {
            use std::os::unix::fs::MetadataExt;
            if relative.contains('/') {
                found.push((relative, meta.len(), meta.mtime()));
            }
            Ok(())
        })?;
        // Oldest first: the order objects were last written stands in for
        // the order they were last used before the restart.
        found.sort_by_key(|(_, _, mtime)| *mtime);
        let mut state = State::default();
        for (relative, size, _) in found {
            state.clock += 1;
            state.used += size;
            state.files.insert(relative, (state.clock, size));
        }
        let shared = Arc::new(Shared {
            bucket,
            dir: dir.to_path_buf(),
            root: Root::open(dir)?,
            max_bytes,
            index_ttl,
            staging_names: AtomicU64::new(0),
            state: Mutex::new(state),
            stats: ReadThroughStats::default(),
        });
        let evicted = shared.make_room(&mut shared.lock(), 0);
        shared.remove_files(evicted);
        let used = shared.lock().used;
        shared.stats.bytes.store(used, Ordering::Relaxed);
        tracing::info!(dir = %dir.display(), bytes = used, max_bytes, "read-through cache opened");
        Ok(Self { shared })
    }

    /// What it did so far.
    pub fn stats(&self) -> &ReadThroughStats {
        &self.shared.stats
    }

    /// Bytes of objects held now.
    pub fn used(&self) -> u64 {
        self.shared.lock().used
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The index of `asset` as known here (memory, else the copy on disk,
    /// which a restart left): `Ok(None)` when unknown, `NotFound` when the
    /// bucket said recently that there is no such asset. Starts a
    /// revalidation when the known one is due.
    fn known_index(self: &Arc<Self>, asset: &str) -> io::Result<Option<Arc<AssetIndex>>> {
        let mut state = self.lock();
        let due = match state.indexes.get(asset) {
            Some(known) => {
                let due = known.checked.elapsed() >= self.index_ttl;
                match (&known.index, due) {
                    (Some(index), false) => return Ok(Some(Arc::clone(index))),
                    (None, false) => return Err(io::ErrorKind::NotFound.into()),
                    (Some(index), true) => {
                        let index = Arc::clone(index);
                        drop(state);
                        // Stale while revalidating: the copy keeps serving.
                        let _ = self.flight(format!("{asset}/{INDEX_NAME}"));
                        return Ok(Some(index));
                    }
                    (None, true) => true,
                }
            }
            None => false,
        };
        if due {
            state.indexes.remove(asset);
            return Ok(None);
        }
        // After a restart: the index on disk serves at once and is
        // revalidated right away.
        let relative = format!("{asset}/{INDEX_NAME}");
        let Ok(bytes) = std::fs::read(self.dir.join(&relative)) else {
            return Ok(None);
        };
        let Ok(index) = AssetIndex::parse(&bytes) else {
            return Ok(None);
        };
        let index = Arc::new(index);
        state.indexes.insert(
            asset.to_string(),
            Known {
                index: Some(Arc::clone(&index)),
                checked: Instant::now() - self.index_ttl,
            },
        );
        drop(state);
        let _ = self.flight(relative);
        Ok(Some(index))
    }

    /// Joins or starts the fetch of `relative` (an object, or an asset's
    /// index).
    fn flight(self: &Arc<Self>, relative: String) -> Fetch {
        let mut state = self.lock();
        if let Some(rx) = state.flights.get(&relative) {
            return Fetch {
                waiting: Some(rx.clone()),
                done: Ok(()),
            };
        }
        let (tx, rx) = watch::channel(None);
        state.flights.insert(relative.clone(), rx.clone());
        drop(state);
        let shared = Arc::clone(self);
        self.bucket.spawn(async move {
            let outcome = match relative.strip_suffix(&format!("/{INDEX_NAME}")) {
                Some(asset) => shared.bring_index(asset).await.map(|_| ()),
                None => shared.bring_object(&relative).await,
            };
            if let Err(kind) = outcome {
                if kind != io::ErrorKind::NotFound {
                    shared.stats.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            shared.lock().flights.remove(&relative);
            let _ = tx.send(Some(outcome));
        });
        Fetch {
            waiting: Some(rx),
            done: Ok(()),
        }
    }

    /// Gets the index of `asset` from the bucket and keeps it (memory and
    /// disk). A changed index drops the asset's objects here; a missing one
    /// drops the asset. A failing bucket leaves what is known in place.
    async fn bring_index(self: &Arc<Self>, asset: &str) -> Result<Arc<AssetIndex>, io::ErrorKind> {
        let key = self.bucket.asset_key(&format!("{asset}/{INDEX_NAME}"));
        let store = self.bucket.store();
        let got = match store.get(&key).await {
            Ok(got) => got.bytes().await.map_err(to_io),
            Err(e) => Err(to_io(e)),
        };
        let bytes = match got {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.forget(asset, true);
                return Err(io::ErrorKind::NotFound);
            }
            Err(e) => {
                tracing::warn!(asset, error = %e, "the bucket did not answer for an asset's index");
                let mut state = self.lock();
                if let Some(known) = state.indexes.get_mut(asset) {
                    // Keep serving the copy; ask again after a while.
                    known.checked = Instant::now();
                }
                return Err(io::ErrorKind::Other);
            }
        };
        let index = Arc::new(AssetIndex::parse(&bytes).map_err(|e| {
            tracing::error!(asset, error = %e, "the asset's index in the bucket is unreadable");
            io::ErrorKind::Other
        })?);
        let previous = self.lock().indexes.get(asset).and_then(|k| k.index.clone());
        if previous.as_deref() != Some(&*index) {
            if previous.is_some() {
                tracing::info!(asset, "the asset changed in the bucket; dropping its copy");
            }
            self.forget(asset, false);
            let dir = self.dir.join(asset);
            let write = || -> io::Result<()> {
                std::fs::create_dir_all(&dir)?;
                let staging = self.staging_path();
                std::fs::write(&staging, &bytes)?;
                std::fs::rename(&staging, dir.join(INDEX_NAME))
            };
            write().map_err(|e| {
                tracing::error!(asset, error = %e, "keeping an asset's index");
                io::ErrorKind::Other
            })?;
        }
        self.lock().indexes.insert(
            asset.to_string(),
            Known {
                index: Some(Arc::clone(&index)),
                checked: Instant::now(),
            },
        );
        Ok(index)
    }

    /// Gets one object of an asset into the copy: staged, checked against
    /// the index, room made, renamed into place.
    async fn bring_object(self: &Arc<Self>, relative: &str) -> Outcome {
        let (asset, path) = relative.split_once('/').ok_or(io::ErrorKind::NotFound)?;
        let index = match self.known_index(asset) {
            Ok(Some(index)) => index,
            Ok(None) => {
                let index_flight = self.flight(format!("{asset}/{INDEX_NAME}"));
                index_flight.wait().await?;
                self.known_index(asset)
                    .map_err(|e| e.kind())?
                    .ok_or(io::ErrorKind::Other)?
            }
            Err(e) => return Err(e.kind()),
        };
        let object = index.get(path).ok_or(io::ErrorKind::NotFound)?.clone();
        if object.size > self.max_bytes {
            tracing::error!(
                relative,
                size = object.size,
                max = self.max_bytes,
                "an object is larger than the whole cache"
            );
            return Err(io::ErrorKind::Other);
        }
        if self.lock().files.contains_key(relative) {
            return Ok(()); // brought in meanwhile
        }
        let staging = self.staging_path();
        let key = self.bucket.asset_key(relative);
        let store = self.bucket.store();
        let got = get_to_file(&*store, &key, &staging).await;
        let (size, etag) = match got {
            Ok(got) => got,
            Err(e) => {
                let _ = std::fs::remove_file(&staging);
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(relative, error = %e, "fetching from the bucket");
                }
                return Err(if e.kind() == io::ErrorKind::NotFound {
                    io::ErrorKind::NotFound
                } else {
                    io::ErrorKind::Other
                });
            }
        };
        if size != object.size || etag != object.etag {
            let _ = std::fs::remove_file(&staging);
            tracing::error!(relative, "the object in the bucket differs from its index");
            return Err(io::ErrorKind::InvalidData);
        }
        let target = self.dir.join(relative);
        let placed = target
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::rename(&staging, &target));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&staging);
            tracing::error!(relative, error = %e, "placing a fetched object");
            return Err(io::ErrorKind::Other);
        }
        let victims = {
            let mut state = self.lock();
            let victims = self.make_room(&mut state, size);
            state.clock += 1;
            let tick = state.clock;
            if let Some((_, old)) = state.files.insert(relative.to_string(), (tick, size)) {
                state.used -= old;
            }
            state.used += size;
            self.stats.bytes.store(state.used, Ordering::Relaxed);
            victims
        };
        self.remove_files(victims);
        self.stats.fetched.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Takes the least recently used objects out of the books until
    /// `incoming` more bytes fit (down to 90 % of the bound, so eviction
    /// runs in batches); returns them for removal outside the lock.
    fn make_room(&self, state: &mut State, incoming: u64) -> Vec<String> {
        if state.used + incoming <= self.max_bytes {
            return Vec::new();
        }
        let target = (self.max_bytes / 10 * 9).min(self.max_bytes.saturating_sub(incoming));
        let mut by_age: Vec<(u64, String)> = state
            .files
            .iter()
            .map(|(relative, (tick, _))| (*tick, relative.clone()))
            .collect();
        by_age.sort_unstable();
        let mut victims = Vec::new();
        for (_, relative) in by_age {
            if state.used + incoming <= target {
                break;
            }
            if let Some((_, size)) = state.files.remove(&relative) {
                state.used -= size;
                victims.push(relative);
            }
        }
        self.stats
            .evicted
            .fetch_add(victims.len() as u64, Ordering::Relaxed);
        self.stats.bytes.store(state.used, Ordering::Relaxed);
        victims
    }

    fn remove_files(&self, victims: Vec<String>) {
        for relative in victims {
            // An open descriptor (the engine's hot cache) keeps the data
            // until its next check finds the file gone.
            let _ = std::fs::remove_file(self.dir.join(&relative));
        }
    }

    /// Drops the copy of `asset` (and, with `absent`, remembers for a while
    /// that the bucket has none).
    fn forget(&self, asset: &str, absent: bool) {
        let prefix = format!("{asset}/");
        {
            let mut state = self.lock();
            let gone: Vec<String> = state
                .files
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .cloned()
                .collect();
            for relative in gone {
                if let Some((_, size)) = state.files.remove(&relative) {
                    state.used -= size;
                }
            }
            self.stats.bytes.store(state.used, Ordering::Relaxed);
            if absent {
                state.indexes.insert(
                    asset.to_string(),
                    Known {
                        index: None,
                        checked: Instant::now(),
                    },
                );
            } else {
                state.indexes.remove(asset);
            }
        }
        let dir = self.dir.join(asset);
        let trash = self.staging_path();
        if std::fs::rename(&dir, &trash).is_ok() {
            let _ = std::fs::remove_dir_all(&trash);
        }
    }

    fn staging_path(&self) -> PathBuf {
        let n = self.staging_names.fetch_add(1, Ordering::Relaxed);
        self.dir.join(".staging").join(n.to_string())
    }

    fn touch(&self, relative: &str) {
        let mut state = self.lock();
        state.clock += 1;
        let tick = state.clock;
        if let Some(entry) = state.files.get_mut(relative) {
            entry.0 = tick;
        }
    }
}

impl AssetStore for ReadThrough {
    fn stage(&self, _name: &str) -> Result<Staging, AssetError> {
        Err(AssetError::io(
            "staging in the read-through cache (publish to the bucket)",
            io::ErrorKind::Unsupported.into(),
        ))
    }

    fn publish(&self, _staging: Staging) -> Result<(), AssetError> {
        Err(AssetError::io(
            "publishing into the read-through cache",
            io::ErrorKind::Unsupported.into(),
        ))
    }

    fn import(&self, _source: &Path, _name: &str) -> Result<(), AssetError> {
        Err(AssetError::io(
            "importing into the read-through cache",
            io::ErrorKind::Unsupported.into(),
        ))
    }

    /// The local copy of `<asset>/<path>`; `WouldBlock` when it has to be
    /// fetched first ([`AssetStore::fetch`]), `NotFound` when the asset's
    /// index does not list it.
    fn open(&self, relative: &str) -> io::Result<(File, FileStamp)> {
        let (asset, path) = relative.split_once('/').ok_or(io::ErrorKind::NotFound)?;
        let Some(index) = self.shared.known_index(asset)? else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let object = index.get(path).ok_or(io::ErrorKind::NotFound)?;
        match self.shared.root.open_file(relative) {
            Ok((file, stamp)) if stamp.size == object.size => {
                self.shared.touch(relative);
                Ok((file, stamp))
            }
            Ok(_) => Err(io::ErrorKind::WouldBlock.into()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(io::ErrorKind::WouldBlock.into()),
            Err(e) => Err(e),
        }
    }

    fn stamp(&self, relative: &str) -> io::Result<FileStamp> {
        let stamp = self.shared.root.stamp(relative)?;
        self.shared.touch(relative);
        Ok(stamp)
    }

    fn fetch(&self, relative: &str) -> Fetch {
        self.shared.flight(relative.to_string())
    }

    fn index(&self, name: &str) -> io::Result<Option<Arc<AssetIndex>>> {
        self.shared
            .known_index(name)?
            .map(Some)
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    fn contains(&self, name: &str) -> bool {
        is_storable_name(name) && matches!(self.shared.known_index(name), Ok(Some(_)))
    }

    /// The assets with a copy here.
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.shared.dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if is_storable_name(&name) && self.shared.dir.join(&name).join(INDEX_NAME).is_file() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Drops this node's copy (the bucket's is the control plane's to
    /// delete).
    fn remove(&self, name: &str) -> Result<bool, AssetError> {
        if !is_storable_name(name) {
            return Err(AssetError::InvalidName(name.to_string()));
        }
        let here = self.shared.dir.join(name).exists();
        self.shared.forget(name, true);
        Ok(here)
    }
}

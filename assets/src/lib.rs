//! Where packaged assets live (Contract 2: `<root>/<asset-id>/…`), behind one
//! interface, [`AssetStore`], that the transcoder's publish, the control
//! plane's import and delete, and the engine's file lookup all use instead of
//! writing asset trees with `std::fs` themselves. The local directory
//! ([`LocalStore`]) is the default and the fast path of one box; object
//! storage becomes one more implementation.
//!
//! Every implementation keeps one promise: an asset is visible whole or not
//! at all. Writers build it in a [`Staging`] area no reader sees and
//! [`AssetStore::publish`] makes it visible in one step.
//!
//! Modules: [`local`] (the directory store), [`bucket`] (S3-compatible
//! object storage: the client and the writers' [`BucketStore`]),
//! [`read_through`] (the engine's local copy of a bucket), [`index`] (what a
//! published asset holds, with content-derived tags), [`beneath`] (opening files
//! strictly beneath the root with `openat2`), [`staging`] (build areas
//! removed unless published), [`rename`] (`RENAME_NOREPLACE`, moves across
//! file systems).

pub mod beneath;
pub mod bucket;
mod error;
pub mod index;
pub mod local;
pub mod read_through;
pub mod rename;
pub mod staging;

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

pub use beneath::FileStamp;
pub use bucket::{Bucket, BucketConfig, BucketStore, CredentialSource, Credentials};
pub use error::AssetError;
pub use index::{AssetIndex, ObjectInfo, INDEX_NAME};
pub use local::LocalStore;
pub use read_through::{Fetch, ReadThrough};
pub use staging::Staging;

/// Where packaged assets are kept.
pub trait AssetStore: Send + Sync {
    /// A build area for asset `name`, invisible to readers until published;
    /// [`AssetError::Exists`] if the asset is already there.
    fn stage(&self, name: &str) -> Result<Staging, AssetError>;

    /// Makes a staged asset visible whole; [`AssetError::Exists`] (and the
    /// staging area removed) if another writer published it first.
    fn publish(&self, staging: Staging) -> Result<(), AssetError>;

    /// Moves the packaged directory `source` in as asset `name` (renamed on
    /// one file system, else copied through a staging area).
    fn import(&self, source: &Path, name: &str) -> Result<(), AssetError>;

    /// Opens the regular file `<asset>/<path>` for serving. Anything else
    /// (missing, a directory, a FIFO, an escape from the root) is
    /// `NotFound`; only transient failures are other errors.
    fn open(&self, relative: &str) -> io::Result<(File, FileStamp)>;

    /// The current stamp of `<asset>/<path>` without opening it, to
    /// revalidate a cached copy.
    fn stamp(&self, relative: &str) -> io::Result<FileStamp>;

    /// For a store whose objects live elsewhere ([`ReadThrough`]): brings
    /// `<asset>/<path>` here after [`AssetStore::open`] said `WouldBlock`,
    /// once however many callers ask; await [`Fetch::wait`], then open
    /// again. Stores that hold everything locally never say `WouldBlock`.
    fn fetch(&self, _relative: &str) -> Fetch {
        Fetch::done(Err(io::ErrorKind::NotFound))
    }

    /// The index of asset `name` ([`AssetIndex`]: content-derived tags, the
    /// publish time); `Ok(None)` for an asset published before indexes
    /// existed, `NotFound` when there is no such asset.
    fn index(&self, name: &str) -> io::Result<Option<Arc<AssetIndex>>>;

    /// The validators recorded at publish for `<asset>/<path>`, whose file
    /// now has `stamp`: its content tag and the publish time, while they
    /// still describe the file (by default: listed with this size).
    fn recorded(&self, relative: &str, stamp: &FileStamp) -> Option<(String, u64)> {
        let (asset, path) = relative.split_once('/')?;
        let index = self.index(asset).ok()??;
        let object = index.get(path)?;
        (object.size == stamp.size).then(|| (object.etag.clone(), index.published))
    }

    /// Whether asset `name` is there.
    fn contains(&self, name: &str) -> bool;

    /// The assets there, sorted (staging areas and other hidden names are
    /// not assets).
    fn list(&self) -> io::Result<Vec<String>>;

    /// Removes asset `name`, so that no reader sees it half removed;
    /// `Ok(false)` when it was not there.
    fn remove(&self, name: &str) -> Result<bool, AssetError>;
}

/// Whether `name` can name an asset in a store: one path component that is
/// not hidden (so never `.`, `..` or a staging area).
pub fn is_storable_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains('/')
        && !name.contains('\0')
        && name.len() <= 255
}

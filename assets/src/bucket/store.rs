//! [`BucketStore`]: the writers' view of assets in a bucket — what the job
//! runner publishes into and the control plane deletes from. Readers (the
//! engine) go through [`crate::ReadThrough`], which keeps a local copy.
//!
//! Publishing uploads a staged directory in [`crate::index::PublishRank`]
//! order — segments, then media playlists, then the entry manifests — and
//! the index last: until the index is up, no origin serves the asset, so it
//! is never visible half-uploaded. A failed publish deletes what it put.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::TryStreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use streamgate_net::mime::{self, CacheClass};

use super::{put_file, to_io, Bucket};
use crate::beneath::FileStamp;
use crate::error::AssetError;
use crate::index::{AssetIndex, PublishRank, INDEX_NAME};
use crate::staging::Staging;
use crate::{is_storable_name, AssetStore};

/// Objects uploaded at once within one rank.
const PARALLEL_UPLOADS: usize = 8;

/// Assets under `<prefix>assets/` in a bucket, staged in a local scratch
/// directory.
pub struct BucketStore {
    bucket: Arc<Bucket>,
    scratch: PathBuf,
}

impl BucketStore {
    /// Assets in `bucket`, built under the local directory `scratch`.
    pub fn new(bucket: Arc<Bucket>, scratch: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(scratch)?;
        Ok(Self {
            bucket,
            scratch: scratch.to_path_buf(),
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &Arc<Bucket> {
        &self.bucket
    }

    fn checked(&self, name: &str) -> Result<(), AssetError> {
        if is_storable_name(name) {
            Ok(())
        } else {
            Err(AssetError::InvalidName(name.to_string()))
        }
    }

    /// The whole object `<asset>/<path>` (a manifest, to read it).
    pub fn read(&self, relative: &str) -> io::Result<Vec<u8>> {
        let (store, key) = (self.bucket.store(), self.bucket.asset_key(relative));
        self.bucket
            .run(async move { store.get(&key).await?.bytes().await })
            .map(|bytes| bytes.to_vec())
            .map_err(to_io)
    }

    /// Whether the asset's index is up; errors when the bucket does not say.
    fn published(&self, name: &str) -> io::Result<bool> {
        let (store, key) = (self.bucket.store(), self.index_key(name));
        self.bucket.run(async move {
            match store.head(&key).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(to_io(e)),
            }
        })
    }

    fn index_key(&self, name: &str) -> Key {
        self.bucket.asset_key(&format!("{name}/{INDEX_NAME}"))
    }

    /// Uploads the packaged directory `dir` as asset `name`, index last.
    fn upload(&self, dir: &Path, name: &str) -> Result<(), AssetError> {
        self.checked(name)?;
        let action = |what: &str| format!("publishing {name} to {:?}: {what}", self.bucket);
        if self
            .published(name)
            .map_err(|e| AssetError::io(action("checking"), e))?
        {
            return Err(AssetError::Exists(PathBuf::from(name)));
        }
        let index = AssetIndex::of_dir(dir, SystemTime::now())
            .map_err(|e| AssetError::io(format!("indexing {}", dir.display()), e))?;
        let ranked: Vec<(PublishRank, Key, PathBuf, String, &'static str)> = index
            .publish_order()
            .into_iter()
            .map(|path| {
                let (content_type, class) = mime::classify(path);
                let cache_control = match class {
                    CacheClass::Immutable => "public, max-age=31536000, immutable",
                    CacheClass::Manifest => "public, max-age=2",
                };
                (
                    PublishRank::of(path),
                    self.bucket.asset_key(&format!("{name}/{path}")),
                    dir.join(path),
                    content_type.to_string(),
                    cache_control,
                )
            })
            .collect();
        let keys: Vec<Key> = ranked.iter().map(|r| r.1.clone()).collect();
        let store = self.bucket.store();
        let index_key = self.index_key(name);
        let index_bytes = index.to_json();
        let uploaded = self.bucket.run(async move {
            for rank in [
                PublishRank::Media,
                PublishRank::MediaPlaylist,
                PublishRank::Entry,
            ] {
                let batch = ranked.iter().filter(|r| r.0 == rank).cloned();
                let mut uploads = tokio::task::JoinSet::new();
                for (_, key, path, content_type, cache_control) in batch {
                    if uploads.len() >= PARALLEL_UPLOADS {
                        joined(uploads.join_next().await)?;
                    }
                    let store = Arc::clone(&store);
                    uploads.spawn(async move {
                        put_file(&*store, &key, &path, content_type, Some(cache_control)).await
                    });
                }
                while let Some(done) = uploads.join_next().await {
                    joined(Some(done))?;
                }
            }
            store
                .put(&index_key, PutPayload::from(index_bytes))
                .await
                .map_err(to_io)?;
            Ok::<(), io::Error>(())
        });
        if let Err(e) = uploaded {
            // Nothing half-written stays: the index never went up, and the
            // objects that did are deleted (best effort: a later publish of
            // the same asset overwrites whatever a dead bucket kept).
            let store = self.bucket.store();
            self.bucket.run(async move {
                for key in keys {
                    let _ = store.delete(&key).await;
                }
            });
            return Err(AssetError::io(action("uploading"), e));
        }
        tracing::info!(
            asset = name,
            objects = index.objects.len(),
            bytes = index.total_bytes(),
            "published to the bucket"
        );
        Ok(())
    }
}

/// The result of one upload task.
fn joined(done: Option<Result<io::Result<()>, tokio::task::JoinError>>) -> io::Result<()> {
    match done {
        Some(Ok(result)) => result,
        Some(Err(e)) => Err(io::Error::other(e)),
        None => Ok(()),
    }
}

impl AssetStore for BucketStore {
    fn stage(&self, name: &str) -> Result<Staging, AssetError> {
        self.checked(name)?;
        crate::staging::remove_stale(&self.scratch.join(name));
        Staging::beside(&self.scratch.join(name))
    }

    fn publish(&self, staging: Staging) -> Result<(), AssetError> {
        let name = staging
            .target()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.upload(staging.path(), &name)
        // The staging directory goes when `staging` drops.
    }

    fn import(&self, source: &Path, name: &str) -> Result<(), AssetError> {
        self.upload(source, name)?;
        std::fs::remove_dir_all(source)
            .map_err(|e| AssetError::io(format!("removing {}", source.display()), e))
    }

    /// Writers do not read objects back; the engine reads through
    /// [`crate::ReadThrough`].
    fn open(&self, _relative: &str) -> io::Result<(File, FileStamp)> {
        Err(io::ErrorKind::Unsupported.into())
    }

    fn stamp(&self, _relative: &str) -> io::Result<FileStamp> {
        Err(io::ErrorKind::Unsupported.into())
    }

    fn index(&self, name: &str) -> io::Result<Option<Arc<AssetIndex>>> {
        let (store, key) = (self.bucket.store(), self.index_key(name));
        let bytes = self
            .bucket
            .run(async move { store.get(&key).await?.bytes().await })
            .map_err(to_io)?;
        Ok(Some(Arc::new(AssetIndex::parse(&bytes)?)))
    }

    fn contains(&self, name: &str) -> bool {
        is_storable_name(name) && self.published(name).unwrap_or(false)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let store = self.bucket.store();
        let prefix = self.bucket.asset_key("");
        let keys: Vec<String> = self
            .bucket
            .run(async move {
                store
                    .list(Some(&prefix))
                    .map_ok(|meta| meta.location.to_string())
                    .try_collect()
                    .await
            })
            .map_err(to_io)?;
        let root = self.bucket.asset_key("").to_string();
        let mut names: Vec<String> = keys
            .iter()
            .filter_map(|key| {
                let rest = key.strip_prefix(&root)?.trim_start_matches('/');
                let name = rest.strip_suffix(&format!("/{INDEX_NAME}"))?;
                is_storable_name(name).then(|| name.to_string())
            })
            .collect();
        names.sort();
        Ok(names)
    }

    fn remove(&self, name: &str) -> Result<bool, AssetError> {
        self.checked(name)?;
        let store = self.bucket.store();
        let index_key = self.index_key(name);
        let prefix = self.bucket.asset_key(name);
        let removed = self.bucket.run(async move {
            // The index first: from then on no origin fetches the asset.
            // (S3 answers a DELETE of a missing key with success, so ask.)
            let indexed = match store.head(&index_key).await {
                Ok(_) => true,
                Err(object_store::Error::NotFound { .. }) => false,
                Err(e) => return Err(to_io(e)),
            };
            if indexed {
                store.delete(&index_key).await.map_err(to_io)?;
            }
            let keys: Vec<Key> = store
                .list(Some(&prefix))
                .map_ok(|meta| meta.location)
                .try_collect()
                .await
                .map_err(to_io)?;
            let any = !keys.is_empty();
            for key in keys {
                match store.delete(&key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(to_io(e)),
                }
            }
            Ok(indexed || any)
        });
        removed.map_err(|e| AssetError::io(format!("removing {name} from {:?}", self.bucket), e))
    }
}

//! [`Bucket`]: S3-compatible object storage (AWS S3, Garage, MinIO, Ceph
//! RGW, R2) through the `object_store` crate, on rustls with ring.
//!
//! The client runs on a small tokio runtime of its own, so that blocking
//! callers (the transcoder's publish, the control plane's delete through
//! `spawn_blocking`) and the engine's read-through fetches share one client
//! and one connection pool, and none of them needs a runtime of its own.
//!
//! Keys: `<prefix>assets/<asset-id>/<path>` for packaged assets (their index
//! last, [`crate::index`]) and `<prefix>sources/<asset-id>` for uploaded
//! sources, so that any node can transcode them.

mod credentials;
mod store;

use std::fmt;
use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
/// An object's key in the bucket.
pub use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};
use tokio::io::AsyncWriteExt;

pub use credentials::{CredentialSource, Credentials};
pub use store::BucketStore;

use crate::error::AssetError;

/// Objects above this size go up in parts (S3's parts are 5 MiB at least).
const MULTIPART_ABOVE: u64 = 16 * 1024 * 1024;
/// The size of each part.
const PART: usize = 8 * 1024 * 1024;

/// Where the bucket is and how to reach it (`[storage]`).
#[derive(Debug, Clone)]
pub struct BucketConfig {
    /// The S3 endpoint (`http://127.0.0.1:3900`); `None` for AWS itself.
    pub endpoint: Option<String>,
    /// The bucket.
    pub bucket: String,
    /// The region (`garage` for Garage, `us-east-1` for MinIO).
    pub region: String,
    /// Path-style requests (`endpoint/bucket/key`) rather than virtual
    /// hosts (`bucket.endpoint/key`): what self-hosted servers want.
    pub path_style: bool,
    /// A key prefix, so that one bucket can hold several installations.
    pub prefix: String,
    /// Where the access keys are.
    pub credentials: CredentialSource,
    /// How long one request may take before it is retried.
    pub request_timeout: Duration,
}

/// A connected bucket.
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    name: String,
    runtime: tokio::runtime::Runtime,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bucket({}, prefix {:?})", self.name, self.prefix)
    }
}

impl Bucket {
    /// A client for the configured bucket (nothing is sent yet: see
    /// [`Bucket::check`]).
    pub fn connect(config: &BucketConfig) -> Result<Arc<Self>, AssetError> {
        // reqwest's rustls takes the process's provider: ring, as everywhere
        // else in StreamGate (already installed is fine).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let credentials = config.credentials.resolve()?;
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&credentials.access_key_id)
            .with_secret_access_key(credentials.secret_access_key())
            .with_virtual_hosted_style_request(!config.path_style)
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(true)
                    .with_connect_timeout(Duration::from_secs(3))
                    .with_timeout(config.request_timeout),
            )
            // A few quick retries: a dead bucket must turn into a 503 in
            // seconds, not after object_store's default three minutes.
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: config.request_timeout * 2,
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let store = builder
            .build()
            .map_err(|e| AssetError::io("configuring the bucket", io::Error::other(e)))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sg-bucket")
            .enable_all()
            .build()
            .map_err(|e| AssetError::io("starting the bucket client", e))?;
        Ok(Arc::new(Self {
            store: Arc::new(store),
            prefix: config.prefix.clone(),
            name: config.bucket.clone(),
            runtime,
        }))
    }

    /// The key of `<asset-id>/<path>`.
    pub fn asset_key(&self, relative: &str) -> Key {
        Key::from(format!("{}assets/{relative}", self.prefix))
    }

    /// The key of an asset's uploaded source.
    pub fn source_key(&self, asset: &str) -> Key {
        Key::from(format!("{}sources/{asset}", self.prefix))
    }

    /// Runs `work` on the bucket's runtime and waits for it. Callable from
    /// any thread, including a tokio one (only that thread waits).
    pub fn run<F>(&self, work: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.recv().expect("the bucket runtime outlives its tasks")
    }

    /// Starts `work` on the bucket's runtime.
    pub fn spawn<F>(&self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.runtime.spawn(work);
    }

    /// The client, for work run on the bucket's runtime.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// Whether the bucket answers (a HEAD for a key that is never there:
    /// "not found" is an answer).
    pub fn check(&self) -> io::Result<()> {
        let store = self.store();
        let key = Key::from(format!("{}.streamgate-check", self.prefix));
        self.run(async move {
            match store.head(&key).await {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(to_io(e)),
            }
        })
    }

    /// Uploads the file at `path` as `key` (blocking; in parts when big).
    pub fn put_file(&self, key: Key, path: &Path, content_type: &str) -> io::Result<()> {
        let (store, path, content_type) = (self.store(), path.to_path_buf(), content_type.into());
        self.run(async move { put_file(&*store, &key, &path, content_type, None).await })
    }

    /// Downloads `key` into the file at `path` (blocking; staged beside it
    /// and renamed, so `path` is whole or absent).
    pub fn get_file(&self, key: Key, path: &Path) -> io::Result<u64> {
        let (store, path) = (self.store(), path.to_path_buf());
        self.run(async move {
            let staging = path.with_extension("part");
            let (size, _) = get_to_file(&*store, &key, &staging).await?;
            tokio::fs::rename(&staging, &path).await?;
            Ok(size)
        })
    }

    /// Deletes `key` (absent is fine).
    pub fn delete(&self, key: Key) -> io::Result<()> {
        let store = self.store();
        self.run(async move {
            match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(to_io(e)),
            }
        })
    }
}

/// Uploads a file with its media type and cache policy stored as object
/// metadata (so a CDN or a player reading the bucket directly gets them).
pub(crate) async fn put_file(
    store: &dyn ObjectStore,
    key: &Key,
    path: &Path,
    content_type: String,
    cache_control: Option<&'static str>,
) -> io::Result<()> {
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, content_type.into());
    if let Some(cache_control) = cache_control {
        attributes.insert(Attribute::CacheControl, cache_control.into());
    }
    let size = tokio::fs::metadata(path).await?.len();
    if size <= MULTIPART_ABOVE {
        let bytes = tokio::fs::read(path).await?;
        let options = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        store
            .put_opts(key, PutPayload::from(bytes), options)
            .await
            .map_err(to_io)?;
        return Ok(());
    }
    let options = PutMultipartOptions {
        attributes,
        ..PutMultipartOptions::default()
    };
    let upload = store
        .put_multipart_opts(key, options)
        .await
        .map_err(to_io)?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
    let mut file = tokio::fs::File::open(path).await?;
    let mut buf = vec![0u8; PART];
    loop {
        let n = tokio::io::AsyncReadExt::read(&mut file, &mut buf).await?;
        if n == 0 {
            break;
        }
        writer.wait_for_capacity(2).await.map_err(to_io)?;
        writer.write(&buf[..n]);
    }
    writer.finish().await.map_err(to_io)?;
    Ok(())
}

/// Streams `key` into a new file at `path`, hashing as it goes; returns the
/// size and the content's entity tag ([`crate::index::ObjectInfo::etag`]).
pub(crate) async fn get_to_file(
    store: &dyn ObjectStore,
    key: &Key,
    path: &Path,
) -> io::Result<(u64, String)> {
    use sha2::{Digest, Sha256};
    let got = store
        .get_opts(key, GetOptions::default())
        .await
        .map_err(to_io)?;
    let mut stream = got.into_stream();
    let mut file = tokio::fs::File::create(path).await?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(to_io)?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.sync_data().await?;
    Ok((size, crate::index::tag(&hasher.finalize())))
}

/// An object store failure as an I/O error: "not found" stays NotFound
/// (the asset or object is not there), everything else is a failure of the
/// bucket (unreachable, refused, timed out) that callers answer with 503.
pub(crate) fn to_io(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e),
        other => io::Error::other(other),
    }
}

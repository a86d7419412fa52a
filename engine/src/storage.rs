//! Object storage for the engine (`[storage] kind = "s3"`): the bucket
//! client, the local read-through copy the workers serve from, and the
//! store the job runner publishes into — one client for both.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use metrics::{counter, gauge};
use std::path::Path;

use streamgate_assets::{AssetError, AssetStore, Bucket, BucketConfig, BucketStore, ReadThrough};

use crate::config::BucketStorage;

/// The engine's two views of the bucket.
pub(crate) struct Storage {
    /// What the workers serve from.
    pub read_through: Arc<ReadThrough>,
    /// What the job runner publishes into.
    pub publish: Arc<dyn AssetStore>,
    /// The client both use (sources go up and down through it).
    pub bucket: Arc<Bucket>,
    /// Where jobs build assets and keep sources.
    pub scratch: std::path::PathBuf,
}

/// Connects to the bucket and opens the local copy. An unreachable bucket
/// is said in the log but does not stop the engine: what the copy holds
/// can still be served.
pub(crate) fn open(config: &BucketStorage) -> Result<Storage, AssetError> {
    let (bucket, publish) = connect(&config.bucket, &config.scratch)?;
    let read_through = ReadThrough::open(
        Arc::clone(&bucket),
        &config.cache_dir,
        config.cache_max_bytes,
        config.revalidate_after,
    )
    .map_err(|e| AssetError::io(format!("opening {}", config.cache_dir.display()), e))?;
    Ok(Storage {
        read_through: Arc::new(read_through),
        publish,
        bucket,
        scratch: config.scratch.clone(),
    })
}

/// The bucket client, and the store that publishes into it (building
/// under `scratch`): what an engine and a `streamgate worker` share. An
/// unreachable bucket is said in the log; what needs it waits for it.
pub(crate) fn connect(
    config: &BucketConfig,
    scratch: &Path,
) -> Result<(Arc<Bucket>, Arc<dyn AssetStore>), AssetError> {
    let bucket = Bucket::connect(config)?;
    match bucket.check() {
        Ok(()) => tracing::info!(bucket = ?bucket, "object storage reachable"),
        Err(e) => tracing::warn!(
            bucket = ?bucket,
            error = %e,
            "object storage does not answer: what needs it is refused (503) or waits"
        ),
    }
    let publish = BucketStore::new(Arc::clone(&bucket), scratch)
        .map_err(|e| AssetError::io(format!("creating {}", scratch.display()), e))?;
    Ok((bucket, Arc::new(publish)))
}

/// Refreshes the read-through copy's series (before each scrape).
pub(crate) fn export_metrics(copy: &ReadThrough) {
    let stats = copy.stats();
    gauge!("streamgate_store_cache_bytes").set(stats.bytes.load(Ordering::Relaxed) as f64);
    counter!("streamgate_store_fetches_total", "result" => "fetched")
        .absolute(stats.fetched.load(Ordering::Relaxed));
    counter!("streamgate_store_fetches_total", "result" => "failed")
        .absolute(stats.failed.load(Ordering::Relaxed));
    counter!("streamgate_store_evictions_total").absolute(stats.evicted.load(Ordering::Relaxed));
}

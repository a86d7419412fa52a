//! The shared job queue, as seen from a node (`[storage] kind = "s3"`):
//! [`JobSink`] is where ingest sends a finished upload (the local spool on
//! one box; the bucket and the control plane's queue when nodes share
//! storage), and [`SharedRunner`] claims jobs from that queue — in an
//! engine, or alone as `streamgate worker`.
//!
//! A runner holds a job under a lease it renews every third of its length
//! while it fetches the source, transcodes and publishes. One that dies
//! (kill -9, a lost machine) stops renewing; when the lease runs out the
//! next claim takes the job over, and what the dead runner staged stays on
//! its own disk, never published.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use streamgate_api::v1::Job;
use streamgate_assets::bucket::Key;
use streamgate_assets::{AssetError, AssetStore, Bucket};
use streamgate_transcode_gpu::jobs::Spool;
use streamgate_transcode_gpu::{ladder, transcode, GpuMode, Options, PublishTo, TranscodeError};

use crate::control::ControlClient;

impl JobSink {
    /// The shared queue for `control`, sources going up to `bucket`.
    pub fn shared(control: Arc<ControlClient>, bucket: Arc<Bucket>) -> Self {
        Self::Shared {
            control,
            bucket,
            sending: Arc::default(),
        }
    }

    /// Whether a completed upload's source still on disk means it was never
    /// queued (the shared queue removes sources once queued; the spool
    /// keeps them).
    pub fn retries_leftovers(&self) -> bool {
        matches!(self, Self::Shared { .. })
    }
}

/// The lease a runner asks for.
pub const LEASE: Duration = Duration::from_secs(30);

/// Where ingest sends a finished upload.
pub enum JobSink {
    /// The local spool (one box): the job runner in this process takes it.
    Spool(Arc<Spool>),
    /// The shared queue: the source goes to the bucket, the job to the
    /// control plane, and any runner takes it.
    Shared {
        /// The control plane (the queue).
        control: Arc<ControlClient>,
        /// Where the source goes.
        bucket: Arc<Bucket>,
        /// Assets whose source is on its way up now.
        sending: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    },
}

impl JobSink {
    /// Queues a transcode of `source` into `asset` (published at `out` on
    /// one box). With the shared queue the source is uploaded on a thread
    /// of its own, so the upload's last request is answered at once, and
    /// removed once the job is queued; one that could not go up (the bucket
    /// or the control plane down, the engine stopped) stays, and
    /// [`JobSink::retries_leftovers`] says the ingest sweep sends it again.
    pub fn submit(
        &self,
        source: &Path,
        asset: &str,
        out: &Path,
        ladder: &str,
        segment_seconds: u32,
    ) -> Result<(), String> {
        match self {
            Self::Spool(spool) => spool
                .submit(source, out, ladder, segment_seconds)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Self::Shared {
                control,
                bucket,
                sending,
            } => {
                if !sending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(asset.to_string())
                {
                    return Ok(()); // already on its way
                }
                let (control, bucket) = (Arc::clone(control), Arc::clone(bucket));
                let sending = Arc::clone(sending);
                let (source, asset, ladder) =
                    (source.to_path_buf(), asset.to_string(), ladder.to_string());
                std::thread::Builder::new()
                    .name("sg-source-up".into())
                    .spawn(move || {
                        let key = bucket.source_key(&asset);
                        let queued = bucket
                            .put_file(key.clone(), &source, "application/octet-stream")
                            .map_err(|e| format!("uploading the source to the bucket: {e}"))
                            .and_then(|()| {
                                control
                                    .submit_job(&asset, key.as_ref(), &ladder, segment_seconds)
                                    .map_err(|e| format!("queueing the transcode: {e}"))
                            });
                        match queued {
                            // The bucket has it now: a source left beside
                            // its upload means "not queued yet".
                            Ok(()) => {
                                let _ = std::fs::remove_file(&source);
                            }
                            // Kept: the ingest sweep sends it again.
                            Err(e) => {
                                tracing::warn!(asset, error = %e, "ingest: the source waits for the next try");
                            }
                        }
                        sending
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&asset);
                    })
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// How a shared runner works.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Jobs at once.
    pub workers: usize,
    /// x264 preset.
    pub preset: String,
    /// The lease asked for (renewed every third of it).
    pub lease: Duration,
    /// Where sources are downloaded and assets built.
    pub scratch: PathBuf,
}

/// Threads claiming jobs from the shared queue.
pub struct SharedRunner {
    stop: Arc<AtomicBool>,
}

/// What each worker thread shares.
struct Parts {
    control: Arc<ControlClient>,
    bucket: Arc<Bucket>,
    publish: Arc<dyn AssetStore>,
    config: QueueConfig,
    stop: Arc<AtomicBool>,
}

impl SharedRunner {
    /// Starts `config.workers` threads.
    pub fn start(
        config: QueueConfig,
        control: Arc<ControlClient>,
        bucket: Arc<Bucket>,
        publish: Arc<dyn AssetStore>,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&config.scratch)?;
        let stop = Arc::new(AtomicBool::new(false));
        let parts = Arc::new(Parts {
            control,
            bucket,
            publish,
            config,
            stop: Arc::clone(&stop),
        });
        let host = hostname();
        for n in 0..parts.config.workers {
            let parts = Arc::clone(&parts);
            let runner = format!("{host}:{}:{n}", std::process::id());
            std::thread::Builder::new()
                .name(format!("sg-job-{n}"))
                .spawn(move || parts.work(&runner))?;
        }
        Ok(Self { stop })
    }

    /// A runner on its own (`streamgate worker`): its own client for the
    /// control plane (operator token from `token`, or the endpoint's client
    /// certificate) and for the bucket.
    pub fn standalone(
        endpoint: &crate::config::ControlEndpoint,
        token: PathBuf,
        bucket: &streamgate_assets::BucketConfig,
        config: QueueConfig,
    ) -> Result<Self, String> {
        let control = ControlClient::new(endpoint, token).map_err(|e| e.to_string())?;
        let (bucket, publish) =
            crate::storage::connect(bucket, &config.scratch).map_err(|e| e.to_string())?;
        Self::start(config, Arc::new(control), bucket, publish).map_err(|e| e.to_string())
    }

    /// Asks the threads to stop after their current job.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Parts {
    fn work(&self, runner: &str) {
        let mut unreachable_said = false;
        while !self.stop.load(Ordering::SeqCst) {
            match self.control.claim_job(runner, self.config.lease) {
                Ok(Some(job)) => {
                    unreachable_said = false;
                    self.run(runner, job);
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(500)),
                Err(e) => {
                    if !unreachable_said {
                        tracing::warn!(runner, error = %e, "jobs: cannot claim from the control plane");
                        unreachable_said = true;
                    }
                    std::thread::sleep(Duration::from_secs(2));
                }
            }
        }
    }

    fn run(&self, runner: &str, job: Job) {
        tracing::info!(
            job = job.id,
            asset = job.asset_id,
            runner,
            attempt = job.attempts,
            "job claimed"
        );
        let percent = Arc::new(AtomicU32::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = self.heartbeat(runner, &job, &percent, &done, &lost);
        let result = self.attempt(&job, &percent, &lost);
        done.store(true, Ordering::SeqCst);
        if let Some(h) = heartbeat {
            let _ = h.join();
        }
        if lost.load(Ordering::SeqCst) {
            tracing::warn!(
                job = job.id,
                runner,
                "job: the lease was lost; another runner has it"
            );
            return;
        }
        let (error, retry) = match result {
            Ok(()) => (String::new(), false),
            Err(Attempt::Retry(e)) => (e, true),
            Err(Attempt::Fatal(e)) => (e, false),
        };
        if let Err(e) = self.control.finish_job(&job.id, runner, &error, retry) {
            // The lease runs out and the job is taken over: at worst it
            // is transcoded twice, and publishing twice is refused.
            tracing::warn!(job = job.id, error = %e, "job: reporting the outcome");
        }
    }

    /// Renews the lease every third of it until `done`; sets `lost` when
    /// the control plane says another runner has the job.
    fn heartbeat(
        &self,
        runner: &str,
        job: &Job,
        percent: &Arc<AtomicU32>,
        done: &Arc<AtomicBool>,
        lost: &Arc<AtomicBool>,
    ) -> Option<std::thread::JoinHandle<()>> {
        let (control, lease) = (Arc::clone(&self.control), self.config.lease);
        let (runner, id) = (runner.to_string(), job.id.clone());
        let (percent, done, lost) = (Arc::clone(percent), Arc::clone(done), Arc::clone(lost));
        std::thread::Builder::new()
            .name("sg-job-lease".into())
            .spawn(move || {
                let every = lease / 3;
                let tick = Duration::from_millis(100);
                let mut waited = Duration::ZERO;
                while !done.load(Ordering::SeqCst) {
                    std::thread::sleep(tick);
                    waited += tick;
                    if waited < every {
                        continue;
                    }
                    waited = Duration::ZERO;
                    match control.renew_lease(&id, &runner, lease, percent.load(Ordering::Relaxed))
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        // Unreachable for a moment: the lease has two more
                        // thirds to go.
                        Err(e) => tracing::warn!(job = id, error = %e, "job: renewing the lease"),
                    }
                }
            })
            .ok()
    }

    /// Fetches the source, transcodes and publishes.
    fn attempt(
        &self,
        job: &Job,
        percent: &AtomicU32,
        lost: &Arc<AtomicBool>,
    ) -> Result<(), Attempt> {
        if self.publish.contains(&job.asset_id) {
            // An earlier attempt published, then died before saying so.
            return Ok(());
        }
        let rungs = ladder::parse(&job.ladder)
            .map_err(|e| Attempt::Fatal(format!("ladder {:?}: {e}", job.ladder)))?;
        let source = self.config.scratch.join(format!("{}.source", job.id));
        let fetched = self
            .bucket
            .get_file(Key::from(job.source_key.as_str()), &source);
        if let Err(e) = fetched {
            let _ = std::fs::remove_file(&source);
            return Err(if e.kind() == std::io::ErrorKind::NotFound {
                Attempt::Fatal(format!(
                    "the source {} is not in the bucket",
                    job.source_key
                ))
            } else {
                Attempt::Retry(format!("fetching the source: {e}"))
            });
        }
        let mut opts = Options::new(source.clone(), self.config.scratch.join(&job.asset_id));
        opts.ladder = rungs;
        opts.segment_seconds = job.segment_seconds.max(1);
        opts.gpu = GpuMode::Auto;
        opts.preset = self.config.preset.clone();
        // A runner that lost its lease does not publish: the runner that
        // took the job over does.
        opts.publish_to = Some(PublishTo(Arc::new(WhileLeased {
            store: Arc::clone(&self.publish),
            lost: Arc::clone(lost),
        })));
        let mut report = |p: streamgate_transcode_gpu::Progress| {
            if let Some(pct) = p.percent() {
                percent.store(pct as u32, Ordering::Relaxed);
            }
        };
        let result = transcode(&opts, &mut report);
        let _ = std::fs::remove_file(&source);
        match result {
            Ok(_) => Ok(()),
            // Published meanwhile by a runner that took over.
            Err(_) if self.publish.contains(&job.asset_id) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }
}

/// The bucket, refusing to publish once the job's lease is lost.
struct WhileLeased {
    store: Arc<dyn AssetStore>,
    lost: Arc<AtomicBool>,
}

impl AssetStore for WhileLeased {
    fn stage(&self, name: &str) -> Result<streamgate_assets::Staging, AssetError> {
        self.store.stage(name)
    }

    fn publish(&self, staging: streamgate_assets::Staging) -> Result<(), AssetError> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(AssetError::io(
                "publishing",
                std::io::Error::other("the job's lease was lost to another runner"),
            ));
        }
        self.store.publish(staging)
    }

    fn import(&self, source: &Path, name: &str) -> Result<(), AssetError> {
        self.store.import(source, name)
    }

    fn open(
        &self,
        relative: &str,
    ) -> std::io::Result<(std::fs::File, streamgate_assets::FileStamp)> {
        self.store.open(relative)
    }

    fn stamp(&self, relative: &str) -> std::io::Result<streamgate_assets::FileStamp> {
        self.store.stamp(relative)
    }

    fn index(&self, name: &str) -> std::io::Result<Option<Arc<streamgate_assets::AssetIndex>>> {
        self.store.index(name)
    }

    fn contains(&self, name: &str) -> bool {
        self.store.contains(name)
    }

    fn list(&self) -> std::io::Result<Vec<String>> {
        self.store.list()
    }

    fn remove(&self, name: &str) -> Result<bool, AssetError> {
        self.store.remove(name)
    }
}

/// How an attempt failed.
enum Attempt {
    /// Another attempt may succeed (the bucket, the disk, the machine).
    Retry(String),
    /// It never will (the source, the ladder).
    Fatal(String),
}

fn classify(e: TranscodeError) -> Attempt {
    match e {
        TranscodeError::Io(..) | TranscodeError::Encode(_) => Attempt::Retry(e.to_string()),
        other => Attempt::Fatal(other.to_string()),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

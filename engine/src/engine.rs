//! Starting and stopping the data plane.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::admin;
use crate::config::EngineConfig;
use crate::control::ControlClient;
use crate::gate::SharedAccess;
use crate::ingest::Ingest;
use crate::jobs::Runner;
use crate::shutdown::{self, Drain};
use crate::sync;
use crate::telemetry;
use crate::worker::{self, Spawn};
use streamgate_assets::{AssetStore, LocalStore};

/// Why the engine could not start.
#[derive(Debug)]
pub enum EngineError {
    /// The assets root cannot be opened.
    Root(std::path::PathBuf, io::Error),
    /// A listener could not be bound.
    Bind(SocketAddr, io::Error),
    /// A worker thread or its io_uring ring could not be created.
    Worker(io::Error),
    /// The metrics recorder could not be installed.
    Metrics(String),
    /// The job spool could not be opened.
    Jobs(String),
    /// The TLS certificate or key could not be loaded.
    Tls(crate::tls::TlsError),
    /// The ACME directory could not be prepared.
    Acme(crate::acme::AcmeError),
    /// The bucket client or the local copy could not be set up.
    Storage(streamgate_assets::AssetError),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root(path, e) => write!(f, "cannot open assets root {}: {e}", path.display()),
            Self::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            Self::Worker(e) => write!(f, "cannot start a worker: {e}"),
            Self::Metrics(e) => write!(f, "cannot install the metrics recorder: {e}"),
            Self::Jobs(e) => write!(f, "cannot start the job runner: {e}"),
            Self::Tls(e) => write!(f, "TLS: {e}"),
            Self::Acme(e) => write!(f, "ACME: {e}"),
            Self::Storage(e) => write!(f, "storage: {e}"),
        }
    }
}

impl std::error::Error for EngineError {}

/// A running engine.
pub struct Engine {
    workers: Vec<JoinHandle<()>>,
    drain: Drain,
    ready: Arc<AtomicBool>,
    grace: Duration,
    jobs: Option<Arc<Runner>>,
    /// The shared queue's runner (`[storage] kind = "s3"`).
    shared_jobs: Option<crate::queue::SharedRunner>,
    certs: Option<Arc<crate::tls::CertStore>>,
    liveness: Arc<crate::liveness::Liveness>,
    settings: Arc<crate::reload::Published>,
    running: Arc<EngineConfig>,
}

impl Engine {
    /// Opens the root, installs metrics, starts the admin listener and one
    /// worker per configured thread, and returns once every worker listens.
    ///
    /// SIGTERM and SIGINT are blocked in the calling thread and the threads
    /// it starts; collect them with [`crate::wait_for_termination_signal`].
    pub fn start(config: EngineConfig) -> Result<Self, EngineError> {
        shutdown::block_termination_signals();
        let storage = match &config.storage {
            Some(storage) => Some(crate::storage::open(storage).map_err(EngineError::Storage)?),
            None => None,
        };
        let assets: Arc<dyn AssetStore> = match &storage {
            Some(s) => Arc::clone(&s.read_through) as Arc<dyn AssetStore>,
            None => Arc::new(
                LocalStore::open(&config.root)
                    .map_err(|e| EngineError::Root(config.root.clone(), e))?,
            ),
        };
        let metrics = telemetry::install().map_err(EngineError::Metrics)?;
        let config = Arc::new(config);
        let drain = Drain::default();
        let ready = Arc::new(AtomicBool::new(false));
        if config.jobs.is_some() {
            crate::telemetry::gpu_stages(&streamgate_transcode_gpu::stages::Capabilities::probe());
        }
        // One box: the spool's runner. Shared storage: the shared queue's
        // (started below, once the control plane client exists).
        let jobs = match (&config.jobs, &storage) {
            (Some(j), None) => Some(Arc::new(Runner::start(j).map_err(EngineError::Jobs)?)),
            _ => None,
        };
        let mut certs = None;
        if let Some(acme) = &config.acme {
            crate::acme::ensure_placeholder(acme).map_err(EngineError::Acme)?;
        }
        let tls = match &config.tls {
            Some(t) => {
                let probed = crate::ktls::probe();
                let ktls = t.ktls && probed == crate::ktls::Ktls::Available;
                let (server, store) =
                    crate::tls::server_config(t, ktls).map_err(EngineError::Tls)?;
                certs = Some(store);
                // Said once, here; per connection only in metrics.
                if ktls {
                    tracing::info!(
                        listen = %t.listen,
                        "TLS listener: HTTP/1.1 connections go to kernel TLS after the handshake (bodies spliced)"
                    );
                } else {
                    tracing::info!(
                        listen = %t.listen,
                        kernel = ?probed,
                        enabled = t.ktls,
                        "TLS listener: rustls in userspace (bodies copied)"
                    );
                }
                telemetry::ktls(ktls);
                Some(server)
            }
            None => None,
        };
        let challenges = Arc::new(crate::acme::Challenges::default());
        let web = match &config.web {
            Some(w) => Some(Arc::new(
                crate::web::Web::load(w).map_err(EngineError::Worker)?,
            )),
            None => None,
        };
        let renewer = match (&config.acme, &certs) {
            (Some(acme), Some(store)) => Some(
                crate::acme::start(acme.clone(), Arc::clone(&challenges), Arc::clone(store))
                    .map_err(EngineError::Worker)?,
            ),
            _ => None,
        };
        let liveness = Arc::new(crate::liveness::Liveness::new(config.worker_count()));
        let settings = Arc::new(crate::reload::Published::new(crate::reload::Settings::of(
            &config,
        )));
        admin::start(
            config.admin,
            metrics,
            admin::State {
                ready: Arc::clone(&ready),
                drain: drain.clone(),
                jobs: jobs.clone(),
                certs: certs.clone(),
                liveness: Arc::clone(&liveness),
                fault_injection: config.fault_injection,
                start_time_keys: crate::reload::start_time_keys(&config),
                renewer,
                read_through: storage.as_ref().map(|s| Arc::clone(&s.read_through)),
            },
        )
        .map_err(|e| EngineError::Bind(config.admin, e))?;

        let control = match (&config.ingest, &config.control) {
            (Some(ingest), Some(endpoint)) => Some(Arc::new(
                ControlClient::new(endpoint, ingest.operator_token.clone())
                    .map_err(EngineError::Worker)?,
            )),
            _ => None,
        };
        let shared_jobs = match (&storage, &config.jobs, &control) {
            (Some(s), Some(j), Some(control)) if j.workers > 0 => Some(
                crate::queue::SharedRunner::start(
                    crate::queue::QueueConfig {
                        workers: j.workers,
                        preset: j.preset.clone(),
                        lease: j.lease,
                        scratch: s.scratch.clone(),
                    },
                    Arc::clone(control),
                    Arc::clone(&s.bucket),
                    Arc::clone(&s.publish),
                )
                .map_err(EngineError::Worker)?,
            ),
            _ => None,
        };
        let sink = match (&storage, &jobs, &control) {
            (Some(s), _, Some(control)) => Some(crate::queue::JobSink::shared(
                Arc::clone(control),
                Arc::clone(&s.bucket),
            )),
            (None, Some(runner), Some(control)) => {
                runner
                    .report_to(Arc::clone(control), config.root.clone())
                    .map_err(EngineError::Worker)?;
                Some(crate::queue::JobSink::Spool(runner.spool()))
            }
            _ => None,
        };
        let ingest = match (&config.ingest, control, sink) {
            (Some(ingest), Some(control), Some(sink)) => Some(
                Ingest::start(&config, ingest.clone(), control, sink)
                    .map_err(EngineError::Worker)?,
            ),
            _ => None,
        };
        let access = Arc::new(SharedAccess::default());
        if let Some(endpoint) = &config.control {
            sync::start(
                endpoint.clone(),
                config.control_poll,
                Arc::clone(&access),
                Arc::clone(&assets),
            )
            .map_err(EngineError::Worker)?;
        }
        let (bound_tx, bound_rx) = mpsc::channel();
        let mut workers = Vec::new();
        for index in 0..config.worker_count() {
            let spawn = Spawn {
                index,
                config: Arc::clone(&config),
                assets: Arc::clone(&assets),
                access: Arc::clone(&access),
                ingest: ingest.clone(),
                drain: drain.clone(),
                bound: bound_tx.clone(),
                tls: tls.clone(),
                liveness: Arc::clone(&liveness),
                settings: Arc::clone(&settings),
                challenges: config.acme.is_some().then(|| Arc::clone(&challenges)),
                web: web.clone(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("sg-worker-{index}"))
                .spawn(move || worker::run(spawn))
                .map_err(EngineError::Worker)?;
            workers.push(handle);
        }
        drop(bound_tx);
        let engine = Self {
            workers,
            drain,
            ready,
            grace: config.shutdown_grace,
            jobs,
            shared_jobs,
            certs,
            liveness,
            settings,
            running: Arc::clone(&config),
        };
        for _ in 0..engine.workers.len() {
            match bound_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    engine.stop_now();
                    return Err(EngineError::Bind(config.listen, e));
                }
                Err(_) => {
                    engine.stop_now();
                    return Err(EngineError::Worker(io::Error::other(
                        "worker exited during start",
                    )));
                }
            }
        }
        engine.ready.store(true, Ordering::SeqCst);
        Ok(engine)
    }

    /// Drains: stop accepting, let in-flight responses finish, and return
    /// when every worker is done or the grace period ends. Returns whether
    /// everything finished in time.
    pub fn shutdown(self) -> bool {
        self.ready.store(false, Ordering::SeqCst);
        self.drain.trigger();
        if let Some(shared) = &self.shared_jobs {
            shared.stop();
        }
        if let Some(jobs) = &self.jobs {
            jobs.stop();
        }
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if self.workers.iter().all(|w| w.is_finished()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// A handle that says whether the workers' loops turn, for a
    /// watchdog thread.
    pub fn health(&self) -> Health {
        Health {
            liveness: Arc::clone(&self.liveness),
            jobs: self.jobs.clone(),
        }
    }

    /// What SIGHUP does: reads the TLS certificates again (new
    /// handshakes use them, open connections keep theirs; a bad file keeps
    /// the old ones, and the error says why), and, given the configuration
    /// as it now reads, applies what can change live (`crate::reload`) and
    /// returns the changed keys that need a restart.
    pub fn reload(&self, next: Option<&EngineConfig>) -> Result<Vec<&'static str>, EngineError> {
        if let Some(certs) = &self.certs {
            certs.reload().map_err(EngineError::Tls)?;
            tracing::info!("TLS certificate reloaded");
        }
        let Some(next) = next else {
            return Ok(Vec::new());
        };
        self.settings.publish(crate::reload::Settings::of(next));
        let restart = crate::reload::needs_restart(&self.running, next);
        if !restart.is_empty() {
            tracing::warn!(keys = ?restart, "changed keys that take effect only after a restart");
        }
        Ok(restart)
    }

    fn stop_now(&self) {
        self.drain.trigger();
    }
}

/// Asks a running engine how it is.
#[derive(Clone)]
pub struct Health {
    liveness: Arc<crate::liveness::Liveness>,
    jobs: Option<Arc<Runner>>,
}

impl Health {
    /// The workers whose loop has not turned within `within` (a healthy
    /// worker turns it every 50 ms, idle or not).
    pub fn stalled_workers(&self, within: Duration) -> Vec<usize> {
        self.liveness.stalled(within)
    }

    /// Jobs queued and running, when this engine runs jobs.
    pub fn job_counts(&self) -> Option<(usize, usize)> {
        self.jobs.as_ref().map(|j| j.counts())
    }
}

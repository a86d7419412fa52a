//! Starting and stopping the control plane: its own tokio runtime, the gRPC
//! and HTTP listeners, and housekeeping.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use streamgate_api::v1 as pb;
use tokio::sync::watch;

use crate::config::ControlConfig;
use crate::grpc::Grpc;
use crate::secrets;
use crate::service::Service;
use crate::store::Store;

/// Why the control plane did not start.
#[derive(Debug)]
pub enum StartError {
    /// The tokio runtime could not be built.
    Runtime(std::io::Error),
    /// The database could not be opened or migrated.
    Database(String),
    /// A secret in the data dir could not be read or created.
    Secrets(String),
    /// Bad configuration (public URL, chain URLs).
    Config(String),
    /// A listener could not bind.
    Bind(SocketAddr, std::io::Error),
    /// The TLS certificate or key could not be used.
    Tls(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Runtime(e) => write!(f, "cannot start the async runtime: {e}"),
            Self::Database(e) => write!(f, "cannot open the database: {e}"),
            Self::Secrets(e) => write!(f, "{e}"),
            Self::Config(e) => write!(f, "configuration: {e}"),
            Self::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            Self::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// What a first start created, for the operator to be told.
#[derive(Debug, Clone, Default)]
pub struct Created {
    /// The operator token file, when it was just created.
    pub operator_token: Option<PathBuf>,
    /// The signing-key directory, when its first key was just created.
    pub signing_key: Option<PathBuf>,
}

/// A running control plane.
pub struct ControlPlane {
    runtime: tokio::runtime::Runtime,
    service: Arc<Service>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Bound gRPC address.
    pub grpc: SocketAddr,
    /// Bound HTTP address.
    pub http: SocketAddr,
    /// What this start created.
    pub created: Created,
}

impl ControlPlane {
    /// Opens the database, loads or creates the secrets, binds both
    /// listeners and serves until [`ControlPlane::shutdown`].
    pub fn start(config: ControlConfig) -> Result<Self, StartError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sg-control")
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let metrics = crate::metrics::install(config.own_metrics);
        let (token, created_token) = secrets::operator_token(&config.operator_token_path())
            .map_err(|e| StartError::Secrets(e.to_string()))?;
        let had_key = std::fs::read_dir(config.keys_dir()).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "key"))
        });
        let created = Created {
            operator_token: created_token.then(|| config.operator_token_path()),
            signing_key: (!had_key).then(|| config.keys_dir()),
        };
        let (grpc_addr, http_addr) = (config.grpc, config.http);
        let tls = match &config.tls {
            Some(files) => Some(crate::tls::Identity::load(files).map_err(StartError::Tls)?),
            None => None,
        };
        let (service, grpc_listener, http_listener) = runtime.block_on(async {
            let store = Store::open(&config.database)
                .await
                .map_err(|e| StartError::Database(e.to_string()))?;
            let service = Service::new(config, store, token)
                .await
                .map_err(StartError::Config)?;
            let grpc = tokio::net::TcpListener::bind(grpc_addr)
                .await
                .map_err(|e| StartError::Bind(grpc_addr, e))?;
            let http = tokio::net::TcpListener::bind(http_addr)
                .await
                .map_err(|e| StartError::Bind(http_addr, e))?;
            Ok::<_, StartError>((Arc::new(service), grpc, http))
        })?;
        let grpc = grpc_listener.local_addr().unwrap_or(grpc_addr);
        let http = http_listener.local_addr().unwrap_or(http_addr);
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();

        let services = Grpc(Arc::clone(&service));
        let mut until = stopped.clone();
        let mut builder = tonic::transport::Server::builder();
        if let Some(identity) = &tls {
            builder = builder
                .tls_config(identity.grpc())
                .map_err(|e| StartError::Tls(e.to_string()))?;
        }
        tasks.push(runtime.spawn(async move {
            let result = builder
                .add_service(pb::assets_server::AssetsServer::new(services.clone()))
                .add_service(pb::auth_server::AuthServer::new(services.clone()))
                .add_service(pb::access_server::AccessServer::new(services.clone()))
                .add_service(pb::chain_server::ChainServer::new(services.clone()))
                .add_service(pb::keys_server::KeysServer::new(services.clone()))
                .add_service(pb::jobs_server::JobsServer::new(services.clone()))
                .add_service(pb::health_server::HealthServer::new(services))
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(grpc_listener),
                    async move {
                        let _ = until.wait_for(|s| *s).await;
                    },
                )
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "gRPC server stopped");
            }
        }));

        let router = crate::http::router(Arc::clone(&service), metrics);
        let mut until = stopped.clone();
        match &tls {
            None => tasks.push(runtime.spawn(async move {
                let result = axum::serve(http_listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = until.wait_for(|s| *s).await;
                    })
                    .await;
                if let Err(e) = result {
                    tracing::error!(error = %e, "HTTP server stopped");
                }
            })),
            Some(identity) => {
                let acceptor = identity.acceptor().map_err(StartError::Tls)?;
                tasks.push(runtime.spawn(crate::tls::serve_https(
                    http_listener,
                    acceptor,
                    router,
                    until,
                )));
            }
        }

        let mut until = stopped;
        let purging = Arc::clone(&service);
        tasks.push(runtime.spawn(async move {
            loop {
                purging.purge().await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                    _ = until.wait_for(|s| *s) => break,
                }
            }
        }));
        Ok(Self {
            runtime,
            service,
            stop,
            tasks,
            grpc,
            http,
            created,
        })
    }

    /// What SIGHUP does to the control plane (see `Service::reload`): the
    /// changed keys that need a restart.
    pub fn reload(&self, next: ControlConfig) -> Result<Vec<&'static str>, String> {
        self.service.reload(next)
    }

    /// A handle that asks whether this control plane still answers, for a
    /// watchdog thread.
    pub fn health(&self) -> Health {
        Health {
            runtime: self.runtime.handle().clone(),
            service: Arc::clone(&self.service),
        }
    }

    /// Stops accepting, lets in-flight calls finish (up to `grace`), and
    /// returns.
    pub fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let tasks = self.tasks;
        self.runtime.block_on(async move {
            let _ = tokio::time::timeout(grace, async {
                for task in tasks {
                    let _ = task.await;
                }
            })
            .await;
        });
        self.runtime.shutdown_timeout(Duration::from_millis(100));
    }
}

/// Asks a running control plane whether it answers.
#[derive(Clone)]
pub struct Health {
    runtime: tokio::runtime::Handle,
    service: Arc<Service>,
}

impl Health {
    /// Whether the control plane answers within `within` — its runtime
    /// runs a task, and the database answers a query — with its asset
    /// count and how many of them are ready.
    pub fn check(&self, within: Duration) -> Result<(usize, usize), String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let service = Arc::clone(&self.service);
        self.runtime.spawn(async move {
            let _ = tx.send(service.health().await);
        });
        rx.recv_timeout(within)
            .map_err(|_| format!("the control plane did not answer within {within:?}"))?
            .map_err(|e| format!("the control plane's database: {e}"))
    }
}

//! Operator calls from the engine to the control plane: registering an
//! uploaded asset and reporting its transcode status. Used off the serving
//! cores (ingest and job-report threads), blocking on a small runtime.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use streamgate_api::v1::assets_client::AssetsClient;
use streamgate_api::v1::jobs_client::JobsClient;
use streamgate_api::v1::{
    AssetStatus, CreateAssetRequest, DeleteAssetRequest, UpdateAssetStatusRequest,
};
use streamgate_api::v1::{
    ClaimJobRequest, FinishJobRequest, Job, RenewLeaseRequest, SubmitJobRequest,
};
use streamgate_api::ErrorCode;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

/// Longest wait for one call.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ControlError {
    /// No operator token to authorize with.
    NoToken(String),
    /// The control plane answered and refused, saying why.
    Refused {
        /// The kind of refusal.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// No answer from a control plane (unreachable, timed out, or a peer
    /// that is not one).
    Unreachable(tonic::Status),
}

impl ControlError {
    /// The kind of refusal, when the control plane answered.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<tonic::Status> for ControlError {
    fn from(status: tonic::Status) -> Self {
        match ErrorCode::of(&status) {
            Some(code) => Self::Refused {
                code,
                message: status.message().to_string(),
            },
            None => Self::Unreachable(status),
        }
    }
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoToken(e) => write!(f, "no operator token: {e}"),
            Self::Refused { message, .. } => write!(f, "control plane: {message}"),
            Self::Unreachable(s) => write!(f, "control plane unreachable: {}", s.message()),
        }
    }
}

impl std::error::Error for ControlError {}

/// Lazy channels to each control-plane replica (`[control] urls`; one for
/// a single control plane), tried in turn: the replica that answered last
/// goes first. Only a replica that cannot be reached (`Unavailable`:
/// connection refused or lost) passes a call on, so a refusal is never
/// retried elsewhere. tonic's balancer is not used because it keeps
/// sending calls to a replica that refuses connections.
#[derive(Clone)]
pub struct Replicas {
    channels: Arc<Vec<(String, Channel)>>,
    preferred: Arc<AtomicUsize>,
}

impl Replicas {
    /// Channels to every control plane `endpoint` names, made inside
    /// `runtime`, connecting within `connect` and each call bounded by
    /// `call` (or not).
    pub fn lazy(
        runtime: &tokio::runtime::Runtime,
        endpoint: &crate::config::ControlEndpoint,
        connect: Duration,
        call: Option<Duration>,
    ) -> std::io::Result<Self> {
        let _context = runtime.enter();
        let urls = std::iter::once(&endpoint.url).chain(&endpoint.also);
        let channels = endpoint
            .endpoints()
            .map_err(std::io::Error::other)?
            .into_iter()
            .zip(urls)
            .map(|(e, url)| {
                let e = e.connect_timeout(connect);
                let e = match call {
                    Some(call) => e.timeout(call),
                    None => e,
                };
                (url.clone(), e.connect_lazy())
            })
            .collect();
        Ok(Self {
            channels: Arc::new(channels),
            preferred: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Runs `call` on the replicas in turn until one answers (an answer may
    /// be a refusal); the last `Unavailable` when none does.
    pub async fn call<R, F, Fut>(&self, mut call: F) -> Result<R, tonic::Status>
    where
        F: FnMut(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<R, tonic::Status>>,
    {
        let n = self.channels.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        let mut last = None;
        for i in 0..n {
            let index = (first + i) % n;
            match call(self.channels[index].1.clone()).await {
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    if n > 1 {
                        tracing::debug!(
                            replica = self.channels[index].0,
                            "control plane replica unreachable; trying the next"
                        );
                    }
                    last = Some(status);
                }
                answered => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return answered;
                }
            }
        }
        Err(last.unwrap_or_else(|| tonic::Status::unavailable("no control plane")))
    }

    /// The replica that answered last (for messages).
    pub fn current(&self) -> &str {
        let n = self.channels.len();
        &self.channels[self.preferred.load(Ordering::Relaxed) % n].0
    }

    /// The channel to a replica that answers a health check (the first
    /// one when none does), for a short-lived client such as the CLI.
    pub async fn reachable(&self) -> Channel {
        use streamgate_api::v1::health_client::HealthClient;
        use streamgate_api::v1::HealthRequest;
        let _ = self
            .call(|channel| async move { HealthClient::new(channel).check(HealthRequest {}).await })
            .await;
        let n = self.channels.len();
        self.channels[self.preferred.load(Ordering::Relaxed) % n]
            .1
            .clone()
    }
}

/// `message` as a request carrying `auth`.
fn authorized<T>(auth: &Option<MetadataValue<Ascii>>, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = auth {
        request
            .metadata_mut()
            .insert(streamgate_api::AUTHORIZATION, value.clone());
    }
    request
}

/// A blocking operator client.
pub struct ControlClient {
    runtime: tokio::runtime::Runtime,
    replicas: Replicas,
    token_path: PathBuf,
    /// Whether a client certificate authorizes calls (mTLS), so that a
    /// missing token file is no error.
    mtls: bool,
}

impl ControlClient {
    /// A lazy connection to `endpoint`, authorized by its client
    /// certificate when it has one, and by the token in `token_path` when
    /// that file exists (read per call, so a token created after the
    /// engine started is picked up).
    pub fn new(
        endpoint: &crate::config::ControlEndpoint,
        token_path: PathBuf,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sg-control-client")
            .enable_all()
            .build()?;
        let replicas = Replicas::lazy(&runtime, endpoint, CALL_TIMEOUT, Some(CALL_TIMEOUT))?;
        Ok(Self {
            runtime,
            replicas,
            token_path,
            mtls: endpoint.identity.is_some(),
        })
    }

    /// The operator token, for checking upload requests.
    pub fn operator_token(&self) -> Result<String, ControlError> {
        std::fs::read_to_string(&self.token_path)
            .map(|t| t.trim().to_string())
            .map_err(|e| ControlError::NoToken(format!("{}: {e}", self.token_path.display())))
    }

    /// Sends `message` (with the operator's authorization) through `send`
    /// to the replicas in turn ([`Replicas::call`]), blocking; the reply.
    fn call<M, R, F, Fut>(&self, message: M, send: F) -> Result<R, ControlError>
    where
        M: Clone,
        F: Fn(Channel, tonic::Request<M>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let auth = self.authorization()?;
        self.runtime
            .block_on(
                self.replicas
                    .call(|channel| send(channel, authorized(&auth, message.clone()))),
            )
            .map(tonic::Response::into_inner)
            .map_err(ControlError::from)
    }

    /// The `authorization` value calls carry: the operator token, or none
    /// when a client certificate authorizes them (mTLS).
    fn authorization(&self) -> Result<Option<MetadataValue<Ascii>>, ControlError> {
        let token = match self.operator_token() {
            Ok(token) => token,
            Err(_) if self.mtls => return Ok(None),
            Err(e) => return Err(e),
        };
        format!("Bearer {token}")
            .parse()
            .map(Some)
            .map_err(|_| ControlError::NoToken("not a valid header value".into()))
    }

    /// Registers a new asset in `status` (an empty id lets the control plane
    /// pick one) and returns its id; [`ErrorCode::AssetExists`] when the id
    /// is taken.
    pub fn create_asset(
        &self,
        id: &str,
        title: &str,
        status: AssetStatus,
    ) -> Result<String, ControlError> {
        let message = CreateAssetRequest {
            id: id.to_string(),
            title: title.to_string(),
            status: status as i32,
        };
        self.call(message, |channel, request| async move {
            AssetsClient::new(channel).create_asset(request).await
        })
        .map(|r| r.id)
    }

    /// Reports an asset's status.
    pub fn update_status(
        &self,
        id: &str,
        status: AssetStatus,
        progress_percent: u32,
        error: &str,
    ) -> Result<(), ControlError> {
        let message = UpdateAssetStatusRequest {
            id: id.to_string(),
            status: status as i32,
            progress_percent,
            error: error.to_string(),
        };
        self.call(message, |channel, request| async move {
            AssetsClient::new(channel)
                .update_asset_status(request)
                .await
        })
        .map(|_| ())
    }

    /// Removes an asset record (an upload terminated before it finished).
    pub fn delete_asset(&self, id: &str) -> Result<(), ControlError> {
        let message = DeleteAssetRequest { id: id.to_string() };
        self.call(message, |channel, request| async move {
            AssetsClient::new(channel).delete_asset(request).await
        })
        .map(|_| ())
    }

    /// Queues a transcode of the bucket object `source_key` into `asset`
    /// (the shared queue).
    pub fn submit_job(
        &self,
        asset: &str,
        source_key: &str,
        ladder: &str,
        segment_seconds: u32,
    ) -> Result<(), ControlError> {
        let message = SubmitJobRequest {
            asset_id: asset.to_string(),
            source_key: source_key.to_string(),
            ladder: ladder.to_string(),
            segment_seconds,
        };
        self.call(message, |channel, request| async move {
            JobsClient::new(channel).submit_job(request).await
        })
        .map(|_| ())
    }

    /// Takes the oldest claimable job for `runner` under a lease, if any.
    pub fn claim_job(&self, runner: &str, lease: Duration) -> Result<Option<Job>, ControlError> {
        let message = ClaimJobRequest {
            runner: runner.to_string(),
            lease_seconds: lease.as_secs() as u32,
        };
        self.call(message, |channel, request| async move {
            JobsClient::new(channel).claim_job(request).await
        })
        .map(|r| r.job)
    }

    /// Renews `runner`'s lease on a job, reporting progress; `Ok(false)`
    /// when the lease was lost.
    pub fn renew_lease(
        &self,
        job: &str,
        runner: &str,
        lease: Duration,
        percent: u32,
    ) -> Result<bool, ControlError> {
        let message = RenewLeaseRequest {
            job_id: job.to_string(),
            runner: runner.to_string(),
            lease_seconds: lease.as_secs() as u32,
            progress_percent: percent,
        };
        self.call(message, |channel, request| async move {
            JobsClient::new(channel).renew_lease(request).await
        })
        .map(|r| r.held)
    }

    /// Ends `runner`'s attempt: `error` empty when published; `retry` when
    /// another attempt may succeed.
    pub fn finish_job(
        &self,
        job: &str,
        runner: &str,
        error: &str,
        retry: bool,
    ) -> Result<(), ControlError> {
        let message = FinishJobRequest {
            job_id: job.to_string(),
            runner: runner.to_string(),
            error: error.to_string(),
            retry,
        };
        self.call(message, |channel, request| async move {
            JobsClient::new(channel).finish_job(request).await
        })
        .map(|_| ())
    }
}

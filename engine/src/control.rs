//! Operator calls from the engine to the control plane: registering an
//! uploaded asset and reporting its transcode status. Used off the serving
//! cores (ingest and job-report threads), blocking on a small runtime.

use std::path::PathBuf;
use std::time::Duration;

use streamgate_api::v1::assets_client::AssetsClient;
use streamgate_api::v1::{
    AssetStatus, CreateAssetRequest, DeleteAssetRequest, UpdateAssetStatusRequest,
};
use streamgate_api::ErrorCode;
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

/// A channel to the control plane that connects on first use (and again
/// after a failure), each call bounded by `timeout`. `connect_lazy` spawns
/// its connection task, so it is made inside `runtime`.
pub fn lazy_channel(
    runtime: &tokio::runtime::Runtime,
    endpoint: &crate::config::ControlEndpoint,
    timeout: Duration,
) -> std::io::Result<Channel> {
    let _context = runtime.enter();
    Ok(endpoint
        .channel()
        .map_err(std::io::Error::other)?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect_lazy())
}

/// A blocking operator client.
pub struct ControlClient {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
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
        let channel = lazy_channel(&runtime, endpoint, CALL_TIMEOUT)?;
        Ok(Self {
            runtime,
            channel,
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

    fn request<T>(&self, message: T) -> Result<tonic::Request<T>, ControlError> {
        let mut request = tonic::Request::new(message);
        let token = match self.operator_token() {
            Ok(token) => token,
            Err(_) if self.mtls => return Ok(request),
            Err(e) => return Err(e),
        };
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| ControlError::NoToken("not a valid header value".into()))?;
        request
            .metadata_mut()
            .insert(streamgate_api::AUTHORIZATION, value);
        Ok(request)
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
        let request = self.request(CreateAssetRequest {
            id: id.to_string(),
            title: title.to_string(),
            status: status as i32,
        })?;
        let mut client = AssetsClient::new(self.channel.clone());
        self.runtime
            .block_on(client.create_asset(request))
            .map(|r| r.into_inner().id)
            .map_err(ControlError::from)
    }

    /// Reports an asset's status.
    pub fn update_status(
        &self,
        id: &str,
        status: AssetStatus,
        progress_percent: u32,
        error: &str,
    ) -> Result<(), ControlError> {
        let request = self.request(UpdateAssetStatusRequest {
            id: id.to_string(),
            status: status as i32,
            progress_percent,
            error: error.to_string(),
        })?;
        let mut client = AssetsClient::new(self.channel.clone());
        self.runtime
            .block_on(client.update_asset_status(request))
            .map(|_| ())
            .map_err(ControlError::from)
    }

    /// Removes an asset record (an upload terminated before it finished).
    pub fn delete_asset(&self, id: &str) -> Result<(), ControlError> {
        let request = self.request(DeleteAssetRequest { id: id.to_string() })?;
        let mut client = AssetsClient::new(self.channel.clone());
        self.runtime
            .block_on(client.delete_asset(request))
            .map(|_| ())
            .map_err(ControlError::from)
    }
}

//! The command line's gRPC client: the control plane's address and the
//! operator token (or a client certificate, for mTLS) come from the same
//! configuration `serve` reads.

use std::future::Future;

use streamgate_api::v1::access_client::AccessClient;
use streamgate_api::v1::assets_client::AssetsClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::config::FileConfig;

/// An operator's connection to the control plane.
pub struct Operator {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
    /// `Bearer <operator token>`; none when a client certificate stands in.
    authorization: Option<MetadataValue<tonic::metadata::Ascii>>,
    endpoint: streamgate_engine::ControlEndpoint,
}

impl Operator {
    /// Reads the operator token (unless a client certificate is
    /// configured and there is none) and prepares a (lazy) connection.
    pub fn connect(file: &FileConfig) -> Result<Self, String> {
        let endpoint = file.control_endpoint()?;
        let path = file.operator_token_path();
        let authorization = match std::fs::read_to_string(&path) {
            Ok(token) => Some(
                format!("Bearer {}", token.trim())
                    .parse()
                    .map_err(|_| format!("{} does not hold a valid token", path.display()))?,
            ),
            Err(_) if endpoint.identity.is_some() => None,
            Err(e) => {
                return Err(format!(
                    "cannot read the operator token {}: {e} (it is created by the first `streamgate serve` or `streamgate control`; pass the same --config)",
                    path.display()
                ))
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        // With replicas (`[control] urls`), the first that answers serves
        // the whole command.
        let replicas = streamgate_engine::Replicas::lazy(
            &runtime,
            &endpoint,
            std::time::Duration::from_secs(3),
            None,
        )
        .map_err(|e| e.to_string())?;
        let channel = runtime.block_on(replicas.reachable());
        Ok(Self {
            runtime,
            channel,
            authorization,
            endpoint,
        })
    }

    /// `message` with the operator's authorization attached.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert(streamgate_api::AUTHORIZATION, authorization.clone());
        }
        request
    }

    /// Runs one call, turning a gRPC status into a message for people.
    pub fn call<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, String> {
        self.runtime
            .block_on(call)
            .map(tonic::Response::into_inner)
            .map_err(|status| {
                // No error code: the control plane never answered.
                if streamgate_api::ErrorCode::of(&status).is_none() {
                    format!(
                        "cannot reach the control plane at {} ({}; is `streamgate serve` running?)",
                        self.endpoint,
                        status.message()
                    )
                } else {
                    status.message().to_string()
                }
            })
    }

    /// The connection, for services without a helper here.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The Assets service.
    pub fn assets(&self) -> AssetsClient<Channel> {
        AssetsClient::new(self.channel.clone())
    }

    /// The Access service.
    pub fn access(&self) -> AccessClient<Channel> {
        AccessClient::new(self.channel.clone())
    }
}

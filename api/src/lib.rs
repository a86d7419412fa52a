//! The gRPC contract of StreamGate, package `streamgate.v1`
//! (`proto/streamgate/v1/control.proto`).
//!
//! One crate holds the generated types so that the control plane (servers),
//! the engine (key and asset-state puller) and the command line (operator
//! client) share them instead of each compiling the protos.

#![allow(missing_docs)] // generated code; the .proto file carries the docs

/// Generated messages, clients and servers.
pub mod v1 {
    tonic::include_proto!("streamgate.v1");
}

/// gRPC metadata key carrying `Bearer <operator token>` or `Bearer <session>`.
pub const AUTHORIZATION: &str = "authorization";

mod error;

pub use error::{ErrorCode, ERROR_CODE_METADATA};

/// A channel endpoint for the control plane at `url`: `http://…` plain,
/// `https://…` verified against the PEM CA file `ca` (the operator's CA,
/// `[control.tls] ca`) or, without one, the system's trusted roots;
/// `identity` (certificate, key: PEM files) is presented to a control
/// plane that asks for client certificates (mTLS).
pub fn control_endpoint(
    url: &str,
    ca: Option<&std::path::Path>,
    identity: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<tonic::transport::Endpoint, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("control endpoint {url:?}: {e}"))?;
    if !url.starts_with("https://") {
        return Ok(endpoint);
    }
    let mut tls = tonic::transport::ClientTlsConfig::new();
    tls = match ca {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read the control plane CA {}: {e}", path.display()))?;
            tls.ca_certificate(tonic::transport::Certificate::from_pem(pem))
        }
        None => tls.with_native_roots(),
    };
    if let Some((cert, key)) = identity {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| {
                format!(
                    "cannot read the client certificate file {}: {e}",
                    p.display()
                )
            })
        };
        tls = tls.identity(tonic::transport::Identity::from_pem(
            read(cert)?,
            read(key)?,
        ));
    }
    endpoint
        .tls_config(tls)
        .map_err(|e| format!("control endpoint {url:?}: {e}"))
}

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

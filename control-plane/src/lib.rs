//! StreamGate control plane: metadata, wallet sign-in, the NFT gate and
//! playback tokens, behind gRPC (operators, the engine, the CLI) and a JSON
//! API for browsers (Contract 5).
//!
//! Layout: [`service`] holds every operation once; [`grpc`] and [`http`]
//! only translate. [`store`] is the database, [`auth`] the signature
//! schemes, [`chain`] the NFT gate over JSON-RPC, [`secrets`] the keys and
//! operator token in the data dir, [`metrics`] the counters.

pub mod auth;
pub mod chain;
pub mod config;
mod error;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod model;
pub mod secrets;
pub mod server;
pub mod service;
pub mod store;
pub mod tls;

pub use config::{ChainConfig, ControlConfig, TlsFiles};
pub use server::{ControlPlane, Health as ControlHealth, StartError};

//! StreamGate control plane (placeholder).
//!
//! This crate will hold the tonic gRPC services, the JSON API for browsers,
//! sqlx storage (SQLite / PostgreSQL), wallet sign-in, the NFT gate and the
//! playback-token issuer. It is filled by issue 4; nothing here is wired into
//! the CLI yet.

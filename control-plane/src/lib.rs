//! StreamGate control plane (being built: issue 4).
//!
//! Present: [`siwe_auth`], Sign-In with Ethereum (EIP-4361) challenges built
//! by the server and verified by EIP-191 recovery, with single-use expiring
//! nonces. Still to come: the tonic gRPC services, the JSON API for browsers,
//! sqlx storage (SQLite / PostgreSQL), EIP-712 and Solana sign-in, the NFT
//! gate, and issuing playback tokens (the token format lives in
//! `streamgate-token`).

pub mod siwe_auth;

//! StreamGate load-test harness (placeholder).
//!
//! This crate will back `streamgate loadtest run|viewers`. Until then the
//! HTTP comparison against nginx lives in `bench/`, which drives `wrk`.

//! StreamGate media pipeline (placeholder).
//!
//! This crate will hold the transcoder: probe, decode once, one scaler and
//! encoder per ABR rung, CMAF packaging, HLS and DASH manifests, atomic
//! publish and the durable job spool. It is filled by issue 3; nothing here
//! is wired into the CLI yet, so no command pretends to transcode.

//! The wire layer of the StreamGate data plane.
//!
//! Everything here is about bytes on a connection and nothing about files or
//! assets, so the engine (and later h2/TLS front ends) can share one
//! implementation of HTTP semantics:
//!
//! - [`request`]: a strict, incremental HTTP/1.1 request-head parser with hard
//!   limits (the fuzzed surface);
//! - [`target`]: request-target decoding into a normalized path, refusing
//!   traversal and encoding tricks;
//! - [`range`] and [`conditional`]: RFC 9110 Range, If-Range, If-None-Match and
//!   If-Modified-Since evaluation;
//! - [`response`]: status lines and header blocks, with a per-second cached
//!   `Date`;
//! - [`mime`]: Content-Type for the media types an origin serves;
//! - [`send`]: writing to a monoio socket, including the zero-copy file path;
//! - [`client`]: a small blocking client (ingest uploads, test peers).

pub mod client;
pub mod conditional;
pub mod mime;
pub mod range;
pub mod request;
pub mod response;
pub mod send;
pub mod target;

//! The wire layer of the StreamGate data plane.
//!
//! Everything here is about bytes on a connection and nothing about files or
//! assets, so the engine (and later h2/TLS front ends) can share one
//! implementation of HTTP semantics:
//!
//! - [`http1`]: HTTP/1.1 framing — a strict, incremental request-head parser
//!   with hard limits (the fuzzed surface) and the response head writer;
//! - [`request`]: the protocol-neutral request model (method, target, the
//!   fields the origin acts on);
//! - [`target`]: request-target decoding into a normalized path, refusing
//!   traversal and encoding tricks;
//! - [`range`] and [`conditional`]: RFC 9110 Range, If-Range, If-None-Match and
//!   If-Modified-Since evaluation;
//! - [`response`]: the protocol-neutral response (a head of status and
//!   fields, a body in memory or a file range), and a per-second cached
//!   `Date`;
//! - [`http2`]: the HTTP/2 server configuration and its flood guard;
//! - [`mime`]: Content-Type for the media types an origin serves;
//! - [`send`]: writing to a monoio socket, including the zero-copy file path;
//! - [`client`]: a small blocking client (ingest uploads, test peers).

pub mod client;
pub mod conditional;
pub mod http1;
pub mod http2;
pub mod mime;
pub mod range;
pub mod request;
pub mod response;
pub mod send;
pub mod target;

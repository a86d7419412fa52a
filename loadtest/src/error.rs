//! [`LoadError`]: why a load test could not run.

use std::fmt;
use std::net::SocketAddr;

/// A load test that could not start (a failing request is not one: it is
/// counted in the report).
#[non_exhaustive]
#[derive(Debug)]
pub enum LoadError {
    /// The URL does not parse, or is not `http://` or `https://`.
    BadUrl(String),
    /// The target is not on this machine and `--allow-remote` was not given.
    Remote(String),
    /// Nothing answers at the target.
    Unreachable {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Something answers, but the TLS or HTTP/2 handshake failed (an
    /// untrusted certificate, no `h2` offered by ALPN).
    Handshake {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// An option is out of range.
    BadOption(String),
    /// The TLS configuration could not be built (a CA file that does not
    /// read or parse).
    Tls(String),
    /// A manifest that is not one (or uses what the players do not
    /// support); says which and why.
    Manifest(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadUrl(why) => write!(f, "bad URL: {why}"),
            Self::Remote(host) => write!(
                f,
                "{host} is not on this machine; pass --allow-remote to load it (only load servers you run)"
            ),
            Self::Unreachable { addr, source } => write!(f, "cannot reach {addr}: {source}"),
            Self::Handshake { addr, source } => write!(f, "handshake with {addr} failed: {source}"),
            Self::BadOption(why) => f.write_str(why),
            Self::Tls(why) => write!(f, "TLS: {why}"),
            Self::Manifest(why) => write!(f, "manifest: {why}"),
        }
    }
}

impl LoadError {
    /// A failure to connect to `addr`: unreachable, or a failed handshake.
    pub(crate) fn connecting(addr: SocketAddr, source: std::io::Error) -> Self {
        use std::io::ErrorKind::{InvalidData, Unsupported};
        if matches!(source.kind(), InvalidData | Unsupported) {
            Self::Handshake { addr, source }
        } else {
            Self::Unreachable { addr, source }
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unreachable { source, .. } | Self::Handshake { source, .. } => Some(source),
            _ => None,
        }
    }
}

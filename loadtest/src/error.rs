//! [`LoadError`]: why a load test could not run.

use std::fmt;
use std::net::SocketAddr;

/// A load test that could not start (a failing request is not one: it is
/// counted in the report).
#[non_exhaustive]
#[derive(Debug)]
pub enum LoadError {
    /// The URL does not parse, or is not `http://`.
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
    /// An option is out of range.
    BadOption(String),
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
            Self::BadOption(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unreachable { source, .. } => Some(source),
            _ => None,
        }
    }
}

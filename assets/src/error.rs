//! [`AssetError`]: what went wrong storing an asset.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A store operation that failed.
#[non_exhaustive]
#[derive(Debug)]
pub enum AssetError {
    /// The asset is already there (it is never overwritten).
    Exists(PathBuf),
    /// The name cannot name an asset (hidden, a path, empty).
    InvalidName(String),
    /// The storage failed while doing `action`.
    Io {
        /// What was being done, for the message.
        action: String,
        /// The failure.
        source: io::Error,
    },
}

impl AssetError {
    /// An I/O failure while doing `action`.
    pub fn io(action: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            action: action.into(),
            source,
        }
    }
}

impl fmt::Display for AssetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exists(path) => write!(f, "{} exists already", path.display()),
            Self::InvalidName(name) => write!(f, "{name:?} cannot name an asset"),
            Self::Io { action, source } => write!(f, "{action}: {source}"),
        }
    }
}

impl std::error::Error for AssetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

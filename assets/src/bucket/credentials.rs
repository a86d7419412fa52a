//! [`Credentials`]: the bucket's access keys, from the environment or a
//! file — never from the configuration file, which is world-readable on
//! many boxes and ends up in backups and bug reports.

use std::fmt;
use std::io;
use std::path::Path;

use serde::Deserialize;

use crate::error::AssetError;

/// Where a node finds its access keys; read when the bucket is connected,
/// not when the configuration is, so commands that never touch the bucket
/// (the CLI) need no access to them.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// `STREAMGATE_S3_ACCESS_KEY_ID` / `STREAMGATE_S3_SECRET_ACCESS_KEY`, else
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
    Environment,
    /// A TOML file (`[storage] credentials_file`), mode 600.
    File(std::path::PathBuf),
    /// A pair given directly (tests, tools).
    Given(Credentials),
}

impl CredentialSource {
    /// The pair, or what is missing.
    pub fn resolve(&self) -> Result<Credentials, AssetError> {
        match self {
            Self::Environment => Credentials::from_env().ok_or_else(|| {
                AssetError::io(
                    "reading the bucket credentials",
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        "none: set [storage] credentials_file, or STREAMGATE_S3_ACCESS_KEY_ID \
                         and STREAMGATE_S3_SECRET_ACCESS_KEY",
                    ),
                )
            }),
            Self::File(path) => Credentials::from_file(path),
            Self::Given(credentials) => Ok(credentials.clone()),
        }
    }
}

/// An access key pair.
#[derive(Clone, Deserialize)]
pub struct Credentials {
    /// The access key id (not secret; named in logs).
    pub access_key_id: String,
    secret_access_key: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}, secret hidden)", self.access_key_id)
    }
}

impl Credentials {
    /// A pair given directly.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
        }
    }

    /// The secret, for signing requests.
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// `STREAMGATE_S3_ACCESS_KEY_ID` and `STREAMGATE_S3_SECRET_ACCESS_KEY`,
    /// else the usual `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    pub fn from_env() -> Option<Self> {
        let pair = |id: &str, secret: &str| {
            Some(Self::new(
                std::env::var(id).ok()?,
                std::env::var(secret).ok()?,
            ))
        };
        pair(
            "STREAMGATE_S3_ACCESS_KEY_ID",
            "STREAMGATE_S3_SECRET_ACCESS_KEY",
        )
        .or_else(|| pair("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
    }

    /// A TOML file with `access_key_id` and `secret_access_key`; refused
    /// when others than its owner may read it.
    pub fn from_file(path: &Path) -> Result<Self, AssetError> {
        use std::os::unix::fs::PermissionsExt;
        let action = || format!("reading the bucket credentials {}", path.display());
        let mode = std::fs::metadata(path)
            .map_err(|e| AssetError::io(action(), e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(AssetError::io(
                action(),
                io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("mode {:o} lets others read it; chmod 600 it", mode & 0o777),
                ),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| AssetError::io(action(), e))?;
        toml::from_str(&text).map_err(|e| {
            AssetError::io(
                action(),
                io::Error::new(io::ErrorKind::InvalidData, e.message().to_string()),
            )
        })
    }
}

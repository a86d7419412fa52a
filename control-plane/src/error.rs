//! [`ApiError`]: a refused or failed operation, with what every front end
//! needs to answer it. Its kind is a [`streamgate_api::ErrorCode`], which
//! alone decides the HTTP status and the gRPC code.

use std::fmt;

use streamgate_api::ErrorCode;

use crate::model::GateRule;
use crate::store::StoreError;

/// A refused or failed operation.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct ApiError {
    /// What went wrong, as a kind clients match on.
    pub code: ErrorCode,
    /// Human-readable, never a secret or an internal detail an attacker
    /// could use.
    pub message: String,
    /// The rules the wallet failed (`nft_required`).
    pub rules: Vec<GateRule>,
    /// Seconds for `Retry-After` (`chain_unavailable`, `too_many_challenges`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error of kind `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            rules: Vec::new(),
            retry_after: None,
        }
    }

    /// `malformed`.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Malformed, message)
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// `internal`.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// With the rules the wallet failed.
    pub(crate) fn with_rules(mut self, rules: Vec<GateRule>) -> Self {
        self.rules = rules;
        self
    }

    /// With a `Retry-After` in seconds.
    pub(crate) fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The HTTP status the JSON API answers with.
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }

    /// The gRPC code the services answer with.
    pub fn grpc_code(&self) -> tonic::Code {
        self.code.grpc_code()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "metadata database");
        Self::new(
            ErrorCode::DatabaseUnavailable,
            "the metadata database is unavailable",
        )
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        e.code.to_status(format!("{}: {}", e.code, e.message))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.http_status(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

//! Why a control-plane call was refused, as one enum every front end and
//! client shares.
//!
//! The JSON API sends [`ErrorCode::as_str`] as `error.code` (Contract 5) with
//! [`ErrorCode::http_status`]; gRPC sends [`ErrorCode::grpc_code`] and the
//! same snake_case name in the [`ERROR_CODE_METADATA`] trailer, so a client
//! (the engine, the CLI) matches on the kind instead of guessing it back
//! from a status number or a message.

use std::fmt;

/// gRPC metadata key carrying the [`ErrorCode`] of a refused call.
pub const ERROR_CODE_METADATA: &str = "streamgate-error";

/// The kind of a refused or failed control-plane operation.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed (a field missing or invalid).
    Malformed,
    /// The HTTP method is not offered on this path.
    MethodNotAllowed,
    /// No `Authorization: Bearer` credentials were sent.
    MissingCredentials,
    /// The session is unknown, expired or logged out.
    InvalidSession,
    /// The sign-in challenge is unknown.
    InvalidChallenge,
    /// The sign-in challenge was already spent.
    ChallengeUsed,
    /// The sign-in challenge expired.
    ChallengeExpired,
    /// The signature does not match the wallet.
    BadSignature,
    /// The call needs the operator token.
    OperatorOnly,
    /// The wallet holds none of the NFTs the asset requires.
    NftRequired,
    /// No such asset (or endpoint).
    NotFound,
    /// The asset id (or its directory) is taken.
    AssetExists,
    /// The asset exists but cannot be played yet.
    NotReady,
    /// A job runner no longer holds the job it reports on (its lease ran
    /// out and another runner took the job).
    LeaseLost,
    /// Too many unanswered sign-in challenges.
    TooManyChallenges,
    /// No chain could be asked whether the wallet holds the NFT.
    ChainUnavailable,
    /// The metadata database cannot be reached.
    DatabaseUnavailable,
    /// A server-side failure that is not the caller's doing.
    Internal,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [Self; 18] = [
        Self::Malformed,
        Self::MethodNotAllowed,
        Self::MissingCredentials,
        Self::InvalidSession,
        Self::InvalidChallenge,
        Self::ChallengeUsed,
        Self::ChallengeExpired,
        Self::BadSignature,
        Self::OperatorOnly,
        Self::NftRequired,
        Self::NotFound,
        Self::AssetExists,
        Self::NotReady,
        Self::LeaseLost,
        Self::TooManyChallenges,
        Self::ChainUnavailable,
        Self::DatabaseUnavailable,
        Self::Internal,
    ];

    /// The stable snake_case name (Contract 5's `error.code`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::MissingCredentials => "missing_credentials",
            Self::InvalidSession => "invalid_session",
            Self::InvalidChallenge => "invalid_challenge",
            Self::ChallengeUsed => "challenge_used",
            Self::ChallengeExpired => "challenge_expired",
            Self::BadSignature => "bad_signature",
            Self::OperatorOnly => "operator_only",
            Self::NftRequired => "nft_required",
            Self::NotFound => "not_found",
            Self::AssetExists => "asset_exists",
            Self::NotReady => "not_ready",
            Self::LeaseLost => "lease_lost",
            Self::TooManyChallenges => "too_many_challenges",
            Self::ChainUnavailable => "chain_unavailable",
            Self::DatabaseUnavailable => "database_unavailable",
            Self::Internal => "internal",
        }
    }

    /// The code named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The HTTP status the JSON API answers with.
    pub fn http_status(self) -> u16 {
        match self {
            Self::Malformed => 400,
            Self::MissingCredentials
            | Self::InvalidSession
            | Self::InvalidChallenge
            | Self::ChallengeUsed
            | Self::ChallengeExpired
            | Self::BadSignature => 401,
            Self::OperatorOnly | Self::NftRequired => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::AssetExists | Self::NotReady | Self::LeaseLost => 409,
            Self::TooManyChallenges => 429,
            Self::Internal => 500,
            Self::ChainUnavailable | Self::DatabaseUnavailable => 503,
        }
    }

    /// The gRPC status code the services answer with.
    pub fn grpc_code(self) -> tonic::Code {
        use tonic::Code;
        match self {
            Self::Malformed => Code::InvalidArgument,
            Self::MethodNotAllowed => Code::Unimplemented,
            Self::MissingCredentials
            | Self::InvalidSession
            | Self::InvalidChallenge
            | Self::ChallengeUsed
            | Self::ChallengeExpired
            | Self::BadSignature => Code::Unauthenticated,
            Self::OperatorOnly | Self::NftRequired => Code::PermissionDenied,
            Self::NotFound => Code::NotFound,
            Self::AssetExists => Code::AlreadyExists,
            Self::NotReady | Self::LeaseLost => Code::FailedPrecondition,
            Self::TooManyChallenges => Code::ResourceExhausted,
            Self::ChainUnavailable | Self::DatabaseUnavailable => Code::Unavailable,
            Self::Internal => Code::Internal,
        }
    }

    /// A gRPC status for this code: [`Self::grpc_code`], `message`, and the
    /// code's name in [`ERROR_CODE_METADATA`].
    pub fn to_status(self, message: impl Into<String>) -> tonic::Status {
        let mut status = tonic::Status::new(self.grpc_code(), message);
        status.metadata_mut().insert(
            ERROR_CODE_METADATA,
            tonic::metadata::MetadataValue::from_static(self.as_str()),
        );
        status
    }

    /// The code a control plane put on `status`; `None` for a status that
    /// did not come from one (a transport failure, a timeout, another
    /// server).
    pub fn of(status: &tonic::Status) -> Option<Self> {
        let value = status.metadata().get(ERROR_CODE_METADATA)?.to_str().ok()?;
        Self::from_name(value)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_name(code.as_str()), Some(code));
        }
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        assert_eq!(ErrorCode::from_name("no_such_code"), None);
    }

    #[test]
    fn conflicts_are_told_apart_over_grpc() {
        // Both are 409 over HTTP; over gRPC a taken id and an asset that is
        // not ready are different answers, and the kind survives the trip.
        assert_eq!(ErrorCode::AssetExists.http_status(), 409);
        assert_eq!(ErrorCode::NotReady.http_status(), 409);
        assert_ne!(
            ErrorCode::AssetExists.grpc_code(),
            ErrorCode::NotReady.grpc_code()
        );
        let status = ErrorCode::AssetExists.to_status("asset \"a\" already exists");
        assert_eq!(ErrorCode::of(&status), Some(ErrorCode::AssetExists));
        assert_eq!(ErrorCode::of(&tonic::Status::unavailable("refused")), None);
    }
}

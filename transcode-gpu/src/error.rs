//! Why a transcode failed. Every variant names the problem for an operator.

use std::fmt;
use std::path::PathBuf;

/// A failed transcode; nothing was published.
#[derive(Debug)]
#[non_exhaustive]
pub enum TranscodeError {
    /// The input cannot be opened or its container cannot be read.
    Open(PathBuf, String),
    /// The input has no video stream.
    NotVideo(PathBuf),
    /// The input ended early or holds undecodable data.
    Corrupt(String),
    /// A required codec is missing from this FFmpeg build.
    MissingCodec(&'static str),
    /// `--gpu require` and no usable GPU encoder.
    GpuRequired(String),
    /// An encoder or muxer failed.
    Encode(String),
    /// Reading or writing files failed.
    Io(String, std::io::Error),
    /// The output directory exists already.
    OutputExists(PathBuf),
    /// The stored ladder of a queued job does not parse.
    BadLadder(String),
}

impl fmt::Display for TranscodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open(p, e) => write!(f, "cannot open {}: {e}", p.display()),
            Self::NotVideo(p) => write!(f, "{} has no video stream", p.display()),
            Self::Corrupt(e) => write!(f, "the input is corrupt or truncated: {e}"),
            Self::MissingCodec(c) => write!(f, "this FFmpeg build has no {c} encoder"),
            Self::GpuRequired(why) => write!(f, "--gpu require: {why}"),
            Self::Encode(e) => write!(f, "encoding failed: {e}"),
            Self::Io(what, e) => write!(f, "{what}: {e}"),
            Self::OutputExists(p) => write!(
                f,
                "{} exists already; pick a new output directory",
                p.display()
            ),
            Self::BadLadder(why) => write!(f, "the job's ladder is invalid: {why}"),
        }
    }
}

impl std::error::Error for TranscodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(_, e) => Some(e),
            _ => None,
        }
    }
}

impl From<streamgate_assets::AssetError> for TranscodeError {
    fn from(e: streamgate_assets::AssetError) -> Self {
        match e {
            streamgate_assets::AssetError::Exists(path) => Self::OutputExists(path),
            streamgate_assets::AssetError::Io { action, source } => Self::Io(action, source),
            other => Self::Io(other.to_string(), std::io::ErrorKind::InvalidInput.into()),
        }
    }
}

/// Wraps an FFmpeg error from an encoder or muxer.
pub(crate) fn encode(context: &str, e: ffmpeg_next::Error) -> TranscodeError {
    TranscodeError::Encode(format!("{context}: {e}"))
}

/// Wraps an I/O error with what was being done.
pub(crate) fn io(context: impl Into<String>, e: std::io::Error) -> TranscodeError {
    TranscodeError::Io(context.into(), e)
}

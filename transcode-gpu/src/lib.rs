//! The StreamGate media pipeline: one decode, an ABR ladder of H.264
//! renditions encoded in parallel, CMAF (fMP4) segments aligned across
//! renditions, HLS and DASH manifests over the same files, published
//! atomically (Contract 2).
//!
//! Module map:
//! - [`ladder`]: rungs, `--ladder` parsing, pruning above the source;
//! - [`probe`]: checking an input before committing to it;
//! - [`backend`]: the video encoder backend, GPU detected at run time;
//! - `rendition`: one encoder thread per rendition (scale/resample, encode,
//!   HLS fMP4 muxer);
//! - [`package`]: master playlist and MPD from the produced files;
//! - `publish`: staging directory, fsync, rename;
//! - [`pipeline`]: the whole transcode.
//!
//! - `poster`: the poster JPEG;
//! - [`jobs`]: the durable job spool the engine's job runner works from.
//!
//! Not here: the NVDEC/NVENC pipeline itself (its own issue; `backend` is
//! the interface it plugs into).

pub mod backend;
mod codecs;
pub mod error;
pub mod gpu;
pub mod jobs;
pub mod ladder;
pub mod package;
pub mod pipeline;
mod poster;
pub mod probe;
mod publish;
mod rendition;
pub mod stages;

pub use backend::GpuMode;
pub use error::TranscodeError;
pub use pipeline::{transcode, Options, Progress, Summary};
pub use publish::PublishTo;

/// Initialises FFmpeg once and keeps its logging to errors.
pub(crate) fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ffmpeg_next::init();
        ffmpeg_next::log::set_level(ffmpeg_next::log::Level::Error);
    });
}

/// Lowers the calling thread's scheduling priority (nice 10), so encoding
/// never competes on equal terms with serving threads. Threads the encoder
/// library starts afterwards inherit it.
pub(crate) fn lower_priority() {
    // SAFETY: gettid and setpriority on the calling thread; failure only
    // leaves the priority as it was.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

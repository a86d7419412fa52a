//! The encode stage: video encoders and the options that keep every rung's
//! segments aligned. Which stage runs where is decided in `stages`.
//!
//! A GPU encoder is used only when one can actually be opened: the check
//! opens a small NVENC session and keeps whatever the driver says. Model
//! names decide nothing (an H100 has NVDEC but no NVENC and answers
//! NV_ENC_ERR_UNSUPPORTED_DEVICE).

use ff::{codec, Dictionary, Rational};
use ffmpeg_next as ff;

use crate::error::TranscodeError;
use crate::rendition::Common;

/// `--gpu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuMode {
    /// Use a GPU encoder when one opens, else the CPU (said once).
    Auto,
    /// CPU only.
    Off,
    /// Fail unless a GPU encoder opens.
    Require,
}

impl std::str::FromStr for GpuMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "off" => Ok(Self::Off),
            "require" => Ok(Self::Require),
            _ => Err(format!("--gpu takes auto, off or require, not `{s}`")),
        }
    }
}

/// A video encoder a rung can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoEncoder {
    /// libx264 on the CPU.
    X264,
    /// NVIDIA NVENC through FFmpeg (`h264_nvenc`).
    Nvenc,
    /// SVT-AV1 through FFmpeg (`libsvtav1`).
    SvtAv1,
    /// rav1e through FFmpeg (`librav1e`): the AV1 fallback.
    Rav1e,
}

impl VideoEncoder {
    /// FFmpeg's encoder name.
    pub fn name(self) -> &'static str {
        match self {
            Self::X264 => "libx264",
            Self::Nvenc => "h264_nvenc",
            Self::SvtAv1 => "libsvtav1",
            Self::Rav1e => "librav1e",
        }
    }

    /// The FFmpeg encoder, if this build has it.
    pub fn find(self) -> Option<ff::Codec> {
        ff::encoder::find_by_name(self.name())
    }

    /// Rate-control and GOP options that make segment boundaries identical
    /// across renditions: fixed keyframe interval, closed GOP, no scene cuts.
    pub fn options(self, opts: &mut Dictionary, common: &Common) {
        let gop = common.gop;
        match self {
            Self::X264 => {
                opts.set("preset", &common.preset);
                opts.set("profile", "high");
                opts.set(
                    "x264-params",
                    &format!("keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0:nal-hrd=vbr"),
                );
            }
            Self::Nvenc => {
                opts.set("preset", "p4");
                opts.set("profile", "high");
                opts.set("rc", "vbr");
                opts.set("no-scenecut", "1");
                opts.set("forced-idr", "1");
                opts.set("strict_gop", "1");
            }
            Self::SvtAv1 => {
                // Closed GOP (IDR key frames), no scene-change key frames.
                opts.set("preset", &av1_speed(&common.preset, 4).to_string());
                opts.set("svtav1-params", "scd=0:irefresh-type=2");
            }
            Self::Rav1e => {
                opts.set(
                    "speed",
                    &av1_speed(&common.preset, 0).clamp(0, 10).to_string(),
                );
                opts.set("keyint_min", &gop.to_string());
            }
        }
    }

    /// Whether the encoder takes a VBV cap (maxrate/bufsize) with VBR.
    pub fn takes_vbv(self) -> bool {
        matches!(self, Self::X264 | Self::Nvenc)
    }
}

/// Maps an x264 preset name to an AV1 speed (`base` + 0…8, faster = higher).
fn av1_speed(x264_preset: &str, base: i32) -> i32 {
    let step = match x264_preset {
        "ultrafast" => 8,
        "superfast" => 7,
        "veryfast" => 6,
        "faster" => 5,
        "fast" => 4,
        "medium" => 3,
        "slow" => 2,
        "slower" => 1,
        _ => 0,
    };
    base + step
}

/// Picks the AV1 encoder: SVT-AV1 when this FFmpeg has it, else rav1e.
/// (Software encoders need no trial open — and SVT-AV1 1.4 hangs when an
/// encoder that never saw a frame is closed.)
pub fn select_av1() -> Result<VideoEncoder, TranscodeError> {
    crate::init();
    [VideoEncoder::SvtAv1, VideoEncoder::Rav1e]
        .into_iter()
        .find(|c| c.find().is_some())
        .ok_or(TranscodeError::MissingCodec("AV1 (libsvtav1 or librav1e)"))
}

/// Opens (and drops) a 256×256 session of `encoder`: for NVENC this asks
/// the driver, which is the only reliable test.
pub(crate) fn try_open(encoder: VideoEncoder) -> Result<(), String> {
    crate::init();
    let name = encoder.name();
    let codec = encoder
        .find()
        .ok_or_else(|| format!("this FFmpeg build has no {name}"))?;
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| e.to_string())?;
    enc.set_width(256);
    enc.set_height(256);
    enc.set_format(ff::format::Pixel::YUV420P);
    enc.set_time_base(Rational(1, 25));
    // FFmpeg logs the driver's refusal itself; keep the probe quiet.
    let level = ff::log::get_level();
    ff::log::set_level(ff::log::Level::Quiet);
    let opened = enc.open_as(codec);
    if let Ok(level) = level {
        ff::log::set_level(level);
    }
    opened
        .map(|_| ())
        .map_err(|e| format!("{name} did not open: {e}"))
}

//! Looking at an input before committing to it.

use std::path::Path;

use ff::media::Type;
use ffmpeg_next as ff;

use crate::error::TranscodeError;

/// What the pipeline needs to know about a source.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Index of the video stream.
    pub video_index: usize,
    /// Index of the audio stream, when there is one.
    pub audio_index: Option<usize>,
    /// Coded width and height.
    pub width: u32,
    /// Coded height.
    pub height: u32,
    /// Sample aspect ratio (1:1 when unknown).
    pub sample_aspect: (u32, u32),
    /// Frame rate as a fraction.
    pub frame_rate: (i32, i32),
    /// Duration in seconds (0 when the container does not say).
    pub duration: f64,
}

impl Probe {
    /// Frame rate as a float.
    pub fn fps(&self) -> f64 {
        f64::from(self.frame_rate.0) / f64::from(self.frame_rate.1.max(1))
    }
}

/// Opens `path`, checks that it holds decodable video, and describes it.
pub fn probe(path: &Path) -> Result<(ff::format::context::Input, Probe), TranscodeError> {
    crate::init();
    let input = ff::format::input(path).map_err(|e| match e {
        ff::Error::InvalidData => TranscodeError::Corrupt(format!(
            "{} is not a media file FFmpeg can read",
            path.display()
        )),
        other => TranscodeError::Open(path.to_path_buf(), other.to_string()),
    })?;
    // libavformat also "opens" text (rendered as ANSI art) and still images
    // as video; neither is a source anyone means to stream.
    let format = input.format().name().to_string();
    if is_pseudo_video(&format) {
        return Err(TranscodeError::Corrupt(format!(
            "{} is not a media file FFmpeg can read as video (it looks like {format})",
            path.display()
        )));
    }
    let video = input
        .streams()
        .best(Type::Video)
        .ok_or_else(|| TranscodeError::NotVideo(path.to_path_buf()))?;
    // Attached pictures (cover art) are not video.
    if video
        .disposition()
        .contains(ff::format::stream::Disposition::ATTACHED_PIC)
    {
        return Err(TranscodeError::NotVideo(path.to_path_buf()));
    }
    let decoder = ff::codec::context::Context::from_parameters(video.parameters())
        .and_then(|c| c.decoder().video())
        .map_err(|e| TranscodeError::Corrupt(format!("video stream: {e}")))?;
    if decoder.width() == 0 || decoder.height() == 0 {
        return Err(TranscodeError::Corrupt(
            "video stream has no picture size".into(),
        ));
    }
    let rate = video.avg_frame_rate();
    let rate = if rate.numerator() > 0 && rate.denominator() > 0 {
        rate
    } else {
        video.rate()
    };
    if rate.numerator() <= 0 || rate.denominator() <= 0 {
        return Err(TranscodeError::Corrupt(
            "video stream has no frame rate".into(),
        ));
    }
    let sar = decoder.aspect_ratio();
    let probe = Probe {
        video_index: video.index(),
        audio_index: input.streams().best(Type::Audio).map(|s| s.index()),
        width: decoder.width(),
        height: decoder.height(),
        sample_aspect: if sar.numerator() > 0 && sar.denominator() > 0 {
            (sar.numerator() as u32, sar.denominator() as u32)
        } else {
            (1, 1)
        },
        frame_rate: (rate.numerator(), rate.denominator()),
        duration: if input.duration() > 0 {
            input.duration() as f64 / f64::from(ff::ffi::AV_TIME_BASE)
        } else {
            0.0
        },
    };
    Ok((input, probe))
}

/// Demuxers that turn non-video (text art, still images, generators) into a
/// video stream.
fn is_pseudo_video(format: &str) -> bool {
    const PSEUDO: [&str; 9] = [
        "tty",
        "bin",
        "adf",
        "idf",
        "xbin",
        "image2",
        "lavfi",
        "ffmetadata",
        "concat",
    ];
    format
        .split(',')
        .any(|f| PSEUDO.contains(&f) || f.ends_with("_pipe"))
}

/// The codecs every transcode needs that this FFmpeg lacks (`streamgate
/// doctor`): the H.264 decoder, the libx264 and AAC encoders.
pub fn missing_codecs() -> Result<(), Vec<&'static str>> {
    crate::init();
    let missing: Vec<&'static str> = [
        (
            "h264 decoder",
            ff::decoder::find(ff::codec::Id::H264).is_some(),
        ),
        (
            "libx264 encoder",
            ff::encoder::find_by_name("libx264").is_some(),
        ),
        (
            "aac encoder",
            ff::encoder::find(ff::codec::Id::AAC).is_some(),
        ),
    ]
    .into_iter()
    .filter(|(_, found)| !found)
    .map(|(name, _)| name)
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

/// libavcodec's version, `major.minor.micro`.
pub fn libavcodec_version() -> String {
    let v = ff::codec::version();
    format!("{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff)
}

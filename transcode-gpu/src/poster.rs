//! The poster: one JPEG from about a tenth into the video, at the top
//! rendition's size.

use std::path::Path;

use ff::{codec, encoder, frame, software, Packet, Rational};
use ffmpeg_next as ff;

use crate::error::{encode, io, TranscodeError};

/// Encodes `source` scaled to `width`×`height` as `path` (JPEG).
pub fn write(
    source: &frame::Video,
    width: u32,
    height: u32,
    path: &Path,
) -> Result<(), TranscodeError> {
    let codec = encoder::find(codec::Id::MJPEG).ok_or(TranscodeError::MissingCodec("MJPEG"))?;
    // MJPEG takes full-range YUV.
    let format = ff::format::Pixel::YUVJ420P;
    let mut scaler = software::scaling::Context::get(
        source.format(),
        source.width(),
        source.height(),
        format,
        width,
        height,
        software::scaling::Flags::BICUBIC,
    )
    .map_err(|e| encode("scaling the poster", e))?;
    let mut scaled = frame::Video::empty();
    scaler
        .run(source, &mut scaled)
        .map_err(|e| encode("scaling the poster", e))?;
    scaled.set_pts(Some(0));

    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| encode("poster encoder", e))?;
    enc.set_width(width);
    enc.set_height(height);
    enc.set_format(format);
    enc.set_time_base(Rational(1, 25));
    // Fixed quantiser 3 (of 1–31): visually clean, a few tens of KiB.
    enc.set_flags(codec::Flags::QSCALE);
    enc.set_global_quality(3 * ff::ffi::FF_QP2LAMBDA);
    let mut enc = enc
        .open_as(codec)
        .map_err(|e| encode("opening the JPEG encoder", e))?;
    enc.send_frame(&scaled)
        .map_err(|e| encode("encoding the poster", e))?;
    enc.send_eof()
        .map_err(|e| encode("encoding the poster", e))?;
    let mut packet = Packet::empty();
    enc.receive_packet(&mut packet)
        .map_err(|e| encode("encoding the poster", e))?;
    let data = packet
        .data()
        .ok_or_else(|| TranscodeError::Encode("empty poster".into()))?;
    std::fs::write(path, data).map_err(|e| io("writing poster.jpg", e))
}

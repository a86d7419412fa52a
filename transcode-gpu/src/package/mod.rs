//! Manifests over the produced segments, both from what is on disk (sizes,
//! real durations, exact decode times), never from targets: [`Rendition`]
//! reads a rendition back, [`hls`] writes the media, I-frame and
//! multivariant playlists, [`dash`] the MPD, and [`mp4`] reads the
//! ISO-BMFF boxes all of them rely on.

pub mod dash;
pub mod hls;
pub mod mp4;

use std::path::Path;

use crate::error::{io, TranscodeError};
use crate::rendition::Encoded;

/// One produced segment.
#[derive(Debug, Clone)]
pub struct Segment {
    /// URI relative to the rendition directory (`3.m4s`).
    pub uri: String,
    /// EXTINF duration in seconds (from timestamps).
    pub duration: f64,
    /// Size in bytes.
    pub bytes: u64,
    /// Decode time of the first sample (`tfdt`), in `timescale` units.
    pub start: u64,
    /// Sum of the segment's sample durations, in `timescale` units.
    pub ticks: u64,
    /// Bytes from the segment's start through its first (key) frame.
    pub keyframe_end: Option<u64>,
}

/// A rendition as written, with what the manifests need.
#[derive(Debug, Clone)]
pub struct Rendition {
    /// What the encoder reported.
    pub encoded: Encoded,
    /// Segments in order.
    pub segments: Vec<Segment>,
    /// Media timescale from `init.mp4`.
    pub timescale: u32,
    /// RFC 6381 codec string, read from `init.mp4`'s sample entry.
    pub codec: String,
}

impl Rendition {
    /// Reads a rendition directory back: playlist, segment sizes, decode times.
    pub fn read(dir: &Path, encoded: Encoded) -> Result<Self, TranscodeError> {
        let playlist = std::fs::read_to_string(dir.join("index.m3u8"))
            .map_err(|e| io("reading a media playlist", e))?;
        let init = std::fs::read(dir.join("init.mp4")).map_err(|e| io("reading init.mp4", e))?;
        let timescale = mp4::timescale(&init).ok_or_else(|| {
            TranscodeError::Encode(format!("{}/init.mp4 has no media timescale", encoded.name))
        })?;
        let mut segments = Vec::new();
        let mut pending: Option<f64> = None;
        for line in playlist.lines() {
            if let Some(rest) = line.strip_prefix("#EXTINF:") {
                pending = rest.split(',').next().and_then(|d| d.parse().ok());
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                let duration = pending.take().ok_or_else(|| {
                    TranscodeError::Encode(format!("{}: segment without EXTINF", encoded.name))
                })?;
                let data = std::fs::read(dir.join(line.trim()))
                    .map_err(|e| io(format!("reading {}", line.trim()), e))?;
                let start = mp4::tfdt(&data).ok_or_else(|| {
                    TranscodeError::Encode(format!("{}/{}: no tfdt", encoded.name, line.trim()))
                })?;
                let ticks = mp4::fragment_duration(&data).ok_or_else(|| {
                    TranscodeError::Encode(format!(
                        "{}/{}: unreadable trun",
                        encoded.name,
                        line.trim()
                    ))
                })?;
                segments.push(Segment {
                    uri: line.trim().to_string(),
                    duration,
                    bytes: data.len() as u64,
                    start,
                    ticks,
                    keyframe_end: mp4::first_sample_end(&data),
                });
            }
        }
        if segments.is_empty() {
            return Err(TranscodeError::Encode(format!(
                "{} produced no segments",
                encoded.name
            )));
        }
        let codec = mp4::codec_string(&init).ok_or_else(|| {
            TranscodeError::Encode(format!(
                "{}/init.mp4 has no readable codec configuration",
                encoded.name
            ))
        })?;
        let mut rendition = Self {
            encoded,
            segments,
            timescale,
            codec,
        };
        rendition.exact_durations();
        std::fs::write(dir.join("index.m3u8"), rendition.media_playlist())
            .map_err(|e| io("rewriting a media playlist", e))?;
        Ok(rendition)
    }

    /// Replaces the muxer's EXTINF values with exact ones: the sum of each
    /// segment's sample durations (the muxer leaves the last frame's own
    /// duration out of the last segment).
    fn exact_durations(&mut self) {
        let ts = f64::from(self.timescale);
        for s in &mut self.segments {
            s.duration = s.ticks as f64 / ts;
        }
    }

    /// Peak bitrate of the keyframes alone, bits per second.
    pub fn iframe_peak_bps(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| {
                (s.keyframe_end.unwrap_or(0) as f64 * 8.0 / s.duration.max(0.001)).ceil() as u64
            })
            .max()
            .unwrap_or(0)
    }

    /// Number of the first segment (`1` for `1.m4s`).
    pub fn first_number(&self) -> u64 {
        self.segments
            .first()
            .and_then(|s| s.uri.trim_end_matches(".m4s").parse().ok())
            .unwrap_or(1)
    }

    /// Sum of EXTINF durations.
    pub fn duration(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).sum()
    }

    /// Peak segment bitrate, bits per second.
    pub fn peak_bps(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| (s.bytes as f64 * 8.0 / s.duration.max(0.001)).ceil() as u64)
            .max()
            .unwrap_or(0)
    }

    /// Average bitrate over the whole rendition, bits per second.
    pub fn average_bps(&self) -> u64 {
        let bytes: u64 = self.segments.iter().map(|s| s.bytes).sum();
        (bytes as f64 * 8.0 / self.duration().max(0.001)).ceil() as u64
    }

    /// (start, duration) of each segment in timescale units.
    pub fn timeline(&self) -> Vec<(u64, u64)> {
        let ts = f64::from(self.timescale);
        self.segments
            .iter()
            .map(|s| (s.start, (s.duration * ts).round() as u64))
            .collect()
    }
}

pub use dash::mpd;
pub use hls::master_playlist;

//! Manifests over the produced segments: the HLS multivariant playlist and
//! the DASH MPD, both from what is on disk (sizes, real durations, exact
//! decode times), never from targets.

use std::fmt::Write as _;
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

    /// The HLS media playlist for this rendition.
    pub fn media_playlist(&self) -> String {
        let mut out = self.playlist_head(false);
        for s in &self.segments {
            let _ = write!(out, "#EXTINF:{:.6},\n{}\n", s.duration, s.uri);
        }
        out.push_str("#EXT-X-ENDLIST\n");
        out
    }

    /// The tags both media and I-frame playlists start with.
    fn playlist_head(&self, iframes_only: bool) -> String {
        let target = self
            .segments
            .iter()
            .map(|s| s.duration.round() as u64)
            .max()
            .unwrap_or(1)
            .max(1);
        format!(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{}\n\
             #EXT-X-PLAYLIST-TYPE:VOD\n{}#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init.mp4\"\n",
            self.first_number(),
            if iframes_only { "#EXT-X-I-FRAMES-ONLY\n" } else { "" }
        )
    }

    /// The I-frame playlist (`iframes.m3u8`): each segment's keyframe as a
    /// byte range, for trick play and thumbnails. `None` when a segment's
    /// keyframe range cannot be read.
    pub fn iframe_playlist(&self) -> Option<String> {
        let mut out = self.playlist_head(true);
        for s in &self.segments {
            let _ = write!(
                out,
                "#EXTINF:{:.6},\n#EXT-X-BYTERANGE:{}@0\n{}\n",
                s.duration, s.keyframe_end?, s.uri
            );
        }
        out.push_str("#EXT-X-ENDLIST\n");
        Some(out)
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

/// The HLS v7 multivariant playlist.
pub fn master_playlist(videos: &[Rendition], audio: Option<&Rendition>, frame_rate: f64) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    if let Some(a) = audio {
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"{}/index.m3u8\"",
            a.encoded.name
        );
    }
    for v in videos {
        let (w, h) = v.encoded.size.unwrap_or((0, 0));
        let (peak, avg, codecs) = match audio {
            Some(a) => (
                v.peak_bps() + a.peak_bps(),
                v.average_bps() + a.average_bps(),
                format!("{},{}", v.codec, a.codec),
            ),
            None => (v.peak_bps(), v.average_bps(), v.codec.clone()),
        };
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={peak},AVERAGE-BANDWIDTH={avg},CODECS=\"{codecs}\",RESOLUTION={w}x{h},FRAME-RATE={frame_rate:.3}"
        );
        if audio.is_some() {
            out.push_str(",AUDIO=\"aud\"");
        }
        let _ = writeln!(out, "\n{}/index.m3u8", v.encoded.name);
    }
    for v in videos.iter().filter(|v| v.iframe_playlist().is_some()) {
        let (w, h) = v.encoded.size.unwrap_or((0, 0));
        let _ = writeln!(
            out,
            "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH={},CODECS=\"{}\",RESOLUTION={w}x{h},URI=\"{}/iframes.m3u8\"",
            v.iframe_peak_bps(),
            v.codec,
            v.encoded.name
        );
    }
    out
}

/// A static MPD over the same files (SegmentTemplate + SegmentTimeline).
pub fn mpd(
    videos: &[Rendition],
    audio: Option<&Rendition>,
    frame_rate: (i32, i32),
    segment_seconds: u32,
) -> String {
    let duration = videos.first().map_or(0.0, Rendition::duration);
    let mut out = String::new();
    let _ = writeln!(out, "<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    let _ = writeln!(
        out,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019\" \
         type=\"static\" mediaPresentationDuration=\"{}\" minBufferTime=\"PT{segment_seconds}S\">",
        iso_duration(duration)
    );
    let _ = writeln!(out, "  <Period id=\"0\" start=\"PT0S\">");
    // One video AdaptationSet per codec family: players switch seamlessly
    // only within one.
    let mut families: Vec<&str> = Vec::new();
    for v in videos {
        let family = v.codec.split('.').next().unwrap_or("");
        if !families.contains(&family) {
            families.push(family);
        }
    }
    let mut set_id = 0;
    for family in families {
        let members: Vec<&Rendition> = videos
            .iter()
            .filter(|v| v.codec.split('.').next() == Some(family))
            .collect();
        let (max_w, max_h) = members
            .iter()
            .filter_map(|v| v.encoded.size)
            .max()
            .unwrap_or((0, 0));
        let _ = writeln!(
            out,
            "    <AdaptationSet id=\"{set_id}\" contentType=\"video\" mimeType=\"video/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\" \
             maxWidth=\"{max_w}\" maxHeight=\"{max_h}\" frameRate=\"{}/{}\">",
            frame_rate.0, frame_rate.1
        );
        set_id += 1;
        for v in members {
            let (w, h) = v.encoded.size.unwrap_or((0, 0));
            let _ = writeln!(
                out,
                "      <Representation id=\"{}\" codecs=\"{}\" bandwidth=\"{}\" width=\"{w}\" height=\"{h}\">",
                v.encoded.name,
                v.codec,
                v.peak_bps()
            );
            template(&mut out, v);
            let _ = writeln!(out, "      </Representation>");
        }
        let _ = writeln!(out, "    </AdaptationSet>");
    }
    if let Some(a) = audio {
        let _ = writeln!(out, "    <AdaptationSet id=\"{set_id}\" contentType=\"audio\" mimeType=\"audio/mp4\" segmentAlignment=\"true\" lang=\"und\">");
        let _ = writeln!(
            out,
            "      <Representation id=\"{}\" codecs=\"{}\" bandwidth=\"{}\" audioSamplingRate=\"48000\">",
            a.encoded.name,
            a.codec,
            a.peak_bps()
        );
        let _ = writeln!(
            out,
            "        <AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"2\"/>"
        );
        template(&mut out, a);
        let _ = writeln!(out, "      </Representation>");
        let _ = writeln!(out, "    </AdaptationSet>");
    }
    let _ = writeln!(out, "  </Period>\n</MPD>");
    out
}

fn template(out: &mut String, r: &Rendition) {
    let first = r.first_number();
    let _ = writeln!(
        out,
        "        <SegmentTemplate timescale=\"{}\" initialization=\"$RepresentationID$/init.mp4\" media=\"$RepresentationID$/$Number$.m4s\" startNumber=\"{first}\">",
        r.timescale
    );
    let _ = writeln!(out, "          <SegmentTimeline>");
    for (t, d) in r.timeline() {
        let _ = writeln!(out, "            <S t=\"{t}\" d=\"{d}\"/>");
    }
    let _ = writeln!(
        out,
        "          </SegmentTimeline>\n        </SegmentTemplate>"
    );
}

fn iso_duration(seconds: f64) -> String {
    format!("PT{:.3}S", seconds.max(0.0))
}

/// Just enough ISO-BMFF to read a timescale and a fragment's decode time.
pub mod mp4 {
    /// Iterates the boxes in `data`: (offset of the box in `data`, type,
    /// payload).
    fn boxes_at(data: &[u8]) -> impl Iterator<Item = (usize, [u8; 4], &[u8])> {
        let mut offset = 0usize;
        std::iter::from_fn(move || {
            let rest = data.get(offset..)?;
            if rest.len() < 8 {
                return None;
            }
            let size32 = u32::from_be_bytes(rest[0..4].try_into().ok()?) as u64;
            let kind: [u8; 4] = rest[4..8].try_into().ok()?;
            let (header, size) = match size32 {
                1 => (16, u64::from_be_bytes(rest.get(8..16)?.try_into().ok()?)),
                0 => (8, rest.len() as u64),
                n => (8, n),
            };
            let size = usize::try_from(size).ok()?;
            if size < header || size > rest.len() {
                return None;
            }
            let item = (offset, kind, &rest[header..size]);
            offset += size;
            Some(item)
        })
    }

    /// Iterates the boxes in `data`: (type, payload).
    fn boxes(data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
        boxes_at(data).map(|(_, kind, payload)| (kind, payload))
    }

    fn find<'a>(data: &'a [u8], path: &[&[u8; 4]]) -> Option<&'a [u8]> {
        let (first, rest) = path.split_first()?;
        let (_, payload) = boxes(data).find(|(k, _)| k == *first)?;
        if rest.is_empty() {
            Some(payload)
        } else {
            find(payload, rest)
        }
    }

    /// `moov/trak/mdia/mdhd` timescale of the first track.
    pub fn timescale(init: &[u8]) -> Option<u32> {
        let mdhd = find(init, &[b"moov", b"trak", b"mdia", b"mdhd"])?;
        let offset = if mdhd.first()? == &1 { 4 + 16 } else { 4 + 8 };
        Some(u32::from_be_bytes(
            mdhd.get(offset..offset + 4)?.try_into().ok()?,
        ))
    }

    fn be32(data: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
    }

    /// The 24 flag bits of a full box.
    fn full_box_flags(payload: &[u8]) -> Option<u32> {
        Some(be32(payload, 0)? & 0x00ff_ffff)
    }

    /// A `traf`'s samples as `tfhd` defaults and its `trun`s describe them.
    struct TrackFragment {
        /// (duration, size) of each sample, where known.
        samples: Vec<(Option<u32>, Option<u32>)>,
        /// The first `trun`'s data offset (from the `moof` start, as
        /// default-base-is-moof fragments have it).
        data_offset: Option<i32>,
    }

    fn track_fragment(traf: &[u8]) -> Option<TrackFragment> {
        let tfhd = boxes(traf).find(|(k, _)| k == b"tfhd")?.1;
        let tfhd_flags = full_box_flags(tfhd)?;
        // tfhd: version/flags, track_ID, then optional fields in flag order.
        let mut at = 8;
        let mut optional = |flag: u32, len: usize| {
            let value = (tfhd_flags & flag != 0).then(|| be32(tfhd, at)).flatten();
            if tfhd_flags & flag != 0 {
                at += len;
            }
            value
        };
        optional(0x01, 8); // base_data_offset
        optional(0x02, 4); // sample_description_index
        let default_duration = optional(0x08, 4);
        let default_size = optional(0x10, 4);

        let mut fragment = TrackFragment {
            samples: Vec::new(),
            data_offset: None,
        };
        for (_, trun) in boxes(traf).filter(|(k, _)| k == b"trun") {
            let flags = full_box_flags(trun)?;
            let count = be32(trun, 4)? as usize;
            let mut at = 8;
            if flags & 0x01 != 0 {
                let offset = be32(trun, at)? as i32;
                fragment.data_offset.get_or_insert(offset);
                at += 4;
            }
            if flags & 0x04 != 0 {
                at += 4; // first_sample_flags
            }
            for _ in 0..count {
                let mut field = |flag: u32| {
                    let value = (flags & flag != 0).then(|| be32(trun, at));
                    if flags & flag != 0 {
                        at += 4;
                    }
                    value
                };
                let duration = field(0x100).map_or(Some(default_duration), |v| v.map(Some))?;
                let size = field(0x200).map_or(Some(default_size), |v| v.map(Some))?;
                field(0x400); // sample_flags
                field(0x800); // composition time offset
                fragment.samples.push((duration, size));
            }
        }
        Some(fragment)
    }

    /// Sum of the sample durations of a fragment (`trun` per-sample
    /// durations, else the `tfhd` default).
    pub fn fragment_duration(segment: &[u8]) -> Option<u64> {
        let traf = find(segment, &[b"moof", b"traf"])?;
        track_fragment(traf)?
            .samples
            .iter()
            .map(|(duration, _)| duration.map(u64::from))
            .sum()
    }

    /// Bytes from the start of a segment to the end of its first sample
    /// (the keyframe): what an I-frame playlist's BYTERANGE covers.
    pub fn first_sample_end(segment: &[u8]) -> Option<u64> {
        let (moof_at, _, moof) = boxes_at(segment).find(|(_, k, _)| k == b"moof")?;
        let fragment = track_fragment(find(moof, &[b"traf"])?)?;
        let start = moof_at as i64 + i64::from(fragment.data_offset?);
        let first_size = fragment.samples.first()?.1?;
        u64::try_from(start + i64::from(first_size)).ok()
    }

    /// The RFC 6381 codec string of the first track's sample entry.
    pub fn codec_string(init: &[u8]) -> Option<String> {
        let stsd = find(
            init,
            &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"],
        )?;
        let (kind, entry) = boxes(stsd.get(8..)?).next()?;
        match &kind {
            b"mp4a" => Some("mp4a.40.2".into()),
            // Visual sample entries: 78 bytes of fields before child boxes.
            b"avc1" | b"avc3" => {
                let (_, avcc) = boxes(entry.get(78..)?).find(|(k, _)| k == b"avcC")?;
                let entry = std::str::from_utf8(&kind).ok()?;
                Some(format!(
                    "{entry}.{}",
                    crate::codecs::avc_profile_level(avcc)?
                ))
            }
            b"av01" => {
                let (_, av1c) = boxes(entry.get(78..)?).find(|(k, _)| k == b"av1C")?;
                crate::codecs::av01(av1c)
            }
            _ => None,
        }
    }

    /// `moof/traf/tfdt` base media decode time of a fragment.
    pub fn tfdt(segment: &[u8]) -> Option<u64> {
        let tfdt = find(segment, &[b"moof", b"traf", b"tfdt"])?;
        if tfdt.first()? == &1 {
            Some(u64::from_be_bytes(tfdt.get(4..12)?.try_into().ok()?))
        } else {
            Some(u64::from(u32::from_be_bytes(
                tfdt.get(4..8)?.try_into().ok()?,
            )))
        }
    }

    #[cfg(test)]
    mod tests {
        fn bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
            let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
            v.extend_from_slice(kind);
            v.extend_from_slice(payload);
            v
        }

        #[test]
        fn reads_timescale_and_tfdt() {
            let mut mdhd = vec![0, 0, 0, 0];
            mdhd.extend_from_slice(&[0; 8]);
            mdhd.extend_from_slice(&15360u32.to_be_bytes());
            let init = bx(b"moov", &bx(b"trak", &bx(b"mdia", &bx(b"mdhd", &mdhd))));
            assert_eq!(super::timescale(&init), Some(15360));
            let mut tfdt = vec![1, 0, 0, 0];
            tfdt.extend_from_slice(&123_456u64.to_be_bytes());
            let seg = [
                bx(b"styp", b"cmfs"),
                bx(b"moof", &bx(b"traf", &bx(b"tfdt", &tfdt))),
            ]
            .concat();
            assert_eq!(super::tfdt(&seg), Some(123_456));
            assert_eq!(super::tfdt(&seg[..10]), None);
        }

        #[test]
        fn reads_sample_runs() {
            // tfhd: default-base-is-moof + default duration 1024.
            let mut tfhd = 0x0002_0008u32.to_be_bytes().to_vec();
            tfhd.extend_from_slice(&1u32.to_be_bytes()); // track_ID
            tfhd.extend_from_slice(&1024u32.to_be_bytes());
            // trun: data offset + per-sample sizes, two samples.
            let mut trun = 0x0000_0201u32.to_be_bytes().to_vec();
            trun.extend_from_slice(&2u32.to_be_bytes());
            trun.extend_from_slice(&100i32.to_be_bytes());
            trun.extend_from_slice(&10u32.to_be_bytes());
            trun.extend_from_slice(&20u32.to_be_bytes());
            let moof = bx(
                b"moof",
                &bx(b"traf", &[bx(b"tfhd", &tfhd), bx(b"trun", &trun)].concat()),
            );
            let seg = [bx(b"styp", b"cmfs"), moof].concat();
            assert_eq!(super::fragment_duration(&seg), Some(2048));
            // styp is 12 bytes: the moof starts there, samples 100 bytes later.
            assert_eq!(super::first_sample_end(&seg), Some(12 + 100 + 10));
            // Without a default duration and no per-sample durations: unknown.
            let mut no_default = 0x0002_0000u32.to_be_bytes().to_vec();
            no_default.extend_from_slice(&1u32.to_be_bytes());
            let bare = bx(
                b"moof",
                &bx(
                    b"traf",
                    &[bx(b"tfhd", &no_default), bx(b"trun", &trun)].concat(),
                ),
            );
            assert_eq!(super::fragment_duration(&bare), None);
        }
    }
}

//! HLS: each rendition's media and I-frame playlists (exact EXTINF from
//! the fragments), and the multivariant playlist over all of them.

use std::fmt::Write as _;

use super::Rendition;

impl Rendition {
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

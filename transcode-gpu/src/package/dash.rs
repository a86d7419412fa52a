//! DASH: a static MPD over the same CMAF files (SegmentTemplate +
//! SegmentTimeline from each fragment's decode time).

use std::fmt::Write as _;

use super::Rendition;

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

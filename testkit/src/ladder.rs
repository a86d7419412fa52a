//! A packaged asset (Contract 2) with a ladder of synthetic renditions of
//! exact bitrates, for the players of `loadtest viewers`: in its tests and
//! in its scale benchmark.

use std::io;
use std::path::Path;

/// A packaged asset with a ladder of synthetic renditions, for players:
/// `rungs` are (name, kbit/s); every rendition has `segments` segments of
/// `seconds` each, whose sizes are exactly the bitrate × duration, listed
/// by an HLS multivariant playlist and a DASH MPD (SegmentTimeline).
pub fn write(dir: &Path, rungs: &[(&str, u64)], segments: usize, seconds: f64) -> io::Result<()> {
    let mut master = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let ms = (seconds * 1000.0).round() as u64;
    let total = seconds * segments as f64;
    let mut mpd = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" type=\"static\" \
         mediaPresentationDuration=\"PT{total:.3}S\" minBufferTime=\"PT2S\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\">\n\
         <Period id=\"0\" start=\"PT0S\">\n<AdaptationSet contentType=\"video\" mimeType=\"video/mp4\" segmentAlignment=\"true\">\n"
    );
    for (i, (name, kbps)) in rungs.iter().enumerate() {
        let bps = kbps * 1000;
        master.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={bps},CODECS=\"avc1.64001e\"\n{name}/index.m3u8\n"
        ));
        let mut media = format!(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"init.mp4\"\n",
            seconds.ceil() as u64
        );
        put(&dir.join(name).join("init.mp4"), &pattern(800, i as u8))?;
        let size = (bps as f64 / 8.0 * seconds) as usize;
        for n in 0..segments {
            media.push_str(&format!("#EXTINF:{seconds:.6},\n{n}.m4s\n"));
            put(
                &dir.join(name).join(format!("{n}.m4s")),
                &pattern(size, n as u8),
            )?;
        }
        media.push_str("#EXT-X-ENDLIST\n");
        put(&dir.join(name).join("index.m3u8"), media.as_bytes())?;
        mpd.push_str(&format!(
            "<Representation id=\"{name}\" codecs=\"avc1.64001e\" bandwidth=\"{bps}\">\n\
             <SegmentTemplate timescale=\"1000\" initialization=\"$RepresentationID$/init.mp4\" \
             media=\"$RepresentationID$/$Number$.m4s\" startNumber=\"0\">\n<SegmentTimeline><S t=\"0\" d=\"{ms}\" r=\"{}\"/></SegmentTimeline>\n\
             </SegmentTemplate>\n</Representation>\n",
            segments - 1
        ));
    }
    mpd.push_str("</AdaptationSet>\n</Period>\n</MPD>\n");
    put(&dir.join("master.m3u8"), master.as_bytes())?;
    put(&dir.join("manifest.mpd"), mpd.as_bytes())
}

fn put(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)
}

/// Bytes that do not compress (a segment is not a run of zeros).
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x9e37_79b9_u32 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

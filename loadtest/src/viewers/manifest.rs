//! What a player reads from a manifest: renditions with their bitrates and
//! segment lists, from an HLS multivariant (or media) playlist through
//! `m3u8-rs`, or a DASH MPD through `dash-mpd-core`. URIs are resolved to
//! paths on the manifest's origin.

use dash_mpd_core::{AdaptationSet, Representation, SegmentTemplate, MPD};
use m3u8_rs::{AlternativeMediaType, Playlist};

use crate::LoadError;

/// A stream as a player sees it.
#[derive(Debug, Clone)]
pub struct Presentation {
    /// Video renditions (or the muxed ones), lowest bitrate first.
    pub renditions: Vec<Rendition>,
    /// A separate audio track, fetched beside the video.
    pub audio: Option<Source>,
}

/// One rendition of the ladder.
#[derive(Debug, Clone)]
pub struct Rendition {
    /// Its name (the HLS URI's folder, the DASH Representation id).
    pub name: String,
    /// Its declared bitrate, bits per second.
    pub bandwidth: u64,
    /// Where its segments are listed.
    pub source: Source,
}

/// Where a track's segments come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// An HLS media playlist, loaded when the track is first played (and
    /// again for live).
    Playlist(String),
    /// Already known (DASH), shared by every viewer of the manifest.
    Known(std::rc::Rc<Track>),
}

/// A track's segments.
#[derive(Debug, Clone, Default)]
pub struct Track {
    /// The initialization segment, if any.
    pub init: Option<Part>,
    /// Media segments in order.
    pub segments: Vec<Segment>,
    /// No more segments will come (VOD, or a live stream that ended).
    pub ended: bool,
    /// HLS target duration (how often a live playlist is refreshed).
    pub target_duration: f64,
}

/// A path with an optional byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Path on the origin.
    pub path: String,
    /// `(offset, length)`.
    pub range: Option<(u64, u64)>,
}

/// One media segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// What to fetch.
    pub part: Part,
    /// Seconds of media.
    pub duration: f64,
    /// HLS media sequence number (its place in a live stream).
    pub sequence: u64,
}

/// Whether `text` is an HLS playlist or a DASH MPD, and its presentation.
/// `path` is the manifest's own path, for resolving URIs.
pub fn parse(text: &[u8], path: &str) -> Result<Presentation, LoadError> {
    let trimmed = String::from_utf8_lossy(&text[..text.len().min(512)]);
    let start = trimmed.trim_start_matches('\u{feff}').trim_start();
    if start.starts_with("#EXTM3U") {
        hls(text, path)
    } else if start.starts_with('<') && String::from_utf8_lossy(text).contains("<MPD") {
        dash(text, path)
    } else {
        Err(LoadError::Manifest(format!(
            "{path} is neither an HLS playlist (#EXTM3U) nor a DASH MPD"
        )))
    }
}

fn bad(path: &str, why: impl std::fmt::Display) -> LoadError {
    LoadError::Manifest(format!("{path}: {why}"))
}

fn hls(text: &[u8], path: &str) -> Result<Presentation, LoadError> {
    match m3u8_rs::parse_playlist_res(text)
        .map_err(|e| bad(path, format!("{e:?}").chars().take(120).collect::<String>()))?
    {
        Playlist::MasterPlaylist(master) => {
            let mut renditions: Vec<Rendition> = master
                .variants
                .iter()
                .filter(|v| !v.is_i_frame)
                .map(|v| Rendition {
                    name: v
                        .uri
                        .rsplit_once('/')
                        .map_or(v.uri.as_str(), |(d, _)| d)
                        .to_string(),
                    bandwidth: v.bandwidth,
                    source: Source::Playlist(resolve(path, &v.uri)),
                })
                .collect();
            if renditions.is_empty() {
                return Err(bad(path, "a multivariant playlist with no variant"));
            }
            renditions.sort_by_key(|r| r.bandwidth);
            // The audio group the variants name, its default (or first) member.
            let group = master.variants.iter().find_map(|v| v.audio.clone());
            let audio = group.and_then(|g| {
                let members: Vec<_> = master
                    .alternatives
                    .iter()
                    .filter(|a| a.media_type == AlternativeMediaType::Audio && a.group_id == g)
                    .collect();
                members
                    .iter()
                    .find(|a| a.default)
                    .or(members.first())
                    .and_then(|a| a.uri.as_deref())
                    .map(|uri| Source::Playlist(resolve(path, uri)))
            });
            Ok(Presentation { renditions, audio })
        }
        Playlist::MediaPlaylist(_) => {
            // Checked here; the player loads it again as its one rendition
            // (and reloads it while it is live: no EXT-X-ENDLIST).
            media_playlist(text, path)?;
            Ok(Presentation {
                renditions: vec![Rendition {
                    name: "main".into(),
                    bandwidth: 0,
                    source: Source::Playlist(path.to_string()),
                }],
                audio: None,
            })
        }
    }
}

/// An HLS media playlist's segments.
pub fn media_playlist(text: &[u8], path: &str) -> Result<Track, LoadError> {
    let Playlist::MediaPlaylist(media) = m3u8_rs::parse_playlist_res(text).map_err(|e| {
        bad(
            path,
            format!("not a media playlist: {e:?}")
                .chars()
                .take(120)
                .collect::<String>(),
        )
    })?
    else {
        return Err(bad(
            path,
            "expected a media playlist, got a multivariant one",
        ));
    };
    let mut init = None;
    let mut segments = Vec::with_capacity(media.segments.len());
    let mut next_offset = 0;
    for (i, s) in media.segments.iter().enumerate() {
        if let Some(map) = &s.map {
            init = Some(Part {
                path: resolve(path, &map.uri),
                range: map
                    .byte_range
                    .as_ref()
                    .map(|r| (r.offset.unwrap_or(0), r.length)),
            });
        }
        let range = s.byte_range.as_ref().map(|r| {
            let offset = r.offset.unwrap_or(next_offset);
            next_offset = offset + r.length;
            (offset, r.length)
        });
        segments.push(Segment {
            part: Part {
                path: resolve(path, &s.uri),
                range,
            },
            duration: f64::from(s.duration),
            sequence: media.media_sequence + i as u64,
        });
    }
    Ok(Track {
        init,
        segments,
        ended: media.end_list,
        target_duration: media.target_duration as f64,
    })
}

fn dash(text: &[u8], path: &str) -> Result<Presentation, LoadError> {
    let xml = std::str::from_utf8(text).map_err(|_| bad(path, "not UTF-8"))?;
    let mpd: MPD = dash_mpd_core::parse(xml).map_err(|e| bad(path, e))?;
    if mpd.mpdtype.as_deref() == Some("dynamic") {
        return Err(bad(
            path,
            "a live (dynamic) MPD: live DASH is not simulated yet; use the HLS playlist",
        ));
    }
    let period = mpd.periods.first().ok_or_else(|| bad(path, "no Period"))?;
    let period_seconds = period
        .duration
        .or(mpd.mediaPresentationDuration)
        .map(|d| d.as_secs_f64());
    let base = [mpd.base_url.first(), period.BaseURL.first()]
        .into_iter()
        .flatten()
        .fold(path.to_string(), |at, b| resolve(&at, &b.base));
    let kind = |set: &AdaptationSet, r: Option<&Representation>| {
        let mime = r
            .and_then(|r| r.mimeType.clone())
            .or(set.mimeType.clone())
            .unwrap_or_default();
        set.contentType
            .clone()
            .unwrap_or_else(|| mime.split('/').next().unwrap_or_default().to_string())
    };
    let mut renditions = Vec::new();
    let mut audio = None;
    for set in &period.adaptations {
        let set_base = set
            .BaseURL
            .first()
            .map_or(base.clone(), |b| resolve(&base, &b.base));
        for r in &set.representations {
            let content = kind(set, Some(r));
            if content != "video" && content != "audio" {
                continue;
            }
            let rep_base = r
                .BaseURL
                .first()
                .map_or(set_base.clone(), |b| resolve(&set_base, &b.base));
            let template = merge_templates(set.SegmentTemplate.as_ref(), r.SegmentTemplate.as_ref())
                .ok_or_else(|| {
                    bad(path, "a Representation without SegmentTemplate (SegmentBase and SegmentList are not simulated)")
                })?;
            let track = dash_track(&template, r, &rep_base, period_seconds)
                .map_err(|why| bad(path, why))?;
            if content == "video" {
                renditions.push(Rendition {
                    name: r.id.clone().unwrap_or_default(),
                    bandwidth: r.bandwidth.unwrap_or(0),
                    source: Source::Known(std::rc::Rc::new(track)),
                });
            } else if audio.is_none() {
                audio = Some(Source::Known(std::rc::Rc::new(track)));
            }
        }
    }
    if renditions.is_empty() {
        return Err(bad(path, "no video Representation"));
    }
    renditions.sort_by_key(|r| r.bandwidth);
    Ok(Presentation { renditions, audio })
}

/// A Representation's template, inheriting what its AdaptationSet says.
fn merge_templates(
    set: Option<&SegmentTemplate>,
    rep: Option<&SegmentTemplate>,
) -> Option<SegmentTemplate> {
    match (set, rep) {
        (None, None) => None,
        (Some(t), None) | (None, Some(t)) => Some(t.clone()),
        (Some(s), Some(r)) => {
            let mut t = r.clone();
            t.media = t.media.or(s.media.clone());
            t.initialization = t.initialization.or(s.initialization.clone());
            t.timescale = t.timescale.or(s.timescale);
            t.startNumber = t.startNumber.or(s.startNumber);
            t.duration = t.duration.or(s.duration);
            t.SegmentTimeline = t.SegmentTimeline.or(s.SegmentTimeline.clone());
            Some(t)
        }
    }
}

/// The segments a SegmentTemplate describes (with a SegmentTimeline, or a
/// fixed duration over the period).
fn dash_track(
    t: &SegmentTemplate,
    r: &Representation,
    base: &str,
    period_seconds: Option<f64>,
) -> Result<Track, String> {
    let timescale = t.timescale.unwrap_or(1).max(1) as f64;
    let media = t
        .media
        .as_deref()
        .ok_or("a SegmentTemplate without @media")?;
    let id = r.id.as_deref().unwrap_or_default();
    let bandwidth = r.bandwidth.unwrap_or(0);
    let fill = |template: &str, number: u64, time: u64| -> Result<String, String> {
        Ok(resolve(
            base,
            &expand(template, id, bandwidth, number, time)?,
        ))
    };
    let mut number = t.startNumber.unwrap_or(1);
    let mut segments = Vec::new();
    if let Some(timeline) = &t.SegmentTimeline {
        let mut time = 0u64;
        let end = period_seconds.map(|s| (s * timescale) as u64);
        for s in &timeline.segments {
            if let Some(t0) = s.t {
                time = t0;
            }
            let repeats = match s.r {
                Some(r) if r < 0 => {
                    let end = end.ok_or("S@r=-1 without a period duration")?;
                    end.saturating_sub(time)
                        .div_ceil(s.d.max(1))
                        .saturating_sub(1)
                }
                Some(r) => r as u64,
                None => 0,
            };
            for _ in 0..=repeats {
                segments.push(Segment {
                    part: Part {
                        path: fill(media, number, time)?,
                        range: None,
                    },
                    duration: s.d as f64 / timescale,
                    sequence: number,
                });
                number += 1;
                time += s.d;
            }
        }
    } else {
        let d = t
            .duration
            .ok_or("a SegmentTemplate with neither SegmentTimeline nor @duration")?
            / timescale;
        let total = period_seconds.ok_or("@duration segments without a period duration")?;
        let count = (total / d).ceil().max(1.0) as u64;
        for i in 0..count {
            let duration = if i + 1 == count {
                total - d * i as f64
            } else {
                d
            };
            segments.push(Segment {
                part: Part {
                    path: fill(media, number, (i as f64 * d * timescale) as u64)?,
                    range: None,
                },
                duration,
                sequence: number,
            });
            number += 1;
        }
    }
    let init = match &t.initialization {
        Some(init) => Some(Part {
            path: fill(init, 0, 0)?,
            range: None,
        }),
        None => None,
    };
    Ok(Track {
        init,
        segments,
        ended: true,
        target_duration: 0.0,
    })
}

/// Fills a DASH URL template: `$RepresentationID$`, `$Bandwidth$`,
/// `$Number$`, `$Time$` (with an optional `%0Nd` width) and `$$`.
fn expand(
    template: &str,
    id: &str,
    bandwidth: u64,
    number: u64,
    time: u64,
) -> Result<String, String> {
    let mut out = String::new();
    let mut parts = template.split('$');
    out.push_str(parts.next().unwrap_or_default());
    while let Some(name) = parts.next() {
        let Some(after) = parts.next() else {
            return Err(format!("unbalanced $ in {template:?}"));
        };
        let (name, width) = match name.split_once("%0") {
            Some((n, w)) => (
                n,
                w.trim_end_matches('d')
                    .parse::<usize>()
                    .map_err(|_| format!("bad width in {template:?}"))?,
            ),
            None => (name, 0),
        };
        match name {
            "" => out.push('$'),
            "RepresentationID" => out.push_str(id),
            "Bandwidth" => out.push_str(&format!("{bandwidth:0width$}")),
            "Number" => out.push_str(&format!("{number:0width$}")),
            "Time" => out.push_str(&format!("{time:0width$}")),
            other => return Err(format!("unknown identifier ${other}$ in {template:?}")),
        }
        out.push_str(after);
    }
    Ok(out)
}

/// Resolves `uri` against the path of the document it appeared in
/// (`/a/b/master.m3u8` + `720p/index.m3u8` → `/a/b/720p/index.m3u8`).
/// Absolute URLs keep their path: one origin per run.
pub fn resolve(base: &str, uri: &str) -> String {
    let uri = match uri.split_once("://") {
        Some((_, rest)) => return rest.find('/').map_or("/".into(), |i| rest[i..].to_string()),
        None => uri,
    };
    if uri.starts_with('/') {
        return uri.to_string();
    }
    let base = base.split(['?', '#']).next().unwrap_or_default();
    let dir = base.rsplit_once('/').map_or("", |(d, _)| d);
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    let (uri_path, query) = match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, None),
    };
    let trailing = uri_path.ends_with('/') || uri_path.is_empty();
    for p in uri_path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = format!("/{}", parts.join("/"));
    if trailing && !out.ends_with('/') {
        out.push('/');
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_resolve_against_the_document() {
        assert_eq!(
            resolve("/p/tok/a/master.m3u8", "720p/index.m3u8"),
            "/p/tok/a/720p/index.m3u8"
        );
        assert_eq!(
            resolve("/a/720p/index.m3u8", "../audio/1.m4s"),
            "/a/audio/1.m4s"
        );
        assert_eq!(
            resolve("/a/m.mpd?x=1", "v/$Number$.m4s"),
            "/a/v/$Number$.m4s"
        );
        assert_eq!(resolve("/a/m.mpd", "/b/c"), "/b/c");
        assert_eq!(resolve("/a/m.mpd", "http://h:1/z/y"), "/z/y");
        assert_eq!(resolve("/a/m.mpd", "base/"), "/a/base/");
    }

    #[test]
    fn templates_expand() {
        assert_eq!(
            expand(
                "$RepresentationID$/$Number%05d$-$Time$-$Bandwidth$$$.m4s",
                "720p",
                9,
                42,
                7
            )
            .unwrap(),
            "720p/00042-7-9$.m4s"
        );
        assert!(expand("$Nope$", "a", 0, 0, 0).is_err());
        assert!(expand("$Number", "a", 0, 0, 0).is_err());
    }

    #[test]
    fn hls_master_and_media_playlists() {
        let master = b"#EXTM3U\n#EXT-X-VERSION:7\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"audio\",DEFAULT=YES,URI=\"audio/index.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=3000000,AUDIO=\"aud\"\n720p/index.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO=\"aud\"\n360p/index.m3u8\n\
            #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=100000,URI=\"360p/iframes.m3u8\"\n";
        let p = parse(master, "/v/a/master.m3u8").unwrap();
        let names: Vec<_> = p
            .renditions
            .iter()
            .map(|r| (r.name.as_str(), r.bandwidth))
            .collect();
        assert_eq!(names, [("360p", 800_000), ("720p", 3_000_000)]);
        assert!(matches!(&p.audio, Some(Source::Playlist(a)) if a == "/v/a/audio/index.m3u8"));
        let media = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:5\n\
            #EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.0,\n5.m4s\n#EXTINF:1.5,\n6.m4s\n";
        let t = media_playlist(media, "/v/a/360p/index.m3u8").unwrap();
        assert!(!t.ended, "no ENDLIST: live");
        assert_eq!(t.init.unwrap().path, "/v/a/360p/init.mp4");
        assert_eq!(t.segments[1].part.path, "/v/a/360p/6.m4s");
        assert_eq!((t.segments[1].sequence, t.segments[1].duration), (6, 1.5));
        assert!(matches!(
            parse(b"<html>hello</html>", "/x"),
            Err(LoadError::Manifest(_))
        ));
        assert!(matches!(
            parse(b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=x\n", "/x"),
            Err(LoadError::Manifest(_))
        ));
    }

    #[test]
    fn dash_timelines_and_fixed_durations() {
        let mpd = br#"<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT5S" profiles="urn:mpeg:dash:profile:isoff-live:2011">
 <Period id="0" start="PT0S">
  <AdaptationSet contentType="video" mimeType="video/mp4">
   <Representation id="720p" bandwidth="3000000">
    <SegmentTemplate timescale="1000" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s" startNumber="0">
     <SegmentTimeline><S t="0" d="2000" r="1"/><S d="1000"/></SegmentTimeline>
    </SegmentTemplate>
   </Representation>
   <Representation id="360p" bandwidth="800000">
    <SegmentTemplate timescale="1000" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s" startNumber="0">
     <SegmentTimeline><S t="0" d="2000" r="-1"/></SegmentTimeline>
    </SegmentTemplate>
   </Representation>
  </AdaptationSet>
  <AdaptationSet contentType="audio" mimeType="audio/mp4">
   <SegmentTemplate timescale="48000" duration="96000" initialization="audio/init.mp4" media="audio/$Number%03d$.m4s" startNumber="1"/>
   <Representation id="audio" bandwidth="128000"/>
  </AdaptationSet>
 </Period>
</MPD>"#;
        let p = parse(mpd, "/v/a/manifest.mpd").unwrap();
        assert_eq!(p.renditions[0].name, "360p");
        let Source::Known(hi) = &p.renditions[1].source else {
            panic!()
        };
        let paths: Vec<_> = hi
            .segments
            .iter()
            .map(|s| (s.part.path.as_str(), s.duration))
            .collect();
        assert_eq!(
            paths,
            [
                ("/v/a/720p/0.m4s", 2.0),
                ("/v/a/720p/1.m4s", 2.0),
                ("/v/a/720p/2.m4s", 1.0)
            ]
        );
        assert_eq!(hi.init.as_ref().unwrap().path, "/v/a/720p/init.mp4");
        let Source::Known(lo) = &p.renditions[0].source else {
            panic!()
        };
        assert_eq!(lo.segments.len(), 3, "r=-1 fills the period");
        let Some(Source::Known(audio)) = &p.audio else {
            panic!()
        };
        let a: Vec<_> = audio
            .segments
            .iter()
            .map(|s| (s.part.path.as_str(), s.duration))
            .collect();
        assert_eq!(
            a,
            [
                ("/v/a/audio/001.m4s", 2.0),
                ("/v/a/audio/002.m4s", 2.0),
                ("/v/a/audio/003.m4s", 1.0)
            ]
        );
        let live = br#"<MPD type="dynamic"><Period/></MPD>"#;
        assert!(matches!(parse(live, "/m.mpd"), Err(LoadError::Manifest(m)) if m.contains("live")));
    }
}

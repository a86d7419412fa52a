//! The ABR ladder: which renditions to make from a source.

use std::fmt;

/// The video codec of a rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    /// H.264 (libx264, or NVENC when a GPU encoder opens).
    #[default]
    H264,
    /// AV1 (SVT-AV1, else rav1e).
    Av1,
}

/// One video rendition: a target height, bitrate and codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rung {
    /// Output height in pixels (width follows the source's aspect ratio).
    pub height: u32,
    /// Target (average) video bitrate, kb/s.
    pub kbps: u32,
    /// Video codec.
    pub codec: Codec,
}

impl Rung {
    /// The rendition's directory name, e.g. `720p` or `720p-av1`.
    pub fn name(&self) -> String {
        match self.codec {
            Codec::H264 => format!("{}p", self.height),
            Codec::Av1 => format!("{}p-av1", self.height),
        }
    }

    /// Output size for a `src_w`×`src_h` source: aspect kept, both even.
    pub fn size(&self, src_w: u32, src_h: u32, sample_aspect: (u32, u32)) -> (u32, u32) {
        let (num, den) = if sample_aspect.0 == 0 || sample_aspect.1 == 0 {
            (1, 1)
        } else {
            sample_aspect
        };
        // Display width, so anamorphic sources come out with square pixels.
        let display_w = u64::from(src_w) * u64::from(num) / u64::from(den);
        let w = display_w * u64::from(self.height) / u64::from(src_h.max(1));
        let even = |v: u64| (v.div_ceil(2) * 2).max(2) as u32;
        (even(w), even(u64::from(self.height)))
    }
}

/// The default ladder: 1080/720/480/360 at 5000/2800/1400/800 kb/s.
pub const DEFAULT_LADDER: [Rung; 4] = [
    Rung {
        height: 1080,
        kbps: 5000,
        codec: Codec::H264,
    },
    Rung {
        height: 720,
        kbps: 2800,
        codec: Codec::H264,
    },
    Rung {
        height: 480,
        kbps: 1400,
        codec: Codec::H264,
    },
    Rung {
        height: 360,
        kbps: 800,
        codec: Codec::H264,
    },
];

/// Bitrate for a height not in the default ladder: scaled by pixel count
/// from the nearest default rung.
fn default_kbps(height: u32) -> u32 {
    if let Some(rung) = DEFAULT_LADDER.iter().find(|r| r.height == height) {
        return rung.kbps;
    }
    let nearest = DEFAULT_LADDER
        .iter()
        .min_by_key(|r| r.height.abs_diff(height))
        .unwrap_or(&DEFAULT_LADDER[3]);
    let scale = (f64::from(height) / f64::from(nearest.height)).powi(2);
    ((f64::from(nearest.kbps) * scale) as u32).max(100)
}

/// Why a `--ladder` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LadderError(String);

impl fmt::Display for LadderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid ladder: {}", self.0)
    }
}

impl std::error::Error for LadderError {}

/// Parses `1080,720,480`, `1080:5000,720:2800` or `720:av1`
/// (height[:kb/s][:av1]), highest first. AV1 rungs default to 60% of the
/// H.264 bitrate for the same height.
pub fn parse(text: &str) -> Result<Vec<Rung>, LadderError> {
    let mut rungs = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (item, codec) = match item.strip_suffix(":av1") {
            Some(rest) => (rest, Codec::Av1),
            None => (item, Codec::H264),
        };
        let (h, k) = match item.split_once(':') {
            Some((h, k)) => (h, Some(k)),
            None => (item, None),
        };
        let height: u32 = h
            .trim_end_matches('p')
            .parse()
            .map_err(|_| LadderError(format!("`{item}` is not a height")))?;
        if !(144..=4320).contains(&height) || !height.is_multiple_of(2) {
            return Err(LadderError(format!(
                "height {height} must be even and within 144..=4320"
            )));
        }
        let kbps = match (k, codec) {
            (Some(k), _) => k
                .parse()
                .map_err(|_| LadderError(format!("`{k}` is not a bitrate in kb/s")))?,
            (None, Codec::H264) => default_kbps(height),
            (None, Codec::Av1) => default_kbps(height) * 3 / 5,
        };
        if rungs
            .iter()
            .any(|r: &Rung| r.height == height && r.codec == codec)
        {
            return Err(LadderError(format!("height {height} appears twice")));
        }
        rungs.push(Rung {
            height,
            kbps,
            codec,
        });
    }
    if rungs.is_empty() {
        return Err(LadderError("no rungs".into()));
    }
    rungs.sort_by_key(|r| std::cmp::Reverse(r.height));
    Ok(rungs)
}

/// Drops rungs above the source height (never upscale). A source smaller
/// than every rung keeps one rung at its own (even) height.
pub fn prune(ladder: &[Rung], source_height: u32) -> Vec<Rung> {
    let kept: Vec<Rung> = ladder
        .iter()
        .copied()
        .filter(|r| r.height <= source_height)
        .collect();
    if !kept.is_empty() {
        return kept;
    }
    let height = (source_height / 2 * 2).max(2);
    let kbps = ladder.last().map_or(default_kbps(height), |r| r.kbps);
    vec![Rung {
        height,
        kbps,
        codec: Codec::H264,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_sorts() {
        let l = parse("360, 1080:6000,720p").unwrap();
        assert_eq!(
            l.iter().map(|r| r.height).collect::<Vec<_>>(),
            [1080, 720, 360]
        );
        assert_eq!(l[0].kbps, 6000);
        assert_eq!(l[1].kbps, 2800);
        assert!(parse("").is_err());
        assert!(parse("721").is_err());
        assert!(parse("720,720").is_err());
        assert!(parse("abc").is_err());
        let mixed = parse("720,720:av1,480:900:av1").unwrap();
        assert_eq!(mixed[0].codec, Codec::H264);
        assert_eq!(
            (mixed[1].codec, mixed[1].kbps, mixed[1].name()),
            (Codec::Av1, 1680, "720p-av1".to_string())
        );
        assert_eq!(mixed[2].kbps, 900);
        assert!(parse("720:av1,720:av1").is_err());
    }

    #[test]
    fn prunes_above_source_and_never_empties() {
        let kept = prune(&DEFAULT_LADDER, 720);
        assert_eq!(
            kept.iter().map(|r| r.height).collect::<Vec<_>>(),
            [720, 480, 360]
        );
        let tiny = prune(&DEFAULT_LADDER, 241);
        assert_eq!(
            tiny,
            [Rung {
                height: 240,
                kbps: 800,
                codec: Codec::H264,
            }]
        );
    }

    #[test]
    fn sizes_keep_aspect_and_are_even() {
        let r = Rung {
            height: 360,
            kbps: 800,
            codec: Codec::H264,
        };
        assert_eq!(r.size(1920, 1080, (1, 1)), (640, 360));
        assert_eq!(r.size(1440, 1080, (4, 3)), (640, 360)); // anamorphic 16:9
        assert_eq!(r.size(1000, 1000, (1, 1)), (360, 360));
        let (w, h) = Rung {
            height: 480,
            kbps: 1,
            codec: Codec::Av1,
        }
        .size(1280, 534, (1, 1));
        assert!(w % 2 == 0 && h == 480);
    }
}

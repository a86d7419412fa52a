//! Rendition choice, as the common web players make it.
//!
//! - [`Rule::Throughput`] (the default) is hls.js's: two exponentially
//!   weighted moving averages of measured throughput, half-lives 3 s and
//!   9 s of download time, the lower of the two as the estimate (500 kbit/s
//!   before any sample); the highest rendition whose bitrate fits under
//!   0.95 × the estimate, or 0.7 × when that means switching up.
//! - [`Rule::Bola`] is dash.js's BOLA-O: buffer-based, from the utility
//!   `ln(bitrate)` of each rendition and the buffer level; the throughput
//!   rule while starting up, then a placeholder buffer that keeps the
//!   rendition startup reached, and no climb above what the throughput
//!   sustains (its guard against oscillation).
//! - [`Rule::Fixed`] stays on one rendition.

use crate::LoadError;

/// Which rule chooses the rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Throughput EWMA with a safety factor (hls.js).
    Throughput,
    /// Buffer-based BOLA (dash.js).
    Bola,
    /// Always rendition `N` (0 = lowest bitrate).
    Fixed(usize),
}

impl Rule {
    /// Parses `--abr`: `throughput`, `bola` or `fixed:N`.
    pub fn parse(text: &str) -> Result<Self, LoadError> {
        match text {
            "throughput" | "ewma" => Ok(Rule::Throughput),
            "bola" => Ok(Rule::Bola),
            _ => text
                .strip_prefix("fixed:")
                .and_then(|n| n.parse().ok())
                .map(Rule::Fixed)
                .ok_or_else(|| {
                    LoadError::BadOption(format!(
                        "--abr takes throughput, bola or fixed:N (N = rendition, 0 = lowest), not {text:?}"
                    ))
                }),
        }
    }
}

/// hls.js `abrEwmaDefaultEstimate`.
const DEFAULT_ESTIMATE_BPS: f64 = 500_000.0;
/// hls.js `abrBandWidthFactor` and `abrBandWidthUpFactor`.
const SAFETY: f64 = 0.95;
const SAFETY_UP: f64 = 0.7;
/// dash.js BOLA constants.
const BOLA_MIN_BUFFER_S: f64 = 10.0;
const BOLA_BUFFER_PER_LEVEL_S: f64 = 2.0;

/// An exponentially weighted moving average whose weight is time.
#[derive(Debug, Clone)]
struct Ewma {
    alpha: f64,
    estimate: f64,
    total_weight: f64,
}

impl Ewma {
    fn new(half_life_s: f64) -> Self {
        Self {
            alpha: (0.5f64.ln() / half_life_s).exp(),
            estimate: 0.0,
            total_weight: 0.0,
        }
    }

    fn sample(&mut self, weight: f64, value: f64) {
        let adjusted = self.alpha.powf(weight);
        self.estimate = value * (1.0 - adjusted) + adjusted * self.estimate;
        self.total_weight += weight;
    }

    /// The average, corrected for its zero start.
    fn get(&self) -> f64 {
        let zero_factor = 1.0 - self.alpha.powf(self.total_weight);
        if zero_factor > 0.0 {
            self.estimate / zero_factor
        } else {
            self.estimate
        }
    }
}

/// One viewer's rendition chooser.
#[derive(Debug, Clone)]
pub struct Abr {
    rule: Rule,
    bitrates: Vec<f64>,
    fast: Ewma,
    slow: Ewma,
    /// BOLA's parameters (utilities, `gp`, `Vp`).
    utilities: Vec<f64>,
    gp: f64,
    vp: f64,
    /// BOLA's placeholder buffer (seconds added to the real level), set
    /// when startup ends; `None` until then.
    placeholder: Option<f64>,
}

impl Abr {
    /// A chooser over renditions of these bitrates (lowest first), with a
    /// playback buffer target of `buffer_s` seconds.
    pub fn new(rule: Rule, bitrates: &[u64], buffer_s: f64) -> Self {
        let bitrates: Vec<f64> = bitrates.iter().map(|b| (*b).max(1) as f64).collect();
        let first = bitrates.first().copied().unwrap_or(1.0).ln();
        let utilities: Vec<f64> = bitrates.iter().map(|b| b.ln() - first + 1.0).collect();
        let top = utilities.last().copied().unwrap_or(1.0);
        let buffer_time = buffer_s
            .min(12.0)
            .max(BOLA_MIN_BUFFER_S + BOLA_BUFFER_PER_LEVEL_S * bitrates.len() as f64);
        let gp = (top - 1.0) / (buffer_time / BOLA_MIN_BUFFER_S - 1.0);
        let vp = BOLA_MIN_BUFFER_S / gp.max(1e-9);
        Self {
            rule,
            bitrates,
            fast: Ewma::new(3.0),
            slow: Ewma::new(9.0),
            utilities,
            gp,
            vp,
            placeholder: None,
        }
    }

    /// A download of `bytes` that took `seconds`.
    pub fn sample(&mut self, bytes: u64, seconds: f64) {
        let seconds = seconds.max(1e-4);
        let bps = bytes as f64 * 8.0 / seconds;
        self.fast.sample(seconds, bps);
        self.slow.sample(seconds, bps);
    }

    /// The throughput estimate, bits per second.
    pub fn estimate(&self) -> f64 {
        if self.fast.total_weight <= 0.0 {
            DEFAULT_ESTIMATE_BPS
        } else {
            self.fast.get().min(self.slow.get())
        }
    }

    /// The rendition for the next segment, given the current one, the
    /// buffer level (seconds) and whether playback has started.
    pub fn choose(&mut self, current: Option<usize>, buffer_s: f64, started: bool) -> usize {
        let top = self.bitrates.len().saturating_sub(1);
        match self.rule {
            Rule::Fixed(n) => n.min(top),
            Rule::Bola if started => self.bola(current, buffer_s),
            Rule::Throughput | Rule::Bola => self.by_throughput(current),
        }
    }

    fn by_throughput(&self, current: Option<usize>) -> usize {
        let estimate = self.estimate();
        let current = current.unwrap_or(0);
        (0..self.bitrates.len())
            .rev()
            .find(|&i| {
                let factor = if i <= current { SAFETY } else { SAFETY_UP };
                self.bitrates[i] <= factor * estimate
            })
            .unwrap_or(0)
    }

    fn bola(&mut self, current: Option<usize>, buffer_s: f64) -> usize {
        let sustained = self.by_throughput(current);
        // Leaving startup: a placeholder so BOLA keeps what throughput reached.
        let placeholder = match self.placeholder {
            Some(p) => p,
            None => {
                // (a hair above the threshold, so a tie goes to that rung)
                let p = (self.min_buffer_for(sustained) + 1e-3 - buffer_s).max(0.0);
                self.placeholder = Some(p);
                p
            }
        };
        // Never more than the level at which the top rendition wins.
        let ceiling = self.vp * (self.utilities.last().copied().unwrap_or(1.0) + self.gp);
        let level = (buffer_s + placeholder).min(ceiling);
        let mut best = (0, f64::NEG_INFINITY);
        for (i, (u, b)) in self.utilities.iter().zip(&self.bitrates).enumerate() {
            let score = (self.vp * (u + self.gp) - level) / b;
            if score >= best.1 {
                best = (i, score);
            }
        }
        let last = current.unwrap_or(0);
        if best.0 > last && best.0 > sustained {
            // BOLA-O: climb only as far as the throughput sustains.
            return sustained.max(last);
        }
        best.0
    }

    /// The buffer level from which BOLA picks rendition `q` over every
    /// lower one (dash.js `minBufferLevelForQuality`).
    fn min_buffer_for(&self, q: usize) -> f64 {
        let (bq, uq) = (self.bitrates[q], self.utilities[q]);
        (0..q)
            .filter(|&i| self.utilities[i] < uq)
            .map(|i| {
                let (bi, ui) = (self.bitrates[i], self.utilities[i]);
                self.vp * (self.gp + (bq * ui - bi * uq) / (bq - bi))
            })
            .fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LADDER: [u64; 3] = [400_000, 1_200_000, 3_000_000];

    #[test]
    fn throughput_rule_follows_the_estimate_with_a_margin() {
        let mut abr = Abr::new(Rule::Throughput, &LADDER, 30.0);
        assert_eq!(
            abr.choose(None, 0.0, false),
            0,
            "500 kbit/s default: lowest"
        );
        for _ in 0..20 {
            abr.sample(1_000_000, 1.0); // 8 Mbit/s
        }
        assert_eq!(abr.choose(Some(0), 10.0, true), 2);
        let mut slow = Abr::new(Rule::Throughput, &LADDER, 30.0);
        for _ in 0..20 {
            slow.sample(200_000, 1.0); // 1.6 Mbit/s: 1.2 fits under 0.95 but not under 0.7
        }
        assert_eq!(
            slow.choose(Some(0), 10.0, true),
            0,
            "switching up needs 0.7 ×"
        );
        assert_eq!(slow.choose(Some(1), 10.0, true), 1, "staying needs 0.95 ×");
        // A sudden drop pulls the fast average, and the minimum, down.
        abr.sample(10_000, 1.0);
        assert!(abr.estimate() < 8_000_000.0 * 0.8);
    }

    #[test]
    fn bola_climbs_with_the_buffer() {
        let mut abr = Abr::new(Rule::Bola, &LADDER, 30.0);
        assert_eq!(abr.choose(None, 0.0, false), 0, "startup uses throughput");
        // A fast link; startup left on the lowest rung with no buffer: the
        // placeholder starts at 0 and the rendition follows the buffer.
        for _ in 0..20 {
            abr.sample(1_000_000, 1.0);
        }
        abr.placeholder = Some(0.0);
        let picks: Vec<_> = [0.0, 5.0, 10.0, 15.0, 20.0, 30.0]
            .iter()
            .map(|b| abr.choose(Some(0), *b, true))
            .collect();
        assert!(picks.windows(2).all(|w| w[0] <= w[1]), "{picks:?}");
        assert_eq!(picks[0], 0);
        assert_eq!(*picks.last().unwrap(), 2);
        // Leaving startup on a fast link: the placeholder keeps the top.
        let mut fresh = Abr::new(Rule::Bola, &LADDER, 30.0);
        for _ in 0..20 {
            fresh.sample(1_000_000, 1.0);
        }
        assert_eq!(fresh.choose(Some(2), 1.0, true), 2);
        // A link of 1.6 Mbit/s: BOLA-O holds below the unsustainable top
        // however full the buffer.
        let mut capped = Abr::new(Rule::Bola, &LADDER, 30.0);
        for _ in 0..20 {
            capped.sample(200_000, 1.0);
        }
        assert!(capped.choose(Some(1), 30.0, true) <= 1);
    }

    #[test]
    fn rules_parse() {
        assert_eq!(Rule::parse("bola").unwrap(), Rule::Bola);
        assert_eq!(Rule::parse("fixed:2").unwrap(), Rule::Fixed(2));
        assert_eq!(
            Abr::new(Rule::Fixed(9), &LADDER, 30.0).choose(None, 0.0, false),
            2
        );
        assert!(Rule::parse("fixed:x").is_err());
    }
}

//! `Range` evaluation for a representation of known length (RFC 9110 §14).
//!
//! Only the `bytes` unit exists. One satisfiable range is answered with 206;
//! several are answered with the whole body (200), which RFC 9110 allows and
//! which spares the origin multipart framing that CDNs never ask for. A header
//! that does not parse is ignored, as the RFC requires.

use crate::request::trim_ows;

/// What to send for a `Range` header against a body of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeDecision {
    /// No usable Range: send the whole body with 200.
    Full,
    /// Send bytes `start..=end` with 206 and `Content-Range`.
    Partial {
        /// First byte, inclusive.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// Nothing requested overlaps the body: 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Most range specs looked at; a longer list is ignored (answered in full).
const MAX_SPECS: usize = 16;

/// Evaluates a `Range` header value against a body of `len` bytes.
pub fn evaluate(header: &[u8], len: u64) -> RangeDecision {
    let header = trim_ows(header);
    let Some(unit) = header.get(..6) else {
        return RangeDecision::Full;
    };
    if !unit.eq_ignore_ascii_case(b"bytes=") {
        return RangeDecision::Full;
    }
    let mut satisfiable = Vec::new();
    let mut specs = 0;
    for spec in header[6..].split(|&b| b == b',').map(trim_ows) {
        if spec.is_empty() {
            continue; // RFC 9110 §5.6.1: empty list elements are ignored.
        }
        specs += 1;
        if specs > MAX_SPECS {
            return RangeDecision::Full;
        }
        match parse_spec(spec, len) {
            Spec::Invalid => return RangeDecision::Full,
            Spec::Unsatisfiable => {}
            Spec::Range(start, end) => satisfiable.push((start, end)),
        }
    }
    match (specs, satisfiable.as_slice()) {
        (0, _) => RangeDecision::Full,
        (_, []) => RangeDecision::Unsatisfiable,
        (1, [(start, end)]) => RangeDecision::Partial {
            start: *start,
            end: *end,
        },
        _ => RangeDecision::Full,
    }
}

enum Spec {
    Invalid,
    Unsatisfiable,
    Range(u64, u64),
}

fn parse_spec(spec: &[u8], len: u64) -> Spec {
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return Spec::Invalid;
    };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    match (parse_u64(first), parse_u64(last)) {
        // bytes=-N: the last N bytes.
        (None, Some(suffix)) if first.is_empty() => {
            if suffix == 0 || len == 0 {
                Spec::Unsatisfiable
            } else {
                Spec::Range(len - suffix.min(len), len - 1)
            }
        }
        // bytes=A-
        (Some(start), None) if last.is_empty() => {
            if start < len {
                Spec::Range(start, len - 1)
            } else {
                Spec::Unsatisfiable
            }
        }
        // bytes=A-B
        (Some(start), Some(end)) if start <= end => {
            if start < len {
                Spec::Range(start, end.min(len - 1))
            } else {
                Spec::Unsatisfiable
            }
        }
        _ => Spec::Invalid,
    }
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::RangeDecision::*;
    use super::*;

    #[test]
    fn single_ranges() {
        assert_eq!(evaluate(b"bytes=0-9", 100), Partial { start: 0, end: 9 });
        assert_eq!(evaluate(b"bytes=90-", 100), Partial { start: 90, end: 99 });
        assert_eq!(
            evaluate(b"bytes=90-1000", 100),
            Partial { start: 90, end: 99 }
        );
        assert_eq!(evaluate(b"bytes=-10", 100), Partial { start: 90, end: 99 });
        assert_eq!(evaluate(b"bytes=-1000", 100), Partial { start: 0, end: 99 });
        assert_eq!(evaluate(b"Bytes = 1-1", 100), Full); // space before '=' is not the unit
        assert_eq!(evaluate(b"BYTES=1-1", 100), Partial { start: 1, end: 1 });
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(evaluate(b"bytes=100-", 100), Unsatisfiable);
        assert_eq!(evaluate(b"bytes=100-200", 100), Unsatisfiable);
        assert_eq!(evaluate(b"bytes=-0", 100), Unsatisfiable);
        assert_eq!(evaluate(b"bytes=0-0", 0), Unsatisfiable);
        assert_eq!(evaluate(b"bytes=200-300, 400-500", 100), Unsatisfiable);
    }

    #[test]
    fn invalid_or_multiple_mean_full() {
        assert_eq!(evaluate(b"bytes=9-1", 100), Full);
        assert_eq!(evaluate(b"bytes=a-b", 100), Full);
        assert_eq!(evaluate(b"items=0-1", 100), Full);
        assert_eq!(evaluate(b"bytes=", 100), Full);
        assert_eq!(evaluate(b"bytes=0-1,5-6", 100), Full);
        assert_eq!(evaluate(b"bytes=99999999999999999999-", 100), Full);
        let many = format!("bytes={}", "0-1,".repeat(20));
        assert_eq!(evaluate(many.as_bytes(), 100), Full);
    }
}

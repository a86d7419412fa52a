//! Request-target decoding: raw bytes from the request line to a normalized,
//! percent-decoded path whose segments are safe to join under a root.
//!
//! Anything that could address a file outside the intended tree is refused
//! here, before a path ever reaches the file system: `.`/`..` segments (also
//! when percent-encoded), encoded `/` and `\`, NUL and other control bytes,
//! and invalid UTF-8. The file-system side (`openat2` with `RESOLVE_BENEATH`)
//! is the second wall, for symlinks.

use std::borrow::Cow;
use std::fmt;

/// Why a request-target was refused (all answer 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetError {
    /// Neither origin-form (`/…`), absolute-form (`http://…`) nor `*`.
    NotOriginForm,
    /// A `%` not followed by two hex digits.
    BadPercentEncoding,
    /// `%2F` or `%5C`: an encoded separator that would change the path's shape.
    EncodedSeparator,
    /// A NUL, another control byte or a backslash, after decoding.
    ControlByte,
    /// A `.` or `..` segment.
    DotSegment,
    /// The decoded path is not UTF-8.
    NotUtf8,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotOriginForm => "request-target is not a path",
            Self::BadPercentEncoding => "bad percent-encoding",
            Self::EncodedSeparator => "encoded path separator",
            Self::ControlByte => "control byte in path",
            Self::DotSegment => "dot segment in path",
            Self::NotUtf8 => "path is not UTF-8",
        })
    }
}

impl std::error::Error for TargetError {}

/// A decoded request-target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// `*` (only meaningful for OPTIONS).
    Asterisk,
    /// A path: starts with `/`, no empty, `.` or `..` segments, query dropped.
    /// Borrowed from the request when it needed no change (the common case:
    /// a segment request then allocates nothing here).
    Path(Cow<'a, str>),
}

/// Decodes a raw request-target.
pub fn decode(raw: &[u8]) -> Result<Target<'_>, TargetError> {
    // Segment URLs are long (a playback token rides in the path) and almost
    // always already plain: one pass proves it and borrows the bytes.
    if let Some(end) = plain_path_len(raw) {
        if let Ok(path) = std::str::from_utf8(&raw[..end]) {
            return Ok(Target::Path(Cow::Borrowed(path)));
        }
    }
    decode_general(raw)
}

/// The length of `raw` up to `?` or `#` when that part is an origin-form
/// path already in normal form: printable ASCII, no `%` or `\`, no empty,
/// `.` or `..` segment except a trailing slash. `None` sends the target
/// through [`decode_general`], which decides (and explains) everything else.
fn plain_path_len(raw: &[u8]) -> Option<usize> {
    if raw.first() != Some(&b'/') {
        return None;
    }
    let end = memchr::memchr2(b'?', b'#', raw).unwrap_or(raw.len());
    let path = &raw[..end];
    let ordinary = crate::http1::request::all_visible_ascii(path)
        && memchr::memchr2(b'%', b'\\', path).is_none();
    if !ordinary {
        return None;
    }
    let mut segment_start = 1;
    for slash in memchr::memchr_iter(b'/', &path[1..]).map(|i| i + 1) {
        if !plain_segment(&path[segment_start..slash]) {
            return None;
        }
        segment_start = slash + 1;
    }
    let last = &path[segment_start..];
    // "/" alone, or a trailing slash, leaves an empty last segment: normal.
    (last.is_empty() || plain_segment(last)).then_some(end)
}

fn plain_segment(segment: &[u8]) -> bool {
    !matches!(segment, b"" | b"." | b"..")
}

/// Every request-target the fast path did not take: absolute form, `*`,
/// percent-encoding, empty or dot segments, and all refusals.
fn decode_general(raw: &[u8]) -> Result<Target<'_>, TargetError> {
    if raw == b"*" {
        return Ok(Target::Asterisk);
    }
    let path = strip_absolute_form(raw)?;
    let path = match memchr::memchr2(b'?', b'#', path) {
        Some(i) => &path[..i],
        None => path,
    };
    if path.first() != Some(&b'/') {
        return Err(TargetError::NotOriginForm);
    }

    // Fast path: nothing encoded (the common case for segment URLs).
    if !path.contains(&b'%') {
        return normalize(Cow::Borrowed(path));
    }
    let mut decoded = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        if b == b'%' {
            let hi = path.get(i + 1).and_then(|&c| hex(c));
            let lo = path.get(i + 2).and_then(|&c| hex(c));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(TargetError::BadPercentEncoding);
            };
            let byte = hi << 4 | lo;
            if byte == b'/' || byte == b'\\' {
                return Err(TargetError::EncodedSeparator);
            }
            decoded.push(byte);
            i += 3;
        } else {
            decoded.push(b);
            i += 1;
        }
    }
    normalize(Cow::Owned(decoded))
}

/// Refuses control bytes, backslashes, non-UTF-8 and dot segments, and
/// collapses empty segments.
fn normalize(decoded: Cow<'_, [u8]>) -> Result<Target<'_>, TargetError> {
    if decoded.iter().any(|&b| b < 0x20 || b == 0x7f || b == b'\\') {
        return Err(TargetError::ControlByte);
    }
    let text: Cow<'_, str> = match decoded {
        Cow::Borrowed(b) => {
            Cow::Borrowed(std::str::from_utf8(b).map_err(|_| TargetError::NotUtf8)?)
        }
        Cow::Owned(v) => Cow::Owned(String::from_utf8(v).map_err(|_| TargetError::NotUtf8)?),
    };
    if text.split('/').any(|s| s == "." || s == "..") {
        return Err(TargetError::DotSegment);
    }
    // It starts with `/`; without `//` it is already in normal form.
    if !text.contains("//") {
        return Ok(Target::Path(text));
    }
    let mut normalized = String::with_capacity(text.len());
    for segment in text.split('/').filter(|s| !s.is_empty()) {
        normalized.push('/');
        normalized.push_str(segment);
    }
    if normalized.is_empty() || text.ends_with('/') {
        normalized.push('/');
    }
    Ok(Target::Path(Cow::Owned(normalized)))
}

/// Reduces `http://authority/path` to `/path` (RFC 9112 §3.2.2: servers must
/// accept absolute-form); origin-form passes through.
fn strip_absolute_form(raw: &[u8]) -> Result<&[u8], TargetError> {
    let lower_starts = |prefix: &[u8]| {
        raw.len() >= prefix.len() && raw[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    let rest = if lower_starts(b"http://") {
        &raw[7..]
    } else if lower_starts(b"https://") {
        &raw[8..]
    } else {
        return Ok(raw);
    };
    match rest.iter().position(|&b| b == b'/') {
        Some(i) => Ok(&rest[i..]),
        None => Ok(b"/"),
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(raw: &str) -> Result<String, TargetError> {
        decode(raw.as_bytes()).map(|t| match t {
            Target::Path(p) => p.into_owned(),
            Target::Asterisk => "*".into(),
        })
    }

    #[test]
    fn normalizes_ordinary_paths() {
        assert_eq!(path("/v/a/720p/1.m4s?x=1").unwrap(), "/v/a/720p/1.m4s");
        assert_eq!(path("/v//a///b").unwrap(), "/v/a/b");
        assert_eq!(path("//").unwrap(), "/");
        assert_eq!(path("/v//a/").unwrap(), "/v/a/");
        // Already normal: borrowed, not copied.
        let raw = b"/p/a.b.c/x/1.m4s";
        assert!(matches!(decode(raw), Ok(Target::Path(Cow::Borrowed(_)))));
        assert_eq!(path("/v/a%20b").unwrap(), "/v/a b");
        assert_eq!(path("/v/a/").unwrap(), "/v/a/");
        assert_eq!(path("/").unwrap(), "/");
        assert_eq!(path("http://example.com/v/a").unwrap(), "/v/a");
        assert_eq!(path("HTTP://example.com").unwrap(), "/");
        assert_eq!(path("*").unwrap(), "*");
    }

    /// The one-pass fast path and the general decoder agree on every
    /// target built from the characters that matter, up to four long.
    #[test]
    fn fast_path_agrees_with_the_general_decoder() {
        let alphabet: &[u8] = b"/a.%2e?#\\\x00";
        let mut targets: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..5 {
            let longer: Vec<Vec<u8>> = targets
                .iter()
                .flat_map(|t| {
                    alphabet.iter().map(move |&c| {
                        let mut t = t.clone();
                        t.push(c);
                        t
                    })
                })
                .collect();
            targets.extend(longer);
            targets.dedup();
        }
        for t in &targets {
            let general = decode_general(t);
            assert_eq!(decode(t), general, "{:?}", String::from_utf8_lossy(t));
            if let Some(end) = plain_path_len(t) {
                assert_eq!(
                    general,
                    Ok(Target::Path(Cow::Borrowed(
                        std::str::from_utf8(&t[..end]).unwrap()
                    )))
                );
            }
        }
    }

    #[test]
    fn refuses_traversal_and_tricks() {
        let cases = [
            ("/v/../etc/passwd", TargetError::DotSegment),
            ("/v/%2e%2e/etc", TargetError::DotSegment),
            ("/v/%2E%2E/etc", TargetError::DotSegment),
            ("/v/.%2e/etc", TargetError::DotSegment),
            ("/v/./a", TargetError::DotSegment),
            ("/v/a%2f..%2fb", TargetError::EncodedSeparator),
            ("/v/a%5cb", TargetError::EncodedSeparator),
            ("/v/a%00.m4s", TargetError::ControlByte),
            ("/v/a%0d%0a", TargetError::ControlByte),
            ("/v/a%zz", TargetError::BadPercentEncoding),
            ("/v/a%4", TargetError::BadPercentEncoding),
            ("/v/%ff", TargetError::NotUtf8),
            ("v/a", TargetError::NotOriginForm),
            ("", TargetError::NotOriginForm),
        ];
        for (raw, want) in cases {
            assert_eq!(path(raw), Err(want), "{raw}");
        }
    }
}

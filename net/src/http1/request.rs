//! Incremental HTTP/1.1 request-head parser (RFC 9112 §2–§5).
//!
//! The parser is strict where leniency would let a peer smuggle or confuse
//! (whitespace before the colon, obs-fold, control bytes, conflicting framing)
//! and bounded everywhere, so a hostile peer costs at most
//! [`Limits::max_head_bytes`] of buffer. It only borrows from the input: no
//! allocation per request.

use std::fmt;

use crate::request::trim_ows;
pub use crate::request::{Fields, Method, Request, Version};

/// Hard bounds on a request head. Exceeding one is an error with its own
/// status code (414 or 431), never a partial read that waits forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line, CRLF excluded (over it: 414 URI Too Long).
    pub max_request_line: usize,
    /// Longest whole head, request line and headers (over it: 431).
    pub max_head_bytes: usize,
    /// Most header fields (over it: 431).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_line: 8 * 1024,
            max_head_bytes: 16 * 1024,
            max_headers: 64,
        }
    }
}

/// Outcome of feeding the buffered bytes to [`parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A whole head was found; `head_len` bytes of the buffer belong to it.
    Complete {
        /// The request.
        request: Request<'a>,
        /// Bytes consumed, final empty line included.
        head_len: usize,
    },
    /// No complete head yet and no limit exceeded: read more.
    Partial,
}

/// Why a request head was refused. Each maps to one status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The request line is not `method SP target SP version`.
    BadRequestLine,
    /// A header line is malformed (bad name, control bytes, obs-fold, space
    /// before the colon).
    BadHeader,
    /// HTTP/1.1 without exactly one `Host`.
    BadHost,
    /// Unparseable, repeated-and-different, or combined-with-chunked framing.
    BadFraming,
    /// The request line is longer than [`Limits::max_request_line`].
    UriTooLong,
    /// The head is larger than [`Limits::max_head_bytes`] or has more than
    /// [`Limits::max_headers`] fields.
    HeadTooLarge,
    /// The method token is not one this origin knows.
    UnknownMethod,
    /// A well-formed `HTTP/x.y` other than 1.0 and 1.1.
    VersionNotSupported,
}

impl ParseError {
    /// The status code to answer with before closing the connection.
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequestLine | Self::BadHeader | Self::BadHost | Self::BadFraming => 400,
            Self::UriTooLong => 414,
            Self::HeadTooLarge => 431,
            Self::UnknownMethod => 501,
            Self::VersionNotSupported => 505,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadRequestLine => "malformed request line",
            Self::BadHeader => "malformed header field",
            Self::BadHost => "missing or repeated Host",
            Self::BadFraming => "invalid message framing",
            Self::UriTooLong => "request line too long",
            Self::HeadTooLarge => "request head too large",
            Self::UnknownMethod => "unknown method",
            Self::VersionNotSupported => "HTTP version not supported",
        })
    }
}

impl std::error::Error for ParseError {}

/// Parses one request head from the start of `buf`.
///
/// Leading empty lines are skipped (RFC 9112 §2.2). Lines may end in CRLF or
/// a bare LF. Call again with more bytes on [`Parsed::Partial`].
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Result<Parsed<'a>, ParseError> {
    let mut pos = 0;
    // Skip a bounded number of stray line ends a client may send between
    // pipelined requests.
    while pos < buf.len() && pos < 8 && (buf[pos] == b'\r' || buf[pos] == b'\n') {
        pos += 1;
    }
    let Some((line, next)) = next_line(buf, pos) else {
        if buf.len() - pos > limits.max_request_line {
            return Err(ParseError::UriTooLong);
        }
        return Ok(Parsed::Partial);
    };
    if line.len() > limits.max_request_line {
        return Err(ParseError::UriTooLong);
    }
    let (method, target, version) = parse_request_line(line)?;
    pos = next;

    let mut fields = Fields::default();
    let mut framing = Framing::default();
    let mut connection = ConnectionTokens::default();
    let mut count = 0;
    loop {
        let Some((line, next)) = next_line(buf, pos) else {
            if buf.len() > limits.max_head_bytes {
                return Err(ParseError::HeadTooLarge);
            }
            return Ok(Parsed::Partial);
        };
        if next > limits.max_head_bytes {
            return Err(ParseError::HeadTooLarge);
        }
        pos = next;
        if line.is_empty() {
            break;
        }
        count += 1;
        if count > limits.max_headers {
            return Err(ParseError::HeadTooLarge);
        }
        let (name, value) = split_field(line)?;
        record_field(name, value, &mut fields, &mut framing, &mut connection)?;
    }

    if version == Version::Http11 && fields.host.is_none() {
        return Err(ParseError::BadHost);
    }
    let keep_alive = match version {
        Version::Http11 => !connection.close,
        Version::Http10 => connection.keep_alive && !connection.close,
        Version::Http2 => true,
    };
    Ok(Parsed::Complete {
        request: Request {
            method,
            target,
            version,
            fields,
            keep_alive,
            has_body: framing.has_body(),
        },
        head_len: pos,
    })
}

/// The value of the first field called `name` (ASCII case-insensitive) in a
/// head that [`parse`] accepted (`&buf[..head_len]`), trimmed. For the few
/// handlers that need fields the hot path does not record (uploads).
pub fn find_field<'a>(head: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let mut pos = next_line(head, 0)?.1;
    while let Some((line, next)) = next_line(head, pos) {
        if line.is_empty() {
            break;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            if line[..colon].eq_ignore_ascii_case(name.as_bytes()) {
                return Some(trim_ows(&line[colon + 1..]));
            }
        }
        pos = next;
    }
    None
}

/// Returns the line starting at `from` (without its terminator) and the index
/// after the terminator.
fn next_line(buf: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let rel = memchr::memchr(b'\n', &buf[from..])?;
    let end = from + rel;
    let line_end = if end > from && buf[end - 1] == b'\r' {
        end - 1
    } else {
        end
    };
    Some((&buf[from..line_end], end + 1))
}

fn parse_request_line(line: &[u8]) -> Result<(Method, &[u8], Version), ParseError> {
    // method SP target SP version; the version may not contain a space.
    let first = memchr::memchr(b' ', line).ok_or(ParseError::BadRequestLine)?;
    let (method, rest) = (&line[..first], &line[first + 1..]);
    let second = memchr::memchr(b' ', rest).ok_or(ParseError::BadRequestLine)?;
    let (target, version) = (&rest[..second], &rest[second + 1..]);
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(ParseError::BadRequestLine);
    }
    if target.is_empty() || !all_visible_ascii(target) {
        return Err(ParseError::BadRequestLine);
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(ParseError::VersionNotSupported)
        }
        _ => return Err(ParseError::BadRequestLine),
    };
    let method = Method::from_token(method).ok_or(ParseError::UnknownMethod)?;
    Ok((method, target, version))
}

/// Whether every byte is visible ASCII (0x21..=0x7e). A fold without an
/// early exit: the compiler vectorizes it, and targets are long.
pub(crate) fn all_visible_ascii(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .fold(true, |ok, &b| ok & (b.wrapping_sub(0x21) < 0x5e))
}

fn split_field(line: &[u8]) -> Result<(&[u8], &[u8]), ParseError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(ParseError::BadHeader)?;
    let name = &line[..colon];
    // An empty name, obs-fold (line starting with whitespace) and whitespace
    // before the colon all fail `is_tchar`.
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(ParseError::BadHeader);
    }
    let value = trim_ows(&line[colon + 1..]);
    if !value.iter().all(|&b| b == b'\t' || b >= 0x20 && b != 0x7f) {
        return Err(ParseError::BadHeader);
    }
    Ok((name, value))
}

#[derive(Default)]
struct Framing {
    content_length: Option<u64>,
    chunked_or_other: bool,
}

impl Framing {
    fn has_body(&self) -> bool {
        self.chunked_or_other || self.content_length.is_some_and(|n| n > 0)
    }
}

#[derive(Default)]
struct ConnectionTokens {
    close: bool,
    keep_alive: bool,
}

fn record_field<'a>(
    name: &[u8],
    value: &'a [u8],
    fields: &mut Fields<'a>,
    framing: &mut Framing,
    connection: &mut ConnectionTokens,
) -> Result<(), ParseError> {
    let slot = match name.len() {
        4 if name.eq_ignore_ascii_case(b"host") => {
            if fields.host.is_some() {
                return Err(ParseError::BadHost);
            }
            &mut fields.host
        }
        5 if name.eq_ignore_ascii_case(b"range") => &mut fields.range,
        6 if name.eq_ignore_ascii_case(b"origin") => &mut fields.origin,
        8 if name.eq_ignore_ascii_case(b"if-range") => &mut fields.if_range,
        10 if name.eq_ignore_ascii_case(b"connection") => {
            for token in value.split(|&b| b == b',').map(trim_ows) {
                connection.close |= token.eq_ignore_ascii_case(b"close");
                connection.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
            return Ok(());
        }
        13 if name.eq_ignore_ascii_case(b"if-none-match") => &mut fields.if_none_match,
        14 if name.eq_ignore_ascii_case(b"content-length") => {
            let n = parse_decimal(value).ok_or(ParseError::BadFraming)?;
            if framing.content_length.is_some_and(|m| m != n) || framing.chunked_or_other {
                return Err(ParseError::BadFraming);
            }
            framing.content_length = Some(n);
            return Ok(());
        }
        17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
            // Content-Length plus Transfer-Encoding is the classic smuggling
            // vector: refuse it outright.
            if framing.content_length.is_some() {
                return Err(ParseError::BadFraming);
            }
            framing.chunked_or_other = true;
            return Ok(());
        }
        17 if name.eq_ignore_ascii_case(b"if-modified-since") => &mut fields.if_modified_since,
        29 if name.eq_ignore_ascii_case(b"access-control-request-method") => {
            &mut fields.access_control_request_method
        }
        _ => return Ok(()),
    };
    // A repeated singleton field keeps its first value; Host was handled above.
    if slot.is_none() {
        *slot = Some(value);
    }
    Ok(())
}

fn parse_decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        value
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
    )
}

/// RFC 9110 `tchar`: the bytes allowed in methods and field names.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_unrecorded_fields() {
        let head = b"PATCH /upload/x HTTP/1.1\r\nHost: a\r\nupload-offset:  42 \r\nUpload-Checksum: sha256 abc=\r\n\r\nbody";
        assert_eq!(super::find_field(head, "Upload-Offset"), Some(&b"42"[..]));
        assert_eq!(
            super::find_field(head, "upload-checksum"),
            Some(&b"sha256 abc="[..])
        );
        assert_eq!(super::find_field(head, "Content-Length"), None);
        // The request line and the body are not fields.
        assert_eq!(
            super::find_field(head, "PATCH /upload/x HTTP/1.1\r\nHost"),
            None
        );
        assert_eq!(super::find_field(head, "body"), None);
    }

    use super::*;

    fn complete(buf: &[u8]) -> (Request<'_>, usize) {
        match parse(buf, &Limits::default()) {
            Ok(Parsed::Complete { request, head_len }) => (request, head_len),
            other => panic!("expected a complete request, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_simple_get() {
        let raw = b"GET /v/a/x.m4s HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\n\r\nrest";
        let (req, len) = complete(raw);
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.target, b"/v/a/x.m4s");
        assert_eq!(req.fields.range, Some(&b"bytes=0-1"[..]));
        assert!(req.keep_alive);
        assert!(!req.has_body);
        assert_eq!(&raw[len..], b"rest");
    }

    #[test]
    fn partial_until_the_empty_line() {
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\n";
        for end in 0..raw.len() {
            assert_eq!(parse(&raw[..end], &Limits::default()), Ok(Parsed::Partial));
        }
    }

    #[test]
    fn connection_semantics_by_version() {
        assert!(!complete(b"GET / HTTP/1.0\r\n\r\n").0.keep_alive);
        assert!(
            complete(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .0
                .keep_alive
        );
        assert!(
            !complete(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n")
                .0
                .keep_alive
        );
    }

    #[test]
    fn accepts_bare_lf_and_leading_empty_lines() {
        let (req, _) = complete(b"\r\nGET /a HTTP/1.1\nHost: h\n\n");
        assert_eq!(req.target, b"/a");
    }

    #[test]
    fn refuses_malformed_heads() {
        let cases: &[(&[u8], ParseError)] = &[
            (b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", ParseError::BadRequestLine),
            (b"GET / HTTP/1.1 x\r\nHost: h\r\n\r\n", ParseError::BadRequestLine),
            (b"GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", ParseError::BadRequestLine),
            (b"GET / HTTX/1.1\r\n\r\n", ParseError::BadRequestLine),
            (b"GET / HTTP/2.0\r\n\r\n", ParseError::VersionNotSupported),
            (b"BREW / HTTP/1.1\r\nHost: h\r\n\r\n", ParseError::UnknownMethod),
            (b"GET / HTTP/1.1\r\n\r\n", ParseError::BadHost),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ParseError::BadHost),
            (b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", ParseError::BadHeader),
            (b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", ParseError::BadHeader),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", ParseError::BadHeader),
            (b"GET / HTTP/1.1\r\nHost: h\r\nnocolon\r\n\r\n", ParseError::BadHeader),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                ParseError::BadFraming,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                ParseError::BadFraming,
            ),
            (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", ParseError::BadFraming),
        ];
        for (raw, want) in cases {
            assert_eq!(
                parse(raw, &Limits::default()),
                Err(*want),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn limits_have_their_own_errors() {
        let limits = Limits {
            max_request_line: 32,
            max_head_bytes: 64,
            max_headers: 2,
        };
        let long_uri = format!("GET /{} HTTP/1.1\r\n", "a".repeat(40));
        assert_eq!(
            parse(long_uri.as_bytes(), &limits),
            Err(ParseError::UriTooLong)
        );
        // Too long even before the line end arrives.
        assert_eq!(
            parse(&long_uri.as_bytes()[..36], &limits),
            Err(ParseError::UriTooLong)
        );
        let big = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n", "b".repeat(60));
        assert_eq!(
            parse(big.as_bytes(), &limits),
            Err(ParseError::HeadTooLarge)
        );
        let many = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
        assert_eq!(parse(many, &limits), Err(ParseError::HeadTooLarge));
    }

    #[test]
    fn detects_bodies() {
        assert!(
            complete(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n")
                .0
                .has_body
        );
        assert!(
            complete(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
                .0
                .has_body
        );
        assert!(
            !complete(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
                .0
                .has_body
        );
    }
}

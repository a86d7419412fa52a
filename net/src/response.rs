//! The protocol-neutral response: a [`ResponseHead`] (status and header
//! fields) and a [`Body`]. The engine decides both once; each protocol's
//! codec frames them (`http1::write_head` today, h2 HEADERS frames next),
//! so HTTP semantics never depend on the wire.

use std::fmt::{self, Display};
use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// The reason phrase sent for a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        423 => "Locked",
        431 => "Request Header Fields Too Large",
        // tus 1.0 checksum extension.
        460 => "Checksum Mismatch",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A response's status and header fields, for any protocol.
///
/// Values are written as given: callers pass only values they produced
/// (numbers, validators, configured strings), never request bytes. Names
/// are static, so a head is two reusable buffers and no allocation per
/// response once warm. Connection-level fields (`Date`, `Connection`) are
/// the codec's to add.
#[derive(Default)]
pub struct ResponseHead {
    status: u16,
    /// Every field value, back to back.
    values: Vec<u8>,
    /// Field names and where their values are in `values`.
    fields: Vec<(&'static str, Range<usize>)>,
}

impl ResponseHead {
    /// Empties the head for a new response with `status`, keeping its
    /// buffers.
    pub fn reset(&mut self, status: u16) -> &mut Self {
        self.status = status;
        self.values.clear();
        self.fields.clear();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Appends one header field.
    pub fn header(&mut self, name: &'static str, value: impl Display) -> &mut Self {
        let start = self.values.len();
        // Writing into a Vec cannot fail.
        let _ = write!(self.values, "{value}");
        self.fields.push((name, start..self.values.len()));
        self
    }

    /// The fields in the order they were added.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &[u8])> {
        self.fields
            .iter()
            .map(|(name, range)| (*name, &self.values[range.clone()]))
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

impl fmt::Debug for ResponseHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ResponseHead");
        d.field("status", &self.status);
        for (name, value) in self.fields() {
            d.field(name, &String::from_utf8_lossy(value));
        }
        d.finish()
    }
}

/// What follows the head.
pub enum Body {
    /// Nothing (errors without text, 304, HEAD, preflight).
    Empty,
    /// Bytes already in memory (hot cache, error text).
    Memory(Bytes),
    /// A range of an open file: sent zero-copy where the transport allows.
    File {
        /// The open file (shared with the hot cache).
        file: Rc<File>,
        /// First byte.
        offset: u64,
        /// Byte count.
        len: u64,
    },
}

impl Body {
    /// Bytes this body puts on the wire.
    pub fn len(&self) -> u64 {
        match self {
            Self::Empty => 0,
            Self::Memory(b) => b.len() as u64,
            Self::File { len, .. } => *len,
        }
    }

    /// Whether the body has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The `Date` header value, formatted at most once per second.
#[derive(Default)]
pub struct DateCache {
    second: u64,
    text: String,
}

impl DateCache {
    /// The current time as an IMF-fixdate.
    pub fn now(&mut self) -> &str {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = httpdate::fmt_http_date(now);
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_keeps_fields_in_order_and_reuses_its_buffers() {
        let mut head = ResponseHead::default();
        head.reset(206)
            .header("Content-Length", 10)
            .header("Content-Range", "bytes 0-9/100");
        assert_eq!(head.status(), 206);
        assert_eq!(head.get("content-length"), Some(&b"10"[..]));
        let fields: Vec<_> = head.fields().collect();
        assert_eq!(
            fields,
            [
                ("Content-Length", &b"10"[..]),
                ("Content-Range", &b"bytes 0-9/100"[..])
            ]
        );
        head.reset(404);
        assert_eq!(head.fields().count(), 0);
        assert_eq!(head.get("Content-Length"), None);
    }

    #[test]
    fn date_is_an_http_date() {
        let mut cache = DateCache::default();
        let text = cache.now().to_owned();
        assert!(httpdate::parse_http_date(&text).is_ok(), "{text}");
    }
}

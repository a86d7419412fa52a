//! Response heads: status line, headers, and a per-second cached `Date`.

use std::fmt::Display;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

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

/// Writes a response head into a reusable buffer.
///
/// Values are written as given: callers pass only values they produced
/// (numbers, validators, configured strings), never request bytes.
pub struct HeadWriter<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> HeadWriter<'a> {
    /// Clears `buf` and writes the status line and `Date`.
    pub fn new(buf: &'a mut Vec<u8>, status: u16, date: &str) -> Self {
        buf.clear();
        // Writing into a Vec cannot fail.
        let _ = write!(
            buf,
            "HTTP/1.1 {status} {}\r\nDate: {date}\r\n",
            reason(status)
        );
        Self { buf }
    }

    /// Appends one header field.
    pub fn header(&mut self, name: &str, value: impl Display) -> &mut Self {
        let _ = write!(self.buf, "{name}: {value}\r\n");
        self
    }

    /// Appends the empty line that ends the head.
    pub fn finish(self) {
        self.buf.extend_from_slice(b"\r\n");
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
    fn writes_a_head() {
        let mut buf = Vec::new();
        let mut w = HeadWriter::new(&mut buf, 206, "Thu, 01 Jan 1970 00:00:00 GMT");
        w.header("Content-Length", 10)
            .header("Content-Range", "bytes 0-9/100");
        w.finish();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "HTTP/1.1 206 Partial Content\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
             Content-Length: 10\r\nContent-Range: bytes 0-9/100\r\n\r\n"
        );
    }

    #[test]
    fn date_is_an_http_date() {
        let mut cache = DateCache::default();
        let text = cache.now().to_owned();
        assert!(httpdate::parse_http_date(&text).is_ok(), "{text}");
    }
}

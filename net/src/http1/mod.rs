//! HTTP/1.1 framing: the request-head parser ([`request`]) and writing a
//! protocol-neutral [`ResponseHead`] as an HTTP/1.1 status line and header
//! block ([`write_head`]). Everything else about a request's meaning lives
//! above, in the protocol-neutral model.

pub mod request;

use std::io::Write;

use crate::response::{reason, ResponseHead};

/// Writes `head` as an HTTP/1.1 head into `out` (cleared first): status
/// line, `Date`, the fields, `Connection: close` when `close`, and the
/// blank line.
pub fn write_head(head: &ResponseHead, date: &str, close: bool, out: &mut Vec<u8>) {
    out.clear();
    let status = head.status();
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nDate: {date}\r\n",
        reason(status)
    );
    for (name, value) in head.fields() {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_head() {
        let mut head = ResponseHead::default();
        head.reset(206)
            .header("Content-Length", 10)
            .header("Content-Range", "bytes 0-9/100");
        let mut out = Vec::new();
        write_head(&head, "Thu, 01 Jan 1970 00:00:00 GMT", false, &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "HTTP/1.1 206 Partial Content\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
             Content-Length: 10\r\nContent-Range: bytes 0-9/100\r\n\r\n"
        );
        write_head(head.reset(400), "D", true, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 400 Bad Request\r\nDate: D\r\nConnection: close\r\n\r\n"
        );
    }
}

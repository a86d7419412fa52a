//! The tus wire vocabulary, a leaf every other ingest module uses: the
//! [`Answer`] a request gets (as a protocol-neutral response head), and
//! reading the headers tus defines (metadata, checksums, expiry).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use streamgate_net::http1::request::find_field;
use streamgate_net::response::ResponseHead;

use super::expiry;
use super::store::Upload;

/// The protocol version spoken.
pub(super) const TUS_VERSION: &str = "1.0.0";
/// The content type of upload data (PATCH, and POST with creation-with-upload).
pub(super) const OFFSET_STREAM: &str = "application/offset+octet-stream";

/// An answer: status, extra headers, and whether to close after it.
pub struct Answer {
    pub(super) status: u16,
    headers: Vec<(&'static str, String)>,
    pub(super) close: bool,
}

impl Answer {
    pub(super) fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            close: false,
        }
    }

    pub(super) fn with(mut self, name: &'static str, value: impl ToString) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    pub(super) fn closing(mut self) -> Self {
        self.close = true;
        self
    }
}

impl Answer {
    /// The answer when the server failed (the error is logged where it
    /// happened).
    pub fn server_error() -> Self {
        Self::new(500).closing()
    }

    /// The answer to a body whose length is not said up front.
    pub fn length_required() -> Self {
        Self::new(411).closing()
    }

    /// The answer to a request the service has no room for.
    pub(super) fn busy() -> Self {
        Self::new(503).with("Retry-After", 5).closing()
    }

    /// Whether the connection should end after this answer.
    pub fn closes(&self) -> bool {
        self.close
    }

    /// Fills `head` in: the status, the fields every tus answer carries and
    /// this answer's own. The connection's codec frames it.
    pub fn fill(&self, head: &mut ResponseHead) {
        head.reset(self.status)
            .header("Tus-Resumable", TUS_VERSION)
            .header("Cache-Control", "no-store")
            .header("Content-Length", 0)
            // Browser uploaders (Uppy) from an admin page on another origin;
            // authorization is a bearer token, never a cookie.
            .header("Access-Control-Allow-Origin", "*")
            .header(
                "Access-Control-Expose-Headers",
                "Location, Upload-Offset, Upload-Length, Upload-Metadata, Tus-Resumable, \
                 Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, Upload-Expires, \
                 StreamGate-Asset",
            );
        for (name, value) in &self.headers {
            head.header(name, value);
        }
    }
}

/// A header's value as text, if it is there and UTF-8.
pub(super) fn field<'h>(head: &'h [u8], name: &str) -> Option<&'h str> {
    find_field(head, name).and_then(|v| std::str::from_utf8(v).ok())
}

/// `Upload-Metadata: key base64,key2 base64` → pairs (keys without a
/// value are allowed and map to "").
pub(super) fn metadata(raw: &str) -> Result<Vec<(String, String)>, ()> {
    let mut out = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let mut parts = item.splitn(2, ' ');
        let key = parts.next().ok_or(())?.to_string();
        let value = match parts.next() {
            Some(v) => String::from_utf8(B64.decode(v.trim()).map_err(|_| ())?).map_err(|_| ())?,
            None => String::new(),
        };
        out.push((key, value));
    }
    Ok(out)
}

/// The `Upload-Checksum` of a chunk: `None` without one, 400 for one that
/// is malformed or uses an algorithm we do not offer.
pub(super) fn chunk_checksum(head: &[u8]) -> Result<Option<Vec<u8>>, Answer> {
    match field(head, "Upload-Checksum") {
        None => Ok(None),
        Some(v) => match v.split_once(' ') {
            Some(("sha256", b64)) => match B64.decode(b64.trim()) {
                Ok(d) if d.len() == 32 => Ok(Some(d)),
                _ => Err(Answer::new(400).closing()),
            },
            _ => Err(Answer::new(400).closing()),
        },
    }
}

/// `Upload-Expires` for an unfinished upload.
pub(super) fn with_expiry(answer: Answer, upload: &Upload) -> Answer {
    if upload.complete || upload.expires == 0 {
        answer
    } else {
        answer.with("Upload-Expires", expiry::http_date(upload.expires))
    }
}

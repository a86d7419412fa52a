//! The protocol-neutral request model: what the serving layer decides on.
//! Codecs fill it in (`http1::request::parse` today; an h2 stream's HEADERS
//! next); nothing here depends on how the bytes arrived.

/// Request methods the origin recognises.
///
/// Methods outside this list are refused by the codec (HTTP/1:
/// [`crate::http1::request::ParseError::UnknownMethod`], 501); the ones listed
/// but not served answer 405 at the serving layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `OPTIONS` (CORS preflight)
    Options,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `PATCH`
    Patch,
    /// `CONNECT`
    Connect,
    /// `TRACE`
    Trace,
}

impl Method {
    /// The method named by `token` (case-sensitive, as RFC 9110 says).
    pub fn from_token(token: &[u8]) -> Option<Self> {
        Some(match token {
            b"GET" => Self::Get,
            b"HEAD" => Self::Head,
            b"OPTIONS" => Self::Options,
            b"POST" => Self::Post,
            b"PUT" => Self::Put,
            b"DELETE" => Self::Delete,
            b"PATCH" => Self::Patch,
            b"CONNECT" => Self::Connect,
            b"TRACE" => Self::Trace,
            _ => return None,
        })
    }

    /// The method's name as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Options => "OPTIONS",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
            Self::Patch => "PATCH",
            Self::Connect => "CONNECT",
            Self::Trace => "TRACE",
        }
    }
}

/// The protocol version a request arrived in (HTTP/1 accepts 1.0 and 1.1;
/// others answer 505; HTTP/2 requests come from the h2 codec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: close after the response unless `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1: persistent unless `Connection: close`.
    Http11,
    /// HTTP/2: streams on a persistent connection.
    Http2,
}

/// The header fields the origin acts on; everything else is validated and
/// skipped. Values are raw bytes with surrounding whitespace trimmed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fields<'a> {
    /// `Host`
    pub host: Option<&'a [u8]>,
    /// `Range`
    pub range: Option<&'a [u8]>,
    /// `If-None-Match`
    pub if_none_match: Option<&'a [u8]>,
    /// `If-Modified-Since`
    pub if_modified_since: Option<&'a [u8]>,
    /// `If-Range`
    pub if_range: Option<&'a [u8]>,
    /// `Origin` (CORS)
    pub origin: Option<&'a [u8]>,
    /// `Access-Control-Request-Method` (CORS preflight)
    pub access_control_request_method: Option<&'a [u8]>,
}

/// A request head, borrowing from the connection's buffers: what the
/// serving layer decides on, whatever codec parsed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// The raw request-target; decode it with [`crate::target`].
    pub target: &'a [u8],
    /// The protocol version.
    pub version: Version,
    /// Header fields the origin uses.
    pub fields: Fields<'a>,
    /// Whether the connection may stay open after the response.
    pub keep_alive: bool,
    /// Whether a message body follows the head. The origin serves no request
    /// bodies, so the connection closes after answering such a request rather
    /// than trying to frame what follows.
    pub has_body: bool,
}

/// Trims optional whitespace (SP / HTAB) from both ends.
pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

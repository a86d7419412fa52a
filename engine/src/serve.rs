//! From a parsed request to a response: routing, files, Range, conditional
//! requests, cache headers and CORS.
//!
//! This module decides *what* to send and writes the head; the connection
//! decides *how* (and whether the connection survives).

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use streamgate_net::conditional::{self, Validators};
use streamgate_net::mime::{self, CacheClass};
use streamgate_net::range::{self, RangeDecision};
use streamgate_net::request::{Method, Request};
use streamgate_net::response::HeadWriter;
use streamgate_net::target::{self, Target};

use crate::cache::{self, Cached, HotCache};
use crate::config::{AccessPolicy, EngineConfig};
use streamgate_assets::{AssetStore, FileStamp};

use crate::fs;
use crate::gate::Gate;
use crate::telemetry::WorkerStats;
use streamgate_token::is_asset_id;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const ALLOW: &str = "GET, HEAD, OPTIONS";
const EXPOSE: &str = "Content-Length, Content-Range, ETag, Accept-Ranges, Last-Modified";

/// What follows the head.
pub enum Body {
    /// Nothing (errors without text, 304, HEAD, preflight).
    Empty,
    /// Bytes already in memory (hot cache, error text).
    Memory(Bytes),
    /// A range of an open file, sent zero-copy.
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
}

/// A response ready to send: the head is in the caller's buffer.
pub struct Reply {
    /// Status code, for metrics.
    pub status: u16,
    /// The body to send after the head.
    pub body: Body,
    /// Whether the head says `Connection: close` (the caller's request, or a
    /// target so malformed that the peer is not worth keeping).
    pub close: bool,
}

/// A request path mapped to a file under the root.
struct Route<'p> {
    /// `<asset-id>/<path>`.
    relative: &'p str,
    /// The asset id.
    asset: &'p str,
    /// The playback token, for `/p/` paths.
    token: Option<&'p str>,
}

/// Which origins CORS allows.
enum Cors {
    Any,
    List(Vec<String>),
}

/// Per-worker serving state: configuration plus the worker's own cache.
pub struct Site {
    assets: Arc<dyn AssetStore>,
    access: AccessPolicy,
    manifest_cache_control: String,
    cors: Cors,
    cache: RefCell<HotCache>,
    /// Playback-token checks for `/p/`.
    pub gate: Gate,
}

impl Site {
    /// Serving state for one worker.
    pub fn new(
        config: &EngineConfig,
        assets: Arc<dyn AssetStore>,
        gate: Gate,
        limits: cache::Limits,
    ) -> Self {
        let cors = if config.cors_origins.iter().any(|o| o == "*") {
            Cors::Any
        } else {
            Cors::List(config.cors_origins.clone())
        };
        Self {
            assets,
            access: config.access,
            manifest_cache_control: format!("public, max-age={}", config.manifest_max_age),
            cors,
            cache: RefCell::new(HotCache::new(limits)),
            gate,
        }
    }

    /// Bytes this worker's cache holds.
    pub fn cache_bytes(&self) -> usize {
        self.cache.borrow().used()
    }

    /// Answers one request, writing the head into `head`. `closing` adds
    /// `Connection: close`.
    pub fn respond(
        &self,
        req: &Request<'_>,
        head: &mut Vec<u8>,
        date: &str,
        closing: bool,
        stats: &mut WorkerStats,
    ) -> Reply {
        let respond_error = |head: &mut Vec<u8>, status| {
            self.error(
                head,
                date,
                closing || status == 400,
                req.fields.origin,
                status,
            )
        };
        let path = match target::decode(req.target) {
            Ok(Target::Path(path)) => path,
            Ok(Target::Asterisk) if req.method == Method::Options => {
                let mut w = HeadWriter::new(head, 204, date);
                w.header("Allow", ALLOW);
                finish(w, closing);
                return Reply {
                    status: 204,
                    body: Body::Empty,
                    close: closing,
                };
            }
            Ok(Target::Asterisk) | Err(_) => return respond_error(head, 400),
        };
        let Some(route) = self.route(&path) else {
            return respond_error(head, 404);
        };
        match req.method {
            Method::Get | Method::Head => {}
            Method::Options => return self.preflight(req, head, date, closing),
            _ => return respond_error(head, 405),
        }
        if let Some(token) = route.token {
            if let Err(rejection) = self.gate.admit(token, route.asset) {
                stats.token_rejected(rejection.as_str());
                return respond_error(head, rejection.status());
            }
        }
        let relative = route.relative;
        match self.lookup(relative, stats) {
            Ok((stamp, validators, content)) => self.file_reply(
                req,
                head,
                date,
                closing,
                relative,
                stamp,
                &validators,
                content,
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => respond_error(head, 404),
            Err(_) => respond_error(head, 503),
        }
    }

    /// Maps `/v/<asset-id>/<path>` (when access allows) and
    /// `/p/<token>/<asset-id>/<path>` to `<asset-id>/<path>`. Hidden names
    /// (staging directories, dotfiles) never match.
    fn route<'p>(&self, path: &'p str) -> Option<Route<'p>> {
        let (token, relative) = if let Some(rest) = path.strip_prefix("/v/") {
            let asset = rest.split('/').next().unwrap_or_default();
            if self.access != AccessPolicy::Open && !self.gate.is_open(asset) {
                return None; // gated assets are never served under /v/
            }
            (None, rest)
        } else {
            let (token, rest) = path.strip_prefix("/p/")?.split_once('/')?;
            (Some(token), rest)
        };
        let (asset, rest) = relative.split_once('/')?;
        if !is_asset_id(asset) || rest.is_empty() || rest.ends_with('/') {
            return None;
        }
        if rest.split('/').any(|segment| segment.starts_with('.')) {
            return None;
        }
        Some(Route {
            relative,
            asset,
            token,
        })
    }

    /// Finds the current version of a file: from the hot cache when its stamp
    /// still matches, else from disk (and into the cache when it fits).
    fn lookup(
        &self,
        relative: &str,
        stats: &mut WorkerStats,
    ) -> io::Result<(FileStamp, Rc<Validators>, Cached)> {
        let mut cache = self.cache.borrow_mut();
        if cache.contains(relative) {
            let stamp = match self.assets.stamp(relative) {
                Ok(stamp) => stamp,
                Err(e) => {
                    // Deleted (or unreadable): drop the entry now, or its
                    // open descriptor keeps the file's space allocated.
                    cache.remove(relative);
                    return Err(e);
                }
            };
            if let Some(entry) = cache.get(relative, &stamp) {
                stats.cache(true);
                return Ok((stamp, Rc::clone(&entry.validators), entry.content.clone()));
            }
        }
        stats.cache(false);
        let (file, stamp) = self.assets.open(relative)?;
        let validators = Rc::new(Validators::new(
            stamp.ino,
            stamp.size,
            stamp.mtime_secs,
            stamp.mtime_nanos,
        ));
        let content = if cache.keeps_in_memory(stamp.size) {
            Cached::Memory(Bytes::from(fs::read_all(&file, stamp.size)?))
        } else {
            Cached::File(Rc::new(file))
        };
        cache.insert(relative, stamp, Rc::clone(&validators), content.clone());
        stats.cache_bytes(cache.used());
        Ok((stamp, validators, content))
    }

    #[allow(clippy::too_many_arguments)]
    fn file_reply(
        &self,
        req: &Request<'_>,
        head: &mut Vec<u8>,
        date: &str,
        closing: bool,
        relative: &str,
        stamp: FileStamp,
        validators: &Validators,
        content: Cached,
    ) -> Reply {
        let (content_type, class) = mime::classify(relative);
        let cache_control = match class {
            CacheClass::Immutable => IMMUTABLE,
            CacheClass::Manifest => self.manifest_cache_control.as_str(),
        };
        let size = stamp.size;
        let f = &req.fields;
        if conditional::not_modified(f.if_none_match, f.if_modified_since, validators) {
            let mut w = HeadWriter::new(head, 304, date);
            self.validator_headers(&mut w, validators, cache_control, f.origin);
            finish(w, closing);
            return Reply {
                status: 304,
                body: Body::Empty,
                close: closing,
            };
        }
        let decision = match f.range {
            Some(range) if conditional::if_range_allows(f.if_range, validators) => {
                range::evaluate(range, size)
            }
            _ => RangeDecision::Full,
        };
        let (status, start, len) = match decision {
            RangeDecision::Full => (200, 0, size),
            RangeDecision::Partial { start, end } => (206, start, end - start + 1),
            RangeDecision::Unsatisfiable => {
                let mut w = HeadWriter::new(head, 416, date);
                w.header("Content-Range", format_args!("bytes */{size}"))
                    .header("Content-Length", 0);
                self.cors_headers(&mut w, f.origin);
                finish(w, closing);
                return Reply {
                    status: 416,
                    body: Body::Empty,
                    close: closing,
                };
            }
        };
        let mut w = HeadWriter::new(head, status, date);
        w.header("Content-Type", content_type)
            .header("Content-Length", len)
            .header("Accept-Ranges", "bytes");
        if status == 206 {
            w.header(
                "Content-Range",
                format_args!("bytes {start}-{}/{size}", start + len - 1),
            );
        }
        self.validator_headers(&mut w, validators, cache_control, f.origin);
        finish(w, closing);
        let body = if req.method == Method::Head {
            Body::Empty
        } else {
            match content {
                Cached::Memory(bytes) => {
                    Body::Memory(bytes.slice(start as usize..(start + len) as usize))
                }
                Cached::File(file) => Body::File {
                    file,
                    offset: start,
                    len,
                },
            }
        };
        Reply {
            status,
            body,
            close: closing,
        }
    }

    fn validator_headers(
        &self,
        w: &mut HeadWriter<'_>,
        v: &Validators,
        cache_control: &str,
        origin: Option<&[u8]>,
    ) {
        w.header("ETag", &v.etag)
            .header("Last-Modified", &v.last_modified)
            .header("Cache-Control", cache_control);
        self.cors_headers(w, origin);
    }

    fn preflight(&self, req: &Request<'_>, head: &mut Vec<u8>, date: &str, closing: bool) -> Reply {
        let mut w = HeadWriter::new(head, 204, date);
        w.header("Allow", ALLOW);
        if req.fields.access_control_request_method.is_some()
            && self.allowed_origin(req.fields.origin).is_some()
        {
            w.header("Access-Control-Allow-Methods", ALLOW)
                .header(
                    "Access-Control-Allow-Headers",
                    "Range, If-None-Match, If-Modified-Since, If-Range",
                )
                .header("Access-Control-Max-Age", 86400);
        }
        self.cors_headers(&mut w, req.fields.origin);
        finish(w, closing);
        Reply {
            status: 204,
            body: Body::Empty,
            close: closing,
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request's Origin.
    fn allowed_origin<'o>(&self, origin: Option<&'o [u8]>) -> Option<&'o str> {
        match &self.cors {
            Cors::Any => Some("*"),
            Cors::List(list) => {
                let origin = std::str::from_utf8(origin?).ok()?;
                list.iter().any(|o| o == origin).then_some(origin)
            }
        }
    }

    fn cors_headers(&self, w: &mut HeadWriter<'_>, origin: Option<&[u8]>) {
        if let Some(allowed) = self.allowed_origin(origin) {
            w.header("Access-Control-Allow-Origin", allowed)
                .header("Access-Control-Expose-Headers", EXPOSE);
        }
        if matches!(self.cors, Cors::List(_)) {
            w.header("Vary", "Origin");
        }
    }

    /// A short text error. Errors are not cached by shared caches.
    fn error(
        &self,
        head: &mut Vec<u8>,
        date: &str,
        closing: bool,
        origin: Option<&[u8]>,
        status: u16,
    ) -> Reply {
        let (mut w, text) = error_head(head, date, status);
        if status == 405 {
            w.header("Allow", ALLOW);
        }
        if status == 503 {
            w.header("Retry-After", 1);
        }
        self.cors_headers(&mut w, origin);
        finish(w, closing);
        Reply {
            status,
            body: Body::Memory(Bytes::from_static(text.as_bytes())),
            close: closing,
        }
    }
}

/// Writes a complete error response for a request that could not be parsed
/// (the connection then closes). Returns the body text.
pub fn parse_error_reply(head: &mut Vec<u8>, date: &str, status: u16) -> &'static str {
    let (w, text) = error_head(head, date, status);
    finish(w, true);
    text
}

/// Status line and the headers every error carries; returns the body text.
fn error_head<'h>(
    head: &'h mut Vec<u8>,
    date: &str,
    status: u16,
) -> (HeadWriter<'h>, &'static str) {
    let text = error_text(status);
    let mut w = HeadWriter::new(head, status, date);
    w.header("Content-Type", "text/plain; charset=utf-8")
        .header("Content-Length", text.len())
        .header("Cache-Control", "no-store");
    (w, text)
}

fn error_text(status: u16) -> &'static str {
    match status {
        400 => "bad request\n",
        401 => "unauthorized\n",
        403 => "forbidden\n",
        404 => "not found\n",
        405 => "method not allowed\n",
        408 => "request timeout\n",
        414 => "request line too long\n",
        431 => "request header fields too large\n",
        501 => "not implemented\n",
        503 => "service unavailable\n",
        505 => "HTTP version not supported\n",
        _ => "error\n",
    }
}

fn finish(mut w: HeadWriter<'_>, closing: bool) {
    if closing {
        w.header("Connection", "close");
    }
    w.finish();
}

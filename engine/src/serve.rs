//! From a parsed request to a response: routing, files, Range, conditional
//! requests, cache headers and CORS.
//!
//! This module decides *what* to send and writes the head; the connection
//! decides *how* (and whether the connection survives).

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use streamgate_net::conditional::{self, Validators};
use streamgate_net::mime::{self, CacheClass};
use streamgate_net::range::{self, RangeDecision};
use streamgate_net::request::{Method, Request};
pub use streamgate_net::response::Body;
use streamgate_net::response::ResponseHead;
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

/// What follows a response head that [`Site::respond`] filled in.
pub struct Reply {
    /// The body to send after the head.
    pub body: Body,
    /// Whether the connection should end after this response (a target so
    /// malformed that the peer is not worth keeping).
    pub close: bool,
    /// The file is being brought in from object storage: await it, then
    /// answer with [`Site::respond_fetched`] (the head is not filled in).
    pub fetch: Option<streamgate_assets::Fetch>,
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

/// The reloadable part of a worker's serving state.
struct Live {
    manifest_cache_control: String,
    cors: Cors,
    /// Requests logged: those whose random draw is below this (0: none).
    access_log_below: u64,
}

impl Live {
    fn of(settings: &crate::reload::Settings) -> Self {
        let cors = if settings.cors_origins.iter().any(|o| o == "*") {
            Cors::Any
        } else {
            Cors::List(settings.cors_origins.clone())
        };
        Self {
            manifest_cache_control: format!("public, max-age={}", settings.manifest_max_age),
            cors,
            access_log_below: (settings.access_log_sample.clamp(0.0, 1.0) * u64::MAX as f64) as u64,
        }
    }
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
    /// What SIGHUP may change (`crate::reload`), applied between requests.
    live: RefCell<Live>,
    /// HTTP-01 answers, when certificates come from ACME.
    challenges: Option<Arc<crate::acme::Challenges>>,
    /// The viewer and operator pages, when `[engine] web_root` is set.
    web: Option<Arc<crate::web::Web>>,
    /// The access log's random state.
    draw: std::cell::Cell<u64>,
    cache: RefCell<HotCache>,
    /// Playback-token checks for `/p/`.
    pub gate: Gate,
}

impl Site {
    /// Serving state for one worker.
    pub fn new(
        config: &EngineConfig,
        assets: Arc<dyn AssetStore>,
        challenges: Option<Arc<crate::acme::Challenges>>,
        web: Option<Arc<crate::web::Web>>,
        gate: Gate,
        limits: cache::Limits,
    ) -> Self {
        Self {
            assets,
            challenges,
            web,
            access: config.access,
            live: RefCell::new(Live::of(&crate::reload::Settings::of(config))),
            draw: std::cell::Cell::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
                    | 1,
            ),
            cache: RefCell::new(HotCache::new(limits)),
            gate,
        }
    }

    /// Takes reloaded settings (between requests: the serving path holds
    /// no borrow across an await).
    pub fn apply(&self, settings: &crate::reload::Settings) {
        *self.live.borrow_mut() = Live::of(settings);
    }

    /// The answer to an ACME HTTP-01 check
    /// (`/.well-known/acme-challenge/<token>`) while one is pending.
    fn acme_challenge(&self, req: &Request<'_>, head: &mut ResponseHead) -> Option<Reply> {
        let challenges = self.challenges.as_ref()?;
        let token = req.target.strip_prefix(b"/.well-known/acme-challenge/")?;
        let answer = challenges.answer(std::str::from_utf8(token).ok()?)?;
        head.reset(200)
            .header("Content-Type", "text/plain")
            .header("Cache-Control", "no-store")
            .header("Content-Length", answer.len());
        Some(Reply {
            body: Body::Memory(answer.into_bytes().into()),
            close: false,
            fetch: None,
        })
    }

    /// A page, its scripts and styles (`crate::web`), with the headers that
    /// keep other hosts' code out.
    fn web_page(&self, req: &Request<'_>, head: &mut ResponseHead) -> Option<Reply> {
        let web = self.web.as_ref()?;
        // Segments and playlists never are pages: one prefix test.
        if req.target.starts_with(b"/v/")
            || req.target.starts_with(b"/p/")
            || !matches!(req.method, Method::Get | Method::Head)
        {
            return None;
        }
        let path = std::str::from_utf8(req.target).ok()?;
        let path = path.split('?').next().unwrap_or_default();
        let file = web.file(path)?;
        head.reset(200)
            .header("Content-Type", file.content_type)
            .header("Content-Length", file.body.len())
            .header("Cache-Control", "no-cache")
            .header("Content-Security-Policy", &web.csp)
            .header("X-Content-Type-Options", "nosniff")
            .header("Referrer-Policy", "no-referrer");
        let body = if req.method == Method::Head {
            Body::Empty
        } else {
            Body::Memory(file.body.clone())
        };
        Some(Reply {
            body,
            close: false,
            fetch: None,
        })
    }

    /// Writes one access-log line for a sample of requests (`[engine]
    /// access_log_sample`; none by default). A playback token in the path
    /// is never logged.
    pub fn access_log(&self, protocol: &'static str, req: &Request<'_>, status: u16, bytes: u64) {
        let below = self.live.borrow().access_log_below;
        if below == 0 {
            return;
        }
        // xorshift64: a cheap draw per request, per worker.
        let mut x = self.draw.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.draw.set(x);
        if x >= below {
            return;
        }
        let target = String::from_utf8_lossy(req.target);
        let path = match target
            .strip_prefix("/p/")
            .and_then(|rest| rest.split_once('/'))
        {
            Some((_token, after)) => format!("/p/…/{after}"),
            None => target.into_owned(),
        };
        tracing::info!(
            protocol,
            method = req.method.as_str(),
            %path,
            status,
            bytes,
            "access"
        );
    }

    /// Bytes this worker's cache holds.
    pub fn cache_bytes(&self) -> usize {
        self.cache.borrow().used()
    }

    /// Answers one request: fills `head` in and says what body follows.
    /// The same for every protocol; the codec frames the result.
    pub fn respond(
        &self,
        req: &Request<'_>,
        head: &mut ResponseHead,
        stats: &mut WorkerStats,
    ) -> Reply {
        let respond_error =
            |head: &mut ResponseHead, status| self.error(head, req.fields.origin, status);
        if let Some(reply) = self.acme_challenge(req, head) {
            return reply;
        }
        if let Some(reply) = self.web_page(req, head) {
            return reply;
        }
        let path = match target::decode(req.target) {
            Ok(Target::Path(path)) => path,
            Ok(Target::Asterisk) if req.method == Method::Options => {
                head.reset(204);
                head.header("Allow", ALLOW);
                return Reply {
                    body: Body::Empty,
                    close: false,
                    fetch: None,
                };
            }
            Ok(Target::Asterisk) | Err(_) => return respond_error(head, 400),
        };
        let Some(route) = self.route(&path) else {
            return respond_error(head, 404);
        };
        match req.method {
            Method::Get | Method::Head => {}
            Method::Options => return self.preflight(req, head),
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
            Ok((stamp, validators, content)) => {
                self.file_reply(req, head, relative, stamp, &validators, content)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => respond_error(head, 404),
            // Not here yet: the store is bringing it from object storage.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Reply {
                body: Body::Empty,
                close: false,
                fetch: Some(self.assets.fetch(relative)),
            },
            Err(_) => respond_error(head, 503),
        }
    }

    /// Answers a request whose file [`Site::respond`] sent for, once the
    /// fetch has ended: the file as usual, 404 when the bucket has no such
    /// object, 503 (with Retry-After) when the bucket failed — never 404 for
    /// a bucket that did not answer.
    pub fn respond_fetched(
        &self,
        req: &Request<'_>,
        head: &mut ResponseHead,
        stats: &mut WorkerStats,
        outcome: streamgate_assets::read_through::Outcome,
    ) -> Reply {
        match outcome {
            Ok(()) => {
                let reply = self.respond(req, head, stats);
                if reply.fetch.is_none() {
                    return reply;
                }
                // Evicted again before this request could open it: rare
                // enough (a cache far too small) to answer "try again".
                self.error(head, req.fields.origin, 503)
            }
            Err(io::ErrorKind::NotFound) => self.error(head, req.fields.origin, 404),
            Err(_) => self.error(head, req.fields.origin, 503),
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
            match self.assets.stamp(relative) {
                Ok(stamp) => {
                    if let Some(entry) = cache.get(relative, &stamp) {
                        stats.cache(true);
                        return Ok((stamp, Rc::clone(&entry.validators), entry.content.clone()));
                    }
                }
                Err(e) => {
                    // Deleted, evicted (or unreadable): drop the entry now,
                    // or its open descriptor keeps the file's space
                    // allocated. Gone is not the end: a store reading
                    // through to object storage may bring it back.
                    cache.remove(relative);
                    if e.kind() != io::ErrorKind::NotFound {
                        return Err(e);
                    }
                }
            }
        }
        stats.cache(false);
        let (file, stamp) = self.assets.open(relative)?;
        let validators = Rc::new(self.validators(relative, &stamp));
        let content = if cache.keeps_in_memory(stamp.size) {
            Cached::Memory(Bytes::from(fs::read_all(&file, stamp.size)?))
        } else {
            Cached::File(Rc::new(file))
        };
        cache.insert(relative, stamp, Rc::clone(&validators), content.clone());
        stats.cache_bytes(cache.used());
        Ok((stamp, validators, content))
    }

    /// The validators of a file: those recorded at publish (the same on
    /// every origin) while they describe it, else ones from the local file
    /// (an asset from before indexes, a file edited by hand).
    fn validators(&self, relative: &str, stamp: &FileStamp) -> Validators {
        match self.assets.recorded(relative, stamp) {
            Some((etag, published)) => Validators::published(&etag, published),
            None => Validators::new(stamp.ino, stamp.size, stamp.mtime_secs, stamp.mtime_nanos),
        }
    }

    fn file_reply(
        &self,
        req: &Request<'_>,
        head: &mut ResponseHead,
        relative: &str,
        stamp: FileStamp,
        validators: &Validators,
        content: Cached,
    ) -> Reply {
        let (content_type, class) = mime::classify(relative);
        let live = self.live.borrow();
        let cache_control = match class {
            CacheClass::Immutable => IMMUTABLE,
            CacheClass::Manifest => live.manifest_cache_control.as_str(),
        };
        let size = stamp.size;
        let f = &req.fields;
        if conditional::not_modified(f.if_none_match, f.if_modified_since, validators) {
            head.reset(304);
            self.validator_headers(head, validators, cache_control, f.origin);
            return Reply {
                body: Body::Empty,
                close: false,
                fetch: None,
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
                head.reset(416);
                head.header("Content-Range", format_args!("bytes */{size}"))
                    .header("Content-Length", 0);
                self.cors_headers(head, f.origin);
                return Reply {
                    body: Body::Empty,
                    close: false,
                    fetch: None,
                };
            }
        };
        head.reset(status);
        head.header("Content-Type", content_type)
            .header("Content-Length", len)
            .header("Accept-Ranges", "bytes");
        if status == 206 {
            head.header(
                "Content-Range",
                format_args!("bytes {start}-{}/{size}", start + len - 1),
            );
        }
        self.validator_headers(head, validators, cache_control, f.origin);
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
            body,
            close: false,
            fetch: None,
        }
    }

    fn validator_headers(
        &self,
        head: &mut ResponseHead,
        v: &Validators,
        cache_control: &str,
        origin: Option<&[u8]>,
    ) {
        head.header("ETag", &v.etag)
            .header("Last-Modified", &v.last_modified)
            .header("Cache-Control", cache_control);
        self.cors_headers(head, origin);
    }

    fn preflight(&self, req: &Request<'_>, head: &mut ResponseHead) -> Reply {
        head.reset(204);
        head.header("Allow", ALLOW);
        if req.fields.access_control_request_method.is_some()
            && self.allowed_origin(req.fields.origin).is_some()
        {
            head.header("Access-Control-Allow-Methods", ALLOW)
                .header(
                    "Access-Control-Allow-Headers",
                    "Range, If-None-Match, If-Modified-Since, If-Range",
                )
                .header("Access-Control-Max-Age", 86400);
        }
        self.cors_headers(head, req.fields.origin);
        Reply {
            body: Body::Empty,
            close: false,
            fetch: None,
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request's Origin.
    fn allowed_origin<'o>(&self, origin: Option<&'o [u8]>) -> Option<&'o str> {
        match &self.live.borrow().cors {
            Cors::Any => Some("*"),
            Cors::List(list) => {
                let origin = std::str::from_utf8(origin?).ok()?;
                list.iter().any(|o| o == origin).then_some(origin)
            }
        }
    }

    fn cors_headers(&self, head: &mut ResponseHead, origin: Option<&[u8]>) {
        if let Some(allowed) = self.allowed_origin(origin) {
            head.header("Access-Control-Allow-Origin", allowed)
                .header("Access-Control-Expose-Headers", EXPOSE);
        }
        if matches!(self.live.borrow().cors, Cors::List(_)) {
            head.header("Vary", "Origin");
        }
    }

    /// A short text error. Errors are not cached by shared caches; a 400
    /// also ends the connection (the peer is not worth keeping).
    fn error(&self, head: &mut ResponseHead, origin: Option<&[u8]>, status: u16) -> Reply {
        let text = error_head(head, status);
        if status == 405 {
            head.header("Allow", ALLOW);
        }
        if status == 503 {
            head.header("Retry-After", 1);
        }
        self.cors_headers(head, origin);
        Reply {
            body: Body::Memory(Bytes::from_static(text.as_bytes())),
            close: status == 400,
            fetch: None,
        }
    }
}

/// The response to a request that could not be parsed (the connection then
/// closes): fills `head` in and returns the body text.
pub fn parse_error_reply(head: &mut ResponseHead, status: u16) -> &'static str {
    error_head(head, status)
}

/// The status and the fields every error carries; returns the body text.
fn error_head(head: &mut ResponseHead, status: u16) -> &'static str {
    let text = error_text(status);
    head.reset(status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Content-Length", text.len())
        .header("Cache-Control", "no-store");
    text
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

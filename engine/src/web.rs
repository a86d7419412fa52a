//! The pages viewers and operators open (`web/` in the repository,
//! `/usr/share/streamgate/web` from the .deb): the catalog at `/`, a video
//! at `/watch/<id>`, the operator's studio at `/studio`, their scripts and
//! styles under `/static/`, the player and uploader libraries from npm at
//! `/static/vendor/`, and `/web-config.json` telling
//! the scripts where the JSON API is. Served from this origin — the public
//! URL, so a wallet's sign-in message names the site the viewer is on —
//! with a strict Content-Security-Policy: every script, style and font
//! from here, none inline, none from another host.
//!
//! The files are read into memory at start (a few hundred KB): a page
//! costs the workers no disk access.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// `[engine] web_root` and where the pages' scripts find the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// The `web/` directory.
    pub root: PathBuf,
    /// The JSON API's base URL (`http://127.0.0.1:8081`; empty when a
    /// proxy serves it on this origin).
    pub api: String,
}

/// A file the pages are made of.
#[derive(Debug, Clone)]
pub struct WebFile {
    /// Its bytes.
    pub body: Bytes,
    /// Its media type.
    pub content_type: &'static str,
}

/// The pages, by request path.
#[derive(Debug, Default)]
pub struct Web {
    files: HashMap<String, WebFile>,
    /// The Content-Security-Policy of every response.
    pub csp: String,
}

/// What the pages load, by the path they load it at: (path, file under
/// the web root, media type).
const FILES: [(&str, &str, &str); 13] = [
    ("/", "index.html", "text/html; charset=utf-8"),
    ("/watch", "watch.html", "text/html; charset=utf-8"),
    ("/studio", "studio.html", "text/html; charset=utf-8"),
    (
        "/static/studio.js",
        "static/studio.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/static/app.css",
        "static/app.css",
        "text/css; charset=utf-8",
    ),
    (
        "/static/api.js",
        "static/api.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/static/catalog.js",
        "static/catalog.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/static/wallet.js",
        "static/wallet.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/static/player.js",
        "static/player.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/static/watch.js",
        "static/watch.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/static/vendor/shaka-player.js",
        "node_modules/shaka-player/dist/shaka-player.compiled.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/static/vendor/tus.min.js",
        "node_modules/tus-js-client/dist/tus.min.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/static/vendor/hls.mjs",
        "node_modules/hls.js/dist/hls.mjs",
        "text/javascript; charset=utf-8",
    ),
];

impl Web {
    /// Reads every page file; a missing one is an error naming it (the
    /// player library comes from `scripts/setup.sh`, which runs `npm ci`
    /// in `web/`).
    pub fn load(config: &WebConfig) -> std::io::Result<Self> {
        let mut files = HashMap::new();
        for (path, file, content_type) in FILES {
            let on_disk = config.root.join(file);
            let body = std::fs::read(&on_disk).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("web page file {}: {e}", on_disk.display()),
                )
            })?;
            files.insert(
                path.to_string(),
                WebFile {
                    body: Bytes::from(body),
                    content_type,
                },
            );
        }
        let config_json = format!("{{\"api\":{}}}\n", json_string(&config.api));
        files.insert(
            "/web-config.json".into(),
            WebFile {
                body: Bytes::from(config_json),
                content_type: "application/json",
            },
        );
        Ok(Self {
            files,
            csp: csp(&config.api),
        })
    }

    /// The file for a request path: `/watch/<id>` is the watch page.
    pub fn file(&self, path: &str) -> Option<&WebFile> {
        let key = match path.strip_prefix("/watch/") {
            Some(id) if !id.is_empty() && !id.contains('/') => "/watch",
            _ => path,
        };
        self.files.get(key)
    }
}

/// Scripts, styles, images and media from this origin only; the API's
/// origin for fetches; hls.js's worker and media sources as blob: URLs;
/// nothing framed, no inline script.
fn csp(api: &str) -> String {
    let api_origin = origin_of(api);
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self'{}{}; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        if api_origin.is_empty() { "" } else { " " },
        api_origin
    )
}

/// `scheme://host[:port]` of a URL (empty for a relative one).
fn origin_of(url: &str) -> &str {
    let Some(after) = url.find("://").map(|i| i + 3) else {
        return "";
    };
    match url[after..].find('/') {
        Some(slash) => &url[..after + slash],
        None => url,
    }
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The web root a `serve` without `[engine] web_root` uses: the .deb's,
/// else this checkout's (a development build) once `scripts/setup.sh` has
/// fetched its npm libraries; `None` serves no pages (and says so).
pub fn default_root() -> Option<PathBuf> {
    let found = [
        Path::new("/usr/share/streamgate/web").to_path_buf(),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../web"),
    ]
    .into_iter()
    .find(|root| FILES.iter().all(|(_, file, _)| root.join(file).is_file()));
    if found.is_none() {
        tracing::warn!("no pages to serve (run scripts/setup.sh to fetch their libraries, or set [engine] web_root)");
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_this_origin_and_the_apis_only() {
        let policy = csp("http://127.0.0.1:8081/");
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(
            policy.contains("connect-src 'self' http://127.0.0.1:8081;"),
            "{policy}"
        );
        assert!(!policy.contains("unsafe-inline"));
        assert!(csp("").contains("connect-src 'self';"));
        assert_eq!(origin_of("https://api.example/v1"), "https://api.example");
        assert_eq!(json_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}

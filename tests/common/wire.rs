//! The ways into the engine, so one behaviour case runs over every one:
//! plain HTTP/1.1 through the tests' own raw client, and HTTPS/1.1, HTTP/2
//! over TLS (ALPN) and h2c (prior knowledge) through curl — an HTTP stack
//! that shares no code with the server.

use std::process::Command;

/// One `#[test]` per case and wire: `http1::byte_ranges`,
/// `h2::byte_ranges`, … Each case is a `fn(Wire)` in the calling module,
/// which imports `Wire`.
#[allow(unused_macros)]
macro_rules! over_every_wire {
    ($($case:ident),* $(,)?) => {
        mod http1 { $(#[test] fn $case() { super::$case(super::Wire::Http1) })* }
        mod https1 { $(#[test] fn $case() { super::$case(super::Wire::Https1) })* }
        mod h2 { $(#[test] fn $case() { super::$case(super::Wire::H2) })* }
        mod h2c { $(#[test] fn $case() { super::$case(super::Wire::H2c) })* }
    };
}

use super::{Engine, Response};

/// How a case reaches the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// Plain HTTP/1.1, the raw client of `common`.
    Http1,
    /// HTTP/1.1 over TLS (ALPN `http/1.1`).
    Https1,
    /// HTTP/2 over TLS (ALPN `h2`).
    H2,
    /// HTTP/2 with prior knowledge on the plain listener.
    H2c,
}

impl Wire {
    /// Whether the engine needs its TLS listener for this wire.
    pub fn tls(self) -> bool {
        matches!(self, Wire::Https1 | Wire::H2)
    }

    /// The `protocol` label the engine's metrics give requests on it.
    pub fn protocol_label(self) -> &'static str {
        match self {
            Wire::Http1 | Wire::Https1 => "http1",
            Wire::H2 | Wire::H2c => "h2",
        }
    }

    /// HTTP/2 (no connection-level headers, no HTTP/1 framing).
    pub fn is_h2(self) -> bool {
        matches!(self, Wire::H2 | Wire::H2c)
    }
}

/// A client bound to one engine and one wire.
pub struct Client<'e> {
    engine: &'e Engine,
    wire: Wire,
}

impl Engine {
    /// A client for `wire` (the engine must have been started with
    /// `Options::tls` for the TLS wires).
    pub fn over(&self, wire: Wire) -> Client<'_> {
        assert!(
            !wire.tls() || self.tls.is_some(),
            "{wire:?} needs an engine started with Options::tls"
        );
        Client { engine: self, wire }
    }
}

impl Client<'_> {
    /// One GET with `extra` header lines (`Name: value\r\n` each).
    pub fn get(&self, path: &str, extra: &str) -> Response {
        self.request("GET", path, extra)
    }

    /// One request on a fresh connection; the path is sent as written
    /// (no dot-segment removal, no re-encoding).
    pub fn request(&self, method: &str, path: &str, extra: &str) -> Response {
        if self.wire == Wire::Http1 {
            return self.engine.request(method, path, extra);
        }
        let headers: Vec<String> = extra
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        self.curl(method, path, &headers, None)
    }

    /// One request with header lines and a body (sent with its
    /// Content-Length), on a fresh connection.
    pub fn send(&self, method: &str, path: &str, headers: &[String], body: &[u8]) -> Response {
        if self.wire == Wire::Http1 {
            return streamgate_net::client::Connection::open(self.engine.addr)
                .unwrap()
                .send(method, path, headers, body)
                .unwrap();
        }
        self.curl(method, path, headers, Some(body))
    }

    fn curl(&self, method: &str, path: &str, headers: &[String], body: Option<&[u8]>) -> Response {
        let (base, flags): (String, Vec<String>) = match self.wire {
            Wire::Http1 => unreachable!(),
            Wire::H2c => (
                format!("http://{}", self.engine.addr),
                vec!["--http2-prior-knowledge".into()],
            ),
            Wire::Https1 | Wire::H2 => {
                let tls = self.engine.tls.as_ref().unwrap();
                let version = if self.wire == Wire::H2 {
                    "--http2"
                } else {
                    "--http1.1"
                };
                (
                    format!("https://127.0.0.1:{}", tls.addr.port()),
                    vec![
                        version.into(),
                        "--cacert".into(),
                        tls.ca.display().to_string(),
                    ],
                )
            }
        };
        let mut args = flags;
        args.push("--path-as-is".into());
        // HEAD: on HTTP/2 the stream's end says where the (empty) body
        // ends, so `-X HEAD` shows any DATA the server wrongly sent (curl,
        // not knowing it asked HEAD, then reports the Content-Length it
        // did not get: exit 18); on HTTP/1.1 curl must be told
        // (`--head`), and writes the head where the body would go.
        let head_h1 = method == "HEAD" && !self.wire.is_h2();
        match method {
            "GET" => {}
            _ if head_h1 => args.push("--head".into()),
            other => args.extend(["-X".into(), other.into()]),
        }
        for line in headers {
            args.extend(["-H".into(), line.clone()]);
        }
        let scratch = super::Scratch::new("curl-body");
        // curl takes no body with `--head`; a HEAD has none anyway.
        if let Some(body) = body.filter(|_| method != "HEAD") {
            let file = scratch.0.join("body");
            std::fs::write(&file, body).unwrap();
            args.extend(["--data-binary".into(), format!("@{}", file.display())]);
        }
        args.push(format!("{base}{path}"));
        let partial_ok = method == "HEAD" && self.wire.is_h2();
        let mut response = curl(self.wire, &args, partial_ok);
        if head_h1 {
            response.body.clear();
        }
        response
    }
}

/// Runs curl with `args`, asserting it spoke the wire's HTTP version, and
/// parses what it received; `partial_ok` accepts a body shorter than its
/// Content-Length (curl's exit 18).
fn curl(wire: Wire, args: &[String], partial_ok: bool) -> Response {
    let scratch = super::Scratch::new("curl");
    let (head, body) = (scratch.0.join("head"), scratch.0.join("body"));
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "20", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_version}"])
        .args(args)
        .output()
        .expect("curl (scripts/setup.sh installs it)");
    assert!(
        out.status.success() || (partial_ok && out.status.code() == Some(18)),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let version = String::from_utf8_lossy(&out.stdout);
    let want = if wire.is_h2() { "2" } else { "1.1" };
    assert_eq!(version, want, "curl {args:?} spoke HTTP/{version}");
    let head = std::fs::read_to_string(&head).unwrap();
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("curl {args:?}: status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

//! Connections to the target: HTTP/1.1 or HTTP/2, over TCP or TLS, behind
//! one [`Connector`] and one [`Conn::fetch`]. Bodies are counted and
//! dropped, or kept when the caller needs them (manifests); a download can
//! be paced to a link's rate ([`Fetch::pace_bps`]).
//!
//! Modules: [`stream`] (TCP or TLS, one type), [`tls`] (the rustls client
//! configuration), [`http1`] and [`http2`] (the codecs).

pub mod http1;
pub mod http2;
pub mod stream;
pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::Target;
use stream::Stream;

/// The protocol spoken on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1, one request in flight.
    Http1,
    /// HTTP/2: by ALPN over TLS, with prior knowledge (h2c) over TCP.
    Http2,
}

/// Opens connections to one origin.
#[derive(Clone)]
pub struct Connector {
    addr: SocketAddr,
    authority: String,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    protocol: Protocol,
    timeout: Duration,
}

impl Connector {
    /// Connections to `target` speaking `protocol`; TLS when the target is
    /// `https://` (`tls` is then the client configuration, see
    /// [`tls::config`]). Connecting and the handshake get `timeout`.
    pub fn new(
        target: &Target,
        protocol: Protocol,
        tls: Option<Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> io::Result<Self> {
        let tls = match (target.https, tls) {
            (false, _) => None,
            (true, Some(config)) => {
                let name = rustls::pki_types::ServerName::try_from(target.hostname().to_string())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                Some((config, name))
            }
            (true, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "an https:// target needs a TLS configuration",
                ))
            }
        };
        Ok(Self {
            addr: target.addr,
            authority: target.host.clone(),
            tls,
            protocol,
            timeout,
        })
    }

    /// The protocol this connector speaks.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Opens one connection (TCP, TLS handshake, HTTP/2 preface).
    pub async fn connect(&self) -> io::Result<Conn> {
        tokio::time::timeout(self.timeout, self.open())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
    }

    async fn open(&self) -> io::Result<Conn> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some((config, name)) => {
                let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| self.alpn_refused(e))?;
                let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                if self.protocol == Protocol::Http2 && alpn.as_deref() != Some(b"h2") {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "the server did not offer HTTP/2 (ALPN h2)",
                    ));
                }
                Stream::Tls(Box::new(tls))
            }
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        Ok(match self.protocol {
            Protocol::Http1 => Conn::Http1(http1::Conn::new(stream, &self.authority)),
            Protocol::Http2 => {
                Conn::Http2(http2::Conn::handshake(stream, scheme, &self.authority).await?)
            }
        })
    }
}

impl Connector {
    /// A server that shares no protocol with our ALPN list refuses the
    /// handshake with an alert; say what that means.
    fn alpn_refused(&self, e: io::Error) -> io::Error {
        let refused = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .is_some_and(|r| {
                matches!(
                    r,
                    rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol)
                )
            });
        match (refused, self.protocol) {
            (true, Protocol::Http2) => io::Error::new(
                io::ErrorKind::Unsupported,
                "the server did not offer HTTP/2 (ALPN h2)",
            ),
            (true, Protocol::Http1) => io::Error::new(
                io::ErrorKind::Unsupported,
                "the server did not offer HTTP/1.1 by ALPN (try --http2)",
            ),
            _ => e,
        }
    }
}

/// One request: `GET` or `HEAD` of a path on the connector's origin.
#[derive(Debug, Clone, Copy)]
pub struct Fetch<'a> {
    /// `GET` or `HEAD`.
    pub method: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// Extra headers.
    pub headers: &'a [(String, String)],
    /// Keep the body (up to this many bytes) instead of dropping it.
    pub keep: Option<usize>,
    /// Read the body no faster than this (bytes per second of wall time):
    /// a slow link.
    pub pace_bps: Option<f64>,
}

/// What came back.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// The status.
    pub status: u16,
    /// Body bytes received.
    pub bytes: u64,
    /// The body, when it was asked for with [`Fetch::keep`].
    pub body: Vec<u8>,
    /// The server closes the connection after this answer.
    pub closes: bool,
}

/// An open connection.
pub enum Conn {
    /// HTTP/1.1.
    Http1(http1::Conn),
    /// HTTP/2 (a handle: clones share the connection, one stream each).
    Http2(http2::Conn),
}

impl Conn {
    /// Sends `fetch` and reads the whole answer.
    pub async fn fetch(&mut self, fetch: &Fetch<'_>) -> io::Result<Reply> {
        match self {
            Conn::Http1(c) => c.fetch(fetch).await,
            Conn::Http2(c) => c.fetch(fetch).await,
        }
    }
}

/// Paces a body to a rate: after `received` bytes of a body begun at
/// `started`, waits until a link of `bps` would have delivered them.
pub(crate) async fn pace(started: Instant, received: u64, bps: Option<f64>) {
    if let Some(bps) = bps {
        let due = started + Duration::from_secs_f64(received as f64 / bps);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
    }
}

/// The largest read while pacing: about 20 ms of the link, so the pace is
/// smooth, at least 1 KiB.
pub(crate) fn paced_read(bps: Option<f64>, buf: usize) -> usize {
    match bps {
        Some(bps) => ((bps / 50.0) as usize).clamp(1024, buf),
        None => buf,
    }
}

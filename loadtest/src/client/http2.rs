//! The HTTP/2 codec (the `h2` crate): a connection is a handle that clones
//! share, each request its own stream. The connection's driver runs as a
//! task on the same thread.

use std::io;
use std::time::Instant;

use bytes::Bytes;

use super::stream::Stream;
use super::{pace, Fetch, Reply};

/// One HTTP/2 connection (a cheap handle; clones send on the same one).
#[derive(Clone)]
pub struct Conn {
    send: h2::client::SendRequest<Bytes>,
    origin: String,
}

/// Maps an h2 failure to the kinds the report counts.
pub(crate) fn to_io(e: h2::Error) -> io::Error {
    if e.is_io() {
        return e.into_io().unwrap_or_else(|| io::ErrorKind::Other.into());
    }
    let kind = if e.is_go_away() {
        io::ErrorKind::ConnectionAborted
    } else if e.is_reset() {
        io::ErrorKind::ConnectionReset
    } else {
        io::ErrorKind::InvalidData
    };
    io::Error::new(kind, e)
}

impl Conn {
    /// Sends the connection preface and settings over `stream`.
    pub async fn handshake(stream: Stream, scheme: &str, authority: &str) -> io::Result<Self> {
        let (send, connection) = h2::client::Builder::new()
            // Segments are large: windows that let one stream run at the
            // link's speed without waiting for updates.
            .initial_window_size(4 << 20)
            .initial_connection_window_size(16 << 20)
            .handshake::<_, Bytes>(stream)
            .await
            .map_err(to_io)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "loadtest: h2 connection ended");
            }
        });
        Ok(Self {
            send,
            origin: format!("{scheme}://{authority}"),
        })
    }

    /// Sends the request on a new stream and reads the whole answer.
    pub async fn fetch(&mut self, f: &Fetch<'_>) -> io::Result<Reply> {
        let mut request = http::Request::builder()
            .method(f.method)
            .uri(format!("{}{}", self.origin, f.path))
            .header("user-agent", "streamgate-loadtest");
        for (name, value) in f.headers {
            // Connection-specific headers do not exist in HTTP/2.
            if ![
                "connection",
                "host",
                "keep-alive",
                "transfer-encoding",
                "upgrade",
            ]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
            {
                request = request.header(name.as_str(), value.as_str());
            }
        }
        let request = request
            .body(())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut send = self.send.clone().ready().await.map_err(to_io)?;
        let (response, _) = send.send_request(request, true).map_err(to_io)?;
        let response = response.await.map_err(to_io)?;
        let mut reply = Reply {
            status: response.status().as_u16(),
            ..Reply::default()
        };
        let mut body = response.into_body();
        let started = Instant::now();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(to_io)?;
            reply.bytes += chunk.len() as u64;
            if let Some(keep) = f.keep {
                if reply.body.len() + chunk.len() > keep {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "body larger than expected",
                    ));
                }
                reply.body.extend_from_slice(&chunk);
            }
            // A slow link: the window opens again only as fast as it.
            pace(started, reply.bytes, f.pace_bps).await;
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        Ok(reply)
    }
}

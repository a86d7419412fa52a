//! HTTP/2 framing for servers: the `h2` server configuration with the
//! configured [`Limits`], and the [`guard::FloodGuard`] every connection
//! reads through. The engine drives connections with them; the fuzz target
//! `h2_server` drives them with arbitrary client bytes.

pub mod guard;

/// HTTP/2 defences (each a configured limit, see `docs/architecture.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// Largest header list a client may send (SETTINGS_MAX_HEADER_LIST_SIZE);
    /// CONTINUATION frames beyond it end the connection.
    pub max_header_list_size: u32,
    /// Streams reset by the client before they were answered, pending at
    /// once, before the connection goes away (Rapid Reset).
    pub max_pending_accept_reset_streams: usize,
    /// Streams the server had to reset for the client's errors before the
    /// connection goes away.
    pub max_local_error_reset_streams: usize,
    /// Control frames (SETTINGS, PING, RST_STREAM, WINDOW_UPDATE, PRIORITY)
    /// a client may send in one second before its connection is closed.
    pub max_control_frames_per_second: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 100,
            max_header_list_size: 16 << 10,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 256,
            max_control_frames_per_second: 1000,
        }
    }
}

/// Bytes of a body sent per DATA round, and twice that buffered at most.
pub const SEND_CHUNK: usize = 64 << 10;

/// The server-side builder with `limits`.
pub fn server_builder(limits: &Limits) -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(limits.max_header_list_size)
        .max_pending_accept_reset_streams(limits.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(Some(limits.max_local_error_reset_streams))
        // Request bodies are not served: a small receive window.
        .initial_window_size(64 << 10)
        .max_send_buffer_size(SEND_CHUNK * 2);
    b
}

/// Headers HTTP/2 forbids (RFC 9113 §8.2.2): never sent.
pub const HOP_BY_HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

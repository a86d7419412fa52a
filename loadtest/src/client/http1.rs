//! The HTTP/1.1 codec: one request in flight on a keep-alive connection.
//! Bodies framed by Content-Length, chunked, or the end of the connection;
//! the read buffer is borrowed from a per-thread pool for the length of one
//! answer, so ten thousand idle viewers hold no buffers.

use std::cell::RefCell;
use std::io;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::stream::Stream;
use super::{pace, paced_read, Fetch, Reply};

/// Read buffer size.
const BUF: usize = 32 << 10;
/// A response head larger than this is refused.
const MAX_HEAD: usize = BUF;

thread_local! {
    static POOL: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer from this thread's pool, returned on drop.
struct Pooled(Option<Box<[u8]>>);

impl Pooled {
    fn take() -> Self {
        let buf = POOL
            .with(|p| p.borrow_mut().pop())
            .unwrap_or_else(|| vec![0; BUF].into_boxed_slice());
        Self(Some(buf))
    }
}

impl std::ops::Deref for Pooled {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0.as_deref_mut().unwrap_or_default()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(buf) = self.0.take() {
            POOL.with(|p| {
                let mut pool = p.borrow_mut();
                // A pool as large as the most answers read at once on this
                // thread, capped.
                if pool.len() < 256 {
                    pool.push(buf);
                }
            });
        }
    }
}

/// One HTTP/1.1 connection.
pub struct Conn {
    stream: Stream,
    host: String,
    /// The request being written (reused).
    out: Vec<u8>,
}

/// How the body of an answer ends.
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_string())
}

impl Conn {
    /// A connection to `host` (the `Host` header) over `stream`.
    pub fn new(stream: Stream, host: &str) -> Self {
        Self {
            stream,
            host: host.to_string(),
            out: Vec::new(),
        }
    }

    /// Sends the request and reads the whole answer.
    pub async fn fetch(&mut self, f: &Fetch<'_>) -> io::Result<Reply> {
        self.out.clear();
        for part in [f.method, " ", f.path, " HTTP/1.1\r\nHost: ", &self.host] {
            self.out.extend_from_slice(part.as_bytes());
        }
        self.out
            .extend_from_slice(b"\r\nUser-Agent: streamgate-loadtest\r\n");
        for (name, value) in f.headers {
            for part in [name.as_str(), ": ", value.as_str(), "\r\n"] {
                self.out.extend_from_slice(part.as_bytes());
            }
        }
        if f.method == "POST" {
            // No request bodies are sent: an empty one, said so.
            self.out.extend_from_slice(b"Content-Length: 0\r\n");
        }
        self.out.extend_from_slice(b"\r\n");
        self.stream.write_all(&self.out).await?;

        let mut buf = Pooled::take();
        let mut filled = 0;
        let head_end = loop {
            let n = self.stream.read(&mut buf[filled..MAX_HEAD]).await?;
            if n == 0 {
                return Err(io::ErrorKind::ConnectionAborted.into());
            }
            // Search from just before the new bytes.
            let from = filled.saturating_sub(3);
            filled += n;
            if let Some(i) = find(&buf[from..filled], b"\r\n\r\n") {
                break from + i + 4;
            }
            if filled == MAX_HEAD {
                return Err(invalid("response head too large"));
            }
        };
        let (status, framing, closes) = parse_head(&buf[..head_end], f.method == "HEAD")?;
        let mut reply = Reply {
            status,
            closes,
            ..Reply::default()
        };
        let started = Instant::now();
        let keep = f.keep.unwrap_or(0);
        let take = |reply: &mut Reply, data: &[u8]| -> io::Result<()> {
            reply.bytes += data.len() as u64;
            if f.keep.is_some() {
                if reply.body.len() + data.len() > keep {
                    return Err(invalid("body larger than expected"));
                }
                reply.body.extend_from_slice(data);
            }
            Ok(())
        };
        // Body bytes already read with the head.
        let mut pending = head_end..filled;
        let limit = paced_read(f.pace_bps, buf.len());
        match framing {
            Framing::Length(mut left) => loop {
                let n = (pending.len() as u64).min(left) as usize;
                take(&mut reply, &buf[pending.start..pending.start + n])?;
                left -= n as u64;
                if pending.len() > n {
                    return Err(invalid("more bytes than Content-Length"));
                }
                if left == 0 {
                    break;
                }
                pace(started, reply.bytes, f.pace_bps).await;
                let want = (left.min(limit as u64)) as usize;
                let got = self.stream.read(&mut buf[..want]).await?;
                if got == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                pending = 0..got;
            },
            Framing::UntilClose => {
                reply.closes = true;
                loop {
                    take(&mut reply, &buf[pending.clone()])?;
                    pace(started, reply.bytes, f.pace_bps).await;
                    let got = self.stream.read(&mut buf[..limit]).await?;
                    if got == 0 {
                        break;
                    }
                    pending = 0..got;
                }
            }
            Framing::Chunked => {
                let mut decoder = Chunked::default();
                loop {
                    let done = decoder.feed(&buf[pending.clone()], &mut |d| take(&mut reply, d))?;
                    if done {
                        break;
                    }
                    pace(started, reply.bytes, f.pace_bps).await;
                    let got = self.stream.read(&mut buf[..limit]).await?;
                    if got == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    pending = 0..got;
                }
            }
        }
        Ok(reply)
    }
}

/// Status, body framing and whether the server closes, from a head.
fn parse_head(head: &[u8], head_request: bool) -> io::Result<(u16, Framing, bool)> {
    let text = std::str::from_utf8(head).map_err(|_| invalid("response head not text"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    if !status_line.starts_with("HTTP/1.") {
        return Err(invalid("not an HTTP/1 response"));
    }
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let mut framing = Framing::UntilClose;
    let mut closes = status_line.starts_with("HTTP/1.0");
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            if !matches!(framing, Framing::Chunked) {
                framing =
                    Framing::Length(value.parse().map_err(|_| invalid("bad Content-Length"))?);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if value.to_ascii_lowercase().ends_with("chunked") {
                framing = Framing::Chunked;
            }
        } else if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                closes = true;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                closes = false;
            }
        }
    }
    if head_request || status == 204 || status == 304 || status < 200 {
        framing = Framing::Length(0);
    }
    Ok((status, framing, closes))
}

/// A chunked body's decoder, fed whatever bytes arrive.
#[derive(Default)]
struct Chunked {
    state: ChunkState,
    line: Vec<u8>,
}

#[derive(Default)]
enum ChunkState {
    /// Reading a chunk-size line.
    #[default]
    Size,
    /// This many data bytes left in the chunk.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, up to an empty one.
    Trailer,
}

impl Chunked {
    /// Decodes `input`, handing data to `data`; true once the body ended.
    fn feed(
        &mut self,
        mut input: &[u8],
        data: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<bool> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Data(left) => {
                    let n = (input.len() as u64).min(left) as usize;
                    data(&input[..n])?;
                    input = &input[n..];
                    self.state = if left == n as u64 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - n as u64)
                    };
                }
                ChunkState::Size | ChunkState::DataEnd | ChunkState::Trailer => {
                    let Some(i) = input.iter().position(|b| *b == b'\n') else {
                        self.line.extend_from_slice(input);
                        if self.line.len() > 4096 {
                            return Err(invalid("chunk line too long"));
                        }
                        return Ok(false);
                    };
                    self.line.extend_from_slice(&input[..i]);
                    input = &input[i + 1..];
                    let line = std::mem::take(&mut self.line);
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    match self.state {
                        ChunkState::DataEnd if line.is_empty() => self.state = ChunkState::Size,
                        ChunkState::DataEnd => return Err(invalid("chunk longer than its size")),
                        ChunkState::Trailer if line.is_empty() => return Ok(true),
                        ChunkState::Trailer => {}
                        _ => {
                            let size = std::str::from_utf8(line)
                                .ok()
                                .map(|l| l.split(';').next().unwrap_or_default().trim())
                                .and_then(|s| u64::from_str_radix(s, 16).ok())
                                .ok_or_else(|| invalid("bad chunk size"))?;
                            self.state = if size == 0 {
                                ChunkState::Trailer
                            } else {
                                ChunkState::Data(size)
                            };
                        }
                    }
                }
            }
        }
        Ok(false)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let body =
            b"4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\n";
        for split in 0..body.len() {
            let mut d = Chunked::default();
            let mut out = Vec::new();
            let first = d
                .feed(&body[..split], &mut |x| {
                    out.extend_from_slice(x);
                    Ok(())
                })
                .unwrap();
            assert!(!first, "ended early at split {split}");
            let done = d
                .feed(&body[split..], &mut |x| {
                    out.extend_from_slice(x);
                    Ok(())
                })
                .unwrap();
            assert!(done);
            assert_eq!(out, b"Wikipedia in \r\n\r\nchunks.");
        }
        let mut d = Chunked::default();
        assert!(d.feed(b"zz\r\n", &mut |_| Ok(())).is_err());
    }

    #[test]
    fn heads_say_status_framing_and_closing() {
        let (s, f, c) =
            parse_head(b"HTTP/1.1 206 Partial\r\nContent-Length: 10\r\n\r\n", false).unwrap();
        assert!(matches!((s, f, c), (206, Framing::Length(10), false)));
        let (_, f, c) = parse_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            false,
        )
        .unwrap();
        assert!(matches!((f, c), (Framing::Chunked, true)));
        let (_, f, _) = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true).unwrap();
        assert!(matches!(f, Framing::Length(0)));
        assert!(parse_head(b"SSH-2.0\r\n\r\n", false).is_err());
    }
}

//! kTLS: once rustls has done the handshake, the kernel takes the record
//! layer over (`TCP_ULP "tls"`, then the traffic keys through `SOL_TLS`),
//! so an HTTP/1.1 connection is served like a plain one again — bodies
//! leave by `splice` from the page cache, encrypted in the kernel.
//!
//! Only where [`probe`] finds the kernel's `tls` module (`CONFIG_TLS`);
//! otherwise TLS stays in userspace. HTTP/2 connections stay in userspace
//! too (their bodies are small frames, and the codec is rustls-shaped).
//!
//! What the kernel cannot do for us is the TLS protocol beyond records:
//! rustls's buffered connection hands over no state for key updates, so a
//! non-application record from the client (a `KeyUpdate`, an alert such as
//! `close_notify`) makes the kernel fail the read (`EIO`), and the
//! connection ends there — as it would at `close_notify` anyway. Session
//! tickets are sent during the handshake, before the hand-over.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls::{ConnectionTrafficSecrets, ProtocolVersion, ServerConnection, SupportedCipherSuite};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Whether this kernel can take TLS records over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ktls {
    /// `setsockopt(TCP_ULP, "tls")` worked: the `tls` module is there.
    Available,
    /// It did not: the kernel was built without `CONFIG_TLS` (or the module
    /// cannot be loaded); TLS stays in userspace.
    Absent,
}

/// Probes for kTLS by asking the kernel to put the `tls` upper-layer
/// protocol on a connected loopback socket (it only works on an
/// established TCP connection).
pub fn probe() -> Ktls {
    let probe = || -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let client = std::net::TcpStream::connect(listener.local_addr()?)?;
        let _server = listener.accept()?;
        set_ulp(client.as_raw_fd())
    };
    match probe() {
        Ok(()) => Ktls::Available,
        Err(_) => Ktls::Absent,
    }
}

/// Why a connection could not be handed to the kernel.
#[non_exhaustive]
#[derive(Debug)]
pub enum KtlsError {
    /// rustls would not give the secrets up (extraction off, or records
    /// still waiting to be sent).
    Secrets(rustls::Error),
    /// A cipher the kernel has no offload for.
    Cipher,
    /// A kernel call refused.
    Kernel {
        /// Which: `TCP_ULP`, `TLS_TX` or `TLS_RX`.
        step: &'static str,
        /// What it said.
        source: io::Error,
    },
}

impl fmt::Display for KtlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secrets(e) => write!(f, "rustls kept the traffic secrets: {e}"),
            Self::Cipher => f.write_str("the kernel has no offload for this cipher"),
            Self::Kernel { step, source } => write!(f, "setsockopt {step}: {source}"),
        }
    }
}

impl std::error::Error for KtlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Secrets(e) => Some(e),
            Self::Kernel { source, .. } => Some(source),
            Self::Cipher => None,
        }
    }
}

/// Whether the kernel can take a session on `suite` over: AES-GCM and
/// ChaCha20-Poly1305, TLS 1.2 and 1.3 (every suite rustls offers with
/// ring).
pub fn offloads(suite: SupportedCipherSuite) -> bool {
    use rustls::CipherSuite as S;
    matches!(
        suite.suite(),
        S::TLS13_AES_128_GCM_SHA256
            | S::TLS13_AES_256_GCM_SHA384
            | S::TLS13_CHACHA20_POLY1305_SHA256
            | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            | S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
            | S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
    )
}

/// Whether the kernel can take this session over: a cipher it offloads,
/// nothing left for rustls to send, and nothing read past the handshake
/// (neither a part of a record nor decrypted bytes).
pub fn ready<IO>(tls: &mut tokio_rustls::server::TlsStream<RecordBounded<IO>>) -> bool {
    let (io, session) = tls.get_mut();
    let Ok(state) = session.process_new_packets() else {
        return false;
    };
    session.negotiated_cipher_suite().is_some_and(offloads)
        && !session.wants_write()
        && state.plaintext_bytes_to_read() == 0
        && io.at_record_boundary()
}

/// Hands `conn`'s traffic secrets to the kernel for the socket `fd`. The
/// caller has checked [`offloads`], that rustls has nothing left to send,
/// and (through [`RecordBounded`]) that it read nothing past the
/// handshake. On an error the connection is unusable.
pub fn hand_over(fd: RawFd, conn: ServerConnection) -> Result<(), KtlsError> {
    let version = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => TLS_1_3_VERSION,
        Some(ProtocolVersion::TLSv1_2) => TLS_1_2_VERSION,
        _ => return Err(KtlsError::Cipher),
    };
    let secrets = conn
        .dangerous_extract_secrets()
        .map_err(KtlsError::Secrets)?;
    let (tx, rx) = (
        CryptoInfo::new(version, secrets.tx.0, &secrets.tx.1)?,
        CryptoInfo::new(version, secrets.rx.0, &secrets.rx.1)?,
    );
    set_ulp(fd).map_err(|source| KtlsError::Kernel {
        step: "TCP_ULP",
        source,
    })?;
    tx.install(fd, TLS_TX).map_err(|source| KtlsError::Kernel {
        step: "TLS_TX",
        source,
    })?;
    rx.install(fd, TLS_RX).map_err(|source| KtlsError::Kernel {
        step: "TLS_RX",
        source,
    })
}

fn set_ulp(fd: RawFd) -> io::Result<()> {
    let name = b"tls";
    // SAFETY: setsockopt reads `name.len()` bytes from a live buffer.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_TCP,
            libc::TCP_ULP,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

// <linux/tls.h>: kept here, a few constants and three plain structs.
const SOL_TLS: libc::c_int = 282;
const TLS_TX: libc::c_int = 1;
const TLS_RX: libc::c_int = 2;
const TLS_1_2_VERSION: u16 = 0x0303;
const TLS_1_3_VERSION: u16 = 0x0304;
const TLS_CIPHER_AES_GCM_128: u16 = 51;
const TLS_CIPHER_AES_GCM_256: u16 = 52;
const TLS_CIPHER_CHACHA20_POLY1305: u16 = 54;

/// `struct tls12_crypto_info_aes_gcm_128` (`KEY` 16) and `_256` (`KEY`
/// 32): the same layout but for the key.
#[repr(C)]
struct AesGcm<const KEY: usize> {
    version: u16,
    cipher: u16,
    iv: [u8; 8],
    key: [u8; KEY],
    salt: [u8; 4],
    rec_seq: [u8; 8],
}

impl<const KEY: usize> AesGcm<KEY> {
    /// From rustls's key and 12-byte IV: the first 4 bytes are the salt,
    /// the other 8 the explicit part.
    fn new(
        version: u16,
        cipher: u16,
        key: &[u8],
        iv: &[u8],
        rec_seq: [u8; 8],
    ) -> Result<Self, KtlsError> {
        Ok(Self {
            version,
            cipher,
            iv: iv
                .get(4..)
                .and_then(|i| i.try_into().ok())
                .ok_or(KtlsError::Cipher)?,
            key: key.try_into().map_err(|_| KtlsError::Cipher)?,
            salt: iv
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or(KtlsError::Cipher)?,
            rec_seq,
        })
    }
}

/// `struct tls12_crypto_info_chacha20_poly1305`.
#[repr(C)]
struct Chacha20Poly1305 {
    version: u16,
    cipher: u16,
    iv: [u8; 12],
    key: [u8; 32],
    rec_seq: [u8; 8],
}

/// One direction's keys as the kernel takes them.
enum CryptoInfo {
    AesGcm128(AesGcm<16>),
    AesGcm256(AesGcm<32>),
    Chacha20Poly1305(Chacha20Poly1305),
}

impl CryptoInfo {
    /// From rustls's secrets: for AES-GCM the 12-byte IV is the 4-byte
    /// salt and the 8-byte explicit part; the record sequence number goes
    /// big-endian.
    fn new(version: u16, seq: u64, secrets: &ConnectionTrafficSecrets) -> Result<Self, KtlsError> {
        let rec_seq = seq.to_be_bytes();
        Ok(match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => Self::AesGcm128(AesGcm::new(
                version,
                TLS_CIPHER_AES_GCM_128,
                key.as_ref(),
                iv.as_ref(),
                rec_seq,
            )?),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => Self::AesGcm256(AesGcm::new(
                version,
                TLS_CIPHER_AES_GCM_256,
                key.as_ref(),
                iv.as_ref(),
                rec_seq,
            )?),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                Self::Chacha20Poly1305(Chacha20Poly1305 {
                    version,
                    cipher: TLS_CIPHER_CHACHA20_POLY1305,
                    iv: iv.as_ref().try_into().map_err(|_| KtlsError::Cipher)?,
                    key: key.as_ref().try_into().map_err(|_| KtlsError::Cipher)?,
                    rec_seq,
                })
            }
            _ => return Err(KtlsError::Cipher),
        })
    }

    fn install(&self, fd: RawFd, direction: libc::c_int) -> io::Result<()> {
        let (ptr, len): (*const libc::c_void, usize) = match self {
            Self::AesGcm128(i) => ((i as *const AesGcm<16>).cast(), size_of::<AesGcm<16>>()),
            Self::AesGcm256(i) => ((i as *const AesGcm<32>).cast(), size_of::<AesGcm<32>>()),
            Self::Chacha20Poly1305(i) => (
                (i as *const Chacha20Poly1305).cast(),
                size_of::<Chacha20Poly1305>(),
            ),
        };
        // SAFETY: setsockopt reads `len` bytes of a live, repr(C) struct.
        let rc = unsafe { libc::setsockopt(fd, SOL_TLS, direction, ptr, len as libc::socklen_t) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl Drop for CryptoInfo {
    fn drop(&mut self) {
        // Key material does not outlive its hand-over in our memory.
        let key: &mut [u8] = match self {
            Self::AesGcm128(i) => &mut i.key,
            Self::AesGcm256(i) => &mut i.key,
            Self::Chacha20Poly1305(i) => &mut i.key,
        };
        for b in key.iter_mut() {
            // SAFETY: a plain write through a valid &mut u8; volatile so
            // the wipe is not optimised away.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

/// A socket whose reads, while `bounded`, stop at the end of each TLS
/// record, and pause there once (`Pending`, with the task woken at once):
/// tokio-rustls reads on while data is there, even past the handshake's
/// last record, but stops at a pause and looks whether the handshake is
/// done. So rustls never reads a byte past the client's `Finished` —
/// bytes the kernel must see once it takes the record layer over.
/// Unbounded, reads pass through.
pub struct RecordBounded<IO> {
    io: IO,
    bounded: bool,
    /// A record just ended: the next read pauses once.
    pause: bool,
    /// Record header bytes seen so far (the length is in bytes 3 and 4).
    header: [u8; 5],
    header_len: usize,
    /// Bytes of the current record's body still to come.
    body_left: usize,
}

impl<IO> RecordBounded<IO> {
    /// Wraps `io`; `bounded` while a hand-over may follow the handshake.
    pub fn new(io: IO, bounded: bool) -> Self {
        Self {
            io,
            bounded,
            pause: false,
            header: [0; 5],
            header_len: 0,
            body_left: 0,
        }
    }

    /// Reads pass straight through from now on.
    pub fn unbound(&mut self) {
        self.bounded = false;
    }

    /// Whether the reads stopped exactly at a record's end.
    pub fn at_record_boundary(&self) -> bool {
        self.header_len == 0 && self.body_left == 0
    }

    /// The socket.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// Back to the socket.
    pub fn into_inner(self) -> IO {
        self.io
    }

    /// How many bytes the next read may take.
    fn allowed(&self) -> usize {
        if self.body_left > 0 {
            self.body_left
        } else {
            self.header.len() - self.header_len
        }
    }

    /// Accounts for `bytes` just read.
    fn saw(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = bytes.len().min(self.body_left);
                self.body_left -= n;
                bytes = &bytes[n..];
            } else {
                let n = bytes.len().min(self.header.len() - self.header_len);
                self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
                self.header_len += n;
                bytes = &bytes[n..];
                if self.header_len == self.header.len() {
                    self.body_left =
                        usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                    self.header_len = 0;
                }
            }
            if self.at_record_boundary() {
                self.pause = true;
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for RecordBounded<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.bounded {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        if std::mem::take(&mut self.pause) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let allowed = self.allowed().min(buf.remaining());
        let mut limited = buf.take(allowed);
        let polled = Pin::new(&mut self.io).poll_read(cx, &mut limited);
        let n = limited.filled().len();
        if let Poll::Ready(Ok(())) = &polled {
            let read = limited.filled().to_vec();
            self.saw(&read);
            // SAFETY: the inner read initialised `n` bytes of the unfilled
            // part of `buf` (`limited` is a view of it).
            unsafe { buf.assume_init(n) };
            buf.advance(n);
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for RecordBounded<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_structs_are_the_kernels_sizes() {
        // linux/tls.h: tls12_crypto_info_aes_gcm_128 / _256 /
        // _chacha20_poly1305.
        assert_eq!(size_of::<AesGcm<16>>(), 40);
        assert_eq!(size_of::<AesGcm<32>>(), 56);
        assert_eq!(size_of::<Chacha20Poly1305>(), 56);
    }

    #[test]
    fn the_probe_agrees_with_the_kernel() {
        // The probe's answer agrees with the kernel's list of upper-layer
        // protocols, read after it (asking loads the module where there is
        // one). This VM's kernel has no CONFIG_TLS: "absent" here.
        let found = probe();
        let listed = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp")
            .unwrap_or_default()
            .split_whitespace()
            .any(|u| u == "tls");
        assert_eq!(found == Ktls::Available, listed, "{found:?}");
    }

    /// Two records (5-byte headers, bodies of 3 and 2 bytes) and the start
    /// of a third, read through a bounded reader with a large buffer.
    #[test]
    fn bounded_reads_stop_at_each_record_end() {
        let wire: &[u8] = &[22, 3, 3, 0, 3, 1, 2, 3, 23, 3, 3, 0, 2, 9, 9, 23, 3];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            use tokio::io::AsyncReadExt;
            let mut r = RecordBounded::new(wire, true);
            let mut buf = [0u8; 64];
            let mut reads = Vec::new();
            loop {
                let n = r.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                reads.push(buf[..n].to_vec());
                if reads.len() == 4 {
                    assert!(r.at_record_boundary(), "after two whole records");
                }
            }
            assert_eq!(
                reads,
                vec![
                    vec![22, 3, 3, 0, 3],
                    vec![1, 2, 3],
                    vec![23, 3, 3, 0, 2],
                    vec![9, 9],
                    vec![23, 3],
                ]
            );
            assert!(!r.at_record_boundary(), "inside a header");
        });
    }

    #[test]
    fn unbounded_reads_take_what_fits() {
        let wire: &[u8] = &[22, 3, 3, 0, 3, 1, 2, 3, 23];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            use tokio::io::AsyncReadExt;
            let mut r = RecordBounded::new(wire, false);
            let mut buf = [0u8; 64];
            assert_eq!(r.read(&mut buf).await.unwrap(), wire.len());
        });
    }

    /// A real handshake (rustls client and server over an in-memory pipe,
    /// the server's reads record-bounded), then the client's first request:
    /// the session is ready to hand over, and the keys, IV and sequence
    /// number the kernel would get decrypt that request's record the way
    /// the kernel does. Only `setsockopt` itself is left untested where
    /// the kernel has no kTLS.
    #[test]
    fn the_keys_handed_over_decrypt_the_next_record() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = std::env::temp_dir().join(format!("sg-ktls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = streamgate_testkit::tls::self_signed(&dir).unwrap();
        let config = crate::config::TlsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            cert: cert.clone(),
            key,
            sni: Vec::new(),
            strict_sni: false,
            ktls: true,
            handshake_timeout: std::time::Duration::from_secs(5),
        };
        let (server, _) = crate::tls::server_config(&config, true).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(&cert).unwrap();
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(c.unwrap()).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client_io, server_io) = tokio::io::duplex(64 << 10);
            let accept =
                tokio_rustls::TlsAcceptor::from(server).accept(RecordBounded::new(server_io, true));
            let connect = async {
                let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client))
                    .connect("localhost".try_into().unwrap(), client_io)
                    .await
                    .unwrap();
                tls.write_all(b"GET /v/a/x.m4s HTTP/1.1\r\nHost: t\r\n\r\n")
                    .await
                    .unwrap();
                tls.flush().await.unwrap();
                tls
            };
            let (accepted, _client) = tokio::join!(accept, connect);
            let mut tls = accepted.unwrap();
            assert!(ready(&mut tls), "a fresh session can be handed over");
            let (io, session) = tls.into_inner();
            let version = session.protocol_version();
            assert_eq!(version, Some(ProtocolVersion::TLSv1_3));
            let secrets = session.dangerous_extract_secrets().unwrap();
            let rx = CryptoInfo::new(TLS_1_3_VERSION, secrets.rx.0, &secrets.rx.1).unwrap();
            // The next record on the wire, as the kernel would read it.
            let mut raw = io.into_inner();
            let mut header = [0u8; 5];
            raw.read_exact(&mut header).await.unwrap();
            assert_eq!(header[0], 23, "application data");
            let mut body = vec![0u8; usize::from(u16::from_be_bytes([header[3], header[4]]))];
            raw.read_exact(&mut body).await.unwrap();
            let (algorithm, key, mut nonce, rec_seq): (_, &[u8], [u8; 12], [u8; 8]) = match &rx {
                CryptoInfo::AesGcm128(i) => (
                    &ring::aead::AES_128_GCM,
                    &i.key,
                    concat(&i.salt, &i.iv),
                    i.rec_seq,
                ),
                CryptoInfo::AesGcm256(i) => (
                    &ring::aead::AES_256_GCM,
                    &i.key,
                    concat(&i.salt, &i.iv),
                    i.rec_seq,
                ),
                CryptoInfo::Chacha20Poly1305(i) => {
                    (&ring::aead::CHACHA20_POLY1305, &i.key, i.iv, i.rec_seq)
                }
            };
            // TLS 1.3: the per-record nonce is the IV XOR the sequence
            // number (RFC 8446 §5.3), as the kernel computes it.
            for (n, s) in nonce[4..].iter_mut().zip(rec_seq) {
                *n ^= s;
            }
            let key =
                ring::aead::LessSafeKey::new(ring::aead::UnboundKey::new(algorithm, key).unwrap());
            let plain = key
                .open_in_place(
                    ring::aead::Nonce::assume_unique_for_key(nonce),
                    ring::aead::Aad::from(header),
                    &mut body,
                )
                .expect("the handed-over keys decrypt the record");
            assert!(plain.starts_with(b"GET /v/a/x.m4s HTTP/1.1\r\n"));
        });
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn concat(salt: &[u8; 4], iv: &[u8; 8]) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[..4].copy_from_slice(salt);
        out[4..].copy_from_slice(iv);
        out
    }
}

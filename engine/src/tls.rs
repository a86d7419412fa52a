//! TLS on the data plane: the rustls server configuration from PEM files
//! (ring provider; TLS 1.2 and 1.3; ECDSA, Ed25519 or RSA keys; ALPN `h2`
//! then `http/1.1`; session tickets and a session cache for resumption),
//! and the kTLS probe.
//!
//! Bodies over TLS are copied through rustls's record layer: there is no
//! zero-copy send under userspace TLS. Handing the traffic keys to the
//! kernel (kTLS) would bring `sendfile` back; [`ktls`] says whether this
//! kernel could, and today the answer decides nothing else (see
//! `docs/architecture.md`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::sync::RwLock;

use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// Why a TLS configuration could not be built.
#[non_exhaustive]
#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read.
    Read {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    NoCertificate(PathBuf),
    /// The key file holds no PEM private key.
    NoKey(PathBuf),
    /// rustls refused the pair (a key that does not match the certificate,
    /// an unsupported key type).
    Rejected(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Self::NoCertificate(path) => {
                write!(f, "{}: no PEM certificate in it", path.display())
            }
            Self::NoKey(path) => write!(f, "{}: no PEM private key in it", path.display()),
            Self::Rejected(e) => write!(f, "the certificate and key do not make a TLS server: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::Rejected(e) => Some(e),
            _ => None,
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A certificate chain and key as rustls signs with them, from PEM files.
fn certified_key(
    provider: &CryptoProvider,
    cert: &Path,
    key: &Path,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert)?)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_path_buf()));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|_| TlsError::NoKey(key.to_path_buf()))?;
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(TlsError::Rejected)?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(TlsError::Rejected)?;
    Ok(Arc::new(certified))
}

/// The certificate new handshakes get; replaced whole by [`CertStore::reload`]
/// while open connections keep the one they started with.
#[derive(Debug)]
pub struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    provider: Arc<CryptoProvider>,
}

impl CertStore {
    /// Reads the files again; on any error the current certificate stays
    /// and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = certified_key(&self.provider, &self.cert, &self.key)?;
        if let Ok(mut current) = self.current.write() {
            *current = fresh;
        }
        Ok(())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| Arc::clone(&c))
    }
}

/// The server configuration for a certificate chain and key (PEM files),
/// and the store that reloads them.
pub fn server_config(
    cert: &Path,
    key: &Path,
) -> Result<(Arc<ServerConfig>, Arc<CertStore>), TlsError> {
    let provider = Arc::new(ring::default_provider());
    let store = Arc::new(CertStore {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        current: RwLock::new(certified_key(&provider, cert, key)?),
        provider: Arc::clone(&provider),
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rejected)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&store) as Arc<dyn ResolvesServerCert>);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Resumption: stateless tickets (TLS 1.3 and 1.2), and the default
    // in-memory session cache for clients that ask for ids.
    config.ticketer = ring::Ticketer::new().map_err(TlsError::Rejected)?;
    config.send_tls13_tickets = 2;
    Ok((Arc::new(config), store))
}

/// Whether this kernel can take TLS records over (kTLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ktls {
    /// `setsockopt(TCP_ULP, "tls")` worked: the `tls` module is there.
    Available,
    /// It did not: the kernel was built without `CONFIG_TLS` (or the module
    /// is not loaded); TLS stays in userspace.
    Absent,
}

/// Probes for kTLS by asking the kernel to put the `tls` upper-layer
/// protocol on a connected loopback socket (it only works on an
/// established TCP connection).
pub fn ktls() -> Ktls {
    use std::os::fd::AsRawFd;
    let probe = || -> std::io::Result<bool> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let client = std::net::TcpStream::connect(listener.local_addr()?)?;
        let _server = listener.accept()?;
        let name = b"tls";
        // SAFETY: setsockopt reads `name.len()` bytes from a live buffer.
        let rc = unsafe {
            libc::setsockopt(
                client.as_raw_fd(),
                libc::SOL_TCP,
                libc::TCP_ULP,
                name.as_ptr().cast(),
                name.len() as libc::socklen_t,
            )
        };
        Ok(rc == 0)
    };
    match probe() {
        Ok(true) => Ktls::Available,
        _ => Ktls::Absent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_say_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("sg-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        let missing = dir.join("missing.pem");
        assert!(matches!(
            server_config(&missing, &empty),
            Err(TlsError::Read { .. })
        ));
        assert!(matches!(
            server_config(&empty, &empty),
            Err(TlsError::NoCertificate(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_ktls_probe_answers() {
        // The probe's answer agrees with the kernel's list of upper-layer
        // protocols, read after it (asking loads the module where there is
        // one). This VM's kernel has no CONFIG_TLS: "absent" here.
        let found = ktls();
        let listed = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp")
            .unwrap_or_default()
            .split_whitespace()
            .any(|u| u == "tls");
        assert_eq!(found == Ktls::Available, listed, "{found:?}");
    }
}

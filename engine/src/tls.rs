//! TLS on the data plane: the rustls server configuration from PEM files
//! (ring provider; TLS 1.2 and 1.3; ECDSA, Ed25519 or RSA keys; ALPN `h2`
//! then `http/1.1`; session tickets and a session cache for resumption),
//! certificates chosen by SNI, and their expiry watched.
//!
//! Bodies over userspace TLS are copied through rustls's record layer:
//! there is no zero-copy send there. Where the kernel has kTLS, HTTP/1.1
//! connections are handed to it after the handshake (`crate::ktls`) and
//! bodies are spliced again.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use x509_cert::der::Decode;

use crate::config::{SniCert, TlsConfig};
use crate::telemetry;

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
    /// The leaf certificate is not X.509 DER that parses.
    BadCertificate {
        /// Which file.
        path: PathBuf,
        /// What the parser said.
        why: String,
    },
    /// An SNI name that is neither a DNS name nor `*.` and one.
    BadSniName(String),
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
            Self::BadCertificate { path, why } => {
                write!(
                    f,
                    "{}: the certificate does not parse: {why}",
                    path.display()
                )
            }
            Self::BadSniName(name) => write!(
                f,
                "SNI name {name:?}: want a DNS name, or \"*.\" and one (one label)"
            ),
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

/// A certificate chain and key as rustls signs with them, from PEM files,
/// and when the leaf expires.
fn certified_key(
    provider: &CryptoProvider,
    cert: &Path,
    key: &Path,
) -> Result<(Arc<CertifiedKey>, SystemTime), TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert)?)
        .filter_map(Result::ok)
        .collect();
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate(cert.to_path_buf()));
    };
    let not_after = not_after(leaf).map_err(|why| TlsError::BadCertificate {
        path: cert.to_path_buf(),
        why,
    })?;
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|_| TlsError::NoKey(key.to_path_buf()))?;
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(TlsError::Rejected)?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(TlsError::Rejected)?;
    Ok((Arc::new(certified), not_after))
}

/// The leaf's notAfter.
fn not_after(leaf: &CertificateDer<'_>) -> Result<SystemTime, String> {
    let parsed = x509_cert::Certificate::from_der(leaf).map_err(|e| e.to_string())?;
    let after = parsed.tbs_certificate.validity.not_after.to_unix_duration();
    Ok(SystemTime::UNIX_EPOCH + after)
}

/// The notAfter of the first certificate in a PEM file, if it reads.
pub fn leaf_not_after(cert: &Path) -> Option<SystemTime> {
    let pem = std::fs::read(cert).ok()?;
    let leaf = CertificateDer::pem_slice_iter(&pem).next()?.ok()?;
    not_after(&leaf).ok()
}

/// Warn this long before a certificate expires.
const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// Says in the log when a certificate has expired or soon will (clients
/// refuse an expired one; the engine still serves it, as nginx does, so
/// that a late renewal is not a total outage for clients that skip
/// verification), and exports its expiry for alerts.
fn watch_expiry(cert: &Path, not_after: SystemTime) {
    let at = not_after
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    telemetry::certificate_expiry(&cert.display().to_string(), at.as_secs_f64());
    match not_after.duration_since(SystemTime::now()) {
        Err(ago) => tracing::warn!(
            cert = %cert.display(),
            expired_days_ago = ago.duration().as_secs() / 86_400,
            "TLS certificate has expired: clients that verify will refuse it; renew it and reload"
        ),
        Ok(left) if left < EXPIRY_WARNING => tracing::warn!(
            cert = %cert.display(),
            days_left = left.as_secs() / 86_400,
            "TLS certificate expires soon; renew it and reload"
        ),
        Ok(_) => {}
    }
}

/// A name a certificate is chosen for: exact, or `*.` and one label.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SniName {
    Exact(String),
    /// `*.example.com`, kept as `.example.com`.
    Wildcard(String),
}

impl SniName {
    fn parse(name: &str) -> Result<Self, TlsError> {
        let lower = name.to_ascii_lowercase();
        let (wild, rest) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        let dns_label =
            |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if rest.is_empty() || !rest.split('.').all(dns_label) {
            return Err(TlsError::BadSniName(name.to_string()));
        }
        Ok(if wild {
            Self::Wildcard(format!(".{rest}"))
        } else {
            Self::Exact(lower)
        })
    }

    /// Whether `host` (lower case, as rustls hands SNI over) matches.
    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(name) => name == host,
            Self::Wildcard(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        }
    }
}

/// Every certificate of the listener, loaded together.
#[derive(Debug)]
struct Loaded {
    default: Arc<CertifiedKey>,
    by_name: Vec<(SniName, Arc<CertifiedKey>)>,
}

/// The certificates new handshakes get, chosen by SNI; replaced whole by
/// [`CertStore::reload`] while open connections keep the one they started
/// with.
#[derive(Debug)]
pub struct CertStore {
    files: TlsFiles,
    strict_sni: bool,
    current: RwLock<Arc<Loaded>>,
    provider: Arc<CryptoProvider>,
}

impl Loaded {
    /// Loads the default pair and every SNI pair, or none.
    fn read(provider: &CryptoProvider, tls: &TlsFiles) -> Result<Self, TlsError> {
        let (default, not_after) = certified_key(provider, &tls.cert, &tls.key)?;
        let mut expiries = vec![(tls.cert.as_path(), not_after)];
        let mut by_name = Vec::new();
        for entry in &tls.sni {
            let (key, not_after) = certified_key(provider, &entry.cert, &entry.key)?;
            expiries.push((entry.cert.as_path(), not_after));
            for name in &entry.names {
                by_name.push((SniName::parse(name)?, Arc::clone(&key)));
            }
        }
        // Only once every file loaded: a bad one changes nothing.
        for (cert, not_after) in expiries {
            watch_expiry(cert, not_after);
        }
        Ok(Self { default, by_name })
    }
}

/// The files a listener's certificates come from.
#[derive(Debug)]
struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    sni: Vec<SniCert>,
}

impl CertStore {
    /// Reads every file again; on any error the current certificates stay
    /// and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(Loaded::read(&self.provider, &self.files)?);
        if let Ok(mut current) = self.current.write() {
            *current = fresh;
        }
        Ok(())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let loaded = Arc::clone(&*self.current.read().ok()?);
        if let Some(host) = hello.server_name() {
            if let Some((_, key)) = loaded.by_name.iter().find(|(n, _)| n.matches(host)) {
                return Some(Arc::clone(key));
            }
        }
        if self.strict_sni && !loaded.by_name.is_empty() {
            // rustls then refuses the handshake (handshake_failure).
            tracing::debug!(sni = ?hello.server_name(), "no certificate for this name");
            return None;
        }
        Some(Arc::clone(&loaded.default))
    }
}

/// The server configuration for the listener's certificates (PEM files),
/// and the store that reloads them. `ktls`: let the traffic secrets be
/// extracted for the kernel (the workers read this flag back to decide).
pub fn server_config(
    tls: &TlsConfig,
    ktls: bool,
) -> Result<(Arc<ServerConfig>, Arc<CertStore>), TlsError> {
    let provider = Arc::new(ring::default_provider());
    let files = TlsFiles {
        cert: tls.cert.clone(),
        key: tls.key.clone(),
        sni: tls.sni.clone(),
    };
    let loaded = Loaded::read(&provider, &files)?;
    let store = Arc::new(CertStore {
        files,
        strict_sni: tls.strict_sni,
        current: RwLock::new(Arc::new(loaded)),
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
    config.enable_secret_extraction = ktls;
    Ok((Arc::new(config), store))
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
        let files = |cert: &Path, key: &Path| TlsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            sni: Vec::new(),
            strict_sni: false,
            ktls: true,
            handshake_timeout: Duration::from_secs(1),
        };
        assert!(matches!(
            server_config(&files(&missing, &empty), false),
            Err(TlsError::Read { .. })
        ));
        assert!(matches!(
            server_config(&files(&empty, &empty), false),
            Err(TlsError::NoCertificate(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sni_names_match_exactly_or_one_label_under_a_wildcard() {
        let exact = SniName::parse("Media.Example.com").unwrap();
        assert!(exact.matches("media.example.com"));
        assert!(!exact.matches("x.media.example.com"));
        let wild = SniName::parse("*.example.com").unwrap();
        assert!(wild.matches("a.example.com"));
        assert!(!wild.matches("example.com"), "the bare domain");
        assert!(!wild.matches("a.b.example.com"), "two labels");
        assert!(!wild.matches("aexample.com"));
        for bad in [
            "",
            "*.",
            "a..b",
            "*.*.example.com",
            "ex ample.com",
            "a.*.com",
        ] {
            assert!(
                matches!(SniName::parse(bad), Err(TlsError::BadSniName(_))),
                "{bad:?}"
            );
        }
    }
}

//! Certificates from an ACME CA (Let's Encrypt, ZeroSSL, a private
//! step-ca…), through `instant-acme`: `[engine.acme] domains` are ordered
//! with HTTP-01 answered on the plain listener
//! (`/.well-known/acme-challenge/<token>`, from [`Challenges`]), the chain
//! and key written under `<data_dir>/acme/` (0600, staged then renamed),
//! and the TLS listener's certificate swapped in without a restart
//! ([`crate::tls::CertStore::reload`]). A thread checks twice a day and
//! renews `renew_before` (30 days) ahead of expiry; `POST /tls/renew` on
//! the admin listener renews at once. A CA that does not answer is an
//! error in the log and a metric; the certificate in use stays.
//!
//! Before the first certificate arrives the listener serves a self-signed
//! placeholder for the domains, so that it can start at all.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AccountCredentials, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};

use crate::telemetry;
use crate::tls::CertStore;

/// `[engine.acme]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    /// The names to certify (DNS names the CA can reach this engine's
    /// plain listener at, on port 80 for a public CA).
    pub domains: Vec<String>,
    /// The account's contact.
    pub email: Option<String>,
    /// The CA's directory URL.
    pub directory: String,
    /// A PEM root to trust for the directory itself (a private or test
    /// CA); the system's roots otherwise.
    pub ca: Option<PathBuf>,
    /// Where the account, the chain and the key live (`<data_dir>/acme`).
    pub dir: PathBuf,
    /// Renew this long before expiry.
    pub renew_before: Duration,
}

impl AcmeConfig {
    /// The certificate chain the TLS listener serves.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// Its private key.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    fn issued_marker(&self) -> PathBuf {
        self.dir.join("issued")
    }
}

/// Why an issuance failed.
#[non_exhaustive]
#[derive(Debug)]
pub enum AcmeError {
    /// The CA refused or could not be reached.
    Ca(instant_acme::Error),
    /// The order ended invalid (a challenge the CA could not verify).
    Invalid(String),
    /// A file under the ACME directory.
    Io {
        /// Which.
        path: PathBuf,
        /// What happened.
        source: std::io::Error,
    },
}

impl fmt::Display for AcmeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ca(e) => write!(f, "ACME CA: {e}"),
            Self::Invalid(why) => write!(f, "ACME order invalid: {why}"),
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for AcmeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Ca(e) => Some(e),
            Self::Io { source, .. } => Some(source),
            Self::Invalid(_) => None,
        }
    }
}

impl From<instant_acme::Error> for AcmeError {
    fn from(e: instant_acme::Error) -> Self {
        Self::Ca(e)
    }
}

/// The HTTP-01 answers being served: token → key authorization.
#[derive(Debug, Default)]
pub struct Challenges(RwLock<HashMap<String, String>>);

impl Challenges {
    /// The answer for `token`, while its challenge is pending.
    pub fn answer(&self, token: &str) -> Option<String> {
        self.0.read().ok()?.get(token).cloned()
    }

    fn set(&self, token: &str, answer: &str) {
        if let Ok(mut map) = self.0.write() {
            map.insert(token.to_string(), answer.to_string());
        }
    }

    fn clear(&self) {
        if let Ok(mut map) = self.0.write() {
            map.clear();
        }
    }
}

/// Writes `bytes` to `path` (mode 0600) through a staged file and a
/// rename: a reader sees the old file or the new one.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AcmeError> {
    let io = |source| AcmeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let staged = path.with_extension("staged");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&staged)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&staged, path).map_err(io)
}

/// Makes sure the listener has a certificate to start with: a self-signed
/// placeholder for the domains until the CA's arrives.
pub fn ensure_placeholder(config: &AcmeConfig) -> Result<(), AcmeError> {
    if config.cert_path().exists() && config.key_path().exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&config.dir).map_err(|source| AcmeError::Io {
        path: config.dir.clone(),
        source,
    })?;
    let placeholder = rcgen::generate_simple_self_signed(config.domains.clone())
        .map_err(|e| AcmeError::Invalid(format!("placeholder certificate: {e}")))?;
    write_private(
        &config.key_path(),
        placeholder.signing_key.serialize_pem().as_bytes(),
    )?;
    write_private(&config.cert_path(), placeholder.cert.pem().as_bytes())?;
    let _ = std::fs::remove_file(config.issued_marker());
    Ok(())
}

/// Whether the certificate in use should be replaced now: never issued by
/// the CA (the placeholder), unreadable, or within `renew_before` of its
/// expiry.
fn due(config: &AcmeConfig) -> bool {
    if !config.issued_marker().exists() {
        return true;
    }
    match crate::tls::leaf_not_after(&config.cert_path()) {
        Some(not_after) => not_after
            .duration_since(SystemTime::now())
            .map_or(true, |left| left < config.renew_before),
        None => true,
    }
}

/// Asks the renewal thread to renew now.
#[derive(Debug, Clone)]
pub struct Renewer(Sender<()>);

impl Renewer {
    /// Renews at once (the answer comes in the log and the metrics).
    pub fn renew_now(&self) -> bool {
        self.0.send(()).is_ok()
    }
}

/// How often the certificate's expiry is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(12 * 3600);
/// How soon a failed issuance is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// Starts the thread that issues and renews.
pub fn start(
    config: AcmeConfig,
    challenges: Arc<Challenges>,
    certs: Arc<CertStore>,
) -> std::io::Result<Renewer> {
    let (tx, rx) = channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("sg-acme".into())
        .spawn(move || {
            let mut forced = false;
            loop {
                let mut wait = CHECK_EVERY;
                if forced || due(&config) {
                    match runtime.block_on(issue(&config, &challenges)) {
                        Ok(()) => match certs.reload() {
                            Ok(()) => {
                                telemetry::acme("issued");
                                tracing::info!(domains = ?config.domains, "ACME: certificate issued and in use");
                            }
                            Err(e) => {
                                telemetry::acme("failed");
                                tracing::error!(error = %e, "ACME: the issued certificate does not load");
                            }
                        },
                        Err(e) => {
                            telemetry::acme("failed");
                            challenges.clear();
                            tracing::error!(error = %e, "ACME: issuance failed; the certificate in use stays");
                            wait = RETRY_AFTER;
                        }
                    }
                }
                forced = match rx.recv_timeout(wait) {
                    Ok(()) => true,
                    Err(RecvTimeoutError::Timeout) => false,
                    Err(RecvTimeoutError::Disconnected) => return,
                };
            }
        })?;
    Ok(Renewer(tx))
}

/// One issuance: the account (created once, kept in `account.json`), an
/// order, HTTP-01 for each name, the CSR, the chain; then the files.
async fn issue(config: &AcmeConfig, challenges: &Challenges) -> Result<(), AcmeError> {
    let account = account(config).await?;
    let identifiers: Vec<Identifier> = config
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization?;
        if authorization.status == instant_acme::AuthorizationStatus::Valid {
            continue;
        }
        let mut challenge = authorization
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| AcmeError::Invalid("the CA offers no http-01 challenge".into()))?;
        challenges.set(&challenge.token, challenge.key_authorization().as_str());
        challenge.set_ready().await?;
    }
    let retries = RetryPolicy::default();
    let status = order.poll_ready(&retries).await?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Invalid(format!("order {status:?}")));
    }
    let key = order.finalize().await?;
    let chain = order.poll_certificate(&retries).await?;
    challenges.clear();
    // The key first: a crash between the two leaves a new key with the
    // old chain, which does not load, and the next start issues again.
    write_private(&config.key_path(), key.as_bytes())?;
    write_private(&config.cert_path(), chain.as_bytes())?;
    write_private(&config.issued_marker(), b"issued by the ACME CA\n")
}

async fn account(config: &AcmeConfig) -> Result<Account, AcmeError> {
    let builder = || match &config.ca {
        Some(root) => Account::builder_with_root(root),
        None => Account::builder(),
    };
    let stored = config.dir.join("account.json");
    if let Ok(text) = std::fs::read_to_string(&stored) {
        if let Ok(credentials) = serde_json::from_str::<AccountCredentials>(&text) {
            return Ok(builder()?.from_credentials(credentials).await?);
        }
    }
    let contact = config.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder()?
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            config.directory.clone(),
            None,
        )
        .await?;
    let text = serde_json::to_string(&credentials).map_err(|e| AcmeError::Io {
        path: stored.clone(),
        source: std::io::Error::other(e),
    })?;
    write_private(&stored, text.as_bytes())?;
    Ok(account)
}

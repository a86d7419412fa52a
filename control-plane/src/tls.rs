//! TLS for the control plane's listeners (`[control.tls]`): the gRPC server
//! through tonic's rustls support, the JSON API through a rustls acceptor
//! in front of the same axum router. Both use the ring provider, as the
//! rest of the product does.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;

use crate::config::TlsFiles;

/// The PEM files, read once at start.
pub struct Identity {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl Identity {
    /// Reads the chain and key; says which file is wrong.
    pub fn load(files: &TlsFiles) -> Result<Self, String> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        let identity = Self {
            cert: read(&files.cert)?,
            key: read(&files.key)?,
            client_ca: files.client_ca.as_deref().map(read).transpose()?,
        };
        // Fail at start, not at the first handshake.
        identity.acceptor()?;
        Ok(identity)
    }

    /// tonic's server configuration: with a client CA, a client
    /// certificate is asked for but optional (the CLI still comes with
    /// the operator token), and one that does not verify ends the
    /// handshake.
    pub fn grpc(&self) -> tonic::transport::ServerTlsConfig {
        let config = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(&self.cert, &self.key));
        match &self.client_ca {
            Some(ca) => config
                .client_ca_root(tonic::transport::Certificate::from_pem(ca))
                .client_auth_optional(true),
            None => config,
        }
    }

    /// A rustls acceptor for the JSON API (ALPN http/1.1).
    pub fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, String> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&self.cert)
            .filter_map(Result::ok)
            .collect();
        if chain.is_empty() {
            return Err("no PEM certificate in the control plane's cert file".into());
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key)
            .map_err(|_| "no PEM private key in the control plane's key file".to_string())?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not make a TLS server: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

/// Serves `router` over TLS until `stop` turns true (connections in flight
/// finish on their own tasks).
pub async fn serve_https(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Ok((tcp, _peer)) = accepted else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let handshake = acceptor.accept(tcp);
            let Ok(Ok(tls)) =
                tokio::time::timeout(std::time::Duration::from_secs(10), handshake).await
            else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(router);
            let served =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "JSON API connection ended");
            }
        });
    }
}

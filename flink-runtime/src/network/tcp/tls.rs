//! Optional mutual TLS (rustls) under the handshake: both peers present a certificate
//! signed by the cluster's CA and check the other's.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};

use super::error::TcpError;

/// TLS for a process's connections: its certificate and key (used both when dialing and
/// when accepting), the CA every peer certificate must chain to, and the name peer
/// certificates must carry.
#[derive(Clone)]
pub struct TlsSettings {
    pub(super) client: Arc<ClientConfig>,
    pub(super) server: Arc<ServerConfig>,
    pub(super) server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl TlsSettings {
    /// Mutual TLS from PEM: `cert_chain` (this process's certificate first), its
    /// `private_key`, the `ca` certificates peers must chain to, and the DNS name
    /// (`server_name`) every peer certificate carries.
    pub fn from_pem(
        cert_chain: &[u8],
        private_key: &[u8],
        ca: &[u8],
        server_name: &str,
    ) -> Result<Self, TcpError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| TcpError::Tls {
            reason: format!("{what}: {e}"),
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_chain)
            .collect::<Result<_, _>>()
            .map_err(|e| bad("certificate chain", &e))?;
        if chain.is_empty() {
            return Err(bad("certificate chain", &"no certificate in the PEM"));
        }
        let key = PrivateKeyDer::from_pem_slice(private_key).map_err(|e| bad("private key", &e))?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca) {
            let cert = cert.map_err(|e| bad("CA certificate", &e))?;
            roots.add(cert).map_err(|e| bad("CA certificate", &e))?;
        }
        if roots.is_empty() {
            return Err(bad("CA", &"no certificate in the PEM"));
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()
                .map_err(|e| bad("client verifier", &e))?;
        let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("TLS versions", &e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| bad("server certificate", &e))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("TLS versions", &e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| bad("client certificate", &e))?;
        let server_name =
            ServerName::try_from(server_name.to_string()).map_err(|e| bad("server name", &e))?;
        Ok(Self {
            client: Arc::new(client),
            server: Arc::new(server),
            server_name,
        })
    }
}

//! TLS with rustls and Graviola, a crypto provider written in Rust (with its own assembly for
//! x86_64/aarch64 through `asm!`): no C compiler, no ring, no aws-lc (see CHANGELOG for why
//! Graviola rather than rustls-rustcrypto).
//!
//! [`TlsConnector::new`] builds the rustls configuration once per client: the trusted roots
//! (`ssl.ca.location`/`ssl.ca.pem`, else the system's), the client certificate for mutual TLS,
//! and hostname verification (`ssl.endpoint.identification.algorithm`). A certificate problem
//! becomes [`Error::Tls`], which is not retried: it does not heal by itself.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::error::Error;
use crate::security::{Pem, SecurityConfig};

/// The crypto provider of every TLS connection (client, and the testserver's listener).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls_graviola::default_provider())
}

/// Fills `buf` with random bytes from the crypto provider's generator (SCRAM nonces).
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<(), Error> {
    rustls_graviola::default_provider()
        .secure_random
        .fill(buf)
        .map_err(|_| Error::Config("the system random number generator failed".to_owned()))
}

/// Parses every certificate in `pem`.
pub fn parse_certificates(pem: &str, origin: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{origin}: not PEM certificates ({e})"))?;
    if certs.is_empty() {
        return Err(format!("{origin}: no CERTIFICATE block"));
    }
    Ok(certs)
}

/// Parses the first private key (PKCS#8, PKCS#1 or SEC1) in `pem`. The message names where
/// the key came from, never its content.
pub fn parse_private_key(pem: &str, origin: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| format!("{origin}: no usable PRIVATE KEY block (PKCS#8, RSA or EC)"))
}

fn read_pem(p: &Pem) -> Result<String, Error> {
    p.read().map_err(Error::Config)
}

/// A client TLS configuration, shared by all connections of one client.
#[derive(Clone)]
pub(crate) struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector").finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// Builds the configuration from the `ssl.*` settings; `None` if TLS is off.
    pub(crate) fn new(sec: &SecurityConfig) -> Result<Option<TlsConnector>, Error> {
        if !sec.protocol.uses_tls() {
            return Ok(None);
        }
        let provider = crypto_provider();
        let mut roots = RootCertStore::empty();
        match &sec.ca {
            Some(ca) => {
                let certs =
                    parse_certificates(&read_pem(ca)?, &ca.origin()).map_err(Error::Config)?;
                for c in certs {
                    roots.add(c).map_err(|e| {
                        Error::Config(format!("{}: unusable CA certificate: {e}", ca.origin()))
                    })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(Error::Config(
                        "no system CA certificates found; set ssl.ca.location".to_owned(),
                    ));
                }
            }
        }
        let roots = Arc::new(roots);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
            .build()
            .map_err(|e| Error::Config(format!("TLS trust roots: {e}")))?;
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS protocol versions: {e}")))?;
        let builder = if sec.verify_hostname.unwrap_or(true) {
            builder.with_webpki_verifier(webpki)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnlyVerifier { inner: webpki }))
        };
        let config = match (&sec.certificate, &sec.key) {
            (Some(cert), Some(key)) => {
                let chain =
                    parse_certificates(&read_pem(cert)?, &cert.origin()).map_err(Error::Config)?;
                let key =
                    parse_private_key(&read_pem(key)?, &key.origin()).map_err(Error::Config)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| Error::Config(format!("client certificate: {e}")))?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Some(TlsConnector {
            config: Arc::new(config),
        }))
    }

    /// Runs the TLS handshake with `addr` (`host:port`) over `tcp`.
    pub(crate) async fn connect(
        &self,
        addr: &str,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, Error> {
        let host = addr
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(addr)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| Error::Config(format!("{host:?} is not a TLS server name: {e}")))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.config));
        connector
            .connect(name, tcp)
            .await
            .map_err(|e| handshake_error(addr, e))
    }
}

/// A handshake failure: rustls' own verdict (certificate, alert from the peer, protocol) is an
/// [`Error::Tls`] (see `Error::setup_io`); a plain socket failure stays [`Error::Io`] with a
/// hint.
fn handshake_error(addr: &str, e: std::io::Error) -> Error {
    let is_tls = e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    if is_tls {
        return Error::setup_io(addr, e);
    }
    Error::io(
        addr,
        std::io::Error::new(
            e.kind(),
            format!("during the TLS handshake: {e} (is this a TLS listener?)"),
        ),
    )
}

/// A sentence for a rustls error: what went wrong, in the user's terms.
pub(crate) fn describe(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "the broker's certificate is not signed by a trusted CA (ssl.ca.location)"
                    .to_owned()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the broker's certificate does not name this host ({c:?}); \
                     ssl.endpoint.identification.algorithm="
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the broker's certificate has expired".to_owned()
            }
            other => format!("bad broker certificate: {other:?}"),
        },
        rustls::Error::AlertReceived(alert) => format!(
            "the broker refused the handshake with alert {alert:?} \
             (a client certificate it does not accept, or none?)"
        ),
        other => other.to_string(),
    }
}

/// `ssl.endpoint.identification.algorithm=` (empty): the chain must still lead to a trusted
/// root and be valid, but the certificate need not name the host.
#[derive(Debug)]
struct ChainOnlyVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

//! TLS for the listeners (rustls with the same pure-Rust provider as the client), and
//! [`CertificateAuthority`]: a private CA that issues broker and client certificates for
//! tests and for `kafka-persistence serve --tls-self-signed`, signed with Graviola through
//! `rcgen` (no ring, no C).
//!
//! With a client CA configured the listener requires a client certificate (mutual TLS); the
//! connection's principal is then `User:CN=<common name>` of that certificate, as Kafka's
//! default principal builder names a certificate whose subject is only a CN.

use std::sync::Arc;

use graviola::signing::ecdsa::{SigningKey, P256};
use kafka_persistence_wire::tls::{crypto_provider, parse_certificates, parse_private_key};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, PublicKeyData, SerialNumber, SignatureAlgorithm,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use crate::Error;

/// An ECDSA P-256 key (Graviola) usable by rcgen.
struct Key {
    key: SigningKey<P256>,
    /// The uncompressed public point.
    public: Vec<u8>,
}

impl Key {
    fn generate() -> Result<Key, Error> {
        let key = SigningKey::<P256>::generate().map_err(|e| invalid(format!("{e:?}")))?;
        let mut buf = [0u8; 128];
        let spki = key
            .to_spki_der(&mut buf)
            .map_err(|e| invalid(format!("{e:?}")))?;
        // A P-256 SubjectPublicKeyInfo ends with the 65-byte uncompressed point.
        let public = spki
            .get(spki.len().saturating_sub(65)..)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| invalid("short public key".into()))?;
        Ok(Key { key, public })
    }

    fn pkcs8_pem(&self) -> Result<String, Error> {
        let mut buf = [0u8; 256];
        let der = self
            .key
            .to_pkcs8_der(&mut buf)
            .map_err(|e| invalid(format!("{e:?}")))?;
        Ok(pem("PRIVATE KEY", der))
    }
}

impl PublicKeyData for Key {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for Key {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let mut sig = [0u8; 128];
        self.key
            .sign_asn1::<graviola::hashing::Sha256>(&[msg], &mut sig)
            .map(<[u8]>::to_vec)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// A random positive 16-byte serial number (rcgen without a crypto backend needs one).
fn serial() -> Result<SerialNumber, Error> {
    let mut raw = [0u8; 16];
    crypto_provider()
        .secure_random
        .fill(&mut raw)
        .map_err(|_| invalid("no random numbers".into()))?;
    raw[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&raw))
}

fn invalid(msg: String) -> Error {
    Error::InvalidArgument(format!("certificate generation: {msg}"))
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct CertifiedKey {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The PKCS#8 private key (PEM).
    pub key_pem: String,
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// A private certificate authority for tests.
pub struct CertificateAuthority {
    key: Key,
    params: CertificateParams,
    cert_pem: String,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// A new self-signed CA named `common_name`.
    pub fn new(common_name: &str) -> Result<CertificateAuthority, Error> {
        let key = Key::generate()?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| invalid(e.to_string()))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.serial_number = Some(serial()?);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            key,
            params,
        })
    }

    /// The CA certificate (PEM), what clients put in `ssl.ca.location`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    fn issue(
        &self,
        common_name: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<CertifiedKey, Error> {
        let key = Key::generate()?;
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(names).map_err(|e| invalid(e.to_string()))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![usage];
        params.serial_number = Some(serial()?);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(CertifiedKey {
            cert_pem: cert.pem(),
            key_pem: key.pkcs8_pem()?,
        })
    }

    /// A broker certificate for `hosts` (DNS names or IP addresses, e.g. `127.0.0.1`).
    pub fn issue_server(&self, hosts: &[&str]) -> Result<CertifiedKey, Error> {
        let cn = hosts.first().copied().unwrap_or("localhost");
        self.issue(cn, hosts, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate whose principal is `User:CN=<common_name>`.
    pub fn issue_client(&self, common_name: &str) -> Result<CertifiedKey, Error> {
        self.issue(common_name, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// Builds the listener's rustls configuration; with `client_ca` client certificates signed by
/// it are required.
pub(crate) fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca: Option<&str>,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let provider = crypto_provider();
    let chain =
        parse_certificates(cert_pem, "server certificate").map_err(Error::InvalidArgument)?;
    let key = parse_private_key(key_pem, "server key").map_err(Error::InvalidArgument)?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidArgument(format!("TLS versions: {e}")))?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in parse_certificates(ca, "client CA").map_err(Error::InvalidArgument)? {
                roots
                    .add(c)
                    .map_err(|e| Error::InvalidArgument(format!("client CA: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| Error::InvalidArgument(format!("client CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| Error::InvalidArgument(format!("server certificate: {e}")))?;
    Ok(Arc::new(config))
}

/// `User:CN=<cn>` of a client certificate, `None` if its subject has no common name.
pub(crate) fn principal_of(cert: &CertificateDer<'_>) -> Option<String> {
    subject_common_name(cert.as_ref()).map(|cn| format!("User:CN={cn}"))
}

/// One DER TLV: (tag, contents, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The subject's CN: Certificate { tbs { [0]? serial sigAlg issuer validity subject ... } }.
fn subject_common_name(der: &[u8]) -> Option<String> {
    const CN_OID: &[u8] = &[0x55, 0x04, 0x03];
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    let (tag, _, r) = tlv(rest)?;
    if tag == 0xa0 {
        rest = r; // explicit version
    }
    for _ in 0..4 {
        let (_, _, r) = tlv(rest)?; // serial, signature, issuer, validity
        rest = r;
    }
    let (_, mut subject, _) = tlv(rest)?;
    while !subject.is_empty() {
        let (_, set, r) = tlv(subject)?;
        subject = r;
        let (_, atv, _) = tlv(set)?;
        let (_, oid, value) = tlv(atv)?;
        if oid == CN_OID {
            let (_, s, _) = tlv(value)?;
            return String::from_utf8(s.to_vec()).ok();
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn issued_client_certificate_names_its_principal() {
        let ca = CertificateAuthority::new("test CA").unwrap();
        let client = ca.issue_client("alice").unwrap();
        let der = parse_certificates(&client.cert_pem, "c").unwrap();
        assert_eq!(principal_of(&der[0]).as_deref(), Some("User:CN=alice"));
        let server = ca.issue_server(&["127.0.0.1", "localhost"]).unwrap();
        assert!(server_config(&server.cert_pem, &server.key_pem, Some(ca.cert_pem())).is_ok());
        assert!(!format!("{server:?}").contains("PRIVATE"));
        assert_eq!(subject_common_name(b"\x30\x80"), None);
        assert_eq!(subject_common_name(b""), None);
    }
}

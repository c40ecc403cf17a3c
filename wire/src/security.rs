//! Connection security settings under the Java client's property names: `security.protocol`,
//! `ssl.*` and `sasl.*` (see [`ClientConfig::with_property`](crate::ClientConfig::with_property)),
//! and [`Secret`], the wrapper that keeps passwords, private keys and tokens out of `Debug`,
//! logs and error messages.
//!
//! The settings are plain data here; [`crate::tls`] turns them into a rustls configuration and
//! [`crate::sasl`] runs the authentication exchange.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use serde::Deserialize;

/// A value that must never be shown: `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(Arc::from(value.into()))
    }

    /// The secret itself (for the code that has to send it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret::new(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret::new(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Whether a property's value must be kept out of logs and errors (passwords, keys, tokens,
/// JAAS configurations), judged by its name.
pub fn is_sensitive_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "jaas",
        "token",
        ".key.pem",
        "key.location.pem",
        "credentials",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// Shows client properties with the values of secret-looking keys (`sasl.password`,
/// `sasl.jaas.config`, `ssl.key.pem`, ...) replaced by `[redacted]`: for the `Debug` of
/// configurations that carry raw properties.
#[derive(Clone, Copy)]
pub struct RedactedProperties<'a>(pub &'a std::collections::BTreeMap<String, String>);

impl fmt::Debug for RedactedProperties<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let shown = if is_sensitive_property(k) {
                    "[redacted]"
                } else {
                    v.as_str()
                };
                (k, shown)
            }))
            .finish()
    }
}

/// `security.protocol`: how a connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum SecurityProtocol {
    /// `PLAINTEXT` (default): TCP, no authentication.
    #[default]
    Plaintext,
    /// `SSL`: TLS, optionally with a client certificate (mutual TLS).
    Ssl,
    /// `SASL_PLAINTEXT`: SASL authentication over plain TCP.
    SaslPlaintext,
    /// `SASL_SSL`: SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Whether connections use TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    /// Kafka's name for it (`SASL_SSL`, ...).
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

impl FromStr for SecurityProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            _ => Err(format!(
                "unknown security.protocol {s:?} (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)"
            )),
        }
    }
}

impl TryFrom<String> for SecurityProtocol {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// `sasl.mechanism`: the SASL mechanisms this client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum SaslMechanism {
    /// `PLAIN` (RFC 4616): user name and password in the clear; use it over TLS only.
    Plain,
    /// `SCRAM-SHA-256` (RFC 5802, RFC 7677).
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
    /// `OAUTHBEARER` (RFC 7628, KIP-255): a token from
    /// [`ClientConfig::with_oauthbearer_token_callback`](crate::ClientConfig::with_oauthbearer_token_callback).
    OAuthBearer,
}

impl SaslMechanism {
    /// The mechanism's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SaslMechanism {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
            "OAUTHBEARER" => Ok(SaslMechanism::OAuthBearer),
            _ => Err(format!(
                "unsupported sasl.mechanism {s:?} (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER)"
            )),
        }
    }
}

impl TryFrom<String> for SaslMechanism {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// Where PEM data comes from: a file, or the PEM text itself.
#[derive(Clone, PartialEq, Eq)]
pub enum Pem {
    /// A PEM file on disk.
    File(PathBuf),
    /// PEM text in memory. Shown in `Debug` only by its length (it may be a private key).
    Inline(Secret),
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(p) => f.debug_tuple("File").field(p).finish(),
            Pem::Inline(s) => write!(f, "Inline({} bytes)", s.expose().len()),
        }
    }
}

impl Pem {
    /// The PEM text (reads the file).
    pub(crate) fn read(&self) -> Result<String, String> {
        match self {
            Pem::File(p) => {
                std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
            }
            Pem::Inline(s) => Ok(s.expose().to_owned()),
        }
    }

    /// Where it comes from, for error messages (never the content).
    pub(crate) fn origin(&self) -> String {
        match self {
            Pem::File(p) => p.display().to_string(),
            Pem::Inline(_) => "in-memory PEM".to_owned(),
        }
    }
}

/// An OAUTHBEARER token (a JWT or any opaque bearer token the broker accepts), with optional
/// SASL extensions (KIP-342).
#[derive(Debug, Clone)]
pub struct OAuthBearerToken {
    pub(crate) value: Secret,
    pub(crate) extensions: Vec<(String, String)>,
}

impl OAuthBearerToken {
    /// A token with no extensions.
    pub fn new(value: impl Into<Secret>) -> OAuthBearerToken {
        OAuthBearerToken {
            value: value.into(),
            extensions: Vec::new(),
        }
    }

    /// Adds a SASL extension `key=value` (sent in the initial client response).
    pub fn with_extension(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extensions.push((key.into(), value.into()));
        self
    }
}

/// What an OAUTHBEARER token callback returns.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<OAuthBearerToken, String>> + Send>>;

/// The OAUTHBEARER token callback: called for every new connection, so it can hand out a fresh
/// token (cache inside it if tokens are expensive).
#[derive(Clone)]
pub struct TokenCallback(pub(crate) Arc<dyn Fn() -> TokenFuture + Send + Sync>);

impl fmt::Debug for TokenCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenCallback")
    }
}

/// The security settings of a client: `security.protocol`, `ssl.*`, `sasl.*`.
#[derive(Debug, Clone, Default)]
pub struct SecurityConfig {
    pub(crate) protocol: SecurityProtocol,
    /// `ssl.ca.location` / `ssl.ca.pem`: the CA certificates to trust (default: the system's).
    pub(crate) ca: Option<Pem>,
    /// `ssl.certificate.location` / `ssl.certificate.pem`: our certificate chain (mutual TLS).
    pub(crate) certificate: Option<Pem>,
    /// `ssl.key.location` / `ssl.key.pem`: the private key of `certificate`.
    pub(crate) key: Option<Pem>,
    /// `ssl.endpoint.identification.algorithm`: `https` (default) checks that the broker's
    /// certificate names the host we connect to; empty turns that check off.
    pub(crate) verify_hostname: Option<bool>,
    pub(crate) mechanism: Option<SaslMechanism>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) token_callback: Option<TokenCallback>,
}

impl SecurityConfig {
    /// The protocol in force.
    pub fn protocol(&self) -> SecurityProtocol {
        self.protocol
    }

    /// The SASL mechanism, if set.
    pub fn mechanism(&self) -> Option<SaslMechanism> {
        self.mechanism
    }

    /// Applies a `security.*`, `ssl.*` or `sasl.*` property. `None`: not a key of ours;
    /// `Some(Err)`: a key of ours with an invalid value (the message never holds the value of
    /// a secret).
    pub(crate) fn apply(&mut self, key: &str, value: &str) -> Option<Result<(), String>> {
        let path = || PathBuf::from(value.trim());
        let r = match key {
            "security.protocol" => value.parse().map(|p| self.protocol = p),
            "ssl.ca.location" => {
                self.ca = Some(Pem::File(path()));
                Ok(())
            }
            "ssl.ca.pem" => {
                self.ca = Some(Pem::Inline(Secret::new(value)));
                Ok(())
            }
            "ssl.certificate.location" => {
                self.certificate = Some(Pem::File(path()));
                Ok(())
            }
            "ssl.certificate.pem" => {
                self.certificate = Some(Pem::Inline(Secret::new(value)));
                Ok(())
            }
            "ssl.key.location" => {
                self.key = Some(Pem::File(path()));
                Ok(())
            }
            "ssl.key.pem" => {
                self.key = Some(Pem::Inline(Secret::new(value)));
                Ok(())
            }
            "ssl.endpoint.identification.algorithm" => {
                match value.trim().to_ascii_lowercase().as_str() {
                    "https" => {
                        self.verify_hostname = Some(true);
                        Ok(())
                    }
                    "" | "none" => {
                        self.verify_hostname = Some(false);
                        Ok(())
                    }
                    other => Err(format!(
                        "invalid ssl.endpoint.identification.algorithm {other:?} (https or empty)"
                    )),
                }
            }
            "sasl.mechanism" | "sasl.mechanisms" => value.parse().map(|m| self.mechanism = Some(m)),
            "sasl.username" => {
                self.username = Some(value.to_owned());
                Ok(())
            }
            "sasl.password" => {
                self.password = Some(Secret::new(value));
                Ok(())
            }
            _ => return None,
        };
        Some(r)
    }

    /// Whether `key` is one of the properties [`SecurityConfig::apply`] interprets.
    pub(crate) fn is_property(key: &str) -> bool {
        SecurityConfig::default().apply(key, "").is_some()
    }

    /// Checks that the settings fit together.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let tls_set = self.ca.is_some() || self.certificate.is_some() || self.key.is_some();
        if tls_set && !self.protocol.uses_tls() {
            return Err(format!(
                "ssl.* settings given but security.protocol is {}",
                self.protocol.name()
            ));
        }
        if self.certificate.is_some() != self.key.is_some() {
            return Err(
                "mutual TLS needs both ssl.certificate.location and ssl.key.location".to_owned(),
            );
        }
        if !self.protocol.uses_sasl() {
            if self.mechanism.is_some() || self.username.is_some() || self.password.is_some() {
                return Err(format!(
                    "sasl.* settings given but security.protocol is {}",
                    self.protocol.name()
                ));
            }
            return Ok(());
        }
        match self.mechanism {
            None => Err(
                "sasl.mechanism is required with SASL_PLAINTEXT and SASL_SSL \
                 (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER)"
                    .to_owned(),
            ),
            Some(SaslMechanism::OAuthBearer) => match self.token_callback {
                Some(_) => Ok(()),
                None => Err("OAUTHBEARER needs a token callback \
                     (ClientConfig::with_oauthbearer_token_callback)"
                    .to_owned()),
            },
            Some(m) => match (&self.username, &self.password) {
                (Some(u), Some(_)) if !u.is_empty() => Ok(()),
                _ => Err(format!("{m} needs sasl.username and sasl.password")),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_case_insensitively() {
        assert_eq!(
            "sasl_ssl".parse::<SecurityProtocol>().unwrap(),
            SecurityProtocol::SaslSsl
        );
        assert!("TLS".parse::<SecurityProtocol>().is_err());
        assert_eq!(
            "scram-sha-512".parse::<SaslMechanism>().unwrap(),
            SaslMechanism::ScramSha512
        );
        assert!("GSSAPI".parse::<SaslMechanism>().is_err());
    }

    #[test]
    fn secrets_are_redacted() {
        let mut s = SecurityConfig::default();
        for (k, v) in [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.username", "alice"),
            ("sasl.password", "hunter2-secret"),
            ("ssl.key.pem", "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEY\n"),
            ("ssl.certificate.pem", "-----BEGIN CERTIFICATE-----\nC\n"),
        ] {
            s.apply(k, v).unwrap().unwrap();
        }
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("TOPSECRETKEY"), "{shown}");
        assert!(shown.contains("alice"));
        assert_eq!(Secret::new("x").to_string(), "[redacted]");
        assert!(s.validate().is_ok());
    }

    #[test]
    fn validation_names_the_missing_piece() {
        let mut s = SecurityConfig::default();
        s.apply("security.protocol", "SASL_SSL").unwrap().unwrap();
        assert!(s.validate().unwrap_err().contains("sasl.mechanism"));
        s.apply("sasl.mechanism", "SCRAM-SHA-256").unwrap().unwrap();
        assert!(s.validate().unwrap_err().contains("sasl.username"));
        s.apply("sasl.mechanism", "OAUTHBEARER").unwrap().unwrap();
        assert!(s.validate().unwrap_err().contains("token callback"));
        let mut t = SecurityConfig::default();
        t.apply("ssl.ca.location", "/x").unwrap().unwrap();
        assert!(t.validate().unwrap_err().contains("PLAINTEXT"));
        t.apply("security.protocol", "SSL").unwrap().unwrap();
        t.apply("ssl.key.location", "/k").unwrap().unwrap();
        assert!(t.validate().unwrap_err().contains("both"));
        assert!(t
            .apply("ssl.endpoint.identification.algorithm", "ldap")
            .unwrap()
            .is_err());
        assert!(t.apply("not.ours", "x").is_none());
        assert!(is_sensitive_property("sasl.jaas.config"));
        let props: std::collections::BTreeMap<String, String> = [
            ("sasl.password".to_owned(), "pw-123".to_owned()),
            ("client.id".to_owned(), "app".to_owned()),
        ]
        .into();
        let shown = format!("{:?}", RedactedProperties(&props));
        assert!(
            !shown.contains("pw-123") && shown.contains("app"),
            "{shown}"
        );
        assert!(is_sensitive_property("ssl.key.password"));
        assert!(!is_sensitive_property("client.id"));
    }
}

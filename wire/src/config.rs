//! Client and producer configuration: builders, plus `serde::Deserialize` with Kafka-style
//! property names (`bootstrap.servers`, `request.timeout.ms`, ...) for file-based setup.
//!
//! A [`ClientConfig`] deserializes through [`ClientConfig::with_property`], so a file takes
//! every key a client property takes, with the same meaning, the security keys included
//! (`security.protocol`, `ssl.*`, `sasl.*`): see [`ClientConfig`]'s `Deserialize`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;
use crate::partitioner::Partitioner;
use crate::protocol::DEFAULT_MAX_FRAME_SIZE;
use crate::record::Compression;
use crate::security::{
    is_sensitive_property, OAuthBearerToken, Pem, SaslMechanism, Secret, SecurityConfig,
    SecurityProtocol, TokenCallback,
};

/// Configuration of a [`Client`](crate::Client).
///
/// # From a file
/// `Deserialize` reads a map of Kafka client properties and applies each with
/// [`ClientConfig::with_property`]: the keys are the property names, the values strings,
/// numbers or booleans (`"request.timeout.ms": 5000` and `"5000"` are the same). Nested maps
/// join their keys with dots, so TOML's `[ssl]` table with `ca.location = "..."` is
/// `ssl.ca.location` (a TOML file may also quote the whole name: `"sasl.mechanism" = ...`).
/// An unknown key or an invalid value fails deserialization, naming the key (never the value
/// of a secret such as `sasl.password`). OAUTHBEARER's token callback is code, so it is added
/// with [`ClientConfig::with_oauthbearer_token_callback`] after loading.
///
/// ```
/// # use kafka_persistence_wire::{ClientConfig, SecurityProtocol, SaslMechanism};
/// let c: ClientConfig = serde_json::from_str(r#"{
///     "bootstrap.servers": "broker-1:9093",
///     "security.protocol": "SASL_SSL",
///     "ssl": { "ca.location": "/etc/kafka/ca.pem" },
///     "sasl.mechanism": "SCRAM-SHA-512",
///     "sasl.username": "alice",
///     "sasl.password": "alice-secret",
///     "request.timeout.ms": 5000
/// }"#).unwrap();
/// assert_eq!(c.security().protocol(), SecurityProtocol::SaslSsl);
/// assert_eq!(c.security().mechanism(), Some(SaslMechanism::ScramSha512));
/// assert!(!format!("{c:?}").contains("alice-secret"));
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port[,host:port]` of one or more brokers to bootstrap from.
    pub(crate) bootstrap_servers: String,
    /// `client.id` sent in every request header.
    pub(crate) client_id: String,
    /// Time limit for one request (`request.timeout.ms`, default 30 s).
    pub(crate) request_timeout: Duration,
    /// Time limit for one call with all its retries (`delivery.timeout.ms`, default 120 s).
    pub(crate) delivery_timeout: Duration,
    /// First retry backoff (`retry.backoff.ms`, default 100 ms).
    pub(crate) retry_backoff_min: Duration,
    /// Largest retry backoff (`retry.backoff.max.ms`, default 5 s).
    pub(crate) retry_backoff_max: Duration,
    /// Time limit for establishing a TCP connection (`socket.connection.setup.timeout.ms`,
    /// default 10 s).
    pub(crate) connect_timeout: Duration,
    /// Minimum time between two metadata refreshes caused by errors
    /// (`metadata.min.refresh.interval.ms`, default 50 ms).
    pub(crate) metadata_min_refresh: Duration,
    /// Largest response frame accepted (`max.frame.bytes`, default 100 MiB).
    pub(crate) max_frame_size: usize,
    /// `security.protocol`, `ssl.*`, `sasl.*` (see [`crate::security`]); set through
    /// [`ClientConfig::with_property`] or the `with_security_protocol`, `with_ssl_*` and
    /// `with_sasl*` builders.
    pub(crate) security: SecurityConfig,
    /// Properties this client does not interpret (kept for callers and diagnostics).
    pub(crate) extra: BTreeMap<String, String>,
    /// First invalid property given to [`ClientConfig::with_property`], reported at connect.
    pub(crate) invalid: Option<String>,
}

/// A property value in a configuration file: text, a number, a flag, or a table of
/// properties whose names continue with a dot.
#[derive(Deserialize)]
#[serde(untagged)]
enum FileValue {
    Text(String),
    Integer(i64),
    Float(f64),
    Flag(bool),
    Table(BTreeMap<String, FileValue>),
}

impl FileValue {
    /// Appends `(name, value)` for this value under `name` (tables: for each entry).
    fn flatten(self, name: String, out: &mut Vec<(String, String)>) {
        match self {
            FileValue::Text(s) => out.push((name, s)),
            FileValue::Integer(n) => out.push((name, n.to_string())),
            FileValue::Float(x) => out.push((name, x.to_string())),
            FileValue::Flag(b) => out.push((name, b.to_string())),
            FileValue::Table(t) => {
                for (k, v) in t {
                    v.flatten(format!("{name}.{k}"), out);
                }
            }
        }
    }
}

/// The property names [`ClientConfig::with_property`] interprets.
const CLIENT_KEYS: &[&str] = &[
    "bootstrap.servers",
    "client.id",
    "request.timeout.ms",
    "delivery.timeout.ms",
    "retry.backoff.ms",
    "retry.backoff.max.ms",
    "socket.connection.setup.timeout.ms",
    "metadata.min.refresh.interval.ms",
    "max.frame.bytes",
];

impl<'de> Deserialize<'de> for ClientConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let map = BTreeMap::<String, FileValue>::deserialize(d)?;
        let mut pairs = Vec::new();
        for (k, v) in map {
            v.flatten(k, &mut pairs);
        }
        let mut config = ClientConfig::default();
        for (key, value) in pairs {
            let known = CLIENT_KEYS.contains(&key.as_str()) || SecurityConfig::is_property(&key);
            if !known {
                return Err(D::Error::custom(format!("unknown client property {key:?}")));
            }
            config = config.with_property(key, value);
            if let Some(why) = config.invalid.take() {
                return Err(D::Error::custom(why));
            }
        }
        Ok(config)
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            bootstrap_servers: String::new(),
            client_id: "kafka-persistence".to_owned(),
            request_timeout: Duration::from_secs(30),
            delivery_timeout: Duration::from_secs(120),
            retry_backoff_min: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            metadata_min_refresh: Duration::from_millis(50),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            security: SecurityConfig::default(),
            extra: BTreeMap::new(),
            invalid: None,
        }
    }
}

impl ClientConfig {
    /// A configuration for `bootstrap_servers` (`"host:port[,host:port]"`), defaults otherwise.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        ClientConfig {
            bootstrap_servers: bootstrap_servers.into(),
            ..Default::default()
        }
    }

    /// Sets `client.id`.
    pub fn with_client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// Sets the time limit of one request (default 30 s).
    pub fn with_request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Sets the time limit of one call including all its retries (default 120 s).
    pub fn with_delivery_timeout(mut self, d: Duration) -> Self {
        self.delivery_timeout = d;
        self
    }

    /// Sets the exponential retry backoff bounds (default 100 ms .. 5 s; jitter x0.8-1.2).
    pub fn with_retry_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.retry_backoff_min = min;
        self.retry_backoff_max = max;
        self
    }

    /// Sets the time limit for establishing one TCP connection (default 10 s).
    pub fn with_connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Sets the largest response frame accepted (default 100 MiB).
    pub fn with_max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets a Kafka-style property. Known keys (`bootstrap.servers`, `client.id`,
    /// `request.timeout.ms`, `delivery.timeout.ms`, `retry.backoff.ms`,
    /// `retry.backoff.max.ms`, `socket.connection.setup.timeout.ms`,
    /// `metadata.min.refresh.interval.ms`, `max.frame.bytes`, and the security keys
    /// `security.protocol`, `ssl.ca.location`, `ssl.ca.pem`, `ssl.certificate.location`,
    /// `ssl.certificate.pem`, `ssl.key.location`, `ssl.key.pem`,
    /// `ssl.endpoint.identification.algorithm`, `sasl.mechanism`, `sasl.username`,
    /// `sasl.password`) are applied; an unparsable value
    /// makes [`Client::connect`](crate::Client::connect) fail with [`Error::Config`]. Other
    /// keys are kept (see [`ClientConfig::extra_properties`]) but not interpreted; `connect`
    /// logs a warning for each.
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        let value = value.into();
        let ms = |v: &str| v.trim().parse::<u64>().ok().map(Duration::from_millis);
        let ok = match key.as_str() {
            "bootstrap.servers" => {
                self.bootstrap_servers = value.clone();
                true
            }
            "client.id" => {
                self.client_id = value.clone();
                true
            }
            "request.timeout.ms" => ms(&value).map(|d| self.request_timeout = d).is_some(),
            "delivery.timeout.ms" => ms(&value).map(|d| self.delivery_timeout = d).is_some(),
            "retry.backoff.ms" => ms(&value).map(|d| self.retry_backoff_min = d).is_some(),
            "retry.backoff.max.ms" => ms(&value).map(|d| self.retry_backoff_max = d).is_some(),
            "socket.connection.setup.timeout.ms" => {
                ms(&value).map(|d| self.connect_timeout = d).is_some()
            }
            "metadata.min.refresh.interval.ms" => {
                ms(&value).map(|d| self.metadata_min_refresh = d).is_some()
            }
            "max.frame.bytes" => value
                .trim()
                .parse::<usize>()
                .ok()
                .map(|n| self.max_frame_size = n)
                .is_some(),
            k => match self.security.apply(k, &value) {
                Some(Ok(())) => true,
                Some(Err(why)) => {
                    if self.invalid.is_none() {
                        self.invalid = Some(why);
                    }
                    true
                }
                None => {
                    // Not interpreted, so never sent: a secret-looking value is not kept at
                    // all, so that it cannot reach `Debug` or the "ignoring" warning.
                    let kept = if is_sensitive_property(&key) {
                        "[redacted]".to_owned()
                    } else {
                        value.clone()
                    };
                    self.extra.insert(key.clone(), kept);
                    true
                }
            },
        };
        if !ok && self.invalid.is_none() {
            self.invalid = Some(if is_sensitive_property(&key) {
                format!("invalid value for property {key}")
            } else {
                format!("invalid value {value:?} for property {key}")
            });
        }
        self
    }

    /// Applies every `key=value` line of Java-style properties text (see
    /// [`crate::properties`]) with [`ClientConfig::with_property`]. A malformed line makes
    /// [`Client::connect`](crate::Client::connect) fail with [`Error::Config`] naming the line.
    pub fn with_properties_text(mut self, text: &str) -> Self {
        match crate::properties::parse(text) {
            Ok(pairs) => {
                for (k, v) in pairs {
                    self = self.with_property(k, v);
                }
            }
            Err(why) => {
                if self.invalid.is_none() {
                    self.invalid = Some(why);
                }
            }
        }
        self
    }

    /// Sets `security.protocol` (default PLAINTEXT).
    pub fn with_security_protocol(mut self, protocol: SecurityProtocol) -> Self {
        self.security.protocol = protocol;
        self
    }

    /// Trusts the CA certificates in this PEM file (`ssl.ca.location`) instead of the system's.
    pub fn with_ssl_ca_location(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.security.ca = Some(Pem::File(path.into()));
        self
    }

    /// Trusts the CA certificates in this PEM text (`ssl.ca.pem`) instead of the system's.
    pub fn with_ssl_ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.security.ca = Some(Pem::Inline(Secret::new(pem)));
        self
    }

    /// Presents this certificate chain and private key (PEM files) to the broker: mutual TLS
    /// (`ssl.certificate.location`, `ssl.key.location`).
    pub fn with_ssl_certificate_location(
        mut self,
        certificate: impl Into<std::path::PathBuf>,
        key: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.security.certificate = Some(Pem::File(certificate.into()));
        self.security.key = Some(Pem::File(key.into()));
        self
    }

    /// Presents this certificate chain and private key (PEM text) to the broker: mutual TLS
    /// (`ssl.certificate.pem`, `ssl.key.pem`).
    pub fn with_ssl_certificate_pem(
        mut self,
        certificate: impl Into<String>,
        key: impl Into<Secret>,
    ) -> Self {
        self.security.certificate = Some(Pem::Inline(Secret::new(certificate)));
        self.security.key = Some(Pem::Inline(key.into()));
        self
    }

    /// Turns the check that the broker's certificate names the host we connect to on
    /// (default; `ssl.endpoint.identification.algorithm=https`) or off (empty).
    pub fn with_ssl_hostname_verification(mut self, on: bool) -> Self {
        self.security.verify_hostname = Some(on);
        self
    }

    /// Authenticates with `mechanism` as `username` (`sasl.mechanism`, `sasl.username`,
    /// `sasl.password`). Also needs a SASL `security.protocol`.
    pub fn with_sasl(
        mut self,
        mechanism: SaslMechanism,
        username: impl Into<String>,
        password: impl Into<Secret>,
    ) -> Self {
        self.security.mechanism = Some(mechanism);
        self.security.username = Some(username.into());
        self.security.password = Some(password.into());
        self
    }

    /// Authenticates with OAUTHBEARER, asking `callback` for a token on every new connection.
    pub fn with_oauthbearer_token_callback<F, Fut>(mut self, callback: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<OAuthBearerToken, String>> + Send + 'static,
    {
        self.security.mechanism = Some(SaslMechanism::OAuthBearer);
        self.security.token_callback = Some(TokenCallback(std::sync::Arc::new(move || {
            Box::pin(callback())
        })));
        self
    }

    /// The security settings (`security.protocol`, `ssl.*`, `sasl.*`).
    pub fn security(&self) -> &SecurityConfig {
        &self.security
    }

    /// The bootstrap servers string.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The per-call delivery timeout.
    pub fn delivery_timeout(&self) -> Duration {
        self.delivery_timeout
    }

    /// Properties set with [`ClientConfig::with_property`] that the client does not interpret
    /// (values of secret-looking keys, such as `sasl.jaas.config`, read `[redacted]`).
    pub fn extra_properties(&self) -> &BTreeMap<String, String> {
        &self.extra
    }

    /// Checks the configuration; returns the parsed bootstrap addresses.
    pub(crate) fn validate(&self) -> Result<Vec<String>, Error> {
        if let Some(msg) = &self.invalid {
            return Err(Error::Config(msg.clone()));
        }
        self.security.validate().map_err(Error::Config)?;
        let addrs: Vec<String> = self
            .bootstrap_servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if addrs.is_empty() {
            return Err(Error::Config("bootstrap.servers is empty".to_owned()));
        }
        for a in &addrs {
            match a.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
                _ => {
                    return Err(Error::Config(format!(
                        "bootstrap server {a:?} is not host:port"
                    )))
                }
            }
        }
        if self.request_timeout.is_zero() || self.delivery_timeout.is_zero() {
            return Err(Error::Config(
                "timeouts must be greater than zero".to_owned(),
            ));
        }
        if self.retry_backoff_min > self.retry_backoff_max {
            return Err(Error::Config(
                "retry.backoff.ms exceeds retry.backoff.max.ms".to_owned(),
            ));
        }
        if self.max_frame_size < 64 {
            return Err(Error::Config(
                "max.frame.bytes must be at least 64".to_owned(),
            ));
        }
        Ok(addrs)
    }
}

/// How many replicas must acknowledge a produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Acks {
    /// `acks=0`: no acknowledgement (the broker sends no response; offsets are unknown, -1).
    None,
    /// `acks=1`: the leader has written the records.
    Leader,
    /// `acks=all` (-1): all in-sync replicas have the records.
    All,
}

impl Acks {
    /// The value of the `acks` field on the wire.
    pub fn as_i16(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Configuration of a [`Producer`](crate::Producer).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProducerConfig {
    /// `acks` (default all).
    #[serde(rename = "acks")]
    pub(crate) acks: Acks,
    /// `enable.idempotence` (default true; requires acks=all).
    #[serde(rename = "enable.idempotence")]
    pub(crate) idempotent: bool,
    /// `linger.ms` (default 0).
    #[serde(rename = "linger.ms", with = "millis")]
    pub(crate) linger: Duration,
    /// `batch.size` in bytes: sends are coalesced into a batch up to this size (default 1 MiB).
    #[serde(rename = "batch.size")]
    pub(crate) batch_size: usize,
    /// `max.in.flight.requests.per.partition` (default 5, at most 5 when idempotent).
    #[serde(rename = "max.in.flight")]
    pub(crate) max_in_flight: usize,
    /// `compression.type` (default none).
    #[serde(skip)]
    pub(crate) compression: Compression,
    /// `buffer.memory`: bytes of records buffered or in flight before `send` waits
    /// (default 64 MiB).
    #[serde(rename = "buffer.memory")]
    pub(crate) buffer_memory: usize,
    /// `max.block.ms`: how long a send may wait for buffer space or the producer id before it
    /// fails with [`Error::Timeout`] (default 60 s).
    #[serde(rename = "max.block.ms", with = "millis")]
    pub(crate) max_block: Duration,
    /// Picks partitions for [`Producer::send_keyed`](crate::Producer::send_keyed) (default
    /// [`DefaultPartitioner`](crate::partitioner::DefaultPartitioner)).
    #[serde(skip)]
    pub(crate) partitioner: Option<std::sync::Arc<dyn Partitioner>>,
    /// `transactional.id`: makes the producer transactional (see
    /// [`TransactionalProducer`](crate::TransactionalProducer)); default none.
    #[serde(rename = "transactional.id")]
    pub(crate) transactional_id: Option<String>,
    /// `transaction.timeout.ms`: the coordinator aborts a transaction open longer than this
    /// (default 60 s).
    #[serde(rename = "transaction.timeout.ms", with = "millis")]
    pub(crate) transaction_timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            idempotent: true,
            linger: Duration::ZERO,
            batch_size: 1024 * 1024,
            max_in_flight: 5,
            compression: Compression::None,
            buffer_memory: 64 * 1024 * 1024,
            max_block: Duration::from_secs(60),
            partitioner: None,
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
        }
    }
}

impl ProducerConfig {
    /// Sets `acks`. Idempotence needs `Acks::All`; other values turn idempotence off.
    pub fn with_acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        if acks != Acks::All {
            self.idempotent = false;
        }
        self
    }

    /// Turns the idempotent producer on (default) or off.
    pub fn with_idempotence(mut self, on: bool) -> Self {
        self.idempotent = on;
        self
    }

    /// Sets how long a batch waits for more sends to the same partition (default 0).
    pub fn with_linger(mut self, d: Duration) -> Self {
        self.linger = d;
        self
    }

    /// Sets the size in bytes at which a batch is sent without waiting for the linger time.
    pub fn with_batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes.max(1);
        self
    }

    /// Sets the compression codec of produced batches.
    pub fn with_compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }

    /// Sets how many batches per partition may be in flight (1..=5; default 5).
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.clamp(1, 5);
        self
    }

    /// Sets the bytes of records that may be buffered or in flight before `send` waits.
    pub fn with_buffer_memory(mut self, bytes: usize) -> Self {
        self.buffer_memory = bytes.max(1);
        self
    }

    /// Sets how long a send may wait for buffer space or the producer id (default 60 s).
    pub fn with_max_block(mut self, d: Duration) -> Self {
        self.max_block = d;
        self
    }

    /// Sets the partitioner of [`Producer::send_keyed`](crate::Producer::send_keyed).
    pub fn with_partitioner(mut self, p: std::sync::Arc<dyn Partitioner>) -> Self {
        self.partitioner = Some(p);
        self
    }

    /// Sets `transactional.id` (a transactional producer is also idempotent with acks=all).
    pub fn with_transactional_id(mut self, id: impl Into<String>) -> Self {
        self.transactional_id = Some(id.into());
        self.idempotent = true;
        self.acks = Acks::All;
        self
    }

    /// Sets `transaction.timeout.ms` (default 60 s).
    pub fn with_transaction_timeout(mut self, d: Duration) -> Self {
        self.transaction_timeout = d;
        self
    }

    /// Whether this configuration produces idempotently.
    pub fn is_idempotent(&self) -> bool {
        self.idempotent && self.acks == Acks::All
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builder_and_properties() {
        let c = ClientConfig::new("a:1, b:2")
            .with_property("request.timeout.ms", "1500")
            .with_property("custom", "x");
        assert_eq!(c.request_timeout, Duration::from_millis(1500));
        assert_eq!(
            c.extra_properties().get("custom").map(String::as_str),
            Some("x")
        );
        assert_eq!(
            c.validate().unwrap(),
            vec!["a:1".to_owned(), "b:2".to_owned()]
        );
        let bad = ClientConfig::new("a:1").with_property("request.timeout.ms", "soon");
        assert!(matches!(bad.validate(), Err(Error::Config(_))));
        assert!(ClientConfig::new("").validate().is_err());
        assert!(ClientConfig::new("nohost").validate().is_err());
        assert!(ClientConfig::new("h:99999").validate().is_err());
    }

    #[test]
    fn file_security_settings_work_as_properties_do() {
        let json = r#"{
            "bootstrap.servers": "b1:9093,b2:9093",
            "security.protocol": "SASL_SSL",
            "ssl": { "ca.location": "/etc/ca.pem", "endpoint.identification.algorithm": "" },
            "sasl.mechanism": "SCRAM-SHA-256",
            "sasl.username": "alice",
            "sasl.password": "hunter2-file-secret",
            "request.timeout.ms": 1500,
            "delivery.timeout.ms": "9000"
        }"#;
        let from_file: ClientConfig = serde_json::from_str(json).unwrap();
        let from_props = ClientConfig::new("b1:9093,b2:9093")
            .with_property("security.protocol", "SASL_SSL")
            .with_property("ssl.ca.location", "/etc/ca.pem")
            .with_property("ssl.endpoint.identification.algorithm", "")
            .with_property("sasl.mechanism", "SCRAM-SHA-256")
            .with_property("sasl.username", "alice")
            .with_property("sasl.password", "hunter2-file-secret")
            .with_property("request.timeout.ms", "1500")
            .with_property("delivery.timeout.ms", "9000");
        // The same settings, whichever way they came in (Debug shows every field).
        assert_eq!(format!("{from_file:?}"), format!("{from_props:?}"));
        let sec = from_file.security();
        assert_eq!(sec.protocol(), SecurityProtocol::SaslSsl);
        assert_eq!(sec.mechanism(), Some(SaslMechanism::ScramSha256));
        assert_eq!(sec.ca, Some(Pem::File("/etc/ca.pem".into())));
        assert_eq!(sec.verify_hostname, Some(false));
        assert_eq!(sec.username.as_deref(), Some("alice"));
        assert_eq!(
            sec.password.as_ref().map(Secret::expose),
            Some("hunter2-file-secret")
        );
        assert_eq!(from_file.request_timeout, Duration::from_millis(1500));
        assert_eq!(from_file.delivery_timeout, Duration::from_millis(9000));
        assert!(from_file.validate().is_ok());
        assert!(!format!("{from_file:?}").contains("hunter2"));
    }

    #[test]
    fn file_errors_name_the_key_never_a_secret() {
        let unknown = serde_json::from_str::<ClientConfig>(r#"{"sasl.pasword": "hunter2"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("sasl.pasword") && !unknown.contains("hunter2"),
            "{unknown}"
        );
        let bad = serde_json::from_str::<ClientConfig>(r#"{"security.protocol": "TLS"}"#)
            .unwrap_err()
            .to_string();
        assert!(bad.contains("security.protocol"), "{bad}");
        let bad = serde_json::from_str::<ClientConfig>(r#"{"request.timeout.ms": "soon"}"#)
            .unwrap_err()
            .to_string();
        assert!(bad.contains("request.timeout.ms"), "{bad}");
        let bad = serde_json::from_str::<ClientConfig>(
            r#"{"security.protocol": "SASL_SSL", "sasl.mechanism": "GSSAPI", "sasl.password": "pw-9x"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("GSSAPI") && !bad.contains("pw-9x"), "{bad}");
        // A file with inconsistent settings loads; connect reports them (as for properties).
        let c: ClientConfig =
            serde_json::from_str(r#"{"bootstrap.servers": "b:1", "ssl.ca.location": "/ca"}"#)
                .unwrap();
        assert!(matches!(c.validate(), Err(Error::Config(m)) if m.contains("PLAINTEXT")));
    }

    #[test]
    fn properties_text_applies_every_line() {
        let c = ClientConfig::new("b:1").with_properties_text(
            "# comment\nsecurity.protocol=SSL\nssl.ca.location = /ca.pem\nclient.id=app\n",
        );
        assert_eq!(c.security().protocol(), SecurityProtocol::Ssl);
        assert_eq!(c.client_id, "app");
        let bad = ClientConfig::new("b:1").with_properties_text("no separator here");
        assert!(matches!(bad.validate(), Err(Error::Config(m)) if m.contains("line 1")));
    }

    #[test]
    fn acks_turn_off_idempotence() {
        let p = ProducerConfig::default();
        assert!(p.is_idempotent());
        assert!(!p.clone().with_acks(Acks::Leader).is_idempotent());
        assert_eq!(p.with_max_in_flight(9).max_in_flight, 5);
    }
}

//! [`SnapshotConfig`]: a builder, and `serde::Deserialize` for file-based configuration.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_persistence_wire::Layout;
use serde::Deserialize;

/// The largest `SnapshotConfig::partitions`: the topic has twice as many, and Kafka
/// clusters hold a few thousand partitions per broker.
pub(crate) const MAX_PARTITIONS: i32 = 10_000;

/// Configuration of a [`crate::SnapshotStore`].
///
/// ```
/// use std::time::Duration;
/// use kafka_persistence_snapshot::SnapshotConfig;
/// let config = SnapshotConfig::new("127.0.0.1:9092")
///     .with_topic_prefix("snap-")
///     .with_replication_factor(3)
///     .with_timeout(Duration::from_secs(5))
///     .with_client_property("client.id", "my-app");
/// assert_eq!(config.timeout(), Duration::from_secs(5));
/// assert_eq!(config.layout, kafka_persistence_snapshot::Layout::Shared);
/// assert_eq!(config.partitions, 16);
/// let from_json: SnapshotConfig = serde_json::from_str(
///     r#"{"bootstrap_servers": "k1:9092", "timeout_ms": 2000}"#).unwrap();
/// assert_eq!(from_json.timeout(), Duration::from_secs(2));
/// assert_eq!(from_json.topic_prefix, "snapshot-");
/// let v1: SnapshotConfig = serde_json::from_str(
///     r#"{"bootstrap_servers": "k1:9092", "layout": "per-id"}"#).unwrap();
/// assert_eq!(v1.layout, kafka_persistence_snapshot::Layout::PerId);
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SnapshotConfig {
    /// `host:port[,host:port]` of the Kafka brokers.
    pub bootstrap_servers: String,
    /// Prefix of every snapshot topic (default `snapshot-`): layout v2's topic is
    /// `{prefix}v2.snapshots`, layout v1's topics are the prefix plus the encoded id.
    pub topic_prefix: String,
    /// The topic layout (default [`Layout::Shared`], v2); [`Layout::PerId`] (v1) is kept for
    /// existing data.
    pub layout: Layout,
    /// Layout v2: P, the number of index partitions (default 16). The topic has 2 × P
    /// partitions (P index, P chunk partitions); P is fixed when the topic is created, and
    /// `connect` refuses a topic with another count. Unused in layout v1.
    pub partitions: i32,
    /// Replication factor of created topics (default 1; use 3 in production).
    pub replication_factor: i16,
    /// `max.message.bytes` set on created snapshot topics; `None` keeps the broker default
    /// (it is read with DescribeConfigs either way, and larger snapshots are chunked).
    pub max_message_bytes: Option<i32>,
    /// Bound of every store call in milliseconds (default 30,000).
    pub timeout_ms: u64,
    /// Further topic configs for created snapshot topics (`cleanup.policy` is always
    /// `compact`).
    pub topic_configs: BTreeMap<String, String>,
    /// Raw Kafka-style client properties, passed to the client.
    pub client_properties: BTreeMap<String, String>,
}

/// `Debug` without the values of secret client properties (`sasl.password`, ...).
impl std::fmt::Debug for SnapshotConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("topic_prefix", &self.topic_prefix)
            .field("replication_factor", &self.replication_factor)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("timeout_ms", &self.timeout_ms)
            .field("topic_configs", &self.topic_configs)
            .field(
                "client_properties",
                &kafka_persistence_wire::security::RedactedProperties(&self.client_properties),
            )
            .finish()
    }
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            topic_prefix: "snapshot-".into(),
            layout: Layout::default(),
            partitions: 16,
            replication_factor: 1,
            max_message_bytes: None,
            timeout_ms: 30_000,
            topic_configs: BTreeMap::new(),
            client_properties: BTreeMap::new(),
        }
    }
}

impl SnapshotConfig {
    /// Checks the settings that would otherwise fail later, at the first save or with a less
    /// clear broker error; [`crate::SnapshotStore::connect`] calls it.
    ///
    /// ```
    /// use kafka_persistence_snapshot::SnapshotConfig;
    /// assert!(SnapshotConfig::new("k:9092").validate().is_ok());
    /// assert!(SnapshotConfig::new("k:9092").with_topic_prefix("").validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), crate::SnapshotError> {
        let bad = |m: String| Err(crate::SnapshotError::Config(m));
        if self.bootstrap_servers.trim().is_empty() {
            return bad("bootstrap_servers is empty".into());
        }
        if let Some(e) = kafka_persistence_wire::naming::topic_settings_error(
            &self.topic_prefix,
            self.replication_factor,
            self.max_message_bytes,
        ) {
            return bad(e);
        }
        if self.timeout_ms == 0 {
            return bad("timeout_ms is 0".into());
        }
        if !(1..=MAX_PARTITIONS).contains(&self.partitions) {
            return bad(format!(
                "partitions {} (at least 1 and at most {MAX_PARTITIONS}; the topic gets twice as many)",
                self.partitions
            ));
        }
        Ok(())
    }

    /// Defaults with the given bootstrap servers.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        SnapshotConfig {
            bootstrap_servers: bootstrap_servers.into(),
            ..SnapshotConfig::default()
        }
    }

    /// Sets the snapshot topic prefix.
    pub fn with_topic_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.topic_prefix = prefix.into();
        self
    }

    /// Sets the topic layout.
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Sets P, the number of index partitions of layout v2 (the topic gets 2 × P).
    pub fn with_partitions(mut self, partitions: i32) -> Self {
        self.partitions = partitions;
        self
    }

    /// Sets the replication factor of created topics.
    pub fn with_replication_factor(mut self, replication_factor: i16) -> Self {
        self.replication_factor = replication_factor;
        self
    }

    /// Sets `max.message.bytes` of created topics.
    pub fn with_max_message_bytes(mut self, bytes: i32) -> Self {
        self.max_message_bytes = Some(bytes);
        self
    }

    /// Bounds every store call (save, load, delete) by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Adds a topic config for created snapshot topics (`cleanup.policy` cannot be changed).
    pub fn with_topic_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.topic_configs.insert(key.into(), value.into());
        self
    }

    /// Adds a raw Kafka-style client property (e.g. `client.id`, `request.timeout.ms`).
    pub fn with_client_property(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.client_properties.insert(key.into(), value.into());
        self
    }

    /// The bound of every store call.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejects(config: SnapshotConfig, what: &str) {
        match config.validate() {
            Err(crate::SnapshotError::Config(m)) => assert!(m.contains(what), "{m}"),
            other => panic!("{what}: {other:?}"),
        }
    }

    #[test]
    fn debug_hides_secret_client_properties() {
        let c = SnapshotConfig::new("k:9092")
            .with_client_property("sasl.password", "pw-SECRET")
            .with_client_property("sasl.username", "alice");
        let shown = format!("{c:?}");
        assert!(!shown.contains("pw-SECRET"), "{shown}");
        assert!(shown.contains("alice"), "{shown}");
    }

    #[test]
    fn invalid_settings_are_named() {
        let ok = SnapshotConfig::new("k:9092");
        assert!(ok.validate().is_ok());
        rejects(SnapshotConfig::new(""), "bootstrap_servers");
        rejects(ok.clone().with_topic_prefix("snap shot-"), "' '");
        rejects(ok.clone().with_replication_factor(0), "replication_factor");
        rejects(ok.clone().with_max_message_bytes(10), "max_message_bytes");
        rejects(ok.clone().with_partitions(0), "partitions 0");
        rejects(ok.clone().with_partitions(-1), "partitions -1");
        rejects(ok.clone().with_partitions(MAX_PARTITIONS + 1), "at most");
        assert!(ok.clone().with_partitions(1).validate().is_ok());
        assert!(ok
            .with_layout(Layout::PerId)
            .with_partitions(MAX_PARTITIONS)
            .validate()
            .is_ok());
    }
}

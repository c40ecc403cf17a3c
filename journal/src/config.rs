//! [`JournalConfig`]: a builder, and `serde::Deserialize` for file-based configuration.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use kafka_persistence_wire::Layout;

use crate::event_topic::{DefaultEventTopicMapper, EventTopicMapper};

/// The most partitions layout v2 accepts (far more than any cluster wants for one topic).
const MAX_PARTITIONS: i32 = 10_000;

/// Configuration of a [`crate::Journal`].
///
/// ```
/// use std::time::Duration;
/// use kafka_persistence_journal::JournalConfig;
/// let config = JournalConfig::new("127.0.0.1:9092")
///     .with_topic_prefix("journal-")
///     .with_retention_ms(-1)
///     .with_timeout(Duration::from_secs(5));
/// assert_eq!(config.timeout(), Duration::from_secs(5));
/// let from_json: JournalConfig = serde_json::from_str(
///     r#"{"bootstrap_servers": "k1:9092", "timeout_ms": 2000}"#).unwrap();
/// assert_eq!(from_json.timeout(), Duration::from_secs(2));
/// ```
#[derive(Clone, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct JournalConfig {
    /// `host:port[,host:port]` of the Kafka brokers.
    pub bootstrap_servers: String,
    /// Prefix of every journal topic (default `journal-`).
    pub topic_prefix: String,
    /// `retention.ms` of created journal topics (default -1: keep forever).
    pub retention_ms: i64,
    /// Replication factor of created topics (default 1; use 3 in production).
    pub replication_factor: i16,
    /// `max.message.bytes` set on created journal topics; `None` keeps the broker default
    /// (then it is read once per topic with DescribeConfigs).
    pub max_message_bytes: Option<i32>,
    /// Bound of every journal call in milliseconds (default 10,000).
    pub timeout_ms: u64,
    /// Partitions of event topics the journal creates (default 1).
    pub event_topic_partitions: i32,
    /// Serializer id written into published `Event`s (`EventDataFormat.serializerId`);
    /// `None` leaves the field out.
    pub event_serializer_id: Option<i32>,
    /// Raw Kafka-style client properties, passed to the client.
    pub client_properties: BTreeMap<String, String>,
    /// How many persistence ids the journal keeps its verified state of (default 100,000).
    /// Beyond that, the least recently used ids with nothing in flight are forgotten; their
    /// next use reads their log again (as after a restart). Minimum 1.
    pub max_cached_ids: usize,
    /// The topic layout: `shared` (v2, the default: a fixed set of topics for any number of
    /// ids) or `per-id` (v1: one topic per id, for existing data).
    pub layout: Layout,
    /// Layout v2: partitions of the shared journal topic and of its index topic (default 16).
    /// Fixed when the topics are created; `connect` refuses existing topics with another
    /// count. An id lives in partition `murmur2(utf8(id)) mod partitions`.
    pub partitions: i32,
    /// Layout v2: how often the index records of changed ids and a checkpoint are written
    /// (milliseconds, default 1,000). The index is a cache of the journal topic: a lagging
    /// index only makes the next `connect` read more of the journal's tail.
    pub index_flush_interval_ms: u64,
    /// Maps each event to user topics (not configurable from a file).
    #[serde(skip)]
    pub(crate) event_topic_mapper: MapperHandle,
}

/// A shared handle on an [`EventTopicMapper`], with a `Debug` that names it only.
#[derive(Clone)]
pub(crate) struct MapperHandle(pub(crate) Arc<dyn EventTopicMapper>);

impl Default for MapperHandle {
    fn default() -> Self {
        MapperHandle(Arc::new(DefaultEventTopicMapper))
    }
}

impl fmt::Debug for MapperHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventTopicMapper")
    }
}

impl fmt::Debug for JournalConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournalConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("topic_prefix", &self.topic_prefix)
            .field("retention_ms", &self.retention_ms)
            .field("replication_factor", &self.replication_factor)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("timeout_ms", &self.timeout_ms)
            .field("event_topic_partitions", &self.event_topic_partitions)
            .field("event_serializer_id", &self.event_serializer_id)
            .field(
                "client_properties",
                &kafka_persistence_wire::security::RedactedProperties(&self.client_properties),
            )
            .field("max_cached_ids", &self.max_cached_ids)
            .field("layout", &self.layout)
            .field("partitions", &self.partitions)
            .field("index_flush_interval_ms", &self.index_flush_interval_ms)
            .field("event_topic_mapper", &self.event_topic_mapper)
            .finish()
    }
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            topic_prefix: "journal-".into(),
            retention_ms: -1,
            replication_factor: 1,
            max_message_bytes: None,
            timeout_ms: 10_000,
            event_topic_partitions: 1,
            event_serializer_id: None,
            client_properties: BTreeMap::new(),
            max_cached_ids: 100_000,
            layout: Layout::Shared,
            partitions: 16,
            index_flush_interval_ms: 1_000,
            event_topic_mapper: MapperHandle::default(),
        }
    }
}

impl JournalConfig {
    /// Checks the settings that would otherwise fail later, at the first write or with a less
    /// clear broker error; [`crate::Journal::connect`] calls it.
    ///
    /// ```
    /// use kafka_persistence_journal::JournalConfig;
    /// assert!(JournalConfig::new("k:9092").validate().is_ok());
    /// assert!(JournalConfig::new("k:9092").with_topic_prefix("a/b").validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), crate::JournalError> {
        let bad = |m: String| Err(crate::JournalError::Config(m));
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
        if self.event_topic_partitions == 0 || self.event_topic_partitions < -1 {
            return bad(format!(
                "event_topic_partitions {} (at least 1, or -1 for the broker's default)",
                self.event_topic_partitions
            ));
        }
        if self.timeout_ms == 0 {
            return bad("timeout_ms is 0".into());
        }
        if self.max_cached_ids == 0 {
            return bad("max_cached_ids must be at least 1".into());
        }
        if self.layout == Layout::Shared {
            if !(1..=MAX_PARTITIONS).contains(&self.partitions) {
                return bad(format!(
                    "partitions {} (layout v2 needs 1 to {MAX_PARTITIONS})",
                    self.partitions
                ));
            }
            if self.index_flush_interval_ms == 0 {
                return bad("index_flush_interval_ms is 0".into());
            }
        }
        Ok(())
    }

    /// Sets the topic layout (see [`JournalConfig::layout`]).
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Sets the partition count of layout v2's topics (see [`JournalConfig::partitions`]).
    pub fn with_partitions(mut self, partitions: i32) -> Self {
        self.partitions = partitions;
        self
    }

    /// Sets how often layout v2 writes its index (see
    /// [`JournalConfig::index_flush_interval_ms`]).
    pub fn with_index_flush_interval(mut self, interval: Duration) -> Self {
        self.index_flush_interval_ms = u64::try_from(interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self
    }

    /// Layout v2's journal topic: `<topic_prefix>v2.journal` (a `.` never occurs in a layout v1
    /// topic name, so the two layouts can share a prefix and a cluster).
    pub fn shared_journal_topic(&self) -> String {
        format!("{}v2.journal", self.topic_prefix)
    }

    /// Layout v2's compacted index topic: `<topic_prefix>v2.index`.
    pub fn shared_index_topic(&self) -> String {
        format!("{}v2.index", self.topic_prefix)
    }

    /// Defaults with the given bootstrap servers.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        JournalConfig {
            bootstrap_servers: bootstrap_servers.into(),
            ..JournalConfig::default()
        }
    }

    /// Sets the journal topic prefix.
    pub fn with_topic_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.topic_prefix = prefix.into();
        self
    }

    /// Sets `retention.ms` of created journal topics (-1 = forever).
    pub fn with_retention_ms(mut self, retention_ms: i64) -> Self {
        self.retention_ms = retention_ms;
        self
    }

    /// Sets the replication factor of created topics.
    pub fn with_replication_factor(mut self, replication_factor: i16) -> Self {
        self.replication_factor = replication_factor;
        self
    }

    /// Sets `max.message.bytes` of created journal topics.
    pub fn with_max_message_bytes(mut self, bytes: i32) -> Self {
        self.max_message_bytes = Some(bytes);
        self
    }

    /// Bounds every journal call (connect, write, replay step, highest, delete).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self
    }

    /// Sets the partition count of event topics the journal creates.
    pub fn with_event_topic_partitions(mut self, partitions: i32) -> Self {
        self.event_topic_partitions = partitions;
        self
    }

    /// Sets the serializer id written into published events.
    pub fn with_event_serializer_id(mut self, id: i32) -> Self {
        self.event_serializer_id = Some(id);
        self
    }

    /// Bounds the per-id state the journal keeps (see [`JournalConfig::max_cached_ids`]).
    pub fn with_max_cached_ids(mut self, ids: usize) -> Self {
        self.max_cached_ids = ids;
        self
    }

    /// Adds a raw Kafka-style client property.
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.client_properties.insert(key.into(), value.into());
        self
    }

    /// Routes every written event to the topics `mapper` names (default: `events`).
    pub fn with_event_topic_mapper(mut self, mapper: impl EventTopicMapper + 'static) -> Self {
        self.event_topic_mapper = MapperHandle(Arc::new(mapper));
        self
    }

    /// The bound of every journal call.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }

    pub(crate) fn mapper(&self) -> Arc<dyn EventTopicMapper> {
        Arc::clone(&self.event_topic_mapper.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejects(config: JournalConfig, what: &str) {
        match config.validate() {
            Err(crate::JournalError::Config(m)) => assert!(m.contains(what), "{m}"),
            other => panic!("{what}: {other:?}"),
        }
    }

    #[test]
    fn debug_hides_secret_client_properties() {
        let c = JournalConfig::new("k:9092")
            .with_property("sasl.password", "pw-SECRET")
            .with_property("sasl.username", "alice");
        let shown = format!("{c:?}");
        assert!(!shown.contains("pw-SECRET"), "{shown}");
        assert!(shown.contains("alice"), "{shown}");
    }

    #[test]
    fn invalid_settings_are_named() {
        let ok = JournalConfig::new("k:9092");
        assert!(ok.validate().is_ok());
        assert!(ok.clone().with_replication_factor(-1).validate().is_ok());
        rejects(JournalConfig::new(" "), "bootstrap_servers");
        rejects(ok.clone().with_topic_prefix(""), "topic_prefix");
        rejects(ok.clone().with_topic_prefix("j/"), "'/'");
        rejects(ok.clone().with_topic_prefix("x".repeat(201)), "at most 200");
        rejects(ok.clone().with_replication_factor(0), "replication_factor");
        rejects(ok.clone().with_replication_factor(-2), "replication_factor");
        rejects(
            ok.clone().with_event_topic_partitions(0),
            "event_topic_partitions",
        );
        rejects(ok.clone().with_max_message_bytes(100), "max_message_bytes");
        rejects(ok.clone().with_max_cached_ids(0), "max_cached_ids");
        rejects(ok.clone().with_partitions(0), "partitions");
        rejects(ok.clone().with_partitions(10_001), "partitions");
        assert!(ok
            .clone()
            .with_layout(Layout::PerId)
            .with_partitions(0)
            .validate()
            .is_ok());
        let v1: JournalConfig =
            serde_json::from_str(r#"{"layout": "per-id", "partitions": 4}"#).expect("parses");
        assert_eq!((v1.layout, v1.partitions), (Layout::PerId, 4));
        assert_eq!(ok.shared_journal_topic(), "journal-v2.journal");
        assert_eq!(ok.shared_index_topic(), "journal-v2.index");
        let zero: JournalConfig = serde_json::from_str(r#"{"timeout_ms": 0}"#).expect("parses");
        rejects(zero, "timeout_ms");
    }
}

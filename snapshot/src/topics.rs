//! Snapshot topics: how they are created (always compacted) and what a store learns from
//! their configuration (the message size limit that decides chunking).

use kafka_persistence_wire::{Client, NewTopic};
use tracing::debug;

use crate::config::SnapshotConfig;
use crate::error::SnapshotError;

/// Kafka's broker default of `message.max.bytes`, used when a topic does not say.
pub(crate) const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;
/// Bytes left free in a record batch for the batch header, record framing and key.
pub(crate) const BATCH_HEADROOM: usize = 1024;
/// Upper bound of one chunk, whatever the topic allows (keeps fetches and frames moderate).
pub(crate) const MAX_CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Payloads up to this size are stored inside the index record.
pub(crate) const INLINE_PAYLOAD_MAX: usize = 1024;
/// Room reserved in an index record for its fixed fields and protobuf framing.
const INDEX_RECORD_OVERHEAD: usize = 256;

/// What a save needs to know about a snapshot topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TopicLimits {
    /// The topic's `max.message.bytes`.
    pub(crate) max_message_bytes: usize,
}

impl TopicLimits {
    /// Bytes of payload per chunk record.
    pub(crate) fn chunk_size(&self) -> usize {
        self.max_message_bytes
            .saturating_sub(BATCH_HEADROOM)
            .clamp(1, MAX_CHUNK_BYTES)
    }

    fn index_budget(&self) -> usize {
        self.max_message_bytes.saturating_sub(BATCH_HEADROOM)
    }

    /// Refuses metadata that cannot fit one index record (`key_len` = its key's length, the
    /// persistence id is in the value too).
    pub(crate) fn check_metadata(
        &self,
        persistence_id: &str,
        key_len: usize,
        metadata_len: usize,
    ) -> Result<(), SnapshotError> {
        let need = metadata_len
            .saturating_add(persistence_id.len())
            .saturating_add(key_len)
            .saturating_add(INDEX_RECORD_OVERHEAD);
        if need > self.index_budget() {
            return Err(SnapshotError::InvalidArgument(format!(
                "snapshot metadata of {metadata_len} bytes does not fit the topic's max.message.bytes {}",
                self.max_message_bytes
            )));
        }
        Ok(())
    }

    /// Whether a payload is stored inside the index record rather than in chunks.
    pub(crate) fn inline(
        &self,
        payload_len: usize,
        persistence_id: &str,
        key_len: usize,
        metadata_len: usize,
    ) -> bool {
        payload_len <= INLINE_PAYLOAD_MAX
            && payload_len
                .saturating_add(metadata_len)
                .saturating_add(persistence_id.len())
                .saturating_add(key_len)
                .saturating_add(INDEX_RECORD_OVERHEAD)
                <= self.index_budget()
    }
}

/// The topic to create: compacted (whatever `topic_configs` says), with the configured
/// replication factor, `max.message.bytes` and further configs.
pub(crate) fn new_topic(config: &SnapshotConfig, name: &str, partitions: i32) -> NewTopic {
    let mut new = NewTopic::new(name, partitions, config.replication_factor)
        .with_config("cleanup.policy", "compact");
    if let Some(bytes) = config.max_message_bytes {
        new = new.with_config("max.message.bytes", bytes.to_string());
    }
    for (k, v) in &config.topic_configs {
        if k != "cleanup.policy" {
            new = new.with_config(k.clone(), v.clone());
        }
    }
    new
}

/// A topic's configuration as far as the store cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicSettings {
    /// `cleanup.policy`, if the broker reported it.
    pub(crate) cleanup_policy: Option<String>,
    /// The message size limit.
    pub(crate) limits: TopicLimits,
}

impl TopicSettings {
    /// Whether `cleanup.policy` includes `compact` (a missing value counts as compacted:
    /// brokers that do not report it cannot be checked).
    pub(crate) fn compacted(&self) -> bool {
        self.cleanup_policy
            .as_deref()
            .is_none_or(|p| p.split(',').any(|x| x.trim() == "compact"))
    }
}

/// Reads a topic's settings with DescribeConfigs.
pub(crate) async fn describe(client: &Client, topic: &str) -> Result<TopicSettings, SnapshotError> {
    let configs = client.describe_topic_config(topic).await?;
    let max_message_bytes = match configs
        .get("max.message.bytes")
        .map(|v| v.trim().parse::<usize>())
    {
        Some(Ok(n)) if n > 0 => n,
        other => {
            debug!(topic, value = ?other, reason = "max.message.bytes missing or invalid", "assuming the broker default");
            DEFAULT_MAX_MESSAGE_BYTES
        }
    };
    Ok(TopicSettings {
        cleanup_policy: configs.get("cleanup.policy").cloned(),
        limits: TopicLimits { max_message_bytes },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_leaves_headroom_and_is_bounded() {
        let t = |max| TopicLimits {
            max_message_bytes: max,
        };
        assert_eq!(
            t(DEFAULT_MAX_MESSAGE_BYTES).chunk_size(),
            DEFAULT_MAX_MESSAGE_BYTES - BATCH_HEADROOM
        );
        assert_eq!(t(100 * 1024 * 1024).chunk_size(), MAX_CHUNK_BYTES);
        assert_eq!(t(10).chunk_size(), 1);
    }

    #[test]
    fn inline_up_to_one_kib_when_it_fits() {
        let t = TopicLimits {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        };
        assert!(t.inline(INLINE_PAYLOAD_MAX, "p", 8, 0));
        assert!(!t.inline(INLINE_PAYLOAD_MAX + 1, "p", 8, 0));
        let small = TopicLimits {
            max_message_bytes: 2048,
        };
        assert!(!small.inline(1000, "p", 8, 0));
        assert!(small.check_metadata("p", 8, 500).is_ok());
        assert!(small.check_metadata("p", 8, 1000).is_err());
    }

    #[test]
    fn compaction_is_read_from_the_policy_list() {
        let s = |p: Option<&str>| TopicSettings {
            cleanup_policy: p.map(str::to_owned),
            limits: TopicLimits {
                max_message_bytes: 1,
            },
        };
        assert!(s(Some("compact")).compacted());
        assert!(s(Some("compact,delete")).compacted());
        assert!(s(Some("delete, compact")).compacted());
        assert!(s(None).compacted());
        assert!(!s(Some("delete")).compacted());
    }
}

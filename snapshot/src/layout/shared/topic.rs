//! Layout v2's topic at connect: created if missing (2 × P partitions, compacted), checked
//! if present. A topic that does not fit is refused, naming what was expected and found:
//! P is fixed at creation (ids are placed by `murmur2 mod P`), and a topic that is not
//! compacted would lose snapshots to retention and keep every overwritten one.

use kafka_persistence_wire::Client;
use tracing::{info, warn};

use crate::config::SnapshotConfig;
use crate::error::SnapshotError;
use crate::topics::{self, TopicLimits, TopicSettings};

/// Creates or checks the v2 topic `topic` for `partitions` (P) and returns its limits.
pub(crate) async fn ensure(
    client: &Client,
    config: &SnapshotConfig,
    topic: &str,
    partitions: i32,
) -> Result<TopicLimits, SnapshotError> {
    let expected = partitions.saturating_mul(2);
    let md = match client.topic_metadata(topic).await? {
        Some(md) => md,
        None => {
            info!(topic, partitions = expected, "creating the snapshot topic");
            client
                .create_topics(vec![topics::new_topic(config, topic, expected)])
                .await?;
            client
                .topic_metadata(topic)
                .await?
                .ok_or_else(|| SnapshotError::Topic {
                    topic: topic.to_owned(),
                    reason: "not in the metadata after it was created".into(),
                })?
        }
    };
    let settings = topics::describe(client, topic).await?;
    check(topic, partitions, md.partitions.len(), &settings)?;
    if settings
        .cleanup_policy
        .as_deref()
        .is_some_and(|p| p.contains("delete"))
    {
        warn!(topic, policy = ?settings.cleanup_policy, "snapshot topic is also subject to retention: snapshots older than retention.ms may be removed");
    }
    Ok(settings.limits)
}

/// Why an existing topic does not fit layout v2 with `partitions` (P), or `Ok`.
pub(crate) fn check(
    topic: &str,
    partitions: i32,
    found_partitions: usize,
    settings: &TopicSettings,
) -> Result<(), SnapshotError> {
    let expected = i64::from(partitions) * 2;
    if i64::try_from(found_partitions).ok() != Some(expected) {
        return Err(SnapshotError::Topic {
            topic: topic.to_owned(),
            reason: format!(
                "it has {found_partitions} partitions, expected {expected} (2 × partitions = 2 × {partitions}); \
                 the partition count is fixed when the topic is created, so configure partitions = {}",
                if found_partitions.is_multiple_of(2) && found_partitions > 0 {
                    format!("{} to use it", found_partitions / 2)
                } else {
                    "half of an even partition count (this one cannot be used)".to_owned()
                }
            ),
        });
    }
    if !settings.compacted() {
        return Err(SnapshotError::Topic {
            topic: topic.to_owned(),
            reason: format!(
                "cleanup.policy is {:?}, expected \"compact\"",
                settings.cleanup_policy.as_deref().unwrap_or("")
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(policy: &str) -> TopicSettings {
        TopicSettings {
            cleanup_policy: Some(policy.to_owned()),
            limits: TopicLimits {
                max_message_bytes: 1 << 20,
            },
        }
    }

    #[test]
    fn wrong_partition_counts_and_policies_are_named() {
        assert!(check("t", 16, 32, &settings("compact")).is_ok());
        let e = check("t", 16, 8, &settings("compact")).map_err(|e| e.to_string());
        let e = e.err().unwrap_or_default();
        assert!(
            e.contains("`t`") && e.contains("has 8 partitions") && e.contains("expected 32"),
            "{e}"
        );
        assert!(e.contains("partitions = 4"), "{e}");
        let e = check("t", 2, 3, &settings("compact")).map_err(|e| e.to_string());
        assert!(e.err().unwrap_or_default().contains("cannot be used"));
        let e = check("t", 16, 32, &settings("delete")).map_err(|e| e.to_string());
        let e = e.err().unwrap_or_default();
        assert!(
            e.contains("cleanup.policy is \"delete\", expected \"compact\""),
            "{e}"
        );
    }
}

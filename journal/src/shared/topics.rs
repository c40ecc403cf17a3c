//! Layout v2's topics: created at `connect` when missing, checked when they exist (partition
//! count, cleanup policy), with an error that names the topic and what does not fit.

use kafka_persistence_wire::{Client, NewTopic};

use crate::chunk::DEFAULT_MAX_MESSAGE_BYTES;
use crate::config::JournalConfig;
use crate::error::JournalError;

/// What a topic must look like.
struct Want<'a> {
    name: &'a str,
    policy: &'static str,
    configs: Vec<(String, String)>,
}

/// Creates or checks the journal and index topics; returns the journal topic's
/// `max.message.bytes` (the configured limit if lower).
pub(crate) async fn ensure(
    client: &Client,
    config: &JournalConfig,
    journal_topic: &str,
    index_topic: &str,
) -> Result<usize, JournalError> {
    let mut journal_configs = vec![("retention.ms".to_string(), config.retention_ms.to_string())];
    if let Some(m) = config.max_message_bytes {
        journal_configs.push(("max.message.bytes".to_string(), m.to_string()));
    }
    let wants = [
        Want {
            name: journal_topic,
            policy: "delete",
            configs: journal_configs,
        },
        Want {
            name: index_topic,
            policy: "compact",
            configs: Vec::new(),
        },
    ];
    let mut create = Vec::new();
    for w in &wants {
        if client.topic_metadata(w.name).await?.is_none() {
            let mut t = NewTopic::new(w.name, config.partitions, config.replication_factor)
                .with_config("cleanup.policy", w.policy);
            for (k, v) in &w.configs {
                t = t.with_config(k.as_str(), v.as_str());
            }
            create.push(t);
        }
    }
    if !create.is_empty() {
        tracing::info!(
            topics = create.len(),
            reason = "layout v2 topics missing",
            "creating journal topics"
        );
        client
            .create_topics(create)
            .await
            .map_err(|e| JournalError::TopicCreation(e.to_string()))?;
    }
    let mut limit = DEFAULT_MAX_MESSAGE_BYTES;
    for w in &wants {
        let Some(meta) = client.topic_metadata(w.name).await? else {
            return Err(JournalError::TopicCreation(format!(
                "topic {} does not exist after creating it",
                w.name
            )));
        };
        let found = meta.partitions.len();
        if i32::try_from(found).ok() != Some(config.partitions) {
            return Err(JournalError::Config(format!(
                "topic {} has {found} partitions, but this journal is configured with {} \
                 (`partitions`; an id's partition is murmur2(id) mod partitions, so the count \
                 cannot change once ids are written)",
                w.name, config.partitions
            )));
        }
        let described = client.describe_topic_config(w.name).await?;
        let policy = described
            .get("cleanup.policy")
            .map(String::as_str)
            .unwrap_or("delete");
        let policies: Vec<&str> = policy.split(',').map(str::trim).collect();
        let fits = match w.policy {
            "compact" => policies.contains(&"compact"),
            _ => !policies.contains(&"compact"),
        };
        if !fits {
            return Err(JournalError::Config(format!(
                "topic {} has cleanup.policy={policy}, but layout v2 needs cleanup.policy={} there",
                w.name, w.policy
            )));
        }
        if w.name == journal_topic {
            if let Some(m) = described
                .get("max.message.bytes")
                .and_then(|v| v.trim().parse::<usize>().ok())
            {
                limit = m;
            }
        }
    }
    if let Some(c) = config
        .max_message_bytes
        .and_then(|m| usize::try_from(m).ok())
    {
        limit = limit.min(c);
    }
    Ok(limit)
}

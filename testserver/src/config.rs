//! Topic configuration: the keys Kafka knows, their defaults, and the few this broker acts on.

use std::collections::BTreeMap;

/// Default `cleanup.policy`.
pub(crate) const DEFAULT_CLEANUP_POLICY: &str = "delete";
/// Default `retention.ms` (7 days).
pub(crate) const DEFAULT_RETENTION_MS: &str = "604800000";
/// Default `delete.retention.ms` (1 day): how long compaction keeps tombstones.
pub(crate) const DEFAULT_DELETE_RETENTION_MS: i64 = 86_400_000;

/// Topic-level config names Kafka accepts, with their defaults (`max.message.bytes` is
/// filled from the broker default at run time). Anything else is INVALID_CONFIG, as in Kafka.
const TOPIC_CONFIG_DEFAULTS: &[(&str, &str)] = &[
    ("cleanup.policy", DEFAULT_CLEANUP_POLICY),
    ("compression.type", "producer"),
    ("delete.retention.ms", "86400000"),
    ("file.delete.delay.ms", "60000"),
    ("flush.messages", "9223372036854775807"),
    ("flush.ms", "9223372036854775807"),
    ("follower.replication.throttled.replicas", ""),
    ("index.interval.bytes", "4096"),
    ("leader.replication.throttled.replicas", ""),
    ("local.retention.bytes", "-2"),
    ("local.retention.ms", "-2"),
    ("max.compaction.lag.ms", "9223372036854775807"),
    ("max.message.bytes", ""),
    ("message.downconversion.enable", "true"),
    ("message.format.version", "3.0-IV1"),
    ("message.timestamp.after.max.ms", "9223372036854775807"),
    ("message.timestamp.before.max.ms", "9223372036854775807"),
    ("message.timestamp.difference.max.ms", "9223372036854775807"),
    ("message.timestamp.type", "CreateTime"),
    ("min.cleanable.dirty.ratio", "0.5"),
    ("min.compaction.lag.ms", "0"),
    ("min.insync.replicas", "1"),
    ("preallocate", "false"),
    ("remote.storage.enable", "false"),
    ("retention.bytes", "-1"),
    ("retention.ms", DEFAULT_RETENTION_MS),
    ("segment.bytes", "1073741824"),
    ("segment.index.bytes", "10485760"),
    ("segment.jitter.ms", "0"),
    ("segment.ms", "604800000"),
    ("unclean.leader.election.enable", "false"),
];

/// The configuration of one topic: explicit overrides plus the values the broker acts on.
#[derive(Debug, Clone)]
pub(crate) struct TopicConfig {
    /// Configs given at creation (the `DYNAMIC_TOPIC_CONFIG` source).
    pub(crate) overrides: BTreeMap<String, String>,
    /// `max.message.bytes`: largest record batch accepted.
    pub(crate) max_message_bytes: usize,
    /// `cleanup.policy` contains `compact`.
    pub(crate) compact: bool,
    /// `message.timestamp.type=LogAppendTime`.
    pub(crate) log_append_time: bool,
    /// `delete.retention.ms`: tombstones younger than this survive compaction.
    pub(crate) delete_retention_ms: i64,
}

/// Why a config was refused (INVALID_CONFIG).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError(pub(crate) String);

impl TopicConfig {
    /// Validates `pairs` and builds the config; `default_max_message_bytes` is the broker's.
    pub(crate) fn new(
        pairs: impl IntoIterator<Item = (String, String)>,
        default_max_message_bytes: usize,
    ) -> Result<TopicConfig, ConfigError> {
        let mut cfg = TopicConfig {
            overrides: BTreeMap::new(),
            max_message_bytes: default_max_message_bytes,
            compact: false,
            log_append_time: false,
            delete_retention_ms: DEFAULT_DELETE_RETENTION_MS,
        };
        for (key, value) in pairs {
            if !TOPIC_CONFIG_DEFAULTS.iter().any(|(k, _)| *k == key) {
                return Err(ConfigError(format!("unknown topic config name: {key}")));
            }
            match key.as_str() {
                "max.message.bytes" => {
                    cfg.max_message_bytes =
                        value.trim().parse::<u32>().map_err(|_| {
                            ConfigError(format!("invalid max.message.bytes: {value}"))
                        })? as usize;
                }
                "cleanup.policy" => {
                    let mut compact = false;
                    for part in value.split(',').map(str::trim) {
                        match part {
                            "compact" => compact = true,
                            "delete" => {}
                            _ => {
                                return Err(ConfigError(format!("invalid cleanup.policy: {value}")))
                            }
                        }
                    }
                    cfg.compact = compact;
                }
                "message.timestamp.type" => match value.as_str() {
                    "CreateTime" => cfg.log_append_time = false,
                    "LogAppendTime" => cfg.log_append_time = true,
                    _ => {
                        return Err(ConfigError(format!(
                            "invalid message.timestamp.type: {value}"
                        )))
                    }
                },
                "delete.retention.ms" => {
                    cfg.delete_retention_ms = value.trim().parse::<i64>().map_err(|_| {
                        ConfigError(format!("invalid delete.retention.ms: {value}"))
                    })?;
                }
                "retention.ms" | "retention.bytes" | "segment.ms" | "min.compaction.lag.ms" => {
                    let n = value
                        .trim()
                        .parse::<i64>()
                        .map_err(|_| ConfigError(format!("invalid {key}: {value}")))?;
                    if n < -1 {
                        return Err(ConfigError(format!("invalid {key}: {value}")));
                    }
                }
                _ => {}
            }
            cfg.overrides.insert(key, value);
        }
        Ok(cfg)
    }

    /// Every topic config with its value and whether it is a default, in name order.
    pub(crate) fn describe(&self) -> Vec<(&'static str, String, bool)> {
        TOPIC_CONFIG_DEFAULTS
            .iter()
            .map(|(k, default)| match self.overrides.get(*k) {
                Some(v) => (*k, v.clone(), false),
                None if *k == "max.message.bytes" => (*k, self.max_message_bytes.to_string(), true),
                None => (*k, (*default).to_string(), true),
            })
            .collect()
    }
}

/// Kafka's topic name rule: 1..=249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub(crate) fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be '{name}'"));
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name is longer than 249 characters ({})",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '_' || *c == '-'))
    {
        return Err(format!("topic name contains an illegal character {c:?}"));
    }
    Ok(())
}

/// Kafka refuses topics whose names differ only by `.` versus `_` (metric names collide).
pub(crate) fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_topic_name("a.b_c-D9").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a/b").is_err());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
        assert_eq!(collision_key("a.b"), collision_key("a_b"));
    }

    #[test]
    fn configs() {
        let c = TopicConfig::new(
            [
                ("cleanup.policy".to_string(), "compact,delete".to_string()),
                ("max.message.bytes".to_string(), "2000".to_string()),
            ],
            1_048_588,
        )
        .unwrap();
        assert!(c.compact);
        assert_eq!(c.max_message_bytes, 2000);
        assert!(TopicConfig::new([("nope".to_string(), "1".to_string())], 10).is_err());
        assert!(TopicConfig::new([("cleanup.policy".to_string(), "x".to_string())], 10).is_err());
        let d = TopicConfig::new([], 77).unwrap().describe();
        assert!(d.contains(&("max.message.bytes", "77".to_string(), true)));
        assert!(d.contains(&("cleanup.policy", "delete".to_string(), true)));
    }
}

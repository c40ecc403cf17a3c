//! [`ConsumerConfig`]: a builder, and `serde::Deserialize` under the Java client's property
//! names.

use std::time::Duration;

use serde::Deserialize;

use super::assignor::Assignor;
use crate::fetch::IsolationLevel;

/// Where a partition without a committed offset starts (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// The log start offset.
    Earliest,
    /// The high watermark: only records produced from now on (the Java default).
    #[default]
    Latest,
    /// No reset: `poll` fails with [`Error::NoOffset`](crate::Error::NoOffset).
    None,
}

/// The group membership protocol (`group.protocol`, as in the Java client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup/Heartbeat with client-side assignors (the default).
    #[default]
    Classic,
    /// ConsumerGroupHeartbeat with the broker assigning (KIP-848, Apache Kafka 4.x).
    Consumer,
}

/// Configuration of a [`Consumer`](super::Consumer).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerConfig {
    /// `group.id`: needed for `subscribe` and for committing.
    #[serde(rename = "group.id")]
    pub(crate) group_id: Option<String>,
    /// `group.instance.id`: static membership (KIP-345).
    #[serde(rename = "group.instance.id")]
    pub(crate) instance_id: Option<String>,
    /// `session.timeout.ms` (default 45 s).
    #[serde(rename = "session.timeout.ms", with = "millis")]
    pub(crate) session_timeout: Duration,
    /// `heartbeat.interval.ms` (default 3 s).
    #[serde(rename = "heartbeat.interval.ms", with = "millis")]
    pub(crate) heartbeat_interval: Duration,
    /// `max.poll.interval.ms` (default 5 min): also the rebalance timeout.
    #[serde(rename = "max.poll.interval.ms", with = "millis")]
    pub(crate) max_poll_interval: Duration,
    /// `auto.offset.reset` (default latest).
    #[serde(rename = "auto.offset.reset")]
    pub(crate) auto_offset_reset: OffsetReset,
    /// `enable.auto.commit` (default **false**: commits are explicit).
    #[serde(rename = "enable.auto.commit")]
    pub(crate) enable_auto_commit: bool,
    /// `auto.commit.interval.ms` (default 5 s).
    #[serde(rename = "auto.commit.interval.ms", with = "millis")]
    pub(crate) auto_commit_interval: Duration,
    /// `partition.assignment.strategy` in preference order (default range, cooperative-sticky).
    #[serde(skip)]
    pub(crate) assignors: Vec<Assignor>,
    /// `fetch.max.wait.ms`: the long-poll wait of one fetch (default 100 ms).
    #[serde(rename = "fetch.max.wait.ms", with = "millis")]
    pub(crate) fetch_max_wait: Duration,
    /// `max.partition.fetch.bytes` (default 1 MiB).
    #[serde(rename = "max.partition.fetch.bytes")]
    pub(crate) max_partition_fetch_bytes: i32,
    /// `isolation.level` (default read_uncommitted).
    #[serde(skip)]
    pub(crate) isolation: IsolationLevel,
    /// `max.poll.records`: the most records one `poll` returns (default 500).
    #[serde(rename = "max.poll.records")]
    pub(crate) max_poll_records: usize,
    /// `group.protocol` (default classic).
    #[serde(rename = "group.protocol")]
    pub(crate) group_protocol: GroupProtocol,
    /// `group.remote.assignor`: the broker-side assignor the consumer protocol asks for
    /// (default: the broker's choice).
    #[serde(rename = "group.remote.assignor")]
    pub(crate) remote_assignor: Option<String>,
    /// `metadata.max.age.ms`: how often a regex subscription of the classic protocol looks
    /// for new or deleted matching topics (default 5 min).
    #[serde(rename = "metadata.max.age.ms", with = "millis")]
    pub(crate) metadata_max_age: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            group_id: None,
            instance_id: None,
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            max_poll_interval: Duration::from_secs(300),
            auto_offset_reset: OffsetReset::Latest,
            enable_auto_commit: false,
            auto_commit_interval: Duration::from_secs(5),
            assignors: vec![Assignor::Range, Assignor::CooperativeSticky],
            fetch_max_wait: Duration::from_millis(100),
            max_partition_fetch_bytes: 1024 * 1024,
            isolation: IsolationLevel::ReadUncommitted,
            max_poll_records: 500,
            group_protocol: GroupProtocol::Classic,
            remote_assignor: None,
            metadata_max_age: Duration::from_secs(300),
        }
    }
}

impl ConsumerConfig {
    /// A configuration for consumer group `group_id`, defaults otherwise.
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerConfig {
            group_id: Some(group_id.into()),
            ..Default::default()
        }
    }

    /// Sets `group.instance.id` (static membership).
    pub fn with_instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// Sets the session timeout (default 45 s).
    pub fn with_session_timeout(mut self, d: Duration) -> Self {
        self.session_timeout = d;
        self
    }

    /// Sets the heartbeat interval (default 3 s).
    pub fn with_heartbeat_interval(mut self, d: Duration) -> Self {
        self.heartbeat_interval = d;
        self
    }

    /// Sets the longest time between two polls before the member leaves (default 5 min).
    pub fn with_max_poll_interval(mut self, d: Duration) -> Self {
        self.max_poll_interval = d;
        self
    }

    /// Sets `auto.offset.reset`.
    pub fn with_auto_offset_reset(mut self, r: OffsetReset) -> Self {
        self.auto_offset_reset = r;
        self
    }

    /// Turns auto-commit of the positions on `poll` on (default off) with its interval.
    pub fn with_auto_commit(mut self, on: bool, interval: Duration) -> Self {
        self.enable_auto_commit = on;
        self.auto_commit_interval = interval;
        self
    }

    /// Sets the assignors in preference order (the coordinator picks the first all support).
    pub fn with_assignors(mut self, a: Vec<Assignor>) -> Self {
        self.assignors = a;
        self
    }

    /// Sets the long-poll wait of one fetch.
    pub fn with_fetch_max_wait(mut self, d: Duration) -> Self {
        self.fetch_max_wait = d;
        self
    }

    /// Sets `max.partition.fetch.bytes`: the most record bytes one fetch returns per
    /// partition (default 1 MiB; a first record batch larger than this is still returned
    /// whole, as Kafka does, so that the consumer makes progress).
    pub fn with_max_partition_fetch_bytes(mut self, bytes: i32) -> Self {
        self.max_partition_fetch_bytes = bytes;
        self
    }

    /// Sets the isolation level.
    pub fn with_isolation(mut self, i: IsolationLevel) -> Self {
        self.isolation = i;
        self
    }

    /// Sets the most records one `poll` returns (default 500).
    pub fn with_max_poll_records(mut self, n: usize) -> Self {
        self.max_poll_records = n;
        self
    }

    /// Sets `group.protocol`. With [`GroupProtocol::Consumer`] the broker assigns and sets
    /// the session timeout and heartbeat interval: `session.timeout.ms`,
    /// `heartbeat.interval.ms` and the assignors are not used.
    pub fn with_group_protocol(mut self, p: GroupProtocol) -> Self {
        self.group_protocol = p;
        self
    }

    /// Sets `group.remote.assignor` (the consumer protocol's broker-side assignor, e.g.
    /// `uniform` or `range`).
    pub fn with_remote_assignor(mut self, name: impl Into<String>) -> Self {
        self.remote_assignor = Some(name.into());
        self
    }

    /// Sets how often a regex subscription of the classic protocol looks at the cluster's
    /// topics again (`metadata.max.age.ms`, default 5 min): a new matching topic is assigned
    /// at most this long after it was created.
    pub fn with_metadata_max_age(mut self, d: Duration) -> Self {
        self.metadata_max_age = d;
        self
    }

    /// Checks the settings.
    pub(crate) fn validate(&self) -> Result<(), crate::Error> {
        let bad = |m: &str| Err(crate::Error::Config(m.to_owned()));
        if self.group_id.as_deref() == Some("") {
            return bad("group.id must not be empty");
        }
        if self.assignors.is_empty() {
            return bad("partition.assignment.strategy needs at least one assignor");
        }
        if self.session_timeout.is_zero() || self.heartbeat_interval.is_zero() {
            return bad("session.timeout.ms and heartbeat.interval.ms must be greater than zero");
        }
        if self.heartbeat_interval >= self.session_timeout {
            return bad("heartbeat.interval.ms must be lower than session.timeout.ms");
        }
        if self.max_poll_records == 0 {
            return bad("max.poll.records must be at least 1");
        }
        if self.max_partition_fetch_bytes <= 0 {
            return bad("max.partition.fetch.bytes must be at least 1");
        }
        if self.remote_assignor.as_deref() == Some("") {
            return bad("group.remote.assignor must not be empty");
        }
        if self.max_poll_interval.is_zero() {
            return bad("max.poll.interval.ms must be greater than zero");
        }
        if self.metadata_max_age.is_zero() {
            return bad("metadata.max.age.ms must be greater than zero");
        }
        Ok(())
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
    fn defaults_and_validation() {
        let c = ConsumerConfig::new("g");
        assert!(!c.enable_auto_commit, "auto-commit is off by default");
        assert_eq!(c.auto_offset_reset, OffsetReset::Latest);
        assert!(c.validate().is_ok());
        assert!(ConsumerConfig::new("").validate().is_err());
        assert!(ConsumerConfig::new("g")
            .with_heartbeat_interval(Duration::from_secs(50))
            .validate()
            .is_err());
        assert!(ConsumerConfig::new("g")
            .with_assignors(vec![])
            .validate()
            .is_err());
        assert!(ConsumerConfig::new("g")
            .with_max_partition_fetch_bytes(0)
            .validate()
            .is_err());
    }

    #[test]
    fn deserializes_java_property_names() {
        let c: ConsumerConfig = serde_json::from_str(
            r#"{"group.id":"g","group.instance.id":"i","auto.offset.reset":"earliest","session.timeout.ms":6000}"#,
        )
        .unwrap();
        assert_eq!(c.group_id.as_deref(), Some("g"));
        assert_eq!(c.instance_id.as_deref(), Some("i"));
        assert_eq!(c.auto_offset_reset, OffsetReset::Earliest);
        assert_eq!(c.session_timeout, Duration::from_secs(6));
        assert_eq!(c.group_protocol, GroupProtocol::Classic);
        let c: ConsumerConfig = serde_json::from_str(
            r#"{"group.id":"g","group.protocol":"consumer","group.remote.assignor":"range"}"#,
        )
        .unwrap();
        assert_eq!(c.group_protocol, GroupProtocol::Consumer);
        assert_eq!(c.remote_assignor.as_deref(), Some("range"));
        assert_eq!(c.metadata_max_age, Duration::from_secs(300));
        let c: ConsumerConfig =
            serde_json::from_str(r#"{"group.id":"g","metadata.max.age.ms":250}"#).unwrap();
        assert_eq!(c.metadata_max_age, Duration::from_millis(250));
        assert!(c.with_metadata_max_age(Duration::ZERO).validate().is_err());
        assert!(serde_json::from_str::<ConsumerConfig>(r#"{"group.protocol":"other"}"#).is_err());
    }
}

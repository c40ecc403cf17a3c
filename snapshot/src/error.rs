//! The snapshot store's error type.

use std::time::Duration;

use kafka_persistence_wire as wire;

/// Errors of the snapshot store's calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The Kafka client reported an error.
    #[error("kafka: {0}")]
    Kafka(#[from] wire::Error),
    /// The call did not finish within [`crate::SnapshotConfig::with_timeout`].
    #[error("snapshot store call `{operation}` timed out after {timeout:?}")]
    Timeout {
        /// What was running.
        operation: &'static str,
        /// The configured bound.
        timeout: Duration,
    },
    /// The configuration is invalid (see [`crate::SnapshotConfig::validate`]).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The call's arguments are invalid (e.g. sequence number 0); nothing was written.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The snapshot topic exists but does not look like one this store created (e.g. no
    /// partitions).
    #[error("snapshot topic `{topic}` is unusable: {reason}")]
    Topic {
        /// The topic.
        topic: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A snapshot is too large to be stored (more chunks than the format can address).
    #[error("snapshot of `{persistence_id}` at {sequence_nr} is too large: {size} bytes")]
    TooLarge {
        /// The persistence id.
        persistence_id: String,
        /// The sequence number.
        sequence_nr: u64,
        /// The payload size in bytes.
        size: usize,
    },
    /// Reading the topic made no progress (the broker kept answering at the same offset).
    #[error("reading `{topic}` made no progress at offset {offset}")]
    Stalled {
        /// The topic.
        topic: String,
        /// The offset that was asked for again and again.
        offset: i64,
    },
}

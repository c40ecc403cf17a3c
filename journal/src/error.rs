//! The journal's error types.

use kafka_persistence_wire as wire;

/// Why one atomic write was not stored (the inner `Err` of [`crate::Journal::write`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The write was refused before it was sent (e.g. too large for the topic); nothing of it
    /// was stored and a gap marker accounts for its sequence numbers. The entity may go on.
    #[error("atomic write for `{persistence_id}` ({from}..={to}) rejected: {reason}")]
    Rejected {
        /// The persistence id.
        persistence_id: String,
        /// The first sequence number of the rejected write.
        from: u64,
        /// The last sequence number of the rejected write.
        to: u64,
        /// Why it was rejected.
        reason: String,
    },
    /// Another writer owns the sequence numbers (the first sequence number was not
    /// highest + 1, or another writer's records won the race in the log). The entity must stop.
    #[error(
        "atomic write for `{persistence_id}` starting at {sequence_nr} fenced: expected {expected}"
    )]
    Fenced {
        /// The persistence id.
        persistence_id: String,
        /// The first sequence number of the refused write.
        sequence_nr: u64,
        /// The sequence number the log expected next, as far as this writer knows.
        expected: u64,
    },
    /// The write was malformed (empty, mixed persistence ids, or non-contiguous sequence
    /// numbers); nothing was stored.
    #[error("invalid atomic write: {0}")]
    Invalid(String),
}

/// Errors of the journal's calls (the outer `Err`): the call failed or its outcome is unknown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The Kafka client reported an error.
    #[error("kafka: {0}")]
    Kafka(#[from] wire::Error),
    /// The call did not finish within [`crate::JournalConfig::with_timeout`].
    #[error("journal call `{operation}` timed out after {timeout:?}")]
    Timeout {
        /// What was running.
        operation: &'static str,
        /// The configured bound.
        timeout: std::time::Duration,
    },
    /// Retention (or another tool) removed events that were never deleted through the
    /// journal: the log start offset is beyond the coverage of the last deletion marker.
    #[error("events {from}..={to} of `{persistence_id}` were removed from Kafka (retention?) without being deleted")]
    EventsLost {
        /// The persistence id.
        persistence_id: String,
        /// The first lost sequence number.
        from: u64,
        /// The last lost sequence number (at least).
        to: u64,
    },
    /// A record in a journal topic could not be decoded.
    #[error("corrupt journal record in `{topic}` at offset {offset}: {reason}")]
    Corrupt {
        /// The topic.
        topic: String,
        /// The record's offset.
        offset: i64,
        /// What is wrong.
        reason: String,
    },
    /// Creating a topic failed.
    #[error("creating topic failed: {0}")]
    TopicCreation(String),
    /// Invalid configuration or argument.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The write for this persistence id could not be verified because an earlier write of
    /// the same id in this process failed; the outcome of this one is unknown.
    #[error("outcome of write for `{0}` unknown: {1}")]
    Unknown(String, String),
}

impl JournalError {
    /// The same failure for another call of `persistence_id` that shared the failed work (a
    /// round of writes or publishes): a copy where the error can be copied, else
    /// [`JournalError::Unknown`] with its description.
    pub(crate) fn for_another_call(&self, persistence_id: &str) -> JournalError {
        match self {
            JournalError::Timeout { operation, timeout } => JournalError::Timeout {
                operation,
                timeout: *timeout,
            },
            JournalError::EventsLost {
                persistence_id,
                from,
                to,
            } => JournalError::EventsLost {
                persistence_id: persistence_id.clone(),
                from: *from,
                to: *to,
            },
            JournalError::Corrupt {
                topic,
                offset,
                reason,
            } => JournalError::Corrupt {
                topic: topic.clone(),
                offset: *offset,
                reason: reason.clone(),
            },
            JournalError::TopicCreation(s) => JournalError::TopicCreation(s.clone()),
            JournalError::Config(s) => JournalError::Config(s.clone()),
            JournalError::Unknown(_, reason) => {
                JournalError::Unknown(persistence_id.to_string(), reason.clone())
            }
            JournalError::Kafka(e) => {
                JournalError::Unknown(persistence_id.to_string(), e.to_string())
            }
        }
    }

    /// True for errors where retrying the call later may succeed (network, timeouts).
    pub fn is_transient(&self) -> bool {
        match self {
            JournalError::Kafka(e) => e.is_retriable(),
            JournalError::Timeout { .. }
            | JournalError::Unknown(..)
            | JournalError::TopicCreation(_) => true,
            _ => false,
        }
    }
}

#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), warn(missing_docs))]

mod cache;
mod chunk;
mod config;
mod error;
mod event_topic;
mod format;
mod gate;
mod hash;
mod inflight;
mod journal;
mod layout;
mod migrate;
mod per_id;
mod publish;
mod repr;
mod scan;
mod shared;

pub use config::JournalConfig;
pub use error::{JournalError, WriteError};
pub use event_topic::{
    DefaultEventTopicMapper, EmptyEventTopicMapper, Event, EventDataFormat, EventDecodeError,
    EventFormat, EventTopicMapper,
};
pub use format::{JournalRecordView, RecordKind};
pub use journal::Journal;
pub use kafka_persistence_wire::Layout;
pub use migrate::{IdExport, ImportOutcome};
pub use repr::{AtomicWrite, PersistentRepr};
pub use shared::{IndexStats, PartitionEvent};

/// The journal topic name of a persistence id under a prefix (the injective encoding of
/// layout v1; see the crate documentation).
pub fn journal_topic_name(prefix: &str, persistence_id: &str) -> String {
    per_id::naming::topic_for(prefix, persistence_id)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A random number per journal instance, mixed into batch ids.
pub(crate) fn random_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(now_ms());
    h.finish()
}

/// The `n`th batch id of the instance with `nonce`.
pub(crate) fn batch_id(nonce: u64, n: u64) -> u64 {
    kafka_persistence_wire::naming::fnv1a64(&[nonce.to_le_bytes(), n.to_le_bytes()].concat())
}

#[cfg(test)]
mod static_checks {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    #[test]
    fn journal_is_send_sync() {
        assert_send_sync::<super::Journal>();
        assert_send_sync::<super::JournalError>();
    }
}

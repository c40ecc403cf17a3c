#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), warn(missing_docs))]

mod config;
mod error;
mod event_topic;
mod format;
mod gate;
mod journal;
mod layout;
mod log;
mod pid;
mod replay;
mod repr;
mod scan;
mod topics;

pub use config::JournalConfig;
pub use error::{JournalError, WriteError};
pub use event_topic::{
    DefaultEventTopicMapper, EmptyEventTopicMapper, Event, EventDataFormat, EventDecodeError,
    EventFormat, EventTopicMapper,
};
pub use journal::Journal;
pub use repr::{AtomicWrite, PersistentRepr};

/// The journal topic name of a persistence id under a prefix (the injective encoding of
/// layout v1; see the crate documentation).
pub fn journal_topic_name(prefix: &str, persistence_id: &str) -> String {
    layout::topic_for(prefix, persistence_id)
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

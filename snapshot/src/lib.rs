#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), warn(missing_docs))]

mod chunks;
mod clock;
mod config;
mod error;
mod format;
mod layout;
mod model;
mod selection;
mod store;
mod topics;

pub use config::SnapshotConfig;
pub use error::SnapshotError;
pub use kafka_persistence_wire::Layout;
pub use model::{SelectedSnapshot, SnapshotMetadata, SnapshotPlacement, SnapshotSelectionCriteria};
pub use store::SnapshotStore;

/// The layout v1 ("per-id") snapshot topic name of a persistence id under a prefix: the same
/// injective encoding as the journal's topic names (see the crate documentation).
pub fn snapshot_topic_name(prefix: &str, persistence_id: &str) -> String {
    layout::per_id::v1_topic_name(prefix, persistence_id)
}

#[cfg(test)]
mod static_checks {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    #[test]
    fn store_and_errors_are_send_sync() {
        assert_send_sync::<super::SnapshotStore>();
        assert_send_sync::<super::SnapshotError>();
        assert_send_sync::<super::SelectedSnapshot>();
    }
}

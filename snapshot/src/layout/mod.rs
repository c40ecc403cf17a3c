//! The boundary between [`crate::SnapshotStore`] and the two topic layouts. The store calls
//! only [`Backend`]; which layout runs is chosen once, at connect, from
//! [`crate::SnapshotConfig::layout`].
//!
//! - [`per_id`]: layout v1, one compacted topic per persistence id.
//! - [`shared`]: layout v2, one compacted topic with a fixed number of partitions for all ids,
//!   and an in-memory index restored from it.
//!
//! Both write the same index record values ([`crate::format`]) and chunks
//! ([`crate::chunks`]); they differ in topics, partitions and keys.

use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use futures::future::BoxFuture;
use kafka_persistence_wire::{Client, Layout, Producer};

use crate::config::SnapshotConfig;
use crate::error::SnapshotError;
use crate::model::{
    SelectedSnapshot, SnapshotMetadata, SnapshotPlacement, SnapshotSelectionCriteria,
};
use crate::selection::Deletion;

pub(crate) mod per_id;
pub(crate) mod shared;

/// What a layout does. Every method is one store call; the store bounds it by the timeout.
pub(crate) trait Backend: Send + Sync + std::fmt::Debug {
    /// Where the snapshot records of `persistence_id` are.
    fn placement(&self, persistence_id: &str) -> SnapshotPlacement;

    /// The key of the index record of `persistence_id` at `sequence_nr`.
    fn index_key(&self, persistence_id: &str, sequence_nr: u64) -> Bytes;

    /// Saves a snapshot (sequence number already checked to be at least 1) and returns its
    /// metadata as stored.
    fn save(
        &self,
        metadata: SnapshotMetadata,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<SnapshotMetadata, SnapshotError>>;

    /// Loads the youngest snapshot matching `criteria` (and at most `journal_highest`).
    fn load<'a>(
        &'a self,
        persistence_id: &'a str,
        criteria: SnapshotSelectionCriteria,
        journal_highest: Option<u64>,
    ) -> BoxFuture<'a, Result<Option<SelectedSnapshot>, SnapshotError>>;

    /// Deletes what `deletion` selects.
    fn delete<'a>(
        &'a self,
        persistence_id: &'a str,
        deletion: Deletion,
    ) -> BoxFuture<'a, Result<(), SnapshotError>>;
}

/// The backend of the configured layout: v1 creates nothing; v2 creates or checks its topic
/// and restores its index.
pub(crate) async fn connect(kafka: Kafka) -> Result<Box<dyn Backend>, SnapshotError> {
    Ok(match kafka.config.layout {
        Layout::PerId => Box::new(per_id::PerId::new(kafka)),
        Layout::Shared => Box::new(shared::Shared::connect(kafka).await?),
    })
}

/// The Kafka side every layout uses.
#[derive(Debug, Clone)]
pub(crate) struct Kafka {
    /// The configuration the store was connected with.
    pub(crate) config: SnapshotConfig,
    /// The client.
    pub(crate) client: Client,
    /// The producer (batch size 1: every send is its own record batch, so chunks sent back
    /// to back are never coalesced into a batch above the topic's `max.message.bytes`).
    pub(crate) producer: Producer,
}

/// Locks a mutex, recovering from poisoning (the data is kept consistent by each holder).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

//! [`SnapshotStore`]: the public API. It validates arguments, bounds every call by the
//! timeout and hands it to the layout chosen at connect ([`crate::layout::Backend`]); it
//! does not know which layout runs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_persistence_wire::{self as wire, Client, ClientConfig, ProducerConfig};
use tracing::debug;

use crate::config::SnapshotConfig;
use crate::error::SnapshotError;
use crate::layout::{self, Backend, Kafka};
use crate::model::{
    SelectedSnapshot, SnapshotMetadata, SnapshotPlacement, SnapshotSelectionCriteria,
};
use crate::selection::Deletion;

/// A snapshot store on compacted Kafka topics, in layout v2 ("shared", the default: one
/// topic for all ids) or v1 ("per-id": one topic per id); see the crate docs for both
/// formats. Cheap to share (`Arc`); every call takes `&self` and is bounded by
/// [`SnapshotConfig::with_timeout`].
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: SnapshotConfig,
    backend: Box<dyn Backend>,
}

impl SnapshotStore {
    /// Connects to the brokers of `config`. In layout v2 it creates the snapshot topic if it
    /// is missing (or checks its partition count and `cleanup.policy=compact`) and restores
    /// the in-memory index from the topic's index partitions. In layout v1 it creates
    /// nothing: topics are created by the first save of each persistence id. Bounded by the
    /// timeout.
    pub async fn connect(config: SnapshotConfig) -> Result<SnapshotStore, SnapshotError> {
        config.validate()?;
        let timeout = config.timeout();
        let connecting = async {
            let mut client_config = ClientConfig::new(config.bootstrap_servers.clone())
                .with_request_timeout(timeout.min(Duration::from_secs(30)))
                .with_delivery_timeout(timeout);
            for (k, v) in &config.client_properties {
                client_config = client_config.with_property(k.clone(), v.clone());
            }
            let client = Client::connect(client_config).await?;
            // Batch size 1: every send is its own record batch (see `Kafka::producer`).
            let producer = client.producer(ProducerConfig::default().with_batch_size(1));
            let kafka = Kafka {
                config: config.clone(),
                client,
                producer,
            };
            layout::connect(kafka).await
        };
        let backend = bounded("connect", timeout, connecting).await?;
        Ok(SnapshotStore {
            inner: Arc::new(Inner { config, backend }),
        })
    }

    /// The configuration this store was connected with.
    pub fn config(&self) -> &SnapshotConfig {
        &self.inner.config
    }

    /// The topic that holds the snapshots of `persistence_id` (in layout v2 the same topic
    /// for every id).
    pub fn topic_for(&self, persistence_id: &str) -> String {
        self.inner.backend.placement(persistence_id).topic
    }

    /// Where the records of `persistence_id` are: topic, index partition, chunk partition
    /// (in layout v1 the chunk partition is 1, or 0 in a one-partition topic created
    /// elsewhere).
    pub fn placement(&self, persistence_id: &str) -> SnapshotPlacement {
        self.inner.backend.placement(persistence_id)
    }

    /// The key of the index record of `persistence_id`'s snapshot at `sequence_nr` (in the
    /// index partition of [`placement`](Self::placement)).
    pub fn index_key(&self, persistence_id: &str, sequence_nr: u64) -> Bytes {
        self.inner.backend.index_key(persistence_id, sequence_nr)
    }

    /// Saves a snapshot and returns its metadata as stored: a timestamp of 0 is replaced by
    /// the current time, made strictly greater than every timestamp this store assigned or
    /// finds stored for the id. Saving again at the same sequence number overwrites. A
    /// snapshot larger than the topic's `max.message.bytes` is stored in chunks, committed
    /// by one index record written after them.
    pub async fn save(
        &self,
        metadata: SnapshotMetadata,
        payload: impl Into<Bytes>,
    ) -> Result<SnapshotMetadata, SnapshotError> {
        let payload = payload.into();
        if metadata.sequence_nr == 0 {
            return Err(SnapshotError::InvalidArgument(
                "sequence numbers start at 1".into(),
            ));
        }
        self.bounded("save", self.inner.backend.save(metadata, payload))
            .await
    }

    /// Loads the youngest snapshot (highest sequence number) matching all four bounds of
    /// `criteria`, or `None`. A snapshot that cannot be decoded (or whose chunks are
    /// incomplete) is skipped with a warning, and the next older matching one is tried.
    /// Never creates a topic and never writes.
    pub async fn load(
        &self,
        persistence_id: &str,
        criteria: SnapshotSelectionCriteria,
    ) -> Result<Option<SelectedSnapshot>, SnapshotError> {
        self.bounded(
            "load",
            self.inner.backend.load(persistence_id, criteria, None),
        )
        .await
    }

    /// [`load`](Self::load) for recovery: snapshots above the journal's highest sequence
    /// number (orphans: the journal lost its tail, or the snapshot was saved for events that
    /// were never stored) are ignored, including one at exactly `journal_highest + 1`.
    pub async fn load_for_recovery(
        &self,
        persistence_id: &str,
        criteria: SnapshotSelectionCriteria,
        journal_highest: u64,
    ) -> Result<Option<SelectedSnapshot>, SnapshotError> {
        self.bounded(
            "load_for_recovery",
            self.inner
                .backend
                .load(persistence_id, criteria, Some(journal_highest)),
        )
        .await
    }

    /// Deletes the snapshot at `metadata.sequence_nr` of `metadata.persistence_id`: with a
    /// timestamp of 0 whatever its timestamp, otherwise only if the timestamp matches too.
    /// The deletion is a tombstone, so it holds for every later load from any process.
    pub async fn delete(&self, metadata: &SnapshotMetadata) -> Result<(), SnapshotError> {
        let deletion = Deletion::One {
            sequence_nr: metadata.sequence_nr,
            timestamp: metadata.timestamp,
        };
        self.bounded(
            "delete",
            self.inner
                .backend
                .delete(&metadata.persistence_id, deletion),
        )
        .await
    }

    /// Deletes every snapshot of `persistence_id` matching `criteria` (in one record batch:
    /// all of them or none).
    pub async fn delete_matching(
        &self,
        persistence_id: &str,
        criteria: SnapshotSelectionCriteria,
    ) -> Result<(), SnapshotError> {
        self.bounded(
            "delete_matching",
            self.inner
                .backend
                .delete(persistence_id, Deletion::Matching(criteria)),
        )
        .await
    }

    async fn bounded<T>(
        &self,
        operation: &'static str,
        fut: impl Future<Output = Result<T, SnapshotError>>,
    ) -> Result<T, SnapshotError> {
        bounded(operation, self.inner.config.timeout(), fut).await
    }
}

/// Runs `fut` within `timeout`; the client's own timeout (the same bound) is reported the
/// same way.
async fn bounded<T>(
    operation: &'static str,
    timeout: Duration,
    fut: impl Future<Output = Result<T, SnapshotError>>,
) -> Result<T, SnapshotError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Err(SnapshotError::Kafka(wire::Error::Timeout { what, after }))) => {
            debug!(operation, what, ?after, "client timed out");
            Err(SnapshotError::Timeout { operation, timeout })
        }
        Ok(r) => r,
        Err(_) => Err(SnapshotError::Timeout { operation, timeout }),
    }
}

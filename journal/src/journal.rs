//! [`Journal`]: the facade. It bounds every call by the configured timeout, publishes
//! accepted events to the event topics, and hands everything else to the layout (see
//! [`crate::layout`]); it never knows which layout runs.

use std::future::Future;
use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use kafka_persistence_wire::{Client, ClientConfig, Layout, ProducerConfig};

use crate::config::JournalConfig;
use crate::error::{JournalError, WriteError};
use crate::layout::JournalLayout;
use crate::migrate::{IdExport, ImportOutcome};
use crate::per_id::{PerId, PerIdLayout};
use crate::publish::Publisher;
use crate::repr::{AtomicWrite, PersistentRepr};
use crate::shared::{IndexStats, PartitionEvent, SharedLayout};

/// The event journal: append, replay, highest sequence number, delete, queries.
///
/// Cheap to clone (an `Arc`); `Send + Sync + 'static`.
#[derive(Clone, Debug)]
pub struct Journal {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    config: JournalConfig,
    layout: Box<dyn JournalLayout>,
    /// Layout v2's own API (partition streams), when it runs.
    shared: Option<SharedLayout>,
    publisher: Publisher,
}

/// Bounds `fut` by the configured timeout.
pub(crate) async fn bounded<T>(
    config: &JournalConfig,
    operation: &'static str,
    fut: impl Future<Output = Result<T, JournalError>>,
) -> Result<T, JournalError> {
    let timeout = config.timeout();
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(JournalError::Timeout { operation, timeout }),
    }
}

impl Journal {
    /// Connects to the brokers of `config`. In layout v2 (the default) this creates the
    /// journal and index topics if they are missing (or checks that they fit: partition
    /// count, cleanup policy) and restores the in-memory index of every partition.
    pub async fn connect(config: JournalConfig) -> Result<Journal, JournalError> {
        config.validate()?;
        let timeout = config.timeout();
        let mut client_config = ClientConfig::new(config.bootstrap_servers.clone())
            .with_client_id("kafka-persistence-journal")
            .with_request_timeout(timeout)
            .with_delivery_timeout(timeout);
        for (k, v) in &config.client_properties {
            client_config = client_config.with_property(k.clone(), v.clone());
        }
        let client = bounded(&config, "connect", async {
            Ok(Client::connect(client_config).await?)
        })
        .await?;
        let producer = client.producer(ProducerConfig::default());
        let publisher = Publisher::new(client.clone(), producer.clone(), &config);
        let (layout, shared): (Box<dyn JournalLayout>, Option<SharedLayout>) = match config.layout {
            Layout::PerId => (
                Box::new(PerIdLayout(PerId::new(
                    client.clone(),
                    producer,
                    config.clone(),
                ))),
                None,
            ),
            Layout::Shared => {
                let shared = bounded(
                    &config,
                    "connect",
                    SharedLayout::connect(client.clone(), config.clone()),
                )
                .await?;
                (Box::new(shared.clone()), Some(shared))
            }
        };
        Ok(Journal {
            inner: Arc::new(Inner {
                client,
                config,
                layout,
                shared,
                publisher,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &JournalConfig {
        &self.inner.config
    }

    /// The Kafka client the journal uses.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The layout this journal runs on.
    pub fn layout(&self) -> Layout {
        self.inner.config.layout
    }

    /// The journal topic that holds `persistence_id`'s events: its own topic in layout v1,
    /// the shared journal topic in layout v2 (see [`Journal::partition_of`]).
    pub fn topic_of(&self, persistence_id: &str) -> String {
        match self.inner.config.layout {
            Layout::PerId => {
                crate::journal_topic_name(&self.inner.config.topic_prefix, persistence_id)
            }
            Layout::Shared => self.inner.config.shared_journal_topic(),
        }
    }

    /// The partition of [`Journal::topic_of`] that holds `persistence_id`'s events: 0 in
    /// layout v1, `murmur2(utf8(id)) mod partitions` in layout v2 (the Java client's rule).
    pub fn partition_of(&self, persistence_id: &str) -> i32 {
        match self.inner.config.layout {
            Layout::PerId => 0,
            Layout::Shared => kafka_persistence_wire::murmur2_partition(
                persistence_id.as_bytes(),
                self.inner.config.partitions,
            ),
        }
    }

    /// Writes `writes`; one result per atomic write, in order.
    ///
    /// Inner `Err`: that atomic write was not stored ([`WriteError::Rejected`]: the entity may
    /// go on; [`WriteError::Fenced`]: another writer owns the id, the entity must stop).
    /// Outer `Err`: the batch failed or its outcome is unknown. Each atomic write is one
    /// record batch (all or nothing); several writes of one id may share a batch. Calls may
    /// run concurrently, also for one id: they are pipelined through the producer.
    ///
    /// Order: calls are applied in the order their futures are first polled (for example in
    /// the order `futures::stream::iter(calls).buffered(n)` issues them), whatever happens
    /// afterwards; each call takes its place in line before it awaits anything.
    pub async fn write(
        &self,
        writes: Vec<AtomicWrite>,
    ) -> Result<Vec<Result<(), WriteError>>, JournalError> {
        let inner = &self.inner;
        let written = inner.layout.write(writes);
        bounded(&inner.config, "write", async {
            let (results, published) = written.await?;
            inner.publisher.publish(published).await?;
            Ok(results)
        })
        .await
    }

    /// The highest sequence number ever written for `persistence_id` (0 if none), counting
    /// rejected ones; it never decreases, also not through deletions. Waits for this
    /// journal's in-flight writes of the id.
    pub async fn highest_sequence_nr(&self, persistence_id: &str) -> Result<u64, JournalError> {
        let fut = self.inner.layout.highest_sequence_nr(persistence_id);
        bounded(&self.inner.config, "highest_sequence_nr", fut).await
    }

    /// The sequence number up to which the events of `persistence_id` are deleted (0 if
    /// none): what [`Journal::delete_messages_to`] recorded, as every replay honours it.
    pub async fn deleted_to(&self, persistence_id: &str) -> Result<u64, JournalError> {
        let fut = self.inner.layout.deleted_to(persistence_id);
        bounded(&self.inner.config, "deleted_to", fut).await
    }

    /// Deletes the events up to `to_sequence_nr` (up to the highest at this moment)
    /// persistently: a deletion marker in the id's log, honoured by every later replay. In
    /// layout v1 the space below fully deleted records is freed with DeleteRecords; in layout
    /// v2 the shared partition's retention frees it.
    pub async fn delete_messages_to(
        &self,
        persistence_id: &str,
        to_sequence_nr: u64,
    ) -> Result<(), JournalError> {
        let fut = self
            .inner
            .layout
            .delete_messages_to(persistence_id, to_sequence_nr);
        bounded(&self.inner.config, "delete_messages_to", fut).await
    }

    /// Replays the events of `persistence_id` with `from <= seq <= to`, ascending, at most
    /// `max`. Stops at `to`, `max` or the end captured at the start; never waits for new
    /// records. Fails with [`JournalError::EventsLost`] if retention removed events in the
    /// range that were never deleted. Reading never creates anything in Kafka.
    pub fn replay(
        &self,
        persistence_id: &str,
        from: u64,
        to: u64,
        max: u64,
    ) -> BoxStream<'static, Result<PersistentRepr, JournalError>> {
        self.inner
            .layout
            .events(persistence_id, from, to, max, false)
    }

    /// The events of `persistence_id` with `from <= seq <= to` that exist now; completes at
    /// the current end.
    pub fn current_events_by_persistence_id(
        &self,
        persistence_id: &str,
        from: u64,
        to: u64,
    ) -> BoxStream<'static, Result<PersistentRepr, JournalError>> {
        self.replay(persistence_id, from, to, u64::MAX)
    }

    /// The events of `persistence_id` with `from <= seq <= to`, including those written
    /// later: a live stream that completes only once `to` is reached (never for
    /// `u64::MAX`). It polls with long-poll fetches and never creates anything.
    pub fn events_by_persistence_id(
        &self,
        persistence_id: &str,
        from: u64,
        to: u64,
    ) -> BoxStream<'static, Result<PersistentRepr, JournalError>> {
        self.inner
            .layout
            .events(persistence_id, from, to, u64::MAX, true)
    }

    /// Every persistence id that wrote (under this journal's prefix); completes.
    pub fn current_persistence_ids(&self) -> BoxStream<'static, Result<String, JournalError>> {
        let inner = Arc::clone(&self.inner);
        stream::once(async move {
            let fut = inner.layout.persistence_ids();
            bounded(&inner.config, "current_persistence_ids", fut).await
        })
        .flat_map(|r| match r {
            Ok(ids) => stream::iter(ids.into_iter().map(Ok)).boxed(),
            Err(e) => stream::once(async move { Err(e) }).boxed(),
        })
        .boxed()
    }

    /// The accepted events of one partition of the shared journal topic (layout v2) from
    /// `from_offset` on, in log order, each with its offset: Akka's `eventsBySlices` on Kafka
    /// partitions, for read models and projections. `live` keeps the stream open for events
    /// written later; otherwise it completes at the end captured when it starts. Deleted
    /// events and refused (fenced) writes are left out. In layout v1 the stream yields one
    /// [`JournalError::Config`] error.
    pub fn events_by_partition(
        &self,
        partition: i32,
        from_offset: i64,
        live: bool,
    ) -> BoxStream<'static, Result<PartitionEvent, JournalError>> {
        match &self.inner.shared {
            Some(shared) => shared.events_by_partition(partition, from_offset, live),
            None => stream::once(async {
                Err(JournalError::Config(
                    "events_by_partition needs layout v2 (\"shared\")".into(),
                ))
            })
            .boxed(),
        }
    }

    /// The accepted history of `persistence_id` (events and gap markers above its deletion
    /// mark, with their sequence numbers and everything written with them), to copy it into
    /// another journal with [`Journal::import_id`]. Layout v1 only (the migration source);
    /// fails with [`JournalError::EventsLost`] if retention removed events never deleted.
    pub async fn export_id(&self, persistence_id: &str) -> Result<IdExport, JournalError> {
        let fut = self.inner.layout.export_id(persistence_id);
        bounded(&self.inner.config, "export_id", fut).await
    }

    /// Writes an exported history into this journal (layout v2 only, the migration target):
    /// the same sequence numbers, gaps and deletion mark. Idempotent: an id already complete
    /// is left alone; an id an earlier run left half-way continues after what is there.
    pub async fn import_id(&self, export: IdExport) -> Result<ImportOutcome, JournalError> {
        let fut = self.inner.layout.import_id(export);
        bounded(&self.inner.config, "import_id", fut).await
    }

    /// Layout v2's in-memory index: ids, ranges and the bytes they take (`None` in layout v1).
    pub fn index_stats(&self) -> Option<IndexStats> {
        self.inner.shared.as_ref().map(SharedLayout::index_stats)
    }

    /// Writes what the layout keeps in memory that is due to be stored now, instead of at its
    /// next interval: in layout v2, the index records of changed ids and a checkpoint (so a
    /// new instance restores from the index without reading the journal's tail). Nothing to
    /// do in layout v1.
    pub async fn flush_index(&self) -> Result<(), JournalError> {
        let fut = self.inner.layout.flush();
        bounded(&self.inner.config, "flush_index", fut).await
    }
}

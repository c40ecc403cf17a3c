//! Layout v2 ("shared"): millions of persistence ids on a fixed set of partitions, on Kafka
//! alone.
//!
//! - the journal topic `<prefix>v2.journal` (P partitions, `cleanup.policy=delete`): an id's
//!   records are in partition `murmur2(utf8(id)) mod P`, key = id, value = the same protobuf
//!   record as layout v1 ([`crate::JournalRecordView`]);
//! - the index topic `<prefix>v2.index` (P partitions, compacted): per id its head (see
//!   [`head`]) and per partition a checkpoint; a cache of the journal topic, never trusted
//!   over it.
//!
//! Modules: [`head`] (one id's index entry and the index record format), [`partition`] (one
//! partition's heads and frontier: the ordering and fencing logic, no I/O), [`tail`] (reading
//! the journal partition into the heads), [`index`] (restoring and writing the index topic),
//! [`topics`] (creating and checking the topics), [`write`] (gathered into [`rounds`]), [`read`] (replays, live queries,
//! partition streams), [`delete`].

pub(crate) mod delete;
pub(crate) mod head;
pub(crate) mod heads;
pub(crate) mod import;
pub(crate) mod index;
pub(crate) mod partition;
pub(crate) mod read;
pub(crate) mod rounds;
pub(crate) mod tail;
pub(crate) mod topics;
pub(crate) mod write;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::{join_all, BoxFuture, FutureExt};
use futures::stream::BoxStream;
use kafka_persistence_wire::{murmur2_partition, Client, Producer, ProducerConfig};
use tokio::sync::Notify;

use crate::cache::IdCache;
use crate::config::JournalConfig;
use crate::error::JournalError;
use crate::gate::Gate;
use crate::inflight::Inflight;
use crate::layout::{JournalLayout, Written};
use crate::migrate::{IdExport, ImportOutcome};
use crate::repr::{AtomicWrite, PersistentRepr};
use partition::PartitionState;

pub use read::PartitionEvent;

/// What layout v2's in-memory index holds ([`crate::Journal::index_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexStats {
    /// Persistence ids indexed (every partition).
    pub ids: u64,
    /// Offset ranges of their records.
    pub ranges: u64,
    /// Bytes the index takes: map slots at capacity, keys and ranges (the allocator's own
    /// overhead not included).
    pub bytes: u64,
}

/// The producer batch limit for the shared partitions: a replay fetches whole record batches,
/// so batches that merge many ids' sends stay moderate.
const SHARED_BATCH_BYTES: usize = 64 * 1024;

/// One partition of the shared journal topic (see [`partition`]).
#[derive(Debug)]
pub(crate) struct Partition {
    pub(crate) id: i32,
    state: Mutex<PartitionState>,
    /// One read of the partition at a time (see [`tail`]).
    pub(crate) fetch_lock: tokio::sync::Mutex<()>,
    /// Reads started / the newest finished (see [`tail::catch_up`]).
    pub(crate) reads_started: AtomicU64,
    pub(crate) reads_done: AtomicU64,
    /// Signalled when the frontier moves.
    pub(crate) changed: Notify,
    /// The index writer's position in this partition of the index topic, and the journal
    /// offset of the last checkpoint it wrote or restored (`None`: none yet).
    pub(crate) index_position: tokio::sync::Mutex<(i64, Option<i64>)>,
}

impl Partition {
    fn new(id: i32) -> Self {
        Partition {
            id,
            state: Mutex::new(PartitionState::new()),
            fetch_lock: tokio::sync::Mutex::new(()),
            reads_started: AtomicU64::new(0),
            reads_done: AtomicU64::new(0),
            changed: Notify::new(),
            index_position: tokio::sync::Mutex::new((0, None)),
        }
    }

    /// The state (never held across an await).
    pub(crate) fn state(&self) -> MutexGuard<'_, PartitionState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One persistence id this instance is working with: its place in line and its reservation
/// view (the highest sequence number including this instance's writes in flight).
#[derive(Debug)]
pub(crate) struct ActiveId {
    /// Shared with the id cache's key.
    pub(crate) persistence_id: Arc<str>,
    pub(crate) partition: usize,
    /// Held inline (the id's one allocation is this entry): see [`crate::gate::Gated`].
    pub(crate) gate: Gate,
    state: Mutex<ActiveState>,
    /// Its writes in flight; poisoned when one failed or was refused: take the reservation
    /// view from the head again.
    pub(crate) inflight: Inflight,
}

impl crate::gate::Gated for ActiveId {
    fn gate(&self) -> &Gate {
        &self.gate
    }
}

impl crate::inflight::Tracked for ActiveId {
    fn inflight(&self) -> &Inflight {
        &self.inflight
    }
}

#[derive(Debug, Default)]
pub(crate) struct ActiveState {
    /// The highest sequence number including writes in flight; `None` until first used.
    pub(crate) reserved: Option<u64>,
}

impl ActiveId {
    pub(crate) fn lock(&self) -> MutexGuard<'_, ActiveState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Layout v2's state (see the module documentation).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) producer: Producer,
    /// For index records (separate, so index writes never delay journal writes).
    pub(crate) index_producer: Producer,
    pub(crate) config: JournalConfig,
    pub(crate) journal_topic: String,
    pub(crate) index_topic: String,
    pub(crate) partitions: Vec<Partition>,
    ids: Mutex<IdCache<ActiveId>>,
    /// The journal topic's `max.message.bytes` (read at connect).
    pub(crate) max_message_bytes: usize,
    batch_nonce: u64,
    batch_counter: AtomicU64,
    /// Write calls gathered into rounds (see [`rounds`]).
    rounds: rounds::Rounds,
}

impl Shared {
    /// The partition index of `persistence_id`.
    pub(crate) fn partition_index(&self, persistence_id: &str) -> usize {
        let n = i32::try_from(self.partitions.len()).unwrap_or(i32::MAX);
        usize::try_from(murmur2_partition(persistence_id.as_bytes(), n)).unwrap_or(0)
    }

    pub(crate) fn active(&self, persistence_id: &str) -> Arc<ActiveId> {
        let partition = self.partition_index(persistence_id);
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        ids.get_or_insert(persistence_id, |key| ActiveId {
            persistence_id: Arc::clone(key),
            partition,
            gate: Gate::default(),
            state: Mutex::new(ActiveState::default()),
            inflight: Inflight::default(),
        })
    }

    pub(crate) fn next_batch_id(&self) -> u64 {
        let n = self.batch_counter.fetch_add(1, Ordering::Relaxed);
        crate::batch_id(self.batch_nonce, n)
    }
}

/// Layout v2 behind the boundary (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct SharedLayout(pub(crate) Arc<Shared>);

impl SharedLayout {
    /// Creates or checks the topics, restores the index of every partition, and starts the
    /// index writer.
    pub(crate) async fn connect(
        client: Client,
        config: JournalConfig,
    ) -> Result<Self, JournalError> {
        let journal_topic = config.shared_journal_topic();
        let index_topic = config.shared_index_topic();
        let max_message_bytes =
            topics::ensure(&client, &config, &journal_topic, &index_topic).await?;
        let producer =
            client.producer(ProducerConfig::default().with_batch_size(SHARED_BATCH_BYTES));
        let index_producer = client.producer(ProducerConfig::default());
        let partitions = (0..config.partitions).map(Partition::new).collect();
        let shared = Arc::new(Shared {
            client,
            producer,
            index_producer,
            ids: Mutex::new(IdCache::new(config.max_cached_ids)),
            config,
            journal_topic,
            index_topic,
            partitions,
            max_message_bytes,
            batch_nonce: crate::random_nonce(),
            batch_counter: AtomicU64::new(0),
            rounds: rounds::Rounds::default(),
        });
        let restores = shared.partitions.iter().map(|p| index::restore(&shared, p));
        for r in join_all(restores).await {
            r?;
        }
        index::start_writer(&shared);
        Ok(SharedLayout(shared))
    }

    /// See [`crate::Journal::index_stats`].
    pub(crate) fn index_stats(&self) -> IndexStats {
        let mut stats = IndexStats::default();
        for p in &self.0.partitions {
            let (ids, ranges, bytes) = p.state().memory();
            stats.ids += ids;
            stats.ranges += ranges;
            stats.bytes += bytes;
        }
        stats
    }

    /// See [`crate::Journal::events_by_partition`].
    pub(crate) fn events_by_partition(
        &self,
        partition: i32,
        from_offset: i64,
        live: bool,
    ) -> BoxStream<'static, Result<PartitionEvent, JournalError>> {
        read::events_by_partition(Arc::clone(&self.0), partition, from_offset, live)
    }
}

impl JournalLayout for SharedLayout {
    fn write(&self, writes: Vec<AtomicWrite>) -> BoxFuture<'static, Result<Written, JournalError>> {
        let shared = Arc::clone(&self.0);
        let plan = write::plan(&shared, writes);
        rounds::submit(&shared, plan).boxed()
    }

    fn highest_sequence_nr(
        &self,
        persistence_id: &str,
    ) -> BoxFuture<'static, Result<u64, JournalError>> {
        let shared = Arc::clone(&self.0);
        let active = shared.active(persistence_id);
        let ticket = crate::gate::ticket(&active);
        async move {
            let head = read::current_head(&shared, &active, ticket).await?;
            Ok(head.map_or(0, |h| h.highest))
        }
        .boxed()
    }

    fn deleted_to(&self, persistence_id: &str) -> BoxFuture<'static, Result<u64, JournalError>> {
        let shared = Arc::clone(&self.0);
        let active = shared.active(persistence_id);
        let ticket = crate::gate::ticket(&active);
        async move {
            let head = read::current_head(&shared, &active, ticket).await?;
            Ok(head.map_or(0, |h| h.deleted_to))
        }
        .boxed()
    }

    fn delete_messages_to(
        &self,
        persistence_id: &str,
        to: u64,
    ) -> BoxFuture<'static, Result<(), JournalError>> {
        let shared = Arc::clone(&self.0);
        let active = shared.active(persistence_id);
        let ticket = crate::gate::ticket(&active);
        async move { delete::delete_to(&shared, &active, ticket, to).await }.boxed()
    }

    fn events(
        &self,
        persistence_id: &str,
        from: u64,
        to: u64,
        max: u64,
        live: bool,
    ) -> BoxStream<'static, Result<PersistentRepr, JournalError>> {
        read::events(Arc::clone(&self.0), persistence_id, from, to, max, live)
    }

    fn persistence_ids(&self) -> BoxFuture<'static, Result<Vec<String>, JournalError>> {
        let shared = Arc::clone(&self.0);
        async move { read::persistence_ids(&shared).await }.boxed()
    }

    fn flush(&self) -> BoxFuture<'static, Result<(), JournalError>> {
        let shared = Arc::clone(&self.0);
        async move { index::flush_all(&shared).await }.boxed()
    }

    fn import_id(
        &self,
        export: IdExport,
    ) -> BoxFuture<'static, Result<ImportOutcome, JournalError>> {
        let shared = Arc::clone(&self.0);
        let active = shared.active(&export.persistence_id);
        let ticket = crate::gate::ticket(&active);
        async move { import::import(&shared, &active, ticket, export).await }.boxed()
    }
}

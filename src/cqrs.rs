//! An event store for the [cqrs-es](https://docs.rs/cqrs-es) framework (cargo feature
//! `cqrs-es`): [`KafkaEventStore`] implements `cqrs_es::EventStore` on the journal and the
//! snapshot store.
//!
//! - An aggregate of type `A` with id `id` is the persistence id `"<A::TYPE>|<id>"`; an
//!   event's sequence number is cqrs-es' `sequence`.
//! - Loading: the latest usable snapshot (with snapshots on), then the events after it
//!   ([`crate::recovery`]); a snapshot that no longer deserializes falls back to an older one
//!   or a full replay, as cqrs-es' own stores do.
//! - A commit is one atomic write: all of a command's events are stored or none.
//! - A concurrent commit (another process or context wrote the aggregate since it was loaded)
//!   is refused by the journal as fenced and returned as cqrs-es'
//!   `AggregateError::AggregateConflict`, its optimistic-lock error.
//! - Snapshots follow cqrs-es' snapshot size ([`KafkaEventStore::with_snapshots`]): a commit
//!   that crosses a multiple of the size saves one. In cqrs-es 0.5 the `EventSink` has already
//!   applied the command's events to the aggregate when `commit` runs, so the snapshot is the
//!   aggregate as it is, at the commit's last sequence number: no event is applied twice.
//! - Events are JSON (`serde_json`) with the manifest `"<event_type>@<event_version>"`;
//!   metadata is stored as a JSON object in the event's metadata.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn run<A: cqrs_es::Aggregate + 'static>(
//! #     journal: Arc<kafka_persistence::journal::Journal>,
//! #     store: Arc<kafka_persistence::snapshot::SnapshotStore>,
//! #     services: A::Services,
//! # ) {
//! use kafka_persistence::cqrs::KafkaEventStore;
//! let event_store = KafkaEventStore::<A>::new(journal, store).with_snapshots(100);
//! let cqrs = cqrs_es::CqrsFramework::new(event_store, vec![], services);
//! # let _ = cqrs;
//! # }
//! ```

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use cqrs_es::{
    Aggregate, AggregateContext, AggregateError, DomainEvent, EventEnvelope, EventStore,
};
use futures::TryStreamExt;
use tracing::warn;

use crate::journal::{AtomicWrite, Journal, PersistentRepr, WriteError};
use crate::recovery::recover_decoded;
use crate::snapshot::{SnapshotMetadata, SnapshotSelectionCriteria, SnapshotStore};

/// A `cqrs_es::EventStore` on Kafka (see the module docs).
pub struct KafkaEventStore<A> {
    journal: Arc<Journal>,
    store: Arc<SnapshotStore>,
    snapshot_size: Option<usize>,
    writer_uuid: String,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A> std::fmt::Debug for KafkaEventStore<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaEventStore")
            .field("snapshot_size", &self.snapshot_size)
            .field("writer_uuid", &self.writer_uuid)
            .finish_non_exhaustive()
    }
}

/// The loaded aggregate, its id and the sequence number it was loaded at.
#[derive(Debug)]
pub struct KafkaAggregateContext<A> {
    /// The aggregate id (not the persistence id).
    pub aggregate_id: String,
    /// The aggregate's state.
    pub aggregate: A,
    /// The journal's highest sequence number when loaded: the commit's events follow it.
    pub current_sequence: usize,
}

impl<A: Aggregate> AggregateContext<A> for KafkaAggregateContext<A> {
    fn aggregate(&mut self) -> &mut A {
        &mut self.aggregate
    }
}

fn store_error<E: std::error::Error>(
    e: impl std::error::Error + Send + Sync + 'static,
) -> AggregateError<E> {
    AggregateError::DatabaseConnectionError(Box::new(e))
}

fn unexpected<E: std::error::Error>(message: String) -> AggregateError<E> {
    AggregateError::UnexpectedError(message.into())
}

fn sequence(seq: u64) -> usize {
    usize::try_from(seq).unwrap_or(usize::MAX)
}

impl<A: Aggregate> KafkaEventStore<A> {
    /// An event store without snapshots (every load replays all events).
    pub fn new(journal: Arc<Journal>, store: Arc<SnapshotStore>) -> Self {
        KafkaEventStore {
            journal,
            store,
            snapshot_size: None,
            writer_uuid: crate::entity::writer_uuid(),
            _aggregate: PhantomData,
        }
    }

    /// Snapshots every `size` events, as cqrs-es' `PersistedEventStore::new_snapshot_store`
    /// (`0` turns them off).
    pub fn with_snapshots(mut self, size: usize) -> Self {
        self.snapshot_size = (size > 0).then_some(size);
        self
    }

    /// The persistence id of aggregate `aggregate_id`.
    pub fn persistence_id(aggregate_id: &str) -> String {
        format!("{}|{aggregate_id}", A::TYPE)
    }

    fn envelope(
        aggregate_id: &str,
        event: &PersistentRepr,
    ) -> Result<EventEnvelope<A>, AggregateError<A::Error>> {
        let payload: A::Event = serde_json::from_slice(&event.payload)
            .map_err(|e| AggregateError::DeserializationError(Box::new(e)))?;
        let metadata: HashMap<String, String> = match &event.metadata {
            Some(m) if !m.is_empty() => serde_json::from_slice(m)
                .map_err(|e| AggregateError::DeserializationError(Box::new(e)))?,
            _ => HashMap::new(),
        };
        Ok(EventEnvelope {
            aggregate_id: aggregate_id.to_string(),
            sequence: sequence(event.sequence_nr),
            payload,
            metadata,
        })
    }

    async fn save_snapshot(&self, persistence_id: &str, sequence_nr: u64, aggregate: &A) {
        let payload = match serde_json::to_vec(aggregate) {
            Ok(p) => Bytes::from(p),
            Err(e) => {
                warn!(persistence_id, reason = %e, "aggregate cannot be serialized for a snapshot");
                return;
            }
        };
        let metadata = SnapshotMetadata::new(persistence_id, sequence_nr, 0);
        if let Err(e) = self.store.save(metadata, payload).await {
            // The events are stored; the next load replays them instead.
            warn!(persistence_id, sequence_nr, reason = %e, "saving a snapshot failed");
        }
    }
}

impl<A> EventStore<A> for KafkaEventStore<A>
where
    A: Aggregate + 'static,
{
    type AC = KafkaAggregateContext<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let pid = Self::persistence_id(aggregate_id);
        let events: Vec<PersistentRepr> = self
            .journal
            .replay(&pid, 1, u64::MAX, u64::MAX)
            .try_collect()
            .await
            .map_err(store_error)?;
        events
            .iter()
            .map(|e| Self::envelope(aggregate_id, e))
            .collect()
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<KafkaAggregateContext<A>, AggregateError<A::Error>> {
        let pid = Self::persistence_id(aggregate_id);
        let criteria = if self.snapshot_size.is_some() {
            SnapshotSelectionCriteria::latest()
        } else {
            SnapshotSelectionCriteria::none()
        };
        let (recovered, state) = recover_decoded(&self.journal, &self.store, &pid, criteria, |p| {
            serde_json::from_slice::<A>(p)
        })
        .await
        .map_err(store_error)?;
        let mut aggregate = state.unwrap_or_default();
        for event in &recovered.events {
            aggregate.apply(Self::envelope(aggregate_id, event)?.payload);
        }
        Ok(KafkaAggregateContext {
            aggregate_id: aggregate_id.to_string(),
            aggregate,
            current_sequence: sequence(recovered.highest_sequence_nr),
        })
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: KafkaAggregateContext<A>,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let pid = Self::persistence_id(&context.aggregate_id);
        let first = context.current_sequence as u64 + 1;
        let metadata_bytes = Bytes::from(
            serde_json::to_vec(&metadata).map_err(|e| unexpected(format!("metadata: {e}")))?,
        );
        let timestamp = crate::entity::now_ms();
        let reprs = events
            .iter()
            .zip(first..)
            .map(|(event, seq)| {
                let payload = serde_json::to_vec(event)
                    .map_err(|e| unexpected(format!("event {}: {e}", event.event_type())))?;
                Ok(PersistentRepr::new(pid.clone(), seq, payload)
                    .with_manifest(format!("{}@{}", event.event_type(), event.event_version()))
                    .with_writer_uuid(self.writer_uuid.clone())
                    .with_timestamp(timestamp)
                    .with_metadata(metadata_bytes.clone()))
            })
            .collect::<Result<Vec<_>, AggregateError<A::Error>>>()?;
        let last = first + reprs.len() as u64 - 1;
        let mut results = self
            .journal
            .write(vec![AtomicWrite::new(reprs)])
            .await
            .map_err(store_error)?;
        match results.pop() {
            Some(Ok(())) => {}
            Some(Err(WriteError::Fenced { .. })) => return Err(AggregateError::AggregateConflict),
            Some(Err(e)) => return Err(unexpected(format!("events not stored: {e}"))),
            None => return Err(unexpected("the journal returned no result".to_string())),
        }
        if let Some(size) = self.snapshot_size {
            let size = size as u64;
            if (first - 1) / size != last / size {
                self.save_snapshot(&pid, last, &context.aggregate).await;
            }
        }
        Ok(events
            .into_iter()
            .zip(first..)
            .map(|(payload, seq)| EventEnvelope {
                aggregate_id: context.aggregate_id.clone(),
                sequence: sequence(seq),
                payload,
                metadata: metadata.clone(),
            })
            .collect())
    }
}

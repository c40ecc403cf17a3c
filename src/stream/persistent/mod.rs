//! The persistent stateful stage: a stream stage whose state is event-sourced through the
//! journal and the snapshot store, per input partition, so that after a crash it recovers
//! its state and continues where it left off without applying an input twice.
//!
//! The stage is a group member over its input topics. For each assigned partition it runs an
//! [`Entity`] (persistence id `"{stage_id}/{topic}/{partition}"`) of the user's
//! [`Behavior`], whose commands are the input records: handling a record returns its events;
//! they are persisted in **one atomic write** tagged with the record's offset, then applied.
//! The state therefore knows the offset after the last applied input (the *applied offset*).
//!
//! Per poll, in order:
//! 1. partitions newly assigned are recovered (snapshot, then the events after it), which
//!    gives their applied offset;
//! 2. each record is handled in partition order, unless its offset is below its partition's
//!    applied offset: then it was applied before (the consumer's committed offset lagged
//!    behind the journal) and is skipped;
//! 3. the outputs of the events just persisted (see [`PersistentStage::with_outputs`]) are
//!    sent and acknowledged;
//! 4. the applied offsets are committed for the group;
//! 5. a snapshot is saved for each partition whose [`Behavior::snapshot_policy`] says one is
//!    due, only after the commit succeeded (so events whose outputs might not have been sent
//!    stay in the journal after the latest snapshot, see below).
//!
//! # Guarantees
//!
//! - **State: exactly once.** Every input record is applied to its partition's state exactly
//!   once, across crashes at any point, restarts and partition moves between instances: the
//!   events and their input offset are stored together or not at all, and recovery skips
//!   inputs below the applied offset whatever the committed offset says. This needs the
//!   behaviour's `handle` to be deterministic given the state and the record for records
//!   that produce no events (those are not persisted, so after a crash they are handled
//!   again; with no events they did not change the state).
//! - **Outputs: at least once.** A crash after the events are persisted but before their
//!   outputs are acknowledged and the offset committed loses nothing: on recovery the
//!   replayed events whose input is at or above the committed offset send their outputs
//!   again, so they can be duplicated. (For exactly-once outputs use
//!   [`run_transactional`](super::run_transactional) with the state in the output topic.)
//! - **Committed offsets: a lower bound.** They may lag behind the applied offsets (a commit
//!   that fails is logged, and the next one catches up); they never run ahead of them.
//!
//! Two instances never apply the same partition at once in a healthy group: a partition is
//! handled only between polls, and a revoked partition's entity is dropped before the poll
//! that revoked it returns. An instance that lost its membership but still writes is fenced
//! by the journal ([`EntityError::Fenced`]) and the stage stops with that error.
//!
//! Records are handled one at a time per stage (each a journal write round trip): the stage
//! is meant for state, not for bulk throughput.

mod tagged;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, warn};

use self::tagged::{Tagged, TaggedEvent};
use super::partitioned::{Change, Changes};
use super::ProducerMessage;
use crate::entity::{Behavior, Entity, EntityError, Handled};
use crate::journal::Journal;
use crate::snapshot::SnapshotStore;
use crate::wire::{
    Consumer, ConsumerRecord, DeliveryFuture, Error, OffsetAndMetadata, Producer, TopicPartition,
};

/// Why the stage stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StageError {
    /// The stage is misconfigured (an empty stage id, no topics, no `group.id`).
    #[error("persistent stage: {0}")]
    Config(String),
    /// The consumer failed (poll, committed offsets).
    #[error("persistent stage consumer: {0}")]
    Consumer(#[source] Error),
    /// A partition's entity failed (recovery, a journal write, fencing): the stage must stop
    /// and be restarted, which recovers the partition again.
    #[error("persistent stage partition {partition}: {source}")]
    Entity {
        /// The input partition.
        partition: TopicPartition,
        /// What failed.
        #[source]
        source: EntityError,
    },
    /// An output was not acknowledged; its input's offset was not committed, so it is sent
    /// again after a restart.
    #[error("persistent stage output: {0}")]
    Output(#[source] Error),
}

/// What the stage did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersistentStageStats {
    /// Input records handled (their events persisted and applied, or none produced).
    pub records_applied: u64,
    /// Input records skipped because their partition's state had applied them already.
    pub records_skipped: u64,
    /// Input records the behaviour refused (nothing persisted; they count as handled).
    pub records_refused: u64,
    /// Partitions recovered on assignment.
    pub recoveries: u64,
    /// Of those, recoveries that started from a snapshot.
    pub recoveries_from_snapshot: u64,
    /// Events replayed by the recoveries (after their snapshots).
    pub events_replayed: u64,
    /// Outputs sent again after recovery (their input was not committed).
    pub outputs_resent: u64,
    /// Outputs sent in all.
    pub outputs_sent: u64,
    /// Successful offset commits.
    pub commits: u64,
    /// Snapshots saved.
    pub snapshots: u64,
}

/// Stops a running stage: it finishes the current poll's records, commits, and returns.
#[derive(Debug, Clone, Default)]
pub struct PersistentStageControl {
    stop: Arc<AtomicBool>,
}

impl PersistentStageControl {
    /// Asks the stage to stop after the current poll's records.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

type Outputs<E> = Box<dyn Fn(&E) -> Vec<ProducerMessage<()>> + Send + Sync>;

/// A persistent stateful stage (see the module docs).
///
/// ```no_run
/// # use std::sync::Arc;
/// # use kafka_persistence::entity::Behavior;
/// # use kafka_persistence::wire::{ConsumerRecord, Client, ConsumerConfig};
/// # async fn f<B>(client: Client, journal: Arc<kafka_persistence::journal::Journal>,
/// #     store: Arc<kafka_persistence::snapshot::SnapshotStore>, counter: B)
/// #     -> Result<(), Box<dyn std::error::Error>>
/// # where B: Behavior<Command = ConsumerRecord>, B::Event: Clone {
/// use kafka_persistence::stream::{PersistentStage, PersistentStageControl};
///
/// let consumer = client.consumer(ConsumerConfig::new("click-counter"))?;
/// let control = PersistentStageControl::default();
/// let stats = PersistentStage::new("click-counter", journal, store, counter)
///     .run(consumer, vec!["clicks".into()], control.clone())
///     .await?;
/// # Ok(()) }
/// ```
pub struct PersistentStage<B: Behavior> {
    stage_id: String,
    journal: Arc<Journal>,
    store: Arc<SnapshotStore>,
    behavior: Arc<B>,
    outputs: Option<(Producer, Outputs<B::Event>)>,
    poll_timeout: Duration,
}

impl<B: Behavior> std::fmt::Debug for PersistentStage<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentStage")
            .field("stage_id", &self.stage_id)
            .field("outputs", &self.outputs.is_some())
            .field("poll_timeout", &self.poll_timeout)
            .finish_non_exhaustive()
    }
}

/// The persistence id of a stage's state for one input partition.
pub fn stage_persistence_id(stage_id: &str, partition: &TopicPartition) -> String {
    format!("{stage_id}/{}/{}", partition.topic, partition.partition)
}

/// Recovers the state the stage `stage_id` persisted for `partition` (read only), and the
/// offset after the last input applied to it (0: none). For inspecting a stage's state, for
/// example a query side.
pub async fn recover_stage_state<B>(
    journal: Arc<Journal>,
    store: Arc<SnapshotStore>,
    stage_id: &str,
    partition: &TopicPartition,
    behavior: B,
) -> Result<(B::State, i64), EntityError>
where
    B: Behavior<Command = ConsumerRecord>,
    B::Event: Clone,
{
    let pid = stage_persistence_id(stage_id, partition);
    let entity =
        Entity::recover(journal, store, pid, Tagged::new(Arc::new(behavior), false)).await?;
    let next = entity.state().next_offset;
    Ok((entity.into_state().inner, next))
}

/// One assigned input partition.
struct Part<B: Behavior>
where
    B: Behavior<Command = ConsumerRecord>,
    B::Event: Clone,
{
    entity: Entity<Tagged<B>>,
    /// The offset after the last input handled (applied, skipped or refused).
    next: i64,
}

impl<B> PersistentStage<B>
where
    B: Behavior<Command = ConsumerRecord>,
    B::Event: Clone,
{
    /// A stage named `stage_id` (the prefix of its persistence ids: keep it stable across
    /// restarts and unique per stage) persisting through `journal` and `store`.
    pub fn new(
        stage_id: impl Into<String>,
        journal: Arc<Journal>,
        store: Arc<SnapshotStore>,
        behavior: B,
    ) -> Self {
        PersistentStage {
            stage_id: stage_id.into(),
            journal,
            store,
            behavior: Arc::new(behavior),
            outputs: None,
            poll_timeout: Duration::from_millis(100),
        }
    }

    /// Sends, through `producer`, the records `outputs` derives from each persisted event
    /// (at least once: see the module docs).
    pub fn with_outputs(
        mut self,
        producer: Producer,
        outputs: impl Fn(&B::Event) -> Vec<ProducerMessage<()>> + Send + Sync + 'static,
    ) -> Self {
        self.outputs = Some((producer, Box::new(outputs)));
        self
    }

    /// How long one poll waits for records (default 100 ms; the stop request is checked
    /// between polls).
    pub fn with_poll_timeout(mut self, timeout: Duration) -> Self {
        self.poll_timeout = timeout;
        self
    }

    /// Runs the stage: subscribes `consumer` (a group member, not subscribed yet) to
    /// `topics`, and handles their records until `control` stops it (then returns its
    /// stats, after leaving the group) or an error stops it.
    pub async fn run(
        self,
        mut consumer: Consumer,
        topics: Vec<String>,
        control: PersistentStageControl,
    ) -> Result<PersistentStageStats, StageError> {
        if self.stage_id.is_empty() {
            return Err(StageError::Config("the stage id is empty".to_owned()));
        }
        let changes = Changes::default();
        consumer
            .subscribe(topics, Some(Box::new(changes.clone())))
            .map_err(|e| StageError::Config(e.to_string()))?;
        let mut run = Run {
            stage: &self,
            parts: BTreeMap::new(),
            stats: PersistentStageStats::default(),
        };
        let result = run.run(&mut consumer, &changes, &control).await;
        let closed = consumer.close().await;
        let stats = result?;
        closed.map_err(StageError::Consumer)?;
        Ok(stats)
    }
}

struct Run<'s, B>
where
    B: Behavior<Command = ConsumerRecord>,
    B::Event: Clone,
{
    stage: &'s PersistentStage<B>,
    parts: BTreeMap<TopicPartition, Part<B>>,
    stats: PersistentStageStats,
}

impl<B> Run<'_, B>
where
    B: Behavior<Command = ConsumerRecord>,
    B::Event: Clone,
{
    async fn run(
        &mut self,
        consumer: &mut Consumer,
        changes: &Changes,
        control: &PersistentStageControl,
    ) -> Result<PersistentStageStats, StageError> {
        while !control.stopped() {
            let records = consumer
                .poll(self.stage.poll_timeout)
                .await
                .map_err(StageError::Consumer)?;
            let mut sends = Vec::new();
            let mut touched = BTreeSet::new();
            self.apply_changes(consumer, changes, &mut sends, &mut touched)
                .await?;
            for r in records {
                let tp = r.topic_partition();
                let Some(part) = self.parts.get_mut(&tp) else {
                    // Not expected: every assignment goes through the listener.
                    warn!(partition = %tp, offset = r.offset(), "a record of a partition the stage does not hold");
                    continue;
                };
                touched.insert(tp.clone());
                if r.offset() < part.next {
                    self.stats.records_skipped += 1;
                    continue;
                }
                part.next = r.offset() + 1;
                match part.entity.handle(r).await {
                    Ok(Handled::Persisted { .. }) => self.stats.records_applied += 1,
                    Ok(Handled::Refused(_)) => self.stats.records_refused += 1,
                    Err(source) => {
                        return Err(StageError::Entity {
                            partition: tp,
                            source,
                        })
                    }
                }
                let applied = part.entity.behavior().take_applied();
                self.send(applied, &mut sends, false);
            }
            for s in sends {
                s.await.map_err(StageError::Output)?;
            }
            if touched.is_empty() {
                continue;
            }
            let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = touched
                .iter()
                .filter_map(|tp| self.parts.get(tp).map(|p| (tp.clone(), p.next)))
                .map(|(tp, next)| (tp, OffsetAndMetadata::new(next)))
                .collect();
            if let Err(e) = consumer.commit(&offsets).await {
                // Not fatal: the journal knows what was applied, the next commit catches up.
                warn!(error = %e, "committing the stage's offsets failed");
                continue;
            }
            self.stats.commits += 1;
            self.snapshots(&touched).await;
        }
        Ok(self.stats.clone())
    }

    /// Drops the entities of revoked or lost partitions and recovers the newly assigned
    /// ones, resending the outputs of their events not covered by the committed offset.
    async fn apply_changes(
        &mut self,
        consumer: &mut Consumer,
        changes: &Changes,
        sends: &mut Vec<DeliveryFuture>,
        touched: &mut BTreeSet<TopicPartition>,
    ) -> Result<(), StageError> {
        for (change, partitions) in changes.take() {
            match change {
                Change::Gone => {
                    for tp in partitions {
                        if self.parts.remove(&tp).is_some() {
                            debug!(partition = %tp, "stage partition revoked");
                        }
                    }
                }
                Change::Assigned => {
                    let committed = consumer
                        .committed(&partitions)
                        .await
                        .map_err(StageError::Consumer)?;
                    for tp in partitions {
                        let committed = committed
                            .get(&tp)
                            .and_then(|c| c.as_ref())
                            .map_or(0, |c| c.offset);
                        self.recover(tp, committed, sends, touched).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn recover(
        &mut self,
        tp: TopicPartition,
        committed: i64,
        sends: &mut Vec<DeliveryFuture>,
        touched: &mut BTreeSet<TopicPartition>,
    ) -> Result<(), StageError> {
        let stage = self.stage;
        let pid = stage_persistence_id(&stage.stage_id, &tp);
        let behavior = Tagged::new(Arc::clone(&stage.behavior), stage.outputs.is_some());
        let entity = Entity::recover(
            Arc::clone(&stage.journal),
            Arc::clone(&stage.store),
            pid,
            behavior,
        )
        .await
        .map_err(|source| StageError::Entity {
            partition: tp.clone(),
            source,
        })?;
        let next = entity.state().next_offset;
        let snapshot_nr = entity.last_snapshot_nr();
        self.stats.recoveries += 1;
        if snapshot_nr > 0 {
            self.stats.recoveries_from_snapshot += 1;
        }
        self.stats.events_replayed += entity.last_sequence_nr() - snapshot_nr;
        debug!(partition = %tp, next, committed, snapshot_nr, "stage partition recovered");
        // Events of inputs at or above the committed offset may not have had their outputs
        // acknowledged.
        let unsent: Vec<_> = entity
            .behavior()
            .take_applied()
            .into_iter()
            .filter(|e| e.offset >= committed)
            .collect();
        self.send(unsent, sends, true);
        if next > committed {
            // Commit the applied offset once the resent outputs are acknowledged.
            touched.insert(tp.clone());
        }
        self.parts.insert(tp, Part { entity, next });
        Ok(())
    }

    fn send(
        &mut self,
        events: Vec<TaggedEvent<B::Event>>,
        sends: &mut Vec<DeliveryFuture>,
        again: bool,
    ) {
        let Some((producer, outputs)) = &self.stage.outputs else {
            return;
        };
        for e in events {
            for m in outputs(&e.event) {
                sends.push(producer.enqueue(&m.topic, m.partition, m.records));
                self.stats.outputs_sent += 1;
                if again {
                    self.stats.outputs_resent += 1;
                }
            }
        }
    }

    /// Saves the snapshots that are due (after a successful commit: see the module docs). A
    /// failed snapshot is logged; the next commit tries again.
    async fn snapshots(&mut self, touched: &BTreeSet<TopicPartition>) {
        for tp in touched {
            let Some(part) = self.parts.get_mut(tp) else {
                continue;
            };
            let policy = self.stage.behavior.snapshot_policy();
            let e = &part.entity;
            if !policy.is_due(e.last_sequence_nr(), e.last_snapshot_nr()) {
                continue;
            }
            match part.entity.save_snapshot().await {
                Ok(_) => self.stats.snapshots += 1,
                Err(e) => warn!(partition = %tp, error = %e, "stage snapshot failed"),
            }
        }
    }
}

//! Streams over Kafka topics in the Alpakka Kafka style, as plain `futures::Stream`s.
//!
//! - [`plain_source`]: the records of a [`Consumer`](crate::wire::Consumer), back-pressured
//!   (the consumer polls only while the stream's small buffer has room).
//! - [`committable_source`]: the same, each message carrying its [`CommittableOffset`].
//! - [`plain_partitioned_source`] / [`committable_partitioned_source`]: one sub-stream per
//!   assigned partition, for processing partitions in parallel; a sub-stream completes when
//!   its partition is revoked, and back-pressure pauses only its own partition.
//! - [`commit_offsets`]: the committer, batching offsets by count and by interval.
//! - [`producer_flow`] / [`produce_all`]: a producing flow (results in input order, with a
//!   passthrough such as the consumed message's offset) and sink.
//! - [`run_transactional`]: the transactional consume-transform-produce stage (exactly once,
//!   offsets committed in the output's transaction every commit interval).
//! - [`PersistentStage`]: a stateful stage whose state is event-sourced per input partition
//!   through the journal and the snapshot store: after a crash it recovers and goes on
//!   without applying an input twice (outputs at least once).
//! - [`Control`]: the draining control handle: stop polling, let in-flight messages finish,
//!   commit, leave the group.
//!
//! The consumer runs on its own task (the source's "actor"): it polls when the downstream has
//! room, and serves commits and control commands in between, so committing never depends on
//! the downstream pulling. Delivery is at least once: offsets not committed when partitions
//! move (a rebalance) are consumed again by the new owner. The source refuses commits for
//! partitions it no longer holds, so a late commit cannot move a new owner's offset back.

mod committer;
mod control;
mod partitioned;
mod persistent;
mod producer;
mod source;
mod transactional;

pub use committer::{commit_offsets, CommitStats, CommitterSettings};
pub use control::{CommittableMessage, CommittableOffset, Control};
pub use partitioned::{
    committable_partitioned_source, plain_partitioned_source, CommittablePartition,
    CommittablePartitionedSource, PartitionRecords, PartitionedSettings, PartitionedSource,
};
pub use persistent::{
    recover_stage_state, stage_persistence_id, PersistentStage, PersistentStageControl,
    PersistentStageStats, StageError,
};
pub use producer::{produce_all, producer_flow, ProducerMessage};
pub use source::{
    committable_source, plain_source, CommittableStream, RecordStream, SourceSettings,
};
pub use transactional::{
    run_transactional, TransactionalControl, TransactionalOutput, TransactionalSettings,
    TransactionalStats,
};

//! The handles to a source's consumer task: [`Control`] (stop, commit, shutdown, drain) and
//! the [`CommittableOffset`] a committable message carries. Both send [`Command`]s to the
//! task, which serves them between polls ([`serve_commit`] for commits).

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::wire::sync::lock;
use crate::wire::{Consumer, ConsumerRecord, Error, OffsetAndMetadata, TopicPartition};

pub(super) type Reply = oneshot::Sender<Result<(), Error>>;

pub(super) enum Command {
    Commit(Vec<(TopicPartition, OffsetAndMetadata)>, Reply),
    Stop,
    Shutdown,
}

/// The consumer task, until [`Control::shutdown`] takes it to await its result.
pub(super) type Task = Arc<Mutex<Option<JoinHandle<Result<(), Error>>>>>;

/// The draining control handle of a source. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Control {
    pub(super) commands: mpsc::UnboundedSender<Command>,
    pub(super) task: Task,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Commit(o, _) => write!(f, "Commit({} offsets)", o.len()),
            Command::Stop => write!(f, "Stop"),
            Command::Shutdown => write!(f, "Shutdown"),
        }
    }
}

impl Control {
    /// Stops polling: the stream ends once the records already polled are taken. Commits are
    /// still served until [`Control::shutdown`].
    pub fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
    }

    /// Commits `offsets` through the source's consumer (partitions it no longer holds are
    /// skipped).
    pub async fn commit(
        &self,
        offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
    ) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Commit(offsets, tx))
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Stops the source and closes its consumer (auto-commit if enabled, the listener's
    /// revocation, LeaveGroup). Returns the consumer task's result (the first error it met).
    pub async fn shutdown(&self) -> Result<(), Error> {
        let _ = self.commands.send(Command::Stop);
        let _ = self.commands.send(Command::Shutdown);
        let task = lock(&self.task).take();
        match task {
            Some(t) => t.await.unwrap_or(Err(Error::Closed)),
            None => Ok(()),
        }
    }

    /// The draining shutdown: stops polling, waits for `completion` (the rest of the
    /// pipeline, e.g. [`commit_offsets`](super::commit_offsets) over the stream, which
    /// finishes once the in-flight messages are through and their offsets committed), then
    /// shuts the consumer down. Returns the pipeline's result (or the consumer's error).
    pub async fn drain_and_shutdown<T>(
        &self,
        completion: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        self.stop();
        let r = completion.await;
        let closed = self.shutdown().await;
        let value = r?;
        closed.map(|()| value)
    }
}

impl Control {
    /// The handle of a task just spawned with `commands` as its command channel.
    pub(super) fn new(
        commands: mpsc::UnboundedSender<Command>,
        task: JoinHandle<Result<(), Error>>,
    ) -> Control {
        Control {
            commands,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }
}

/// Serves a commit on the consumer's task: partitions the consumer no longer holds are
/// skipped (their new owner's offsets must not move back).
pub(super) async fn serve_commit(
    consumer: &mut Consumer,
    offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
    reply: Reply,
) {
    let held = consumer.assignment();
    let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = offsets
        .into_iter()
        .filter(|(tp, _)| held.contains(tp))
        .collect();
    let r = consumer.commit(&offsets).await;
    let _ = reply.send(r);
}

/// The offset to commit once a message is processed: the position after it.
#[derive(Debug, Clone)]
pub struct CommittableOffset {
    /// The partition.
    pub partition: TopicPartition,
    /// The offset to commit (the message's offset + 1).
    pub offset: i64,
    pub(crate) control: Control,
}

impl CommittableOffset {
    /// Commits this offset at once (prefer batching with [`commit_offsets`](super::commit_offsets)).
    pub async fn commit(&self) -> Result<(), Error> {
        self.control
            .commit(vec![(
                self.partition.clone(),
                OffsetAndMetadata::new(self.offset),
            )])
            .await
    }

    /// Whether two offsets come from the same source.
    pub(crate) fn same_source(&self, other: &CommittableOffset) -> bool {
        self.control.commands.same_channel(&other.control.commands)
    }
}

/// A consumed record with its [`CommittableOffset`].
#[derive(Debug, Clone)]
pub struct CommittableMessage {
    /// The record.
    pub record: ConsumerRecord,
    /// Where to commit once it is processed.
    pub offset: CommittableOffset,
}

impl CommittableMessage {
    /// `record` with the offset after it, committed through `control`.
    pub(super) fn new(record: ConsumerRecord, control: &Control) -> CommittableMessage {
        let offset = CommittableOffset {
            partition: record.topic_partition(),
            offset: record.offset() + 1,
            control: control.clone(),
        };
        CommittableMessage { record, offset }
    }
}

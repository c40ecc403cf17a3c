//! Sources: the consumer's task, the record streams, and the control handle.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::wire::sync::lock;
use crate::wire::{Consumer, ConsumerRecord, Error, OffsetAndMetadata, TopicPartition};

/// Settings of a source.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    /// How long one poll of the consumer waits for records (commands are served between
    /// polls; default 100 ms).
    pub poll_timeout: Duration,
    /// How many polled batches may wait for the downstream before the consumer stops
    /// polling (default 2).
    pub buffer_batches: usize,
}

impl Default for SourceSettings {
    fn default() -> Self {
        SourceSettings {
            poll_timeout: Duration::from_millis(100),
            buffer_batches: 2,
        }
    }
}

type Reply = oneshot::Sender<Result<(), Error>>;

enum Command {
    Commit(Vec<(TopicPartition, OffsetAndMetadata)>, Reply),
    Stop,
    Shutdown,
}

type Batch = Result<Vec<ConsumerRecord>, Error>;

/// The consumer task, until [`Control::shutdown`] takes it to await its result.
type Task = Arc<Mutex<Option<JoinHandle<Result<(), Error>>>>>;

/// The draining control handle of a source. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Control {
    commands: mpsc::UnboundedSender<Command>,
    task: Task,
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

fn spawn(consumer: Consumer, settings: SourceSettings) -> (mpsc::Receiver<Batch>, Control) {
    let (tx, rx) = mpsc::channel(settings.buffer_batches.max(1));
    let (ctx, crx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(consumer, tx, crx, settings.poll_timeout));
    (
        rx,
        Control {
            commands: ctx,
            task: Arc::new(Mutex::new(Some(task))),
        },
    )
}

/// The consumer's task: poll while the stream has room; serve commands in between.
async fn run(
    mut consumer: Consumer,
    tx: mpsc::Sender<Batch>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    poll_timeout: Duration,
) -> Result<(), Error> {
    let mut tx = Some(tx);
    let mut first_error: Option<Error> = None;
    loop {
        let event = match &tx {
            Some(t) => {
                let reserve = t.clone().reserve_owned();
                tokio::select! {
                    biased;
                    c = commands.recv() => Event::Command(c),
                    p = reserve => Event::Room(p.ok()),
                }
            }
            None => Event::Command(commands.recv().await),
        };
        match event {
            Event::Command(None) | Event::Command(Some(Command::Shutdown)) => break,
            Event::Command(Some(Command::Stop)) => {
                debug!(reason = "stop requested", "source stops polling");
                tx = None;
            }
            Event::Command(Some(Command::Commit(offsets, reply))) => {
                let held = consumer.assignment();
                let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = offsets
                    .into_iter()
                    .filter(|(tp, _)| held.contains(tp))
                    .collect();
                let r = consumer.commit(&offsets).await;
                let _ = reply.send(r);
            }
            // The stream was dropped.
            Event::Room(None) => tx = None,
            Event::Room(Some(permit)) => match consumer.poll(poll_timeout).await {
                Ok(recs) if recs.is_empty() => {}
                Ok(recs) => {
                    permit.send(Ok(recs));
                }
                Err(e) => {
                    debug!(error = %e, "source poll failed; ending the stream");
                    let shown = Error::Config(format!("consumer poll failed: {e}"));
                    permit.send(Err(e));
                    first_error.get_or_insert(shown);
                    tx = None;
                }
            },
        }
    }
    let closed = consumer.close().await;
    match first_error {
        Some(e) => Err(e),
        None => closed,
    }
}

enum Event {
    Command(Option<Command>),
    Room(Option<mpsc::OwnedPermit<Batch>>),
}

/// The records of a source, one at a time (see [`plain_source`]).
#[derive(Debug)]
pub struct RecordStream {
    rx: mpsc::Receiver<Batch>,
    buf: VecDeque<ConsumerRecord>,
    done: bool,
}

impl Stream for RecordStream {
    type Item = Result<ConsumerRecord, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(r) = self.buf.pop_front() {
                return Poll::Ready(Some(Ok(r)));
            }
            if self.done {
                return Poll::Ready(None);
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(batch))) => self.buf.extend(batch),
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A plain source: the consumer's records as a stream, and its [`Control`]. The consumer
/// should be subscribed or assigned already; the source owns it from now on.
pub fn plain_source(consumer: Consumer, settings: SourceSettings) -> (RecordStream, Control) {
    let (rx, control) = spawn(consumer, settings);
    (
        RecordStream {
            rx,
            buf: VecDeque::new(),
            done: false,
        },
        control,
    )
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

/// The messages of a committable source (see [`committable_source`]).
#[derive(Debug)]
pub struct CommittableStream {
    inner: RecordStream,
    control: Control,
}

impl Stream for CommittableStream {
    type Item = Result<CommittableMessage, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(record))) => {
                let offset = CommittableOffset {
                    partition: record.topic_partition(),
                    offset: record.offset() + 1,
                    control: self.control.clone(),
                };
                Poll::Ready(Some(Ok(CommittableMessage { record, offset })))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A committable source: messages carry the offset to commit after processing them.
pub fn committable_source(
    consumer: Consumer,
    settings: SourceSettings,
) -> (CommittableStream, Control) {
    let (inner, control) = plain_source(consumer, settings);
    (
        CommittableStream {
            inner,
            control: control.clone(),
        },
        control,
    )
}

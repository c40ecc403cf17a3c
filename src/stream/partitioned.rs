//! Per-partition sources (Alpakka's `plainPartitionedSource` / `committablePartitionedSource`):
//! a stream of `(partition, sub-stream)` pairs, one for each partition the group assigns to
//! this member, so that each partition can be processed by its own task.
//!
//! One task owns the consumer, as for [`plain_source`](super::plain_source). It subscribes
//! with its own [`RebalanceListener`], and after each poll it applies what the listener saw,
//! in order:
//! - assigned partitions get a new sub-stream, handed out on the outer stream;
//! - revoked or lost partitions complete their sub-stream at once: records it still buffers
//!   are dropped (their offsets could not be committed any more; the partition's new owner
//!   consumes them from the committed offset), so a per-partition task ends cleanly. A
//!   partition assigned again later gets a new sub-stream.
//!
//! Back-pressure is per partition: the polled records of a partition go to its sub-stream's
//! buffer, and once that buffer holds `buffer_records` records the partition is paused
//! ([`Consumer::pause`]); it is resumed when its sub-stream has taken records again (checked
//! before each poll). A slow sub-stream therefore stops only its own partition. A sub-stream
//! that is dropped pauses its partition until the partition is revoked (its records are
//! consumed again by whoever gets it next, from the committed offset).
//!
//! [`Control::stop`] ends every sub-stream after the records it already buffers, and the
//! outer stream; commits are served until [`Control::shutdown`]. A poll error completes the
//! sub-streams and ends the outer stream with the error.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::Stream;
use tokio::sync::mpsc;
use tracing::debug;

use super::control::{serve_commit, Command, CommittableMessage, Control};
use crate::wire::sync::lock;
use crate::wire::{
    Consumer, ConsumerRecord, Error, RebalanceContext, RebalanceListener, TopicPartition,
};

/// Settings of a partitioned source.
#[derive(Debug, Clone)]
pub struct PartitionedSettings {
    /// How long one poll of the consumer waits for records (commands, resumptions and
    /// assignment changes are handled between polls; default 100 ms).
    pub poll_timeout: Duration,
    /// How many records a sub-stream may buffer before its partition is paused (default
    /// 1000; at least 1).
    pub buffer_records: usize,
}

impl Default for PartitionedSettings {
    fn default() -> Self {
        PartitionedSettings {
            poll_timeout: Duration::from_millis(100),
            buffer_records: 1000,
        }
    }
}

/// Why a sub-stream's buffer stopped taking records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Still open.
    Open,
    /// Stopped or failed: the buffered records are still delivered.
    Drain,
    /// Revoked or lost: the buffered records were dropped.
    Revoked,
}

/// A sub-stream's buffer, shared by the consumer task (pushing) and the sub-stream (taking).
#[derive(Debug)]
struct Queue {
    records: VecDeque<ConsumerRecord>,
    end: End,
    /// The sub-stream was dropped.
    dropped: bool,
    waker: Option<Waker>,
}

type Shared = Arc<Mutex<Queue>>;

fn new_queue() -> Shared {
    Arc::new(Mutex::new(Queue {
        records: VecDeque::new(),
        end: End::Open,
        dropped: false,
        waker: None,
    }))
}

fn close(shared: &Shared, end: End) {
    let waker = {
        let mut q = lock(shared);
        q.end = end;
        if end == End::Revoked {
            q.records.clear();
        }
        q.waker.take()
    };
    if let Some(w) = waker {
        w.wake();
    }
}

/// The records of one partition, while it is assigned (see the module docs).
#[derive(Debug)]
pub struct PartitionRecords {
    shared: Shared,
}

impl Stream for PartitionRecords {
    type Item = ConsumerRecord;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut q = lock(&self.shared);
        if let Some(r) = q.records.pop_front() {
            return Poll::Ready(Some(r));
        }
        if q.end != End::Open {
            return Poll::Ready(None);
        }
        q.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for PartitionRecords {
    fn drop(&mut self) {
        let mut q = lock(&self.shared);
        q.dropped = true;
        q.records.clear();
    }
}

/// The messages of one partition with their [`CommittableOffset`](super::CommittableOffset),
/// while it is assigned.
#[derive(Debug)]
pub struct CommittablePartition {
    inner: PartitionRecords,
    control: Control,
}

impl Stream for CommittablePartition {
    type Item = CommittableMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(r)) => Poll::Ready(Some(CommittableMessage::new(r, &self.control))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

type Assigned = Result<(TopicPartition, PartitionRecords), Error>;

/// The partitions assigned to a partitioned source, each with its records (see
/// [`plain_partitioned_source`]).
#[derive(Debug)]
pub struct PartitionedSource {
    rx: mpsc::UnboundedReceiver<Assigned>,
}

impl Stream for PartitionedSource {
    type Item = Assigned;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// The partitions assigned to a committable partitioned source, each with its messages (see
/// [`committable_partitioned_source`]).
#[derive(Debug)]
pub struct CommittablePartitionedSource {
    inner: PartitionedSource,
    control: Control,
}

impl Stream for CommittablePartitionedSource {
    type Item = Result<(TopicPartition, CommittablePartition), Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok((tp, inner)))) => {
                let control = self.control.clone();
                Poll::Ready(Some(Ok((tp, CommittablePartition { inner, control }))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A plain partitioned source: subscribes `consumer` to `topics` (replacing a subscription
/// it had) and streams each assigned partition with its records. Fails at once if the
/// consumer has no `group.id` or `topics` is empty.
///
/// ```no_run
/// # async fn f(client: kafka_persistence::wire::Client) -> Result<(), kafka_persistence::wire::Error> {
/// use futures::StreamExt;
/// use kafka_persistence::stream::{plain_partitioned_source, PartitionedSettings};
/// use kafka_persistence::wire::ConsumerConfig;
///
/// let consumer = client.consumer(ConsumerConfig::new("counters"))?;
/// let (mut partitions, control) =
///     plain_partitioned_source(consumer, vec!["clicks".into()], PartitionedSettings::default())?;
/// while let Some(assigned) = partitions.next().await {
///     let (tp, records) = assigned?;
///     // One task per partition; it ends when the partition is revoked.
///     tokio::spawn(async move {
///         let n = records.count().await;
///         println!("{tp}: {n} records");
///     });
/// }
/// control.shutdown().await
/// # }
/// ```
pub fn plain_partitioned_source(
    mut consumer: Consumer,
    topics: Vec<String>,
    settings: PartitionedSettings,
) -> Result<(PartitionedSource, Control), Error> {
    let changes = Changes::default();
    consumer.subscribe(topics, Some(Box::new(changes.clone())))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (ctx, crx) = mpsc::unbounded_channel();
    let task = Task {
        consumer,
        changes,
        partitions: BTreeMap::new(),
        assigned: Some(tx),
        limit: settings.buffer_records.max(1),
        poll_timeout: settings.poll_timeout,
    };
    let handle = tokio::spawn(task.run(crx));
    Ok((PartitionedSource { rx }, Control::new(ctx, handle)))
}

/// A committable partitioned source: [`plain_partitioned_source`] whose sub-streams carry
/// [`CommittableOffset`](super::CommittableOffset)s, for
/// [`commit_offsets`](super::commit_offsets) (one committer per sub-stream, or one over the
/// merged sub-streams). Commits of a revoked partition are skipped.
pub fn committable_partitioned_source(
    consumer: Consumer,
    topics: Vec<String>,
    settings: PartitionedSettings,
) -> Result<(CommittablePartitionedSource, Control), Error> {
    let (inner, control) = plain_partitioned_source(consumer, topics, settings)?;
    Ok((
        CommittablePartitionedSource {
            inner,
            control: control.clone(),
        },
        control,
    ))
}

/// An assignment change the listener saw.
#[derive(Debug, Clone, Copy)]
pub(super) enum Change {
    Assigned,
    Gone,
}

/// The rebalance listener of a partitioned source (and of the persistent stage): records the
/// changes for the consumer's task to apply after the poll they happened in.
#[derive(Debug, Clone, Default)]
pub(super) struct Changes(Arc<Mutex<ChangeLog>>);

/// The changes in the order they happened.
pub(super) type ChangeLog = Vec<(Change, Vec<TopicPartition>)>;

impl Changes {
    fn push(&self, change: Change, partitions: &[TopicPartition]) {
        if !partitions.is_empty() {
            lock(&self.0).push((change, partitions.to_vec()));
        }
    }

    pub(super) fn take(&self) -> ChangeLog {
        std::mem::take(&mut *lock(&self.0))
    }
}

impl RebalanceListener for Changes {
    fn on_partitions_revoked<'a>(
        &'a mut self,
        _ctx: &'a mut RebalanceContext<'_>,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        self.push(Change::Gone, partitions);
        Box::pin(async {})
    }

    fn on_partitions_assigned<'a>(
        &'a mut self,
        _ctx: &'a mut RebalanceContext<'_>,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        self.push(Change::Assigned, partitions);
        Box::pin(async {})
    }

    fn on_partitions_lost<'a>(
        &'a mut self,
        _ctx: &'a mut RebalanceContext<'_>,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        self.push(Change::Gone, partitions);
        Box::pin(async {})
    }
}

/// One assigned partition on the task's side.
struct Partition {
    shared: Shared,
    paused: bool,
}

/// The consumer's task of a partitioned source.
struct Task {
    consumer: Consumer,
    changes: Changes,
    partitions: BTreeMap<TopicPartition, Partition>,
    /// Where new sub-streams go (`None` once stopped).
    assigned: Option<mpsc::UnboundedSender<Assigned>>,
    limit: usize,
    poll_timeout: Duration,
}

impl Task {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) -> Result<(), Error> {
        let mut first_error: Option<Error> = None;
        'outer: loop {
            // Commands first: commits wait for at most one poll.
            loop {
                let command = if self.assigned.is_some() {
                    match commands.try_recv() {
                        Ok(c) => Some(c),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => None,
                    }
                } else {
                    // Stopped: only commands are left to serve.
                    commands.recv().await
                };
                match command {
                    None | Some(Command::Shutdown) => break 'outer,
                    Some(Command::Stop) => self.stop("stop requested"),
                    Some(Command::Commit(offsets, reply)) => {
                        serve_commit(&mut self.consumer, offsets, reply).await;
                    }
                }
            }
            if self.abandoned() {
                self.stop("the stream and every sub-stream were dropped");
                continue;
            }
            self.resume_ready();
            match self.consumer.poll(self.poll_timeout).await {
                Ok(records) => {
                    self.apply_changes();
                    self.dispatch(records);
                }
                Err(e) => {
                    debug!(error = %e, "partitioned source poll failed; ending the streams");
                    // The changes of the failed poll still end or start sub-streams.
                    self.apply_changes();
                    first_error.get_or_insert(Error::Config(format!("consumer poll failed: {e}")));
                    if let Some(tx) = &self.assigned {
                        let _ = tx.send(Err(e));
                    }
                    self.stop("poll failed");
                }
            }
        }
        self.stop("shutdown");
        let closed = self.consumer.close().await;
        match first_error {
            Some(e) => Err(e),
            None => closed,
        }
    }

    /// Ends the outer stream and, after their buffered records, the sub-streams.
    fn stop(&mut self, reason: &str) {
        if self.assigned.take().is_some() {
            debug!(reason, "partitioned source stops polling");
        }
        for p in self.partitions.values() {
            close(&p.shared, End::Drain);
        }
    }

    /// Whether nobody can take records any more.
    fn abandoned(&self) -> bool {
        self.assigned.as_ref().is_some_and(|tx| tx.is_closed())
            && self.partitions.values().all(|p| lock(&p.shared).dropped)
    }

    /// Resumes the paused partitions whose sub-stream has room again.
    fn resume_ready(&mut self) {
        let mut ready = Vec::new();
        for (tp, p) in &mut self.partitions {
            if p.paused {
                let q = lock(&p.shared);
                if !q.dropped && q.records.len() < self.limit {
                    p.paused = false;
                    ready.push(tp.clone());
                }
            }
        }
        if !ready.is_empty() {
            debug!(partitions = ready.len(), "resuming partitions with room");
            if let Err(e) = self.consumer.resume(&ready) {
                debug!(error = %e, "resume failed");
            }
        }
    }

    /// Applies the assignment changes of the last poll, in order.
    fn apply_changes(&mut self) {
        for (change, partitions) in self.changes.take() {
            for tp in partitions {
                match change {
                    Change::Gone => {
                        if let Some(p) = self.partitions.remove(&tp) {
                            debug!(partition = %tp, "partition revoked: its sub-stream completes");
                            close(&p.shared, End::Revoked);
                        }
                    }
                    Change::Assigned => {
                        let shared = new_queue();
                        if let Some(old) = self.partitions.insert(
                            tp.clone(),
                            Partition {
                                shared: Arc::clone(&shared),
                                paused: false,
                            },
                        ) {
                            close(&old.shared, End::Revoked);
                        }
                        let records = PartitionRecords { shared };
                        match &self.assigned {
                            Some(tx) => {
                                // If the outer stream was dropped, the sub-stream is
                                // dropped with the failed send, which pauses its partition
                                // in `dispatch`.
                                let _ = tx.send(Ok((tp, records)));
                            }
                            None => close(&records.shared, End::Drain),
                        }
                    }
                }
            }
        }
    }

    /// Hands the polled records to their sub-streams, pausing partitions whose sub-stream is
    /// full or dropped.
    fn dispatch(&mut self, records: Vec<ConsumerRecord>) {
        let mut by_partition: BTreeMap<TopicPartition, Vec<ConsumerRecord>> = BTreeMap::new();
        for r in records {
            by_partition.entry(r.topic_partition()).or_default().push(r);
        }
        let mut pause = Vec::new();
        for tp in by_partition
            .keys()
            .filter(|tp| !self.partitions.contains_key(*tp))
        {
            // Not expected: every assignment goes through the listener.
            tracing::warn!(partition = %tp, "records of a partition without a sub-stream");
        }
        for (tp, p) in &mut self.partitions {
            let batch = by_partition.remove(tp);
            let (full, waker) = {
                let mut q = lock(&p.shared);
                if q.dropped {
                    (true, None)
                } else {
                    let mut waker = None;
                    if let Some(batch) = batch {
                        q.records.extend(batch);
                        waker = q.waker.take();
                    }
                    (q.records.len() >= self.limit, waker)
                }
            };
            if let Some(w) = waker {
                w.wake();
            }
            if full && !p.paused {
                p.paused = true;
                pause.push(tp.clone());
            }
        }
        if !pause.is_empty() {
            debug!(
                partitions = pause.len(),
                "pausing partitions with a full sub-stream"
            );
            if let Err(e) = self.consumer.pause(&pause) {
                debug!(error = %e, "pause failed");
            }
        }
    }
}

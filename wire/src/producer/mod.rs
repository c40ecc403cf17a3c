//! The producer: batching, pipelining, idempotence, retries.
//!
//! Files, one concern each: this one holds the entry points ([`Producer::enqueue`], `send`,
//! `flush`, `close`, back-pressure through the backlog); `accumulator` the per-partition
//! batches and the completion of sends; `sink` the per-broker ProduceRequests and responses;
//! `policy` the pure decision "error + batch state -> action"; `split` the splitting of
//! batches refused as too large; `recovery` the slow path after an error.
//!
//! Invariants (the "why" behind the code):
//! - Order: a send takes its place in its partition's line when [`Producer::enqueue`] returns
//!   (directly in the accumulator, or at the tail of the backlog when it must wait for the
//!   producer id or buffer space; the backlog is entered and left in call order and the fast
//!   path is only taken while it is empty). So the call order of `enqueue` is the record order.
//! - One `send` = one contiguous run of records inside ONE record batch: stored whole or not
//!   at all. Sends to the same partition may share a batch; each send learns the offset of its
//!   own first record.
//! - Per partition, batches form a queue in sequence order. At most `max_in_flight` (<= 5, the
//!   broker's idempotence window) are in flight; more sends coalesce into the open batch
//!   while the window is full, which is where batching comes from when linger is 0.
//! - An idempotent partition keeps ONE batch in flight until a batch of its current producer
//!   id/epoch has been acknowledged, and again after any error until the next success. A
//!   broker with no state for our producer on a partition accepts ANY first sequence, so with
//!   a pipelined window a second batch could be stored before a failed first one (reordered,
//!   and the first one's retry then gets OUT_OF_ORDER_SEQUENCE_NUMBER).
//! - A batch is encoded once, when it is closed. A retry resends the identical bytes with
//!   the identical sequence: an ambiguous outcome (timeout, connection lost after sending,
//!   REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS_AFTER_APPEND) is never re-sequenced, so the broker
//!   deduplicates (it answers a duplicate with the original offset, or
//!   DUPLICATE_SEQUENCE_NUMBER, which counts as success).
//! - On any error for a partition, the partition stops sending, waits until nothing is in
//!   flight, then one recovery task refreshes metadata if needed, backs off, and resends the
//!   queue in order. OUT_OF_ORDER_SEQUENCE_NUMBER for a batch that has an earlier batch still
//!   pending is just the echo of that earlier failure and is retried the same way.
//! - A batch that is given up on (non-retriable error, delivery timeout) or a broker that lost
//!   our producer state (UNKNOWN_PRODUCER_ID, OUT_OF_ORDER_SEQUENCE_NUMBER at the head of the
//!   queue) makes the partition take a fresh producer id and restamp the remaining batches
//!   from sequence 0 (KIP-360 in spirit): a fresh id can never be confused with batches the
//!   broker may or may not have written under the old one.
//! - Response handling runs on the connection's reader task (a callback): no task hop between
//!   the socket and completing the senders. Slow paths (backoff, metadata, InitProducerId)
//!   run in a spawned recovery task. Lock order: producer state, then connection state, then
//!   metadata; a callback is never run while the producer state is locked.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use tokio::sync::{oneshot, Notify, OnceCell, Semaphore};
use tracing::debug;

use crate::client::Client;
use crate::config::ProducerConfig;
use crate::error::Error;
use crate::partitioner::{DefaultPartitioner, Partitioner};
use crate::record::Record;

mod accumulator;
mod policy;
mod recovery;
mod sink;
mod split;
mod txn;

pub use txn::{ConsumerGroupMetadata, TransactionalProducer, TxnDelivery};

use accumulator::{mark_dirty, record_size, Completion, Gate, Pending, State};

/// Where a send landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset of the send's first record (-1 with `Acks::None`).
    pub base_offset: i64,
}

/// The outcome of one [`Producer::enqueue`]: resolves once the send is stored (or failed).
/// `'static` and independent of the producer handle; dropping it does not withdraw the send.
#[derive(Debug)]
#[must_use = "the send happens anyway; the future only reports its outcome"]
pub struct DeliveryFuture {
    state: Delivery,
}

#[derive(Debug)]
enum Delivery {
    Done(Option<Result<RecordMetadata, Error>>),
    Waiting {
        rx: oneshot::Receiver<Result<i64, Error>>,
        topic: Arc<str>,
        partition: i32,
    },
}

impl DeliveryFuture {
    fn failed(e: Error) -> DeliveryFuture {
        DeliveryFuture {
            state: Delivery::Done(Some(Err(e))),
        }
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            Delivery::Done(r) => Poll::Ready(r.take().unwrap_or(Err(Error::Closed))),
            Delivery::Waiting {
                rx,
                topic,
                partition,
            } => match Pin::new(rx).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(r) => {
                    let out = match r {
                        Ok(Ok(base_offset)) => Ok(RecordMetadata {
                            topic: topic.to_string(),
                            partition: *partition,
                            base_offset,
                        }),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(Error::Closed),
                    };
                    self.state = Delivery::Done(None);
                    Poll::Ready(out)
                }
            },
        }
    }
}

/// An idempotent (by default) producer. Cheap to clone; clones share batches and state.
#[derive(Clone, Debug)]
pub struct Producer {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    client: Client,
    config: ProducerConfig,
    idempotent: bool,
    request_timeout: Duration,
    delivery_timeout: Duration,
    state: Mutex<State>,
    /// Producer id shared by partitions until one needs a fresh one.
    pid: OnceCell<(i64, i16)>,
    /// Bytes of records buffered or in flight (backpressure).
    buffer: Arc<Semaphore>,
    buffer_permits: u32,
    /// Signalled whenever a batch completes (flush, recovery).
    progress: Notify,
    /// Batches (open or queued) not yet completed, for `flush`.
    outstanding: AtomicUsize,
    /// Completions waiting for the state lock to be released.
    completions: Mutex<Vec<Completion>>,
    next_batch_id: AtomicU64,
    partitioner: Arc<dyn Partitioner>,
    /// `close` was called: new sends fail with [`Error::Closed`].
    closed: AtomicBool,
    /// Partitions start [`Gate::Held`] (a transactional producer's: sent only once in the
    /// transaction, see [`Producer::admit`]).
    gated: bool,
    /// Told about every failed send (a transactional producer's bookkeeping).
    on_failure: Option<FailureHook>,
}

/// Called with the error of every failed send.
pub(crate) type FailureHook = Arc<dyn Fn(&Error) + Send + Sync>;

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Producer {
    pub(crate) fn new(client: Client, config: ProducerConfig) -> Producer {
        let idempotent = config.is_idempotent();
        let permits = u32::try_from(config.buffer_memory)
            .unwrap_or(u32::MAX)
            .min(Semaphore::MAX_PERMITS as u32);
        let request_timeout = client.inner.config.request_timeout;
        let delivery_timeout = client.inner.config.delivery_timeout;
        let partitioner = config
            .partitioner
            .clone()
            .unwrap_or_else(|| Arc::new(DefaultPartitioner::default()));
        Producer {
            inner: Arc::new(Inner {
                client,
                config,
                idempotent,
                request_timeout,
                delivery_timeout,
                state: Mutex::new(State::default()),
                pid: OnceCell::new(),
                buffer: Arc::new(Semaphore::new(permits as usize)),
                buffer_permits: permits,
                progress: Notify::new(),
                outstanding: AtomicUsize::new(0),
                completions: Mutex::new(Vec::new()),
                next_batch_id: AtomicU64::new(1),
                partitioner,
                closed: AtomicBool::new(false),
                gated: false,
                on_failure: None,
            }),
        }
    }

    /// A transactional producer's inner producer: its producer id and epoch are known (from
    /// the coordinator), it never asks for one itself; its partitions send only once
    /// admitted ([`Producer::admit`]); `on_failure` hears of every failed send.
    pub(crate) fn transactional(
        client: Client,
        config: ProducerConfig,
        id: (i64, i16),
        on_failure: FailureHook,
    ) -> Producer {
        let mut p = Producer::new(client, config);
        let inner = Arc::get_mut(&mut p.inner).expect("a new producer is not shared");
        inner.gated = true;
        inner.on_failure = Some(on_failure);
        let _ = p.inner.pid.set(id);
        p
    }

    /// Sets the gate of each of `partitions` (a gated producer's): `Ok` opens them (their
    /// batches are sent), `Err` fails their sends, now and later, until
    /// [`Producer::hold_all`].
    pub(crate) fn admit(&self, partitions: &[(String, i32)], outcome: Result<(), &Error>) {
        let gate = match outcome {
            Ok(()) => Gate::Open,
            Err(e) => Gate::Failed(Arc::new(e.duplicate())),
        };
        let mut st = self.inner.lock_state();
        for (topic, partition) in partitions {
            let State {
                topics,
                dirty,
                early_gates,
                ..
            } = &mut *st;
            match topics
                .get_mut(topic.as_str())
                .and_then(|m| m.get_mut(partition))
            {
                Some(p) => {
                    p.gate = gate.clone();
                    mark_dirty(dirty, p);
                }
                None => early_gates.push((topic.clone(), *partition, gate.clone())),
            }
        }
        self.inner.drain(&mut st, false);
    }

    /// Holds every partition again (a gated producer's, between transactions: each must be
    /// admitted anew). Call it when nothing is outstanding.
    pub(crate) fn hold_all(&self) {
        let mut st = self.inner.lock_state();
        st.early_gates.clear();
        for p in st.topics.values_mut().flat_map(|m| m.values_mut()) {
            p.gate = Gate::Held;
        }
    }

    /// Appends `records` to the queue of `topic`/`partition` before it returns, as part of ONE
    /// record batch (stored whole or not at all), possibly together with other sends to the
    /// same partition. The call order of `enqueue` is the order of the records in the
    /// partition. The returned future resolves to the offset of the first record; the send
    /// is retried per the error table until the delivery timeout.
    ///
    /// It never waits: a send that needs the producer id (the first ones) or buffer space
    /// (`buffer.memory` taken by earlier sends) takes its place at the end of the backlog and
    /// enters the accumulator in turn; one that found no buffer space within `max.block.ms`
    /// fails with [`Error::Timeout`].
    pub fn enqueue(&self, topic: &str, partition: i32, records: Vec<Record>) -> DeliveryFuture {
        if records.is_empty() {
            return self
                .inner
                .failed_now(Error::Config("send needs at least one record".to_owned()));
        }
        if records.len() > (i32::MAX / 2) as usize {
            return self
                .inner
                .failed_now(Error::Config("too many records in one send".to_owned()));
        }
        if partition < 0 {
            return self
                .inner
                .failed_now(Error::Config(format!("invalid partition {partition}")));
        }
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return inner.failed_now(Error::Closed);
        }
        let bytes: usize = records.iter().map(record_size).sum();
        let permits = u32::try_from(bytes)
            .unwrap_or(u32::MAX)
            .clamp(1, inner.buffer_permits.max(1));
        let (tx, rx) = oneshot::channel();
        let topic: Arc<str> = Arc::from(topic);
        let mut st = inner.lock_state();
        // Fast path: nothing waits before us, the producer id is known and buffer space is free.
        let id = if inner.idempotent {
            inner.pid.get().copied()
        } else {
            Some((-1, -1))
        };
        let fast = match id {
            Some(id) if st.backlog.is_empty() => match inner.buffer.try_acquire_many(permits) {
                Ok(p) => {
                    p.forget();
                    Some(id)
                }
                Err(tokio::sync::TryAcquireError::Closed) => {
                    return inner.failed_now(Error::Closed)
                }
                Err(tokio::sync::TryAcquireError::NoPermits) => None,
            },
            _ => None,
        };
        match fast {
            Some((pid, epoch)) => {
                inner.append(
                    &mut st, &topic, partition, records, bytes, permits, pid, epoch, tx,
                );
                inner.drain(&mut st, false);
            }
            None => {
                st.backlog.push_back(Pending {
                    topic: Arc::clone(&topic),
                    partition,
                    records,
                    bytes,
                    permits,
                    tx,
                    since: Instant::now(),
                });
                if !st.backlog_task {
                    st.backlog_task = true;
                    let me = Arc::clone(inner);
                    tokio::spawn(async move { me.run_backlog().await });
                }
            }
        }
        DeliveryFuture {
            state: Delivery::Waiting {
                rx,
                topic,
                partition,
            },
        }
    }

    /// [`Producer::enqueue`], then waits for the outcome. Nothing happens before the returned
    /// future is first polled; from then on the send is in line and dropping the future does
    /// not withdraw it (withdrawing an idempotent batch would defeat deduplication).
    pub async fn send(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<Record>,
    ) -> Result<RecordMetadata, Error> {
        self.enqueue(topic, partition, records).await
    }

    /// Sends one record to the partition the configured [`Partitioner`] picks (by default the
    /// one the Java client would pick for its key, murmur2; records without a key go
    /// round-robin).
    pub async fn send_keyed(&self, topic: &str, record: Record) -> Result<RecordMetadata, Error> {
        let partition = self.partition_for(topic, &record).await?;
        self.enqueue(topic, partition, vec![record]).await
    }

    /// The partition [`Producer::send_keyed`] would choose for `record`.
    pub async fn partition_for(&self, topic: &str, record: &Record) -> Result<i32, Error> {
        let md =
            self.inner
                .client
                .inner
                .topic(topic)
                .await?
                .ok_or_else(|| Error::UnknownTopic {
                    topic: topic.to_owned(),
                })?;
        let n = i32::try_from(md.partitions.len()).unwrap_or(i32::MAX);
        if n <= 0 {
            return Err(Error::UnknownTopic {
                topic: topic.to_owned(),
            });
        }
        let p = self
            .inner
            .partitioner
            .partition(topic, record.key.as_deref(), n);
        if !(0..n).contains(&p) {
            return Err(Error::Config(format!(
                "partitioner chose partition {p} of {topic}, which has {n}"
            )));
        }
        Ok(p)
    }

    /// Sends everything buffered now (ignoring linger) and waits until every send made so far
    /// has completed (successfully or not; each `send` reports its own result).
    pub async fn flush(&self) -> Result<(), Error> {
        loop {
            let notified = self.inner.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.inner.lock_state();
                if self.inner.outstanding.load(Ordering::Acquire) == 0 && st.backlog.is_empty() {
                    return Ok(());
                }
                let State { topics, dirty, .. } = &mut *st;
                for p in topics.values_mut().flat_map(|m| m.values_mut()) {
                    if p.open.is_some() {
                        mark_dirty(dirty, p);
                    }
                }
                self.inner.drain(&mut st, true);
            }
            // Re-check periodically as well: completions notify, but be robust to races.
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
    }

    /// Refuses new sends (they fail with [`Error::Closed`]), then waits until every send made
    /// before has completed, as [`Producer::flush`]. Every clone shares the closed state.
    pub async fn close(&self) -> Result<(), Error> {
        self.inner.closed.store(true, Ordering::Release);
        self.flush().await
    }

    /// Whether [`Producer::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }
}

impl Inner {
    /// Tells the failure hook (if any) about a failed send.
    pub(super) fn report_failure(&self, e: &Error) {
        if let Some(hook) = &self.on_failure {
            hook(e);
        }
    }

    /// A send that failed before entering the line.
    fn failed_now(&self, e: Error) -> DeliveryFuture {
        self.report_failure(&e);
        DeliveryFuture::failed(e)
    }

    /// Completes a send of the backlog (which never entered a batch) with `e`.
    fn fail_pending(&self, tx: oneshot::Sender<Result<i64, Error>>, e: Error) {
        self.report_failure(&e);
        let _ = tx.send(Err(e));
    }

    async fn producer_id(&self) -> Result<(i64, i16), Error> {
        self.pid
            .get_or_try_init(|| self.init_producer_id())
            .await
            .copied()
    }

    async fn init_producer_id(&self) -> Result<(i64, i16), Error> {
        let client = &self.client;
        let timeout = self.request_timeout;
        let r = client
            .with_retries("InitProducerId", &[], || async {
                let conn = client.inner.any_conn().await?;
                let req = InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(-1)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1);
                let (_, resp): (i16, InitProducerIdResponse) =
                    conn.request(ApiKey::InitProducerId, &req, timeout).await?;
                if resp.error_code != 0 {
                    return Err(Error::broker(
                        resp.error_code,
                        None,
                        None,
                        Some("InitProducerId".to_owned()),
                    ));
                }
                Ok((resp.producer_id.0, resp.producer_epoch))
            })
            .await?;
        debug!(producer_id = r.0, epoch = r.1, "producer id assigned");
        Ok(r)
    }

    /// Moves the backlog into the accumulator in order: first the producer id, then, for the
    /// head of the backlog, its buffer space (at most `max.block.ms` after its `enqueue`).
    async fn run_backlog(self: Arc<Self>) {
        let max_block = self.config.max_block;
        loop {
            let (pid, epoch) = if self.idempotent {
                match self.producer_id().await {
                    Ok(id) => id,
                    Err(e) => {
                        let mut st = self.lock_state();
                        debug!(error = %e, waiting = st.backlog.len(), "no producer id: failing waiting sends");
                        for p in std::mem::take(&mut st.backlog) {
                            self.fail_pending(p.tx, e.duplicate());
                        }
                        st.backlog_task = false;
                        return;
                    }
                }
            } else {
                (-1, -1)
            };
            let head = {
                let mut st = self.lock_state();
                match st.backlog.front() {
                    Some(h) => (h.permits, h.since),
                    None => {
                        st.backlog_task = false;
                        return;
                    }
                }
            };
            let remaining = max_block.saturating_sub(head.1.elapsed());
            let acquired = tokio::time::timeout(
                remaining,
                Arc::clone(&self.buffer).acquire_many_owned(head.0),
            )
            .await;
            let mut st = self.lock_state();
            let Some(p) = st.backlog.pop_front() else {
                st.backlog_task = false;
                return;
            };
            match acquired {
                Ok(Ok(permit)) => {
                    permit.forget();
                    self.append(
                        &mut st,
                        &p.topic,
                        p.partition,
                        p.records,
                        p.bytes,
                        p.permits,
                        pid,
                        epoch,
                        p.tx,
                    );
                    self.drain(&mut st, false);
                }
                Ok(Err(_)) => self.fail_pending(p.tx, Error::Closed),
                Err(_) => {
                    debug!(topic = %p.topic, partition = p.partition, bytes = p.bytes, reason = "max.block.ms passed", "no buffer space: failing send");
                    let e = Error::Timeout {
                        what: format!(
                            "buffer space for a send to {}/{} (buffer.memory)",
                            p.topic, p.partition
                        ),
                        after: max_block,
                    };
                    self.fail_pending(p.tx, e);
                }
            }
        }
    }
}

//! The producer: batching, pipelining, idempotence, retries.
//!
//! Invariants (the "why" behind the code):
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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
    ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{oneshot, Notify, OnceCell, Semaphore};
use tracing::{debug, info, warn};

use crate::client::{Backoff, Client, ConnKind};
use crate::config::{Acks, ProducerConfig};
use crate::conn::Connection;
use crate::error::{lookup, Error, ErrorCode};
use crate::partitioner::murmur2_partition;
use crate::protocol;
use crate::record::{encode_batch, EncodeOptions, Record};

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

/// An idempotent (by default) producer. Cheap to clone; clones share batches and state.
#[derive(Clone, Debug)]
pub struct Producer {
    inner: Arc<Inner>,
}

struct Inner {
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
    round_robin: AtomicU32,
    /// Sends that must wait (for the producer id or buffer space) take their turn here, in
    /// call order (tokio's mutex is fair), so they are appended in the order they were called.
    turn: tokio::sync::Mutex<()>,
    /// Sends waiting for or holding `turn`: while any do, later sends queue behind them
    /// instead of taking the fast path (which would overtake them).
    waiting: AtomicUsize,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

type Waiter = (oneshot::Sender<Result<i64, Error>>, i32);

/// One batch in a request: topic, partition, batch id, encoded batch.
type Item = (Arc<str>, i32, u64, Bytes);

struct OpenBatch {
    records: Vec<Record>,
    waiters: Vec<Waiter>,
    bytes: usize,
    permits: u32,
    created: Instant,
    id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchState {
    Queued,
    InFlight,
}

struct Batch {
    id: u64,
    seq: i32,
    count: i32,
    bytes: Bytes,
    waiters: Vec<Waiter>,
    permits: u32,
    state: BatchState,
    deadline: Instant,
    last_error: Option<Error>,
}

#[derive(Clone)]
struct Route {
    node: i32,
    conn: Arc<Connection>,
}

struct PartitionState {
    topic: Arc<str>,
    partition: i32,
    pid: i64,
    epoch: i16,
    next_seq: i32,
    open: Option<OpenBatch>,
    queue: VecDeque<Batch>,
    inflight: usize,
    blocked: bool,
    recovering: bool,
    need_refresh: bool,
    need_reset: bool,
    dirty: bool,
    route: Option<Route>,
    backoff: Option<Backoff>,
    last_acked_offset: i64,
    /// Largest batch (in [`record_size`] units) to build, learnt from MESSAGE_TOO_LARGE
    /// answers to batches that held several sends (`usize::MAX`: the configured size).
    max_batch: usize,
    /// A batch of the current producer id/epoch was acknowledged on this partition since the
    /// last error. Until then only one batch is in flight: a broker without state for us
    /// accepts any first sequence, so a pipelined batch could overtake a failed first one.
    confirmed: bool,
}

#[derive(Default)]
struct State {
    topics: HashMap<String, HashMap<i32, PartitionState>>,
    /// Partitions that may have something to send.
    dirty: Vec<(Arc<str>, i32)>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A batch's sends to complete once the state lock is released.
struct Completion {
    waiters: Vec<Waiter>,
    permits: u32,
    result: Result<i64, Error>,
}

/// The state lock; on drop it unlocks, then runs the queued completions.
struct StateGuard<'a> {
    guard: Option<MutexGuard<'a, State>>,
    inner: &'a Inner,
}

impl std::ops::Deref for StateGuard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        // The guard is only taken in `drop`.
        match &self.guard {
            Some(g) => g,
            None => unreachable!("state guard used after drop"),
        }
    }
}

impl std::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        match &mut self.guard {
            Some(g) => g,
            None => unreachable!("state guard used after drop"),
        }
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.inner.run_completions();
    }
}

fn record_size(r: &Record) -> usize {
    let h: usize = r
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len) + 4)
        .sum();
    r.key.as_ref().map_or(0, Bytes::len) + r.value.as_ref().map_or(0, Bytes::len) + h + 21
}

/// Adds `n` to a sequence number, wrapping at `i32::MAX` back to 0 (Kafka's rule).
pub(crate) fn seq_add(seq: i32, n: i32) -> i32 {
    let s = i64::from(seq) + i64::from(n);
    (s % (i64::from(i32::MAX) + 1)) as i32
}

/// Rewrites producer id, epoch and base sequence of an encoded batch and recomputes its CRC.
fn restamp(batch: &[u8], pid: i64, epoch: i16, seq: i32) -> Bytes {
    let mut b = BytesMut::from(batch);
    if b.len() >= 61 {
        b[43..51].copy_from_slice(&pid.to_be_bytes());
        b[51..53].copy_from_slice(&epoch.to_be_bytes());
        b[53..57].copy_from_slice(&seq.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    b.freeze()
}

fn partition_mut<'a>(
    st: &'a mut State,
    topic: &str,
    partition: i32,
) -> Option<&'a mut PartitionState> {
    st.topics.get_mut(topic).and_then(|m| m.get_mut(&partition))
}

fn mark_dirty(dirty: &mut Vec<(Arc<str>, i32)>, p: &mut PartitionState) {
    if !p.dirty {
        p.dirty = true;
        dirty.push((Arc::clone(&p.topic), p.partition));
    }
}

/// A batch's fate as the broker (or the connection) reported it.
enum Outcome {
    /// Stored at this base offset (-1 if unknown).
    Stored(i64),
    /// Failed with this error.
    Failed(Error),
}

impl Producer {
    pub(crate) fn new(client: Client, config: ProducerConfig) -> Producer {
        let idempotent = config.is_idempotent();
        let permits = u32::try_from(config.buffer_memory)
            .unwrap_or(u32::MAX)
            .min(Semaphore::MAX_PERMITS as u32);
        let request_timeout = client.inner.config.request_timeout;
        let delivery_timeout = client.inner.config.delivery_timeout;
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
                round_robin: AtomicU32::new(0),
                turn: tokio::sync::Mutex::new(()),
                waiting: AtomicUsize::new(0),
            }),
        }
    }

    /// Sends `records` to `topic`/`partition` as part of ONE record batch (stored whole or not
    /// at all), possibly together with other sends to the same partition. Returns the offset
    /// of the first record. Retries per the error table until the delivery timeout.
    ///
    /// Dropping the returned future does not withdraw the records: once `send` has buffered
    /// them they are delivered (withdrawing an idempotent batch would defeat deduplication).
    pub async fn send(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<Record>,
    ) -> Result<RecordMetadata, Error> {
        if records.is_empty() {
            return Err(Error::Config("send needs at least one record".to_owned()));
        }
        if records.len() > (i32::MAX / 2) as usize {
            return Err(Error::Config("too many records in one send".to_owned()));
        }
        if partition < 0 {
            return Err(Error::Config(format!("invalid partition {partition}")));
        }
        let inner = &self.inner;
        let bytes: usize = records.iter().map(record_size).sum();
        let permits = u32::try_from(bytes)
            .unwrap_or(u32::MAX)
            .clamp(1, inner.buffer_permits.max(1));
        // Fast path: the producer id is known, buffer space is free and no earlier send is
        // waiting; append without awaiting (this keeps the send future small, too).
        let fast = if inner.waiting.load(Ordering::Acquire) != 0 {
            None
        } else {
            let id = if inner.idempotent {
                inner.pid.get().copied()
            } else {
                Some((-1, -1))
            };
            match id {
                Some(id) => match inner.buffer.try_acquire_many(permits) {
                    Ok(p) => {
                        p.forget();
                        Some(id)
                    }
                    Err(tokio::sync::TryAcquireError::Closed) => return Err(Error::Closed),
                    Err(tokio::sync::TryAcquireError::NoPermits) => None,
                },
                None => None,
            }
        };
        let rx = match fast {
            Some((pid, epoch)) => {
                let mut st = inner.lock_state();
                let rx = inner.append(
                    &mut st, topic, partition, records, bytes, permits, pid, epoch,
                );
                inner.drain(&mut st, false);
                rx
            }
            None => Box::pin(self.send_in_turn(topic, partition, records, bytes, permits)).await?,
        };
        match rx.await {
            Ok(Ok(base_offset)) => Ok(RecordMetadata {
                topic: topic.to_owned(),
                partition,
                base_offset,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Closed),
        }
    }

    /// The slow path of [`Producer::send`]: waits for its turn (call order), the producer id
    /// and buffer space, then appends.
    async fn send_in_turn(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<Record>,
        bytes: usize,
        permits: u32,
    ) -> Result<oneshot::Receiver<Result<i64, Error>>, Error> {
        let inner = &self.inner;
        inner.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = WaitingGuard(&inner.waiting);
        let _turn = inner.turn.lock().await;
        let (pid, epoch) = if !inner.idempotent {
            (-1, -1)
        } else if let Some(&id) = inner.pid.get() {
            id
        } else {
            inner.producer_id().await?
        };
        match Arc::clone(&inner.buffer).acquire_many_owned(permits).await {
            Ok(p) => p.forget(),
            Err(_) => return Err(Error::Closed),
        }
        let mut st = inner.lock_state();
        let rx = inner.append(
            &mut st, topic, partition, records, bytes, permits, pid, epoch,
        );
        inner.drain(&mut st, false);
        Ok(rx)
    }

    /// Sends one record to the partition the Java client would pick for its key (murmur2);
    /// records without a key go round-robin.
    pub async fn send_keyed(&self, topic: &str, record: Record) -> Result<RecordMetadata, Error> {
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
        let partition = match &record.key {
            Some(k) => murmur2_partition(k, n),
            None => (self.inner.round_robin.fetch_add(1, Ordering::Relaxed) % n as u32) as i32,
        };
        self.send(topic, partition, vec![record]).await
    }

    /// Sends everything buffered now (ignoring linger) and waits until every send made so far
    /// has completed (successfully or not; each `send` reports its own result).
    pub async fn flush(&self) -> Result<(), Error> {
        loop {
            let notified = self.inner.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.outstanding.load(Ordering::Acquire) == 0 {
                return Ok(());
            }
            {
                let mut st = self.inner.lock_state();
                let State { topics, dirty } = &mut *st;
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
}

impl Inner {
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

    #[allow(clippy::too_many_arguments)]
    fn append(
        self: &Arc<Self>,
        st: &mut State,
        topic: &str,
        partition: i32,
        records: Vec<Record>,
        bytes: usize,
        permits: u32,
        pid: i64,
        epoch: i16,
    ) -> oneshot::Receiver<Result<i64, Error>> {
        let (tx, rx) = oneshot::channel();
        let batch_size = self.config.batch_size;
        let State { topics, dirty } = st;
        let parts = match topics.get_mut(topic) {
            Some(p) => p,
            None => topics.entry(topic.to_owned()).or_default(),
        };
        let p = parts.entry(partition).or_insert_with(|| PartitionState {
            topic: Arc::from(topic),
            partition,
            pid,
            epoch,
            next_seq: 0,
            open: None,
            queue: VecDeque::new(),
            inflight: 0,
            blocked: false,
            recovering: false,
            need_refresh: false,
            need_reset: false,
            dirty: false,
            route: None,
            backoff: None,
            last_acked_offset: -1,
            max_batch: usize::MAX,
            confirmed: false,
        });
        // A send never spans two batches: close a batch that this send would overfill.
        if p.open
            .as_ref()
            .is_some_and(|o| o.bytes + bytes > batch_size.min(p.max_batch))
        {
            self.close_open(p);
        }
        match &mut p.open {
            Some(o) => {
                let delta = o.records.len() as i32;
                o.records.extend(records);
                o.waiters.push((tx, delta));
                o.bytes += bytes;
                o.permits = o.permits.saturating_add(permits);
            }
            None => {
                let id = self.next_batch_id.fetch_add(1, Ordering::Relaxed);
                p.open = Some(OpenBatch {
                    records,
                    waiters: vec![(tx, 0)],
                    bytes,
                    permits,
                    created: Instant::now(),
                    id,
                });
                self.outstanding.fetch_add(1, Ordering::AcqRel);
                if !self.config.linger.is_zero() {
                    self.schedule_linger(Arc::clone(&p.topic), partition, id);
                }
            }
        }
        mark_dirty(dirty, p);
        rx
    }

    fn schedule_linger(self: &Arc<Self>, topic: Arc<str>, partition: i32, id: u64) {
        let linger = self.config.linger;
        let me = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(linger).await;
            let mut st = me.lock_state();
            let State { topics, dirty } = &mut *st;
            if let Some(p) = topics.get_mut(&*topic).and_then(|m| m.get_mut(&partition)) {
                if p.open.as_ref().is_some_and(|o| o.id == id) {
                    mark_dirty(dirty, p);
                }
            }
            me.drain(&mut st, false);
        });
    }

    /// Turns the open batch into a queued, encoded batch with the next sequence.
    fn close_open(&self, p: &mut PartitionState) {
        let Some(o) = p.open.take() else { return };
        let count = o.records.len() as i32;
        let seq = if self.idempotent { p.next_seq } else { -1 };
        let opts = EncodeOptions {
            producer_id: if self.idempotent { p.pid } else { -1 },
            producer_epoch: if self.idempotent { p.epoch } else { -1 },
            base_sequence: seq,
            compression: self.config.compression,
            ..Default::default()
        };
        let mut buf = BytesMut::with_capacity(o.bytes + 128);
        match encode_batch(&o.records, &opts, &mut buf) {
            Ok(()) => {
                if self.idempotent {
                    p.next_seq = seq_add(seq, count);
                }
                p.queue.push_back(Batch {
                    id: o.id,
                    seq,
                    count,
                    bytes: buf.freeze(),
                    waiters: o.waiters,
                    permits: o.permits,
                    state: BatchState::Queued,
                    deadline: o.created + self.delivery_timeout,
                    last_error: None,
                });
            }
            Err(e) => {
                let e = Error::Record(e);
                self.finish(o.waiters, o.permits, Err(&e));
            }
        }
    }

    /// Completes the sends of a batch and releases its buffer permits. The completion is
    /// queued and run after the state lock is released (see [`StateGuard`]), so waking the
    /// senders never happens while other threads wait for the lock.
    fn finish(&self, waiters: Vec<Waiter>, permits: u32, result: Result<i64, &Error>) {
        let c = Completion {
            waiters,
            permits,
            result: result.map_err(Error::duplicate),
        };
        self.completions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(c);
    }

    /// Runs the queued completions.
    fn run_completions(&self) {
        let list = std::mem::take(&mut *self.completions.lock().unwrap_or_else(|e| e.into_inner()));
        if list.is_empty() {
            return;
        }
        for c in list {
            for (tx, delta) in c.waiters {
                let r = match &c.result {
                    Ok(base) if *base >= 0 => Ok(base + i64::from(delta)),
                    Ok(_) => Ok(-1),
                    Err(e) => Err(e.duplicate()),
                };
                let _ = tx.send(r);
            }
            self.buffer.add_permits(c.permits as usize);
            self.outstanding.fetch_sub(1, Ordering::AcqRel);
        }
        self.progress.notify_waiters();
    }

    /// Locks the state; completions queued meanwhile run when the guard drops.
    fn lock_state(&self) -> StateGuard<'_> {
        StateGuard {
            guard: Some(lock(&self.state)),
            inner: self,
        }
    }

    /// Sends what can be sent: closes open batches that are due and have room in the
    /// in-flight window, and sends queued batches in order, one per partition per request,
    /// grouped by leader.
    fn drain(self: &Arc<Self>, st: &mut State, force: bool) {
        let max = self.config.max_in_flight.clamp(1, 5);
        let linger = self.config.linger;
        let batch_size = self.config.batch_size;
        loop {
            let candidates = std::mem::take(&mut st.dirty);
            if candidates.is_empty() {
                return;
            }
            let mut requests: Vec<(Route, Vec<Item>)> = Vec::new();
            let mut to_recover: Vec<(Arc<str>, i32)> = Vec::new();
            for (topic, partition) in candidates {
                let Some(p) = partition_mut(st, &topic, partition) else {
                    continue;
                };
                p.dirty = false;
                if p.blocked {
                    continue;
                }
                let window = if p.confirmed || !self.idempotent {
                    max
                } else {
                    1
                };
                let queued = p
                    .queue
                    .iter()
                    .filter(|b| b.state == BatchState::Queued)
                    .count();
                if let Some(o) = &p.open {
                    let due = force
                        || linger.is_zero()
                        || o.bytes >= batch_size
                        || o.created.elapsed() >= linger;
                    if due && (force || p.inflight + queued < window) {
                        self.close_open(p);
                    }
                }
                if p.inflight >= window {
                    continue;
                }
                let Some(idx) = p.queue.iter().position(|b| b.state == BatchState::Queued) else {
                    continue;
                };
                let route = match &p.route {
                    Some(r) if !r.conn.is_failed() => r.clone(),
                    _ => {
                        p.route = None;
                        p.blocked = true;
                        if !p.recovering {
                            p.recovering = true;
                            to_recover.push((Arc::clone(&topic), partition));
                        }
                        continue;
                    }
                };
                let b = &mut p.queue[idx];
                b.state = BatchState::InFlight;
                let item = (Arc::clone(&topic), partition, b.id, b.bytes.clone());
                p.inflight += 1;
                // More may be sendable next round.
                p.dirty = true;
                st.dirty.push((topic, partition));
                match requests
                    .iter_mut()
                    .find(|(r, _)| r.node == route.node && Arc::ptr_eq(&r.conn, &route.conn))
                {
                    Some((_, items)) => items.push(item),
                    None => requests.push((route, vec![item])),
                }
            }
            for (topic, partition) in to_recover {
                self.spawn_recovery(topic, partition);
            }
            if requests.is_empty() {
                // Nothing was sent: whatever is still marked dirty waits for an event.
                for (topic, partition) in std::mem::take(&mut st.dirty) {
                    if let Some(p) = partition_mut(st, &topic, partition) {
                        p.dirty = false;
                    }
                }
                return;
            }
            for (route, items) in requests {
                self.send_request(st, route, items);
            }
        }
    }

    /// Encodes and submits one ProduceRequest. Failures to submit are handled inline.
    fn send_request(self: &Arc<Self>, st: &mut State, route: Route, items: Vec<Item>) {
        let conn = &route.conn;
        let prepared = conn.version(ApiKey::Produce).and_then(|version| {
            let mut topic_data: Vec<TopicProduceData> = Vec::new();
            for (topic, partition, _, bytes) in &items {
                let pd = PartitionProduceData::default()
                    .with_index(*partition)
                    .with_records(Some(bytes.clone()));
                match topic_data
                    .iter_mut()
                    .find(|t| t.name.0.as_str() == &**topic)
                {
                    Some(t) => t.partition_data.push(pd),
                    None => topic_data.push(
                        TopicProduceData::default()
                            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                            .with_partition_data(vec![pd]),
                    ),
                }
            }
            let req = ProduceRequest::default()
                .with_transactional_id(None)
                .with_acks(self.config.acks.as_i16())
                .with_timeout_ms(
                    i32::try_from(self.request_timeout.as_millis()).unwrap_or(i32::MAX),
                )
                .with_topic_data(topic_data);
            conn.encode(ApiKey::Produce, version, &req)
                .map(|(cid, frame)| (version, cid, frame))
        });
        let ids: Vec<(Arc<str>, i32, u64)> =
            items.into_iter().map(|(t, p, id, _)| (t, p, id)).collect();
        let (version, cid, frame) = match prepared {
            Ok(x) => x,
            Err(e) => {
                for (t, p, id) in &ids {
                    self.batch_outcome(st, t, *p, *id, Outcome::Failed(e.duplicate()), None);
                }
                return;
            }
        };
        if self.config.acks == Acks::None {
            let outcome = conn.send_frame_no_response(ApiKey::Produce, frame);
            for (t, p, id) in &ids {
                let o = match &outcome {
                    Ok(()) => Outcome::Stored(-1),
                    Err(e) => Outcome::Failed(e.duplicate()),
                };
                self.batch_outcome(st, t, *p, *id, o, None);
            }
            return;
        }
        let me = Arc::clone(self);
        let node = route.node;
        let addr = conn.addr().to_owned();
        let cb_ids = ids.clone();
        let callback: crate::conn::Callback =
            Box::new(move |r| me.on_response(&addr, node, version, cb_ids, r));
        if let Err((e, _unrun)) =
            conn.try_send_with_callback(ApiKey::Produce, cid, frame, self.request_timeout, callback)
        {
            for (t, p, id) in &ids {
                self.batch_outcome(st, t, *p, *id, Outcome::Failed(e.duplicate()), None);
            }
        }
    }

    /// Runs on the connection's reader task with the response (or the failure).
    fn on_response(
        self: &Arc<Self>,
        addr: &str,
        node: i32,
        version: i16,
        ids: Vec<(Arc<str>, i32, u64)>,
        r: Result<Bytes, Error>,
    ) {
        let decoded = r.and_then(|frame| {
            protocol::decode_response::<ProduceResponse>(ApiKey::Produce, version, frame)
                .map(|(_, body)| body)
                .map_err(Error::Protocol)
        });
        let mut st = self.lock_state();
        match decoded {
            Err(e) => {
                for (t, p, id) in &ids {
                    self.batch_outcome(&mut st, t, *p, *id, Outcome::Failed(e.duplicate()), None);
                }
            }
            Ok(resp) => {
                for (t, p, id) in &ids {
                    let pr = resp
                        .responses
                        .iter()
                        .filter(|tr| tr.name.0.as_str() == &**t)
                        .flat_map(|tr| tr.partition_responses.iter())
                        .find(|pr| pr.index == *p);
                    let (outcome, hint) = match pr {
                        None => (
                            Outcome::Failed(Error::broker(
                                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                                Some(t),
                                Some(*p),
                                Some(format!("partition missing in Produce response from {addr}")),
                            )),
                            None,
                        ),
                        Some(pr) if pr.error_code == 0 => (Outcome::Stored(pr.base_offset), None),
                        Some(pr) if pr.error_code == ErrorCode::DUPLICATE_SEQUENCE_NUMBER => {
                            (Outcome::Stored(pr.base_offset), None)
                        }
                        Some(pr) => {
                            let e = if pr.error_code == ErrorCode::MESSAGE_TOO_LARGE
                                || pr.error_code == ErrorCode::RECORD_LIST_TOO_LARGE
                            {
                                let size = partition_mut(&mut st, t, *p)
                                    .and_then(|ps| ps.queue.iter().find(|b| b.id == *id))
                                    .map_or(0, |b| b.bytes.len());
                                Error::MessageTooLarge {
                                    topic: t.to_string(),
                                    partition: *p,
                                    size,
                                }
                            } else {
                                Error::broker(
                                    pr.error_code,
                                    Some(t),
                                    Some(*p),
                                    pr.error_message.as_ref().map(|m| m.as_str().to_owned()),
                                )
                            };
                            let hint = (pr.current_leader.leader_id.0 >= 0).then_some((
                                pr.current_leader.leader_id.0,
                                pr.current_leader.leader_epoch,
                                pr.log_start_offset,
                            ));
                            let hint = hint.or(Some((-1, -1, pr.log_start_offset)));
                            (Outcome::Failed(e), hint)
                        }
                    };
                    self.batch_outcome(&mut st, t, *p, *id, outcome, hint);
                }
            }
        }
        let _ = node;
        self.drain(&mut st, false);
    }

    /// Applies the outcome of one batch. `hint` = (leader, leader epoch, log start offset) from
    /// an error response.
    fn batch_outcome(
        self: &Arc<Self>,
        st: &mut State,
        topic: &str,
        partition: i32,
        id: u64,
        outcome: Outcome,
        hint: Option<(i32, i32, i64)>,
    ) {
        let State { topics, dirty } = st;
        let Some(p) = topics.get_mut(topic).and_then(|m| m.get_mut(&partition)) else {
            return;
        };
        let Some(idx) = p.queue.iter().position(|b| b.id == id) else {
            return;
        };
        if p.queue[idx].state == BatchState::InFlight {
            p.inflight = p.inflight.saturating_sub(1);
            p.queue[idx].state = BatchState::Queued;
        }
        match outcome {
            Outcome::Stored(base) => {
                if let Some(b) = p.queue.remove(idx) {
                    if base >= 0 {
                        p.last_acked_offset = base + i64::from(b.count) - 1;
                    }
                    p.backoff = None;
                    // Stored while an earlier failure is pending does not prove the broker's
                    // state is in step with ours; the retry's success will.
                    if !p.blocked {
                        p.confirmed = true;
                    }
                    self.finish(b.waiters, b.permits, Ok(base));
                }
            }
            Outcome::Failed(e) => {
                // Back to one batch in flight until the next success.
                p.confirmed = false;
                let code = e.code();
                let sequence_error = matches!(
                    code,
                    Some(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
                        | Some(ErrorCode::UNKNOWN_PRODUCER_ID)
                );
                let retriable = e.is_retriable() || matches!(e, Error::Protocol(_) | Error::Closed);
                if let Some((leader, epoch, _)) = hint {
                    if leader >= 0 && e.needs_metadata_refresh() {
                        let moved = crate::client::lock(&self.client.inner.metadata)
                            .apply_leader_hint(topic, partition, leader, epoch);
                        if moved {
                            debug!(
                                topic,
                                partition,
                                leader,
                                reason = "KIP-951 current leader hint",
                                "leader moved"
                            );
                        }
                    }
                }
                // A sequence error behind an earlier pending batch (or behind a batch that was
                // given up on, with a reset already due) is the echo of that earlier failure.
                if retriable || (sequence_error && (idx > 0 || p.need_reset)) {
                    // Resend the identical bytes later (never re-sequenced, unless a reset
                    // restamps the whole queue).
                    debug!(topic, partition, seq = p.queue[idx].seq, error = %e, ambiguous = code.is_none_or(|c| lookup(c).ambiguous), "produce failed; will retry");
                    p.need_refresh |= e.needs_metadata_refresh();
                    if e.needs_metadata_refresh() {
                        p.route = None;
                    }
                    p.queue[idx].last_error = Some(e);
                    p.blocked = true;
                } else if sequence_error && self.idempotent {
                    // The broker lost (or never had) our sequence state for the head batch.
                    let log_start = hint.map_or(-1, |h| h.2);
                    if code == Some(ErrorCode::UNKNOWN_PRODUCER_ID)
                        || (log_start >= 0 && log_start > p.last_acked_offset)
                    {
                        info!(topic, partition, error = %e, reason = "producer state expired on the broker", "resetting producer id for partition");
                        p.queue[idx].last_error = Some(e);
                        p.need_reset = true;
                        p.blocked = true;
                    } else {
                        warn!(topic, partition, error = %e, last_acked = p.last_acked_offset, "sequence error at the head of the queue: possible data loss; failing the batch");
                        if let Some(b) = p.queue.remove(idx) {
                            let err = Error::ProducerState {
                                topic: topic.to_owned(),
                                partition,
                                reason: e.to_string(),
                            };
                            self.finish(b.waiters, b.permits, Err(&err));
                        }
                        p.need_reset = true;
                        p.blocked = true;
                    }
                } else if matches!(e, Error::MessageTooLarge { .. })
                    && p.queue[idx].waiters.len() > 1
                    && self.split_batch(p, idx)
                {
                    // Several sends merged into a batch the topic refuses: each half goes
                    // again (and is split again if needed); a single send stays whole.
                    debug!(topic, partition, error = %e, max_batch = p.max_batch, reason = "batch of several sends too large", "split batch; will retry");
                } else {
                    debug!(topic, partition, error = %e, "produce failed (not retriable)");
                    if let Some(b) = p.queue.remove(idx) {
                        self.finish(b.waiters, b.permits, Err(&e));
                    }
                    if self.idempotent {
                        // The sequence numbers after this batch no longer line up.
                        p.need_reset = true;
                        p.blocked = true;
                    }
                }
                if p.blocked && p.backoff.is_none() {
                    p.backoff = Some(self.client.inner.backoff());
                }
            }
        }
        if p.blocked && !p.recovering {
            p.recovering = true;
            self.spawn_recovery(Arc::clone(&p.topic), partition);
        }
        mark_dirty(dirty, p);
    }

    /// Replaces the batch at `idx` (refused as too large, not stored) by two batches with the
    /// first and second half of its sends, covering the same sequence numbers, and lowers the
    /// partition's batch limit. `false` (nothing changed) if the batch cannot be re-read.
    fn split_batch(&self, p: &mut PartitionState, idx: usize) -> bool {
        let Some(b) = p.queue.get(idx) else {
            return false;
        };
        let mut buf = b.bytes.clone();
        let Ok(decoded) = crate::record::decode_batch(&mut buf, &Default::default()) else {
            return false;
        };
        if decoded.records.len() != usize::try_from(b.count).unwrap_or(0) {
            return false;
        }
        let mid = b.waiters.len() / 2;
        let Some(split_at) = b.waiters.get(mid).and_then(|w| usize::try_from(w.1).ok()) else {
            return false;
        };
        if split_at == 0 || split_at >= decoded.records.len() {
            return false;
        }
        let mut records: Vec<Record> = decoded
            .records
            .into_iter()
            .map(|r| Record {
                key: r.key,
                value: r.value,
                headers: r.headers,
                timestamp: r.timestamp,
            })
            .collect();
        let total: usize = records.iter().map(record_size).sum();
        let second_records = records.split_off(split_at);
        let h = decoded.header;
        let encode = |records: &[Record], seq: i32| {
            let opts = EncodeOptions {
                producer_id: h.producer_id,
                producer_epoch: h.producer_epoch,
                base_sequence: seq,
                compression: self.config.compression,
                ..Default::default()
            };
            let mut out = BytesMut::new();
            encode_batch(records, &opts, &mut out).map(|()| out.freeze())
        };
        let second_seq = if h.base_sequence >= 0 {
            seq_add(h.base_sequence, i32::try_from(split_at).unwrap_or(i32::MAX))
        } else {
            -1
        };
        let (Ok(first_bytes), Ok(second_bytes)) = (
            encode(&records, h.base_sequence),
            encode(&second_records, second_seq),
        ) else {
            return false;
        };
        let Some(b) = p.queue.remove(idx) else {
            return false;
        };
        let mut first_waiters = b.waiters;
        let second_waiters: Vec<Waiter> = first_waiters
            .split_off(mid)
            .into_iter()
            .map(|(tx, delta)| (tx, delta - i32::try_from(split_at).unwrap_or(0)))
            .collect();
        let first_permits = b.permits / 2;
        let halves = [
            (
                records.len(),
                b.seq,
                first_bytes,
                first_waiters,
                first_permits,
            ),
            (
                second_records.len(),
                second_seq,
                second_bytes,
                second_waiters,
                b.permits - first_permits,
            ),
        ];
        for (k, (count, seq, bytes, waiters, permits)) in halves.into_iter().enumerate() {
            let id = if k == 0 {
                b.id
            } else {
                // One batch became two: the second is one more outstanding batch.
                self.outstanding.fetch_add(1, Ordering::AcqRel);
                self.next_batch_id.fetch_add(1, Ordering::Relaxed)
            };
            p.queue.insert(
                idx + k,
                Batch {
                    id,
                    seq,
                    count: i32::try_from(count).unwrap_or(i32::MAX),
                    bytes,
                    waiters,
                    permits,
                    state: BatchState::Queued,
                    deadline: b.deadline,
                    last_error: None,
                },
            );
        }
        p.max_batch = p.max_batch.min((total / 2).max(1));
        true
    }

    fn spawn_recovery(self: &Arc<Self>, topic: Arc<str>, partition: i32) {
        let me = Arc::clone(self);
        tokio::spawn(async move { me.recover(topic, partition).await });
    }

    /// Fails every batch (queued and open) of a partition.
    fn fail_partition(&self, p: &mut PartitionState, e: &Error) {
        let mut failed = false;
        while let Some(b) = p.queue.pop_front() {
            self.finish(b.waiters, b.permits, Err(e));
            failed = true;
        }
        if let Some(o) = p.open.take() {
            self.finish(o.waiters, o.permits, Err(e));
        }
        p.inflight = 0;
        if failed && self.idempotent {
            p.need_reset = true;
        }
    }

    /// The slow path: waits until nothing is in flight for the partition, fails batches past
    /// their delivery timeout, backs off, refreshes metadata, finds the leader, takes a fresh
    /// producer id if needed, then resumes sending in order.
    async fn recover(self: Arc<Self>, topic: Arc<str>, partition: i32) {
        loop {
            // 1. Wait until every in-flight batch of the partition has an outcome.
            loop {
                let notified = self.progress.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let inflight = {
                    let mut st = self.lock_state();
                    partition_mut(&mut st, &topic, partition).map_or(0, |p| p.inflight)
                };
                if inflight == 0 {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(20), notified).await;
            }
            // 2. Expire batches past the delivery timeout; pick the backoff.
            let (delay, need_refresh) = {
                let mut st = self.lock_state();
                let Some(p) = partition_mut(&mut st, &topic, partition) else {
                    return;
                };
                let now = Instant::now();
                let mut expired = false;
                while p.queue.front().is_some_and(|b| b.deadline <= now) {
                    if let Some(b) = p.queue.pop_front() {
                        let e = match b.last_error {
                            Some(e) => e,
                            None => Error::Timeout {
                                what: format!("delivery to {topic}/{partition}"),
                                after: self.delivery_timeout,
                            },
                        };
                        warn!(topic = %topic, partition, error = %e, "delivery timeout: failing batch");
                        self.finish(b.waiters, b.permits, Err(&e));
                        expired = true;
                    }
                }
                if expired && self.idempotent {
                    p.need_reset = true;
                }
                let delay = p
                    .backoff
                    .as_mut()
                    .map_or(Duration::ZERO, Backoff::next_delay);
                (delay, p.need_refresh)
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            // 3. Metadata and route.
            if need_refresh {
                if let Err(e) = self
                    .client
                    .inner
                    .refresh(&[topic.to_string()], "produce error")
                    .await
                {
                    debug!(topic = %topic, partition, error = %e, "metadata refresh failed");
                }
            }
            let route = async {
                let node = self.client.inner.leader(&topic, partition).await?;
                let conn = self.client.inner.broker_conn(node, ConnKind::Main).await?;
                Ok::<_, Error>(Route { node, conn })
            }
            .await;
            let route = match route {
                Ok(r) => r,
                Err(e) => {
                    let mut st = self.lock_state();
                    let Some(p) = partition_mut(&mut st, &topic, partition) else {
                        return;
                    };
                    let fatal = !e.is_retriable() && !matches!(e, Error::Protocol(_));
                    if fatal {
                        debug!(topic = %topic, partition, error = %e, "cannot route produce; failing");
                        self.fail_partition(p, &e);
                    } else {
                        debug!(topic = %topic, partition, error = %e, "no route to leader; retrying");
                        p.need_refresh = true;
                        if p.backoff.is_none() {
                            p.backoff = Some(self.client.inner.backoff());
                        }
                        if let Some(b) = p.queue.front_mut() {
                            b.last_error = Some(e);
                        }
                        if !p.queue.is_empty() || p.open.is_some() {
                            continue;
                        }
                    }
                    p.blocked = false;
                    p.recovering = false;
                    return;
                }
            };
            // 4. Fresh producer id if the sequence state is broken.
            let need_reset = {
                let mut st = self.lock_state();
                partition_mut(&mut st, &topic, partition).is_some_and(|p| p.need_reset)
            };
            let fresh = if need_reset && self.idempotent {
                match self.init_producer_id().await {
                    Ok(x) => Some(x),
                    Err(e) => {
                        let mut st = self.lock_state();
                        let Some(p) = partition_mut(&mut st, &topic, partition) else {
                            return;
                        };
                        if let Some(b) = p.queue.front_mut() {
                            b.last_error = Some(e);
                        }
                        continue;
                    }
                }
            } else {
                None
            };
            // 5. Resume.
            let mut st = self.lock_state();
            let State { topics, dirty } = &mut *st;
            let Some(p) = topics.get_mut(&*topic).and_then(|m| m.get_mut(&partition)) else {
                return;
            };
            if let Some((pid, epoch)) = fresh {
                info!(topic = %topic, partition, producer_id = pid, epoch, reason = "sequence state reset", "restamping queued batches");
                p.pid = pid;
                p.epoch = epoch;
                let mut seq = 0;
                for b in p.queue.iter_mut() {
                    b.bytes = restamp(&b.bytes, pid, epoch, seq);
                    b.seq = seq;
                    seq = seq_add(seq, b.count);
                }
                p.next_seq = seq;
                p.need_reset = false;
                p.confirmed = false;
            }
            p.route = Some(route);
            p.need_refresh = false;
            p.blocked = false;
            p.recovering = false;
            mark_dirty(dirty, p);
            self.drain(&mut st, false);
            return;
        }
    }
}

/// Counts a send as waiting for its turn until dropped (also when the send is cancelled).
struct WaitingGuard<'a>(&'a AtomicUsize);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sequence_wraps_at_i32_max() {
        assert_eq!(seq_add(0, 5), 5);
        assert_eq!(seq_add(i32::MAX - 2, 2), i32::MAX);
        assert_eq!(seq_add(i32::MAX - 2, 3), 0);
        assert_eq!(seq_add(i32::MAX, 10), 9);
    }

    #[test]
    fn restamp_rewrites_identity_and_keeps_crc_valid() {
        let recs = vec![Record::new("a", 1), Record::new("b", 2)];
        let mut buf = BytesMut::new();
        let opts = EncodeOptions {
            producer_id: 1,
            producer_epoch: 0,
            base_sequence: 40,
            ..Default::default()
        };
        encode_batch(&recs, &opts, &mut buf).unwrap();
        let out = restamp(&buf, 99, 3, 0);
        let h = crate::record::validate_batch(&out).unwrap();
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (99, 3, 0)
        );
        assert_eq!(h.record_count, 2);
    }
}

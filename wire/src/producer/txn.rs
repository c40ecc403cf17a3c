//! The transactional producer (KIP-98): a [`Producer`] whose batches belong to transactions
//! that a transaction coordinator commits or aborts as a whole, together with consumer
//! offsets (consume-transform-produce exactly once).
//!
//! Protocol, in order: FindCoordinator (key type 1) for the `transactional.id`;
//! InitProducerId with the id and `transaction.timeout.ms` (fences older instances and
//! aborts what they left open); per transaction AddPartitionsToTxn for the partitions it
//! sends to (one request for all partitions that are new while none is under way, as the
//! Java client batches them), AddOffsetsToTxn + TxnOffsetCommit (to the group coordinator, with the
//! group's generation and member id, KIP-447) for `send_offsets_to_transaction`, and EndTxn.
//!
//! Invariants:
//! - Sends go through one inner idempotent producer stamped with the transactional producer
//!   id and epoch; it never fetches a producer id itself. A send enters its partition's line
//!   at once (the call order is the record order), but the inner producer's gate holds the
//!   partition's batches until the coordinator added the partition to the transaction; a
//!   refused partition's sends fail without being sent. Between transactions every gate
//!   closes again, so no record is sent outside a transaction.
//! - Failed sends are recorded by a hook the inner producer calls before the send completes
//!   (no task per send), so a commit after the flush sees every failure.
//! - Commit first flushes every send; if any send of the transaction failed, commit refuses
//!   ([`Error::Transaction`]) and the caller must abort. An abort after failed sends starts
//!   over with a fresh epoch (InitProducerId with the current id and epoch, KIP-360) and a
//!   fresh inner producer, as the failed sends broke the sequence numbers.
//! - Fencing (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH) is final: [`Error::ProducerFenced`],
//!   never retried; every later call fails the same way.
//! - Coordinator errors (NOT_COORDINATOR, COORDINATOR_*) and lost connections find the
//!   coordinator again; CONCURRENT_TRANSACTIONS (the previous transaction's markers are still
//!   being written) is retried after a short pause; both until the delivery timeout (each
//!   attempt bounded by the request timeout), since moving a coordinator off a dead broker
//!   takes the cluster longer than one request may (Apache Kafka: the broker session
//!   timeout, then the new coordinator loads the transaction log).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, ApiKey, EndTxnRequest, EndTxnResponse, GroupId,
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::task::JoinHandle;
use tracing::debug;

use super::{DeliveryFuture, FailureHook, Producer, RecordMetadata};
use crate::client::{Client, ConnKind};
use crate::config::ProducerConfig;
use crate::conn::Connection;
use crate::consumer::{Consumer, TopicPartition};
use crate::coordinator::CoordinatorKind;
use crate::error::{lookup, Error, ErrorCode};
use crate::record::Record;
use crate::sync::lock;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// What `send_offsets_to_transaction` needs to know about the consumer's group (Java's
/// `ConsumerGroupMetadata`): the broker refuses offsets of a member that is no longer in the
/// group's current generation (KIP-447), which fences a zombie consumer's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    /// The group id.
    pub group_id: String,
    /// The generation (-1: none, no check).
    pub generation_id: i32,
    /// The member id ("" with generation -1: no check).
    pub member_id: String,
    /// The static member id, if any.
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// Metadata of a group without member checks (a consumer using `assign`).
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerGroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }

    /// The current metadata of `consumer`'s group membership (generation and member id when
    /// it is in a group); `None` for a consumer without a group id.
    pub fn of(consumer: &Consumer) -> Option<Self> {
        let group_id = consumer.config.group_id.clone()?;
        let mut m = ConsumerGroupMetadata::new(group_id);
        if let Some((generation, member)) = consumer.group_generation() {
            m.generation_id = generation;
            m.member_id = member;
            m.group_instance_id = consumer.config.instance_id.clone();
        }
        Some(m)
    }
}

/// Where the producer is in its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between transactions.
    Ready,
    /// `begin_transaction` was called.
    InTransaction,
    /// Fenced: final.
    Fenced,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    producer_id: i64,
    epoch: i16,
    /// Offsets were added (AddOffsetsToTxn) in the open transaction.
    offsets_added: bool,
    producer: Producer,
}

/// The partitions of the open transaction. A send to a partition not yet in it queues the
/// partition for AddPartitionsToTxn and enters the inner producer at once, whose gate holds
/// the partition's batches until the coordinator added it. One task sends the requests: all
/// partitions queued while one request is under way go in the next (as the Java client does).
#[derive(Default)]
struct Adds {
    /// Partitions sent to (added, or being added), by topic.
    partitions: HashMap<String, HashSet<i32>>,
    /// Partitions the coordinator added.
    confirmed: usize,
    /// Partitions not yet in a request.
    pending: Vec<(String, i32)>,
    /// The task sending the requests, while it runs.
    task: Option<JoinHandle<()>>,
}

struct Shared {
    client: Client,
    config: ProducerConfig,
    tid: Arc<str>,
    state: tokio::sync::Mutex<State>,
    /// The transaction coordinator's connection, once found.
    coordinator: Mutex<Option<Arc<Connection>>>,
    adds: Mutex<Adds>,
    /// Given to each inner producer: records failed sends (`failed`, `fenced`, `first_failure`).
    hook: FailureHook,
    /// A send of the open transaction failed.
    failed: Arc<AtomicBool>,
    /// A send was refused as fenced (final, like `Phase::Fenced`).
    fenced: Arc<AtomicBool>,
    /// The first such failure, for the error commit reports.
    first_failure: Arc<Mutex<Option<String>>>,
}

/// A transactional producer (see the module docs). Cheap to clone; clones share the
/// transaction. Create it with [`Client::transactional_producer`].
#[derive(Clone)]
pub struct TransactionalProducer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TransactionalProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionalProducer")
            .field("transactional_id", &self.shared.tid)
            .finish_non_exhaustive()
    }
}

/// The outcome of one [`TransactionalProducer::enqueue`]: resolves once the send is stored.
/// Dropping it does not withdraw the send; a failure makes the commit fail either way.
#[derive(Debug)]
#[must_use = "the send happens anyway; the future only reports its outcome"]
pub struct TxnDelivery {
    delivery: DeliveryFuture,
    tid: Arc<str>,
}

impl Future for TxnDelivery {
    type Output = Result<RecordMetadata, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.delivery).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => match e.code() {
                Some(c) if is_fenced(c) => Poll::Ready(Err(Error::ProducerFenced {
                    transactional_id: self.tid.to_string(),
                    name: lookup(c).name,
                })),
                _ => Poll::Ready(Err(e)),
            },
            Poll::Ready(r) => Poll::Ready(r),
        }
    }
}

/// The hook that records a failed send of the open transaction.
fn failure_hook(
    failed: Arc<AtomicBool>,
    fenced: Arc<AtomicBool>,
    first: Arc<Mutex<Option<String>>>,
) -> FailureHook {
    Arc::new(move |e: &Error| {
        failed.store(true, Ordering::Release);
        lock(&first).get_or_insert_with(|| e.to_string());
        if matches!(e, Error::ProducerFenced { .. }) || e.code().is_some_and(is_fenced) {
            fenced.store(true, Ordering::Release);
        }
    })
}

impl Client {
    /// A transactional producer for `config`'s `transactional.id`: finds its coordinator
    /// and runs `init_transactions` (fencing older instances with the same id).
    pub async fn transactional_producer(
        &self,
        config: ProducerConfig,
    ) -> Result<TransactionalProducer, Error> {
        let Some(tid) = config.transactional_id.clone().filter(|t| !t.is_empty()) else {
            return Err(Error::Config(
                "a transactional producer needs transactional.id".to_owned(),
            ));
        };
        let failed = Arc::new(AtomicBool::new(false));
        let fenced = Arc::new(AtomicBool::new(false));
        let first_failure = Arc::new(Mutex::new(None));
        let hook = failure_hook(
            Arc::clone(&failed),
            Arc::clone(&fenced),
            Arc::clone(&first_failure),
        );
        let placeholder =
            Producer::transactional(self.clone(), config.clone(), (-1, -1), Arc::clone(&hook));
        let shared = Arc::new(Shared {
            client: self.clone(),
            config,
            tid: Arc::from(tid),
            state: tokio::sync::Mutex::new(State {
                phase: Phase::Ready,
                producer_id: -1,
                epoch: -1,
                offsets_added: false,
                producer: placeholder,
            }),
            coordinator: Mutex::new(None),
            adds: Mutex::new(Adds::default()),
            hook,
            failed,
            fenced,
            first_failure,
        });
        let p = TransactionalProducer { shared };
        p.init_transactions().await?;
        Ok(p)
    }
}

/// Whether `code` means this producer was fenced.
fn is_fenced(code: i16) -> bool {
    matches!(
        code,
        ErrorCode::PRODUCER_FENCED | ErrorCode::INVALID_PRODUCER_EPOCH
    )
}

/// What to do with a coordinator answer.
enum Next {
    Done,
    /// Find the coordinator again, then retry.
    Rediscover,
    /// Retry after a pause.
    Retry,
    /// Retry after [`CONCURRENT_PAUSE`]: the previous transaction is completing, which takes
    /// the broker a few milliseconds (its markers), not a backoff's worth.
    RetrySoon,
}

/// The pause before retrying on CONCURRENT_TRANSACTIONS (the Java client's is also 20 ms);
/// the ordinary backoff (`retry.backoff.ms`, 100 ms) would hold every transaction that
/// starts right after a commit that long.
const CONCURRENT_PAUSE: Duration = Duration::from_millis(20);

fn classify(code: i16) -> Next {
    match code {
        ErrorCode::NONE => Next::Done,
        ErrorCode::NOT_COORDINATOR
        | ErrorCode::COORDINATOR_NOT_AVAILABLE
        | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS => Next::Rediscover,
        ErrorCode::CONCURRENT_TRANSACTIONS => Next::RetrySoon,
        c if lookup(c).retriable => Next::Retry,
        _ => Next::Done,
    }
}

impl Shared {
    fn timeout(&self) -> Duration {
        self.client.inner.config.request_timeout
    }

    fn fenced(&self, code: i16) -> Error {
        Error::ProducerFenced {
            transactional_id: self.tid.to_string(),
            name: lookup(code).name,
        }
    }

    /// The broker error for `code`, or the fenced error.
    fn error(&self, code: i16, what: &str) -> Error {
        if is_fenced(code) {
            self.fenced(code)
        } else {
            Error::broker(
                code,
                None,
                None,
                Some(format!("{what} for transactional id {}", self.tid)),
            )
        }
    }

    /// The coordinator of `key` (a group or this transactional id); a pooled connection.
    async fn find_coordinator(
        &self,
        kind: CoordinatorKind,
        key: &str,
    ) -> Result<Arc<Connection>, Error> {
        let (_, addr) = crate::coordinator::find(&self.client, kind, key, self.timeout()).await?;
        self.client.inner.conn(&addr, ConnKind::Main).await
    }

    /// Runs one coordinator request until it is answered for good: `call` returns the error
    /// code and the value; coordinator errors rediscover, CONCURRENT_TRANSACTIONS and other
    /// retriable codes pause and retry, until the delivery timeout (see the module docs).
    async fn with_coordinator<T, F, Fut>(
        &self,
        kind: CoordinatorKind,
        key: &str,
        what: &str,
        mut call: F,
    ) -> Result<(i16, T), Error>
    where
        F: FnMut(Arc<Connection>) -> Fut,
        Fut: Future<Output = Result<(i16, T), Error>>,
    {
        let deadline = Instant::now() + self.client.inner.config.delivery_timeout;
        let mut backoff = self.client.inner.backoff();
        let mut group_conn: Option<Arc<Connection>> = None;
        loop {
            let cached = if kind == CoordinatorKind::Transaction {
                lock(&self.coordinator).clone()
            } else {
                group_conn.clone()
            };
            let conn = match cached.filter(|c| !c.is_failed()) {
                Some(c) => Ok(c),
                None => self.find_coordinator(kind, key).await,
            };
            let outcome = match conn {
                Ok(c) => {
                    if kind == CoordinatorKind::Transaction {
                        *lock(&self.coordinator) = Some(Arc::clone(&c));
                    } else {
                        group_conn = Some(Arc::clone(&c));
                    }
                    call(c).await
                }
                Err(e) => Err(e),
            };
            let mut soon = false;
            let retry = match &outcome {
                Ok((code, _)) => match classify(*code) {
                    Next::Done => return outcome,
                    Next::Rediscover => true,
                    Next::Retry => false,
                    Next::RetrySoon => {
                        soon = true;
                        false
                    }
                },
                Err(e) if e.is_retriable() || matches!(e, Error::Closed | Error::Protocol(_)) => {
                    true
                }
                Err(_) => return outcome,
            };
            if retry {
                *lock(&self.coordinator) = None;
                group_conn = None;
            }
            if Instant::now() >= deadline {
                return outcome;
            }
            let delay = if soon {
                CONCURRENT_PAUSE
            } else {
                backoff.next_delay().min(Duration::from_millis(100))
            };
            debug!(what, transactional_id = %self.tid, delay_ms = delay.as_millis() as u64, "coordinator request: retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// InitProducerId for the transactional id (`current`: our id and epoch, KIP-360).
    async fn init_producer_id(&self, current: (i64, i16)) -> Result<(i64, i16), Error> {
        let timeout_ms =
            i32::try_from(self.config.transaction_timeout.as_millis()).unwrap_or(i32::MAX);
        let tid = Arc::clone(&self.tid);
        let timeout = self.timeout();
        let (code, pair) = self
            .with_coordinator(
                CoordinatorKind::Transaction,
                &Arc::clone(&tid),
                "InitProducerId",
                |c| {
                    let tid = Arc::clone(&tid);
                    async move {
                        let version = c.version(ApiKey::InitProducerId)?;
                        let (pid, epoch) = if version >= 3 { current } else { (-1, -1) };
                        let req = InitProducerIdRequest::default()
                            .with_transactional_id(Some(TransactionalId(sb(&tid))))
                            .with_transaction_timeout_ms(timeout_ms)
                            .with_producer_id(ProducerId(pid))
                            .with_producer_epoch(epoch);
                        let resp: InitProducerIdResponse = c
                            .request_at(ApiKey::InitProducerId, version, &req, timeout)
                            .await?;
                        Ok((resp.error_code, (resp.producer_id.0, resp.producer_epoch)))
                    }
                },
            )
            .await?;
        if code != 0 {
            return Err(self.error(code, "InitProducerId"));
        }
        Ok(pair)
    }

    /// The fenced error if this producer was fenced (by a coordinator answer or a send).
    fn check_fenced(&self, st: &mut State) -> Result<(), Error> {
        if self.fenced.load(Ordering::Acquire) {
            st.phase = Phase::Fenced;
        }
        if st.phase == Phase::Fenced {
            return Err(self.fenced(ErrorCode::PRODUCER_FENCED));
        }
        Ok(())
    }

    /// Sends AddPartitionsToTxn for the queued partitions until none is left, then opens
    /// their gates in `producer` (or fails their sends).
    async fn run_adds(self: Arc<Self>, producer: Producer, id: (i64, i16)) {
        loop {
            let batch = {
                let mut adds = lock(&self.adds);
                if adds.pending.is_empty() {
                    adds.task = None;
                    return;
                }
                std::mem::take(&mut adds.pending)
            };
            match self.add_partitions(&batch, id).await {
                Ok(()) => {
                    lock(&self.adds).confirmed += batch.len();
                    producer.admit(&batch, Ok(()));
                }
                Err(e) => {
                    debug!(transactional_id = %self.tid, error = %e, "AddPartitionsToTxn failed");
                    (self.hook)(&e);
                    producer.admit(&batch, Err(&e));
                }
            }
        }
    }

    /// One AddPartitionsToTxn (v3 and below) for `parts`.
    async fn add_partitions(&self, parts: &[(String, i32)], id: (i64, i16)) -> Result<(), Error> {
        let (pid, epoch) = id;
        let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
        for (topic, partition) in parts {
            match topics.iter_mut().find(|t| *t.name.0 == **topic) {
                Some(t) => t.partitions.push(*partition),
                None => {
                    let mut t = AddPartitionsToTxnTopic::default();
                    t.name = TopicName(sb(topic));
                    t.partitions = vec![*partition];
                    topics.push(t);
                }
            }
        }
        let (tid, timeout) = (Arc::clone(&self.tid), self.timeout());
        let (code, ()) = self
            .with_coordinator(
                CoordinatorKind::Transaction,
                &tid,
                "AddPartitionsToTxn",
                |c| {
                    let (tid, topics) = (Arc::clone(&tid), topics.clone());
                    async move {
                        let mut req = AddPartitionsToTxnRequest::default();
                        req.v3_and_below_transactional_id = TransactionalId(sb(&tid));
                        req.v3_and_below_producer_id = ProducerId(pid);
                        req.v3_and_below_producer_epoch = epoch;
                        req.v3_and_below_topics = topics;
                        let version = c.version(ApiKey::AddPartitionsToTxn)?.min(3);
                        let resp: AddPartitionsToTxnResponse = c
                            .request_at(ApiKey::AddPartitionsToTxn, version, &req, timeout)
                            .await?;
                        // OPERATION_NOT_ATTEMPTED marks the partitions the coordinator left
                        // out because of another one's error: report that one.
                        let codes = resp
                            .results_by_topic_v3_and_below
                            .iter()
                            .flat_map(|t| t.results_by_partition.iter())
                            .map(|p| p.partition_error_code)
                            .filter(|c| *c != 0);
                        let code = codes
                            .clone()
                            .find(|c| *c != ErrorCode::OPERATION_NOT_ATTEMPTED)
                            .or_else(|| codes.clone().next())
                            .unwrap_or(resp.error_code);
                        Ok((code, ()))
                    }
                },
            )
            .await?;
        if code != 0 {
            return Err(self.error(code, "AddPartitionsToTxn"));
        }
        Ok(())
    }

    /// Forgets the partitions of the transaction (it ended, or the producer starts over).
    fn clear_adds(&self) {
        let mut adds = lock(&self.adds);
        adds.partitions.clear();
        adds.pending.clear();
        adds.confirmed = 0;
    }

    /// Waits until no AddPartitionsToTxn is under way (the caller holds the state lock, so
    /// no send queues another).
    async fn adds_settled(&self) {
        loop {
            let task = lock(&self.adds).task.take();
            match task {
                Some(t) => {
                    let _ = t.await;
                }
                None => return,
            }
        }
    }

    /// Records fencing from `e`.
    fn note(&self, st: &mut State, e: Error) -> Error {
        if matches!(e, Error::ProducerFenced { .. }) {
            st.phase = Phase::Fenced;
        }
        e
    }
}

impl TransactionalProducer {
    /// Gets a (new) producer id and epoch from the coordinator for the transactional id,
    /// fencing every older instance and aborting the transaction it left open. Called by
    /// [`Client::transactional_producer`]; call it again to start over after an error.
    pub async fn init_transactions(&self) -> Result<(), Error> {
        let sh = &self.shared;
        let mut st = sh.state.lock().await;
        sh.check_fenced(&mut st)?;
        // An AddPartitionsToTxn still under way belongs to the producer being replaced.
        sh.adds_settled().await;
        let current = (st.producer_id, st.epoch);
        let (pid, epoch) = match sh.init_producer_id(current).await {
            Ok(x) => x,
            Err(e) => return Err(sh.note(&mut st, e)),
        };
        debug!(transactional_id = %sh.tid, producer_id = pid, epoch, "transactional producer initialised");
        let old = std::mem::replace(
            &mut st.producer,
            Producer::transactional(
                sh.client.clone(),
                sh.config.clone(),
                (pid, epoch),
                Arc::clone(&sh.hook),
            ),
        );
        old.inner.closed.store(true, Ordering::Release);
        st.producer_id = pid;
        st.epoch = epoch;
        st.phase = Phase::Ready;
        sh.clear_adds();
        st.offsets_added = false;
        sh.failed.store(false, Ordering::Release);
        *crate::sync::lock(&sh.first_failure) = None;
        Ok(())
    }

    /// The producer id and epoch in use.
    pub async fn producer_id_and_epoch(&self) -> (i64, i16) {
        let st = self.shared.state.lock().await;
        (st.producer_id, st.epoch)
    }

    /// Starts a transaction. Nothing goes to the broker until the first send.
    pub async fn begin_transaction(&self) -> Result<(), Error> {
        let sh = &self.shared;
        let mut st = sh.state.lock().await;
        sh.check_fenced(&mut st)?;
        match st.phase {
            Phase::Fenced => Err(sh.fenced(ErrorCode::PRODUCER_FENCED)),
            Phase::InTransaction => Err(Error::Transaction(
                "a transaction is already open".to_owned(),
            )),
            Phase::Ready => {
                st.phase = Phase::InTransaction;
                Ok(())
            }
        }
    }

    /// Checks that a send may join the open transaction.
    fn check_sendable(&self, st: &mut State) -> Result<(), Error> {
        let sh = &self.shared;
        sh.check_fenced(st)?;
        match st.phase {
            Phase::Fenced => Err(sh.fenced(ErrorCode::PRODUCER_FENCED)),
            Phase::Ready => Err(Error::Transaction(
                "send outside a transaction (call begin_transaction)".to_owned(),
            )),
            Phase::InTransaction => Ok(()),
        }
    }

    /// Enters one send in the inner producer, queueing its partition for AddPartitionsToTxn
    /// if it is new to the transaction (its batches wait for that, see [`Adds`]).
    fn enter(&self, st: &State, topic: &str, partition: i32, records: Vec<Record>) -> TxnDelivery {
        let sh = &self.shared;
        {
            let mut adds = lock(&sh.adds);
            let known = adds
                .partitions
                .get(topic)
                .is_some_and(|ps| ps.contains(&partition));
            if !known {
                adds.partitions
                    .entry(topic.to_owned())
                    .or_default()
                    .insert(partition);
                adds.pending.push((topic.to_owned(), partition));
                if adds.task.is_none() {
                    // Spawned under the lock: the task's first look at `pending` waits for it,
                    // so its handle is stored before it can finish.
                    let me = Arc::clone(sh);
                    let producer = st.producer.clone();
                    let id = (st.producer_id, st.epoch);
                    adds.task = Some(tokio::spawn(async move { me.run_adds(producer, id).await }));
                }
            }
        }
        TxnDelivery {
            delivery: st.producer.enqueue(topic, partition, records),
            tid: Arc::clone(&sh.tid),
        }
    }

    /// Sends `records` to `topic`/`partition` in the open transaction (as one batch, see
    /// [`Producer::enqueue`]); a partition new to the transaction is added to it first (its
    /// records wait in the accumulator meanwhile). The returned future reports the outcome;
    /// a failure also makes the transaction's commit fail.
    pub async fn enqueue(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<Record>,
    ) -> Result<TxnDelivery, Error> {
        let mut st = self.shared.state.lock().await;
        self.check_sendable(&mut st)?;
        Ok(self.enter(&st, topic, partition, records))
    }

    /// Sends each `(topic, partition, records)` of `sends` in the open transaction, in order,
    /// as [`TransactionalProducer::enqueue`] does, without a future per send: their outcomes
    /// count at commit, which fails if any of them failed.
    pub async fn enqueue_all<T, I>(&self, sends: I) -> Result<(), Error>
    where
        T: AsRef<str>,
        I: IntoIterator<Item = (T, i32, Vec<Record>)>,
    {
        let mut st = self.shared.state.lock().await;
        self.check_sendable(&mut st)?;
        for (topic, partition, records) in sends {
            drop(self.enter(&st, topic.as_ref(), partition, records));
        }
        Ok(())
    }

    /// [`TransactionalProducer::enqueue`], then waits for the outcome.
    pub async fn send(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<Record>,
    ) -> Result<RecordMetadata, Error> {
        self.enqueue(topic, partition, records).await?.await
    }

    /// Sends one record to the partition the configured partitioner picks for its key.
    pub async fn send_keyed(&self, topic: &str, record: Record) -> Result<RecordMetadata, Error> {
        let producer = self.shared.state.lock().await.producer.clone();
        let partition = producer.partition_for(topic, &record).await?;
        self.send(topic, partition, vec![record]).await
    }

    /// Commits consumer offsets (the next offsets to read) as part of the open transaction:
    /// AddOffsetsToTxn, then TxnOffsetCommit to the group's coordinator with the group's
    /// generation and member id (a member that is no longer in the generation is refused,
    /// KIP-447). The offsets become the group's committed offsets when the transaction
    /// commits, and are dropped when it aborts.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &[(TopicPartition, i64)],
        group: &ConsumerGroupMetadata,
    ) -> Result<(), Error> {
        let sh = &self.shared;
        let mut st = sh.state.lock().await;
        sh.check_fenced(&mut st)?;
        match st.phase {
            Phase::Fenced => return Err(sh.fenced(ErrorCode::PRODUCER_FENCED)),
            Phase::Ready => {
                return Err(Error::Transaction(
                    "offsets outside a transaction (call begin_transaction)".to_owned(),
                ))
            }
            Phase::InTransaction => {}
        }
        let (tid, pid, epoch, timeout) =
            (Arc::clone(&sh.tid), st.producer_id, st.epoch, sh.timeout());
        let gid = group.group_id.clone();
        let (code, ()) = sh
            .with_coordinator(
                CoordinatorKind::Transaction,
                &Arc::clone(&tid),
                "AddOffsetsToTxn",
                |c| {
                    let (tid, gid) = (Arc::clone(&tid), gid.clone());
                    async move {
                        let req = AddOffsetsToTxnRequest::default()
                            .with_transactional_id(TransactionalId(sb(&tid)))
                            .with_producer_id(ProducerId(pid))
                            .with_producer_epoch(epoch)
                            .with_group_id(GroupId(sb(&gid)));
                        let version = c.version(ApiKey::AddOffsetsToTxn)?.min(3);
                        let resp: AddOffsetsToTxnResponse = c
                            .request_at(ApiKey::AddOffsetsToTxn, version, &req, timeout)
                            .await?;
                        Ok((resp.error_code, ()))
                    }
                },
            )
            .await?;
        if code != 0 {
            let e = sh.error(code, "AddOffsetsToTxn");
            return Err(sh.note(&mut st, e));
        }
        st.offsets_added = true;
        let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
        for (tp, offset) in offsets {
            let mut p = TxnOffsetCommitRequestPartition::default();
            p.partition_index = tp.partition;
            p.committed_offset = *offset;
            p.committed_leader_epoch = -1;
            match topics.iter_mut().find(|t| *t.name.0 == *tp.topic) {
                Some(t) => t.partitions.push(p),
                None => {
                    let mut t = TxnOffsetCommitRequestTopic::default();
                    t.name = TopicName(sb(&tp.topic));
                    t.partitions.push(p);
                    topics.push(t);
                }
            }
        }
        let group = group.clone();
        let (code, ()) = sh
            .with_coordinator(CoordinatorKind::Group, &gid, "TxnOffsetCommit", |c| {
                let (tid, group, topics) = (Arc::clone(&tid), group.clone(), topics.clone());
                async move {
                    let mut req = TxnOffsetCommitRequest::default();
                    req.transactional_id = TransactionalId(sb(&tid));
                    req.group_id = GroupId(sb(&group.group_id));
                    req.producer_id = ProducerId(pid);
                    req.producer_epoch = epoch;
                    req.generation_id = group.generation_id;
                    req.member_id = sb(&group.member_id);
                    req.group_instance_id = group.group_instance_id.as_deref().map(sb);
                    req.topics = topics;
                    let version = c.version(ApiKey::TxnOffsetCommit)?.min(3);
                    let resp: TxnOffsetCommitResponse = c
                        .request_at(ApiKey::TxnOffsetCommit, version, &req, timeout)
                        .await?;
                    let code = resp
                        .topics
                        .iter()
                        .flat_map(|t| t.partitions.iter())
                        .map(|p| p.error_code)
                        .find(|c| *c != 0)
                        .unwrap_or(0);
                    Ok((code, ()))
                }
            })
            .await?;
        if code != 0 {
            let e = sh.error(code, "TxnOffsetCommit");
            return Err(sh.note(&mut st, e));
        }
        Ok(())
    }

    /// Commits the open transaction: flushes every send, then EndTxn(commit). Fails with
    /// [`Error::Transaction`] (and commits nothing) if a send of the transaction failed:
    /// call [`TransactionalProducer::abort_transaction`] then.
    pub async fn commit_transaction(&self) -> Result<(), Error> {
        self.end(true).await
    }

    /// Aborts the open transaction: waits for its sends, then EndTxn(abort); none of its
    /// records or offsets become visible to `read_committed` readers.
    pub async fn abort_transaction(&self) -> Result<(), Error> {
        self.end(false).await
    }

    async fn end(&self, commit: bool) -> Result<(), Error> {
        let sh = &self.shared;
        let mut st = sh.state.lock().await;
        sh.check_fenced(&mut st)?;
        match st.phase {
            Phase::Fenced => return Err(sh.fenced(ErrorCode::PRODUCER_FENCED)),
            Phase::Ready => return Err(Error::Transaction("no open transaction".to_owned())),
            Phase::InTransaction => {}
        }
        // Every partition's gate is decided once no AddPartitionsToTxn is under way; then
        // the flush completes every send (failures are recorded before a send completes).
        sh.adds_settled().await;
        st.producer.flush().await?;
        sh.check_fenced(&mut st)?;
        let failed = sh.failed.load(Ordering::Acquire);
        if commit && failed {
            let first = crate::sync::lock(&sh.first_failure)
                .clone()
                .unwrap_or_default();
            return Err(Error::Transaction(format!(
                "a send of the transaction failed ({first}); abort it"
            )));
        }
        let added = lock(&sh.adds).confirmed;
        if added > 0 || st.offsets_added {
            let (tid, pid, epoch, timeout) =
                (Arc::clone(&sh.tid), st.producer_id, st.epoch, sh.timeout());
            let (code, ()) = sh
                .with_coordinator(
                    CoordinatorKind::Transaction,
                    &Arc::clone(&tid),
                    "EndTxn",
                    |c| {
                        let tid = Arc::clone(&tid);
                        async move {
                            let req = EndTxnRequest::default()
                                .with_transactional_id(TransactionalId(sb(&tid)))
                                .with_producer_id(ProducerId(pid))
                                .with_producer_epoch(epoch)
                                .with_committed(commit);
                            let version = c.version(ApiKey::EndTxn)?.min(3);
                            let resp: EndTxnResponse =
                                c.request_at(ApiKey::EndTxn, version, &req, timeout).await?;
                            Ok((resp.error_code, ()))
                        }
                    },
                )
                .await?;
            if code != 0 {
                let e = sh.error(
                    code,
                    if commit {
                        "EndTxn(commit)"
                    } else {
                        "EndTxn(abort)"
                    },
                );
                return Err(sh.note(&mut st, e));
            }
        }
        debug!(transactional_id = %sh.tid, commit, partitions = added, "transaction ended");
        st.phase = Phase::Ready;
        sh.clear_adds();
        st.producer.hold_all();
        st.offsets_added = false;
        if failed {
            // The failed sends broke the sequence numbers: start over with a fresh epoch.
            drop(st);
            return self.init_transactions().await;
        }
        Ok(())
    }

    /// Closes the producer: new sends fail; an open transaction is left for the coordinator
    /// (a new instance with the same id aborts it, or its timeout does).
    pub async fn close(&self) -> Result<(), Error> {
        let st = self.shared.state.lock().await;
        st.producer.close().await
    }
}

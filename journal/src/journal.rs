//! [`Journal`]: writes, highest sequence number and deletion.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::{join_all, BoxFuture, FutureExt};
use futures::stream::BoxStream;
use kafka_persistence_wire::record::Record;
use kafka_persistence_wire::{
    self as wire, Client, ClientConfig, NewTopic, Producer, ProducerConfig,
};
use tokio::sync::oneshot;

use crate::config::JournalConfig;
use crate::error::{JournalError, WriteError};
use crate::event_topic::{Event, EventTopicMapper};
use crate::format::{record_size_bound, JournalRecord, BATCH_OVERHEAD};
use crate::gate::Ticket;
use crate::layout::{topic_for, PARTITION};
use crate::log::{scan, ScanOptions, Until, Verified};
use crate::pid::{InflightGuard, Outcome, PidCache, PidEntry};
use crate::repr::{AtomicWrite, PersistentRepr};
use crate::scan::Applied;
use crate::topics::{NewTopicSpec, TopicCreator};

/// The broker default `max.message.bytes`, used until a topic's own value is read.
const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;
/// Atomic writes above this estimated size make the journal read the topic's limit.
const DESCRIBE_THRESHOLD: usize = 16 * 1024;
/// The largest record batch the journal builds (the producer's default batch size).
const MAX_CHUNK_BYTES: usize = 1024 * 1024;
/// The largest event-topic batch the journal builds (below the broker's 1 MiB default).
const EVENT_BATCH_BYTES: usize = 512 * 1024;

/// The event journal: append, replay, highest sequence number, delete, queries.
///
/// Cheap to clone (an `Arc`); `Send + Sync + 'static`.
#[derive(Clone, Debug)]
pub struct Journal {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) client: Client,
    producer: Producer,
    pub(crate) config: JournalConfig,
    mapper: Arc<dyn EventTopicMapper>,
    pids: Mutex<PidCache>,
    known_event_topics: Mutex<HashMap<String, i32>>,
    creator: TopicCreator,
    batch_nonce: u64,
    batch_counter: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A write's events of one id, reserved and sent as one record batch.
struct Chunk {
    /// Indices (into the caller's writes) of the atomic writes stored in this batch.
    indices: Vec<usize>,
    records: Vec<Record>,
    /// The records without payloads, to advance the verified state without reading.
    stubs: Vec<JournalRecord>,
    size: usize,
}

/// A write's work per id, with its place in line, taken before the write awaits anything.
struct WritePlan {
    /// Results decided while planning (invalid writes); the rest are filled in later.
    results: Vec<Option<Result<(), WriteError>>>,
    /// Per id, in first-appearance order.
    ids: Vec<PidPlan>,
}

/// One id's part of a [`WritePlan`]: its entry, its place in line, its atomic writes (with
/// their indices into the caller's writes).
type PidPlan = (Arc<PidEntry>, Ticket, Vec<(usize, AtomicWrite)>);

type SendFuture = BoxFuture<'static, Result<wire::RecordMetadata, wire::Error>>;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn write_size(w: &AtomicWrite) -> usize {
    let pid_len = w.persistence_id().len();
    w.events
        .iter()
        .map(|e| {
            let value = 64
                + e.payload.len()
                + e.manifest.len()
                + e.writer_uuid.len()
                + e.metadata.as_ref().map_or(0, |m| m.len())
                + e.tags.iter().map(|t| t.len() + 2).sum::<usize>();
            record_size_bound(pid_len, value)
        })
        .sum()
}

/// Bounds `fut` by the configured timeout.
pub(crate) async fn bounded<T>(
    config: &JournalConfig,
    operation: &'static str,
    fut: impl Future<Output = Result<T, JournalError>>,
) -> Result<T, JournalError> {
    let timeout = config.timeout();
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(JournalError::Timeout { operation, timeout }),
    }
}

impl Journal {
    /// Connects to the brokers of `config`.
    pub async fn connect(config: JournalConfig) -> Result<Journal, JournalError> {
        config.validate()?;
        let timeout = config.timeout();
        let mut client_config = ClientConfig::new(config.bootstrap_servers.clone())
            .with_client_id("kafka-persistence-journal")
            .with_request_timeout(timeout)
            .with_delivery_timeout(timeout);
        for (k, v) in &config.client_properties {
            client_config = client_config.with_property(k.clone(), v.clone());
        }
        let client = bounded(&config, "connect", async {
            Ok(Client::connect(client_config).await?)
        })
        .await?;
        let producer = client.producer(ProducerConfig::default());
        let nonce = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_i64(now_ms());
            h.finish()
        };
        Ok(Journal {
            inner: Arc::new(Inner {
                client,
                producer,
                mapper: config.mapper(),
                pids: Mutex::new(PidCache::new(config.max_cached_ids)),
                config,
                known_event_topics: Mutex::new(HashMap::new()),
                creator: TopicCreator::default(),
                batch_nonce: nonce,
                batch_counter: AtomicU64::new(0),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &JournalConfig {
        &self.inner.config
    }

    /// The Kafka client the journal uses.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The journal topic of `persistence_id`.
    pub fn topic_of(&self, persistence_id: &str) -> String {
        topic_for(&self.inner.config.topic_prefix, persistence_id)
    }

    /// Writes `writes`; one result per atomic write, in order.
    ///
    /// Inner `Err`: that atomic write was not stored ([`WriteError::Rejected`]: the entity may
    /// go on; [`WriteError::Fenced`]: another writer owns the id, the entity must stop).
    /// Outer `Err`: the batch failed or its outcome is unknown. Each atomic write is one
    /// record batch (all or nothing); several writes of one id may share a batch. Calls may
    /// run concurrently, also for one id: they are pipelined through the producer.
    ///
    /// Order: calls are applied in the order their futures are first polled (for example in
    /// the order `futures::stream::iter(calls).buffered(n)` issues them), whatever happens
    /// afterwards; each call takes its place in line before it awaits anything.
    pub async fn write(
        &self,
        writes: Vec<AtomicWrite>,
    ) -> Result<Vec<Result<(), WriteError>>, JournalError> {
        let plan = self.inner.plan(writes);
        bounded(&self.inner.config, "write", self.inner.write(plan)).await
    }

    /// The highest sequence number ever written for `persistence_id` (0 if none), counting
    /// rejected ones; it never decreases, also not through deletions. Waits for this
    /// journal's in-flight writes of the id.
    pub async fn highest_sequence_nr(&self, persistence_id: &str) -> Result<u64, JournalError> {
        let inner = &self.inner;
        bounded(&inner.config, "highest_sequence_nr", async {
            let entry = inner.entry(persistence_id);
            let verified = entry.synced(entry.gate.ticket(), &inner.client).await?;
            Ok(verified.map_or(0, |v| v.state.highest))
        })
        .await
    }

    /// The sequence number up to which the events of `persistence_id` are deleted (0 if
    /// none): what [`Journal::delete_messages_to`] recorded, as every replay honours it.
    pub async fn deleted_to(&self, persistence_id: &str) -> Result<u64, JournalError> {
        let inner = &self.inner;
        bounded(&inner.config, "deleted_to", async {
            let entry = inner.entry(persistence_id);
            let verified = entry.synced(entry.gate.ticket(), &inner.client).await?;
            Ok(verified.map_or(0, |v| v.state.deleted_to))
        })
        .await
    }

    /// Deletes the events up to `to_sequence_nr` (up to the highest at this moment)
    /// persistently: a deletion marker in the id's log, honoured by every later replay; the
    /// space below fully deleted records is freed with DeleteRecords.
    pub async fn delete_messages_to(
        &self,
        persistence_id: &str,
        to_sequence_nr: u64,
    ) -> Result<(), JournalError> {
        bounded(
            &self.inner.config,
            "delete_messages_to",
            self.inner.delete_to(persistence_id, to_sequence_nr),
        )
        .await
    }

    /// Replays the events of `persistence_id` with `from <= seq <= to`, ascending, at most
    /// `max`. Stops at `to`, `max` or the high watermark captured at the start; never waits
    /// for new records. Fails with [`JournalError::EventsLost`] if retention removed events
    /// in the range that were never deleted. Reading never creates anything in Kafka.
    pub fn replay(
        &self,
        persistence_id: &str,
        from: u64,
        to: u64,
        max: u64,
    ) -> BoxStream<'static, Result<PersistentRepr, JournalError>> {
        crate::replay::replay(
            Arc::clone(&self.inner),
            persistence_id.to_string(),
            from,
            to,
            max,
        )
    }
}

impl Inner {
    pub(crate) fn entry(&self, persistence_id: &str) -> Arc<PidEntry> {
        let mut pids = self.pids.lock().unwrap_or_else(|p| p.into_inner());
        pids.get_or_insert(persistence_id, || {
            PidEntry::new(
                persistence_id,
                topic_for(&self.config.topic_prefix, persistence_id),
            )
        })
    }

    fn new_topic(&self, name: &str) -> NewTopicSpec {
        let mut configs = vec![
            ("cleanup.policy".to_string(), "delete".to_string()),
            (
                "retention.ms".to_string(),
                self.config.retention_ms.to_string(),
            ),
        ];
        if let Some(m) = self.config.max_message_bytes {
            configs.push(("max.message.bytes".to_string(), m.to_string()));
        }
        NewTopicSpec {
            name: name.to_string(),
            partitions: 1,
            replication_factor: self.config.replication_factor,
            configs,
        }
    }

    fn next_batch_id(&self) -> u64 {
        let n = self.batch_counter.fetch_add(1, Ordering::Relaxed);
        crate::layout::fnv1a64(&[self.batch_nonce.to_le_bytes(), n.to_le_bytes()].concat())
    }

    /// Validates and groups `writes` by id and takes each id's place in line (see
    /// [`Gate`]): everything a write does before its first await.
    fn plan(&self, writes: Vec<AtomicWrite>) -> WritePlan {
        let mut results: Vec<Option<Result<(), WriteError>>> = vec![None; writes.len()];
        let mut order: Vec<String> = Vec::new();
        let mut groups: HashMap<String, Vec<(usize, AtomicWrite)>> = HashMap::new();
        for (i, w) in writes.into_iter().enumerate() {
            if let Err(reason) = w.validate() {
                results[i] = Some(Err(WriteError::Invalid(reason)));
                continue;
            }
            let pid = w.persistence_id().to_string();
            groups
                .entry(pid.clone())
                .or_insert_with(|| {
                    order.push(pid);
                    Vec::new()
                })
                .push((i, w));
        }
        let ids = order
            .iter()
            .map(|p| {
                let entry = self.entry(p);
                let ticket = entry.gate.ticket();
                let ws = groups.remove(p).unwrap_or_default();
                (entry, ticket, ws)
            })
            .collect();
        WritePlan { results, ids }
    }

    async fn write(
        self: &Arc<Self>,
        plan: WritePlan,
    ) -> Result<Vec<Result<(), WriteError>>, JournalError> {
        let WritePlan { mut results, ids } = plan;
        // Create the topics of ids this journal has not seen yet in one request.
        let missing: Vec<NewTopicSpec> = ids
            .iter()
            .filter(|(e, _, _)| !e.lock().topic_exists)
            .map(|(e, _, _)| self.new_topic(&e.topic))
            .collect();
        if !missing.is_empty() {
            self.creator.create(&self.client, missing).await?;
            for (e, _, _) in &ids {
                e.lock().topic_exists = true;
            }
        }
        let per_pid = ids
            .into_iter()
            .map(|(entry, ticket, ws)| self.write_pid(entry, ticket, ws));
        let mut first_error = None;
        let mut published: Vec<PersistentRepr> = Vec::new();
        for outcome in join_all(per_pid).await {
            match outcome {
                Ok(done) => {
                    for (i, r, events) in done {
                        if r.is_ok() {
                            published.extend(events);
                        }
                        results[i] = Some(r);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        self.publish(published).await?;
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(WriteError::Invalid("not processed".into()))))
            .collect())
    }

    /// Writes the atomic writes of one id: plan (fencing check, size check), reserve offsets,
    /// send (pipelined), decide.
    async fn write_pid(
        self: &Arc<Self>,
        entry: Arc<PidEntry>,
        ticket: Ticket,
        writes: Vec<(usize, AtomicWrite)>,
    ) -> Result<Vec<(usize, Result<(), WriteError>, Vec<PersistentRepr>)>, JournalError> {
        let gate = ticket.enter().await;
        let needs_sync = {
            let st = entry.lock();
            st.verified.is_none() || st.poisoned
        };
        if needs_sync {
            entry.drain().await;
            entry.sync(&self.client).await?;
        }
        let limit = self.max_message_bytes(&entry, &writes).await?;
        let pid = entry.persistence_id.clone();
        let timestamp = now_ms();

        // Plan and reserve under the state lock.
        let mut out: Vec<(usize, Result<(), WriteError>, Vec<PersistentRepr>)> = Vec::new();
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut reservations: Vec<(i64, Option<Outcome>, InflightGuard)> = Vec::new();
        {
            let mut st = entry.lock();
            let mut highest = st.highest;
            let mut current: Option<(Chunk, u64, u64)> = None; // chunk, batch_start, batch_id
            for (i, w) in writes {
                let first = w.lowest_sequence_nr();
                let last = w.highest_sequence_nr();
                if first != highest.saturating_add(1) {
                    out.push((
                        i,
                        Err(WriteError::Fenced {
                            persistence_id: pid.clone(),
                            sequence_nr: first,
                            expected: highest.saturating_add(1),
                        }),
                        Vec::new(),
                    ));
                    continue;
                }
                let size = write_size(&w);
                let rejected = size + BATCH_OVERHEAD > limit;
                let size = if rejected {
                    record_size_bound(pid.len(), 48)
                } else {
                    size
                };
                let fits = current
                    .as_ref()
                    .is_some_and(|(c, _, _)| c.size + size <= limit.min(MAX_CHUNK_BYTES));
                if !fits {
                    if let Some((c, _, _)) = current.take() {
                        chunks.push(c);
                    }
                    let chunk = Chunk {
                        indices: Vec::new(),
                        records: Vec::new(),
                        stubs: Vec::new(),
                        size: BATCH_OVERHEAD,
                    };
                    current = Some((chunk, first, self.next_batch_id()));
                }
                let Some((chunk, batch_start, batch_id)) = current.as_mut() else {
                    continue;
                };
                chunk.size += size;
                chunk.indices.push(i);
                if rejected {
                    let gap = JournalRecord::gap(first, last, *batch_start, *batch_id);
                    chunk.records.push(gap.to_record(&pid, timestamp));
                    chunk.stubs.push(gap);
                    out.push((
                        i,
                        Err(WriteError::Rejected {
                            persistence_id: pid.clone(),
                            from: first,
                            to: last,
                            reason: format!(
                                "about {size} bytes exceed the topic's max.message.bytes ({limit})",
                                size = write_size(&w)
                            ),
                        }),
                        Vec::new(),
                    ));
                } else {
                    for e in &w.events {
                        let rec = JournalRecord::event(e, *batch_start, *batch_id);
                        chunk.records.push(rec.to_record(&pid, timestamp));
                        chunk.stubs.push(JournalRecord {
                            payload: bytes::Bytes::new(),
                            metadata: None,
                            tags: Vec::new(),
                            ..rec
                        });
                    }
                    out.push((i, Ok(()), w.events));
                }
                highest = last;
            }
            if let Some((c, _, _)) = current.take() {
                chunks.push(c);
            }
            st.highest = highest;
            for c in &chunks {
                let expected = st.next_offset;
                st.next_offset = st.next_offset.saturating_add(c.records.len() as i64);
                st.inflight += 1;
                let (tx, rx) = oneshot::channel();
                let prev = st.last_outcome.replace(rx.shared());
                reservations.push((
                    expected,
                    prev,
                    InflightGuard {
                        entry: Arc::clone(&entry),
                        outcome: Some(tx),
                    },
                ));
            }
        }
        // Start every send in reservation order (the producer keeps call order per
        // partition), then let other writers of this id reserve behind us.
        let mut sends: Vec<SendFuture> = Vec::with_capacity(chunks.len());
        for c in &mut chunks {
            let producer = self.producer.clone();
            let topic = entry.topic.clone();
            let records = std::mem::take(&mut c.records);
            let mut fut: SendFuture =
                async move { producer.send(&topic, PARTITION, records).await }.boxed();
            let mut cx = Context::from_waker(futures::task::noop_waker_ref());
            if let Poll::Ready(r) = Pin::new(&mut fut).poll(&mut cx) {
                fut = futures::future::ready(r).boxed();
            }
            sends.push(fut);
        }
        drop(gate);

        let decisions = chunks.into_iter().zip(sends).zip(reservations).map(
            |((chunk, send), (expected, prev, guard))| {
                self.decide(Arc::clone(&entry), chunk, send, expected, prev, guard)
            },
        );
        let mut fenced: HashSet<usize> = HashSet::new();
        let mut first_error = None;
        for d in join_all(decisions).await {
            match d {
                Ok((true, _)) => {}
                Ok((false, indices)) => fenced.extend(indices),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let expected = entry
            .lock()
            .verified
            .as_ref()
            .map_or(0, |v| v.state.highest.saturating_add(1));
        for (i, r, events) in &mut out {
            if fenced.contains(i) {
                let first = events.first().map_or(0, |e| e.sequence_nr);
                *r = Err(WriteError::Fenced {
                    persistence_id: pid.clone(),
                    sequence_nr: first,
                    expected,
                });
                events.clear();
            }
        }
        Ok(out)
    }

    /// Waits for one sent chunk and decides whether the log accepted it.
    async fn decide(
        &self,
        entry: Arc<PidEntry>,
        chunk: Chunk,
        send: SendFuture,
        expected: i64,
        prev: Option<Outcome>,
        guard: InflightGuard,
    ) -> Result<(bool, Vec<usize>), JournalError> {
        let sent = send.await;
        let prev_ok = match prev {
            Some(p) => p.await.unwrap_or(false),
            None => true,
        };
        let meta = match sent {
            Ok(meta) => meta,
            Err(e) => {
                tracing::warn!(persistence_id = %entry.persistence_id, error = %e, reason = "produce failed, outcome unknown", "write failed");
                guard.complete(false, false);
                return Err(e.into());
            }
        };
        let n = chunk.stubs.len() as i64;
        {
            let mut st = entry.lock();
            if let Some(v) = st.verified.as_mut() {
                if prev_ok && meta.base_offset == expected && v.state.next_offset == expected {
                    for (k, stub) in chunk.stubs.iter().enumerate() {
                        v.apply(expected + k as i64, stub);
                    }
                    drop(st);
                    guard.complete(true, true);
                    return Ok((true, chunk.indices));
                }
            }
        }
        // The batch landed elsewhere (another writer, or an earlier write of ours failed):
        // read the records in between to learn whether the log accepted it.
        tracing::info!(persistence_id = %entry.persistence_id, expected, landed = meta.base_offset, prev_ok, reason = "write landed at an unexpected offset", "verifying write against the log");
        let mut v = entry
            .lock()
            .verified
            .clone()
            .unwrap_or_else(|| Verified::new(0));
        let base = meta.base_offset;
        let mut accepted = None;
        let res = scan(
            &self.client,
            &entry.topic,
            &mut v,
            Until::Offset(base.saturating_add(n)),
            ScanOptions::FULL,
            |m| {
                if m.offset == base {
                    accepted = Some(matches!(m.applied, Applied::Event | Applied::Gap));
                }
                ControlFlow::Continue(())
            },
        )
        .await;
        if let Err(e) = res {
            guard.complete(false, false);
            return Err(e);
        }
        entry.lock().verified = Some(v);
        guard.complete(false, false);
        match accepted {
            Some(ok) => {
                if !ok {
                    tracing::warn!(persistence_id = %entry.persistence_id, offset = base, reason = "another writer's records came first", "write fenced");
                }
                Ok((ok, chunk.indices))
            }
            None => Err(JournalError::Unknown(
                entry.persistence_id.clone(),
                format!("records at offset {base} not found while verifying"),
            )),
        }
    }

    /// The limit for one record batch of this id's topic.
    async fn max_message_bytes(
        &self,
        entry: &PidEntry,
        writes: &[(usize, AtomicWrite)],
    ) -> Result<usize, JournalError> {
        let configured = self
            .config
            .max_message_bytes
            .and_then(|m| usize::try_from(m).ok());
        if let Some(known) = entry.lock().max_message_bytes {
            return Ok(known);
        }
        let big = writes
            .iter()
            .any(|(_, w)| write_size(w) > DESCRIBE_THRESHOLD);
        if !big {
            return Ok(configured
                .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES)
                .min(DEFAULT_MAX_MESSAGE_BYTES));
        }
        let described = self
            .client
            .describe_topic_config(&entry.topic)
            .await?
            .get("max.message.bytes")
            .and_then(|v| v.trim().parse::<usize>().ok());
        let limit = match (described, configured) {
            (Some(d), Some(c)) => d.min(c),
            (Some(d), None) => d,
            (None, Some(c)) => c,
            (None, None) => DEFAULT_MAX_MESSAGE_BYTES,
        };
        tracing::debug!(topic = %entry.topic, limit, reason = "large write", "read max.message.bytes");
        entry.lock().max_message_bytes = Some(limit);
        Ok(limit)
    }

    /// Publishes written events to the mapper's topics, acks=all, before the write returns.
    ///
    /// Records are keyed by persistence id and partitioned with the Java client's murmur2
    /// partitioner (as `send_keyed` would), but sent as one batch per topic-partition (split
    /// by size), so a large write costs a few produce requests, not one per event.
    async fn publish(&self, events: Vec<PersistentRepr>) -> Result<(), JournalError> {
        let mut routed: Vec<(String, Record)> = Vec::new();
        for e in &events {
            let topics = self.mapper.topics_for(e);
            if topics.is_empty() {
                continue;
            }
            let value = Event::from_repr(e, self.config.event_serializer_id).encode_to_bytes();
            let key = bytes::Bytes::copy_from_slice(e.persistence_id.as_bytes());
            let timestamp = if e.timestamp > 0 {
                e.timestamp
            } else {
                now_ms()
            };
            for topic in topics {
                let record = Record::new(value.clone(), timestamp).with_key(key.clone());
                routed.push((topic, record));
            }
        }
        if routed.is_empty() {
            return Ok(());
        }
        let partitions = self.event_topic_partitions(&routed).await?;
        // Group per topic-partition, keeping the order of each id's events.
        let mut order: Vec<(String, i32)> = Vec::new();
        let mut groups: HashMap<(String, i32), Vec<Vec<Record>>> = HashMap::new();
        let mut sizes: HashMap<(String, i32), usize> = HashMap::new();
        for (topic, record) in routed {
            let n = partitions.get(&topic).copied().unwrap_or(1).max(1);
            let key = record.key.clone().unwrap_or_default();
            let partition = wire::murmur2_partition(&key, n);
            let size = record_size_bound(key.len(), record.value.as_ref().map_or(0, |v| v.len()));
            let slot = (topic, partition);
            let batches = groups.entry(slot.clone()).or_insert_with(|| {
                order.push(slot.clone());
                vec![Vec::new()]
            });
            let used = sizes.entry(slot).or_insert(BATCH_OVERHEAD);
            if *used + size > EVENT_BATCH_BYTES && batches.last().is_some_and(|b| !b.is_empty()) {
                batches.push(Vec::new());
                *used = BATCH_OVERHEAD;
            }
            *used += size;
            if let Some(b) = batches.last_mut() {
                b.push(record);
            }
        }
        let mut sends = Vec::new();
        for slot in order {
            for batch in groups.remove(&slot).unwrap_or_default() {
                if batch.is_empty() {
                    continue;
                }
                let (topic, partition) = slot.clone();
                sends.push(async move { self.producer.send(&topic, partition, batch).await });
            }
        }
        for r in join_all(sends).await {
            r?;
        }
        Ok(())
    }

    /// The partition counts of the event topics in `routed`, creating missing topics.
    async fn event_topic_partitions(
        &self,
        routed: &[(String, Record)],
    ) -> Result<HashMap<String, i32>, JournalError> {
        let mut names: Vec<&str> = routed.iter().map(|(t, _)| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut out = HashMap::new();
        let mut unknown = Vec::new();
        {
            let known = self
                .known_event_topics
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for n in names {
                match known.get(n) {
                    Some(p) => {
                        out.insert(n.to_string(), *p);
                    }
                    None => unknown.push(n.to_string()),
                }
            }
        }
        if unknown.is_empty() {
            return Ok(out);
        }
        let mut create = Vec::new();
        for t in &unknown {
            if self.client.topic_metadata(t).await?.is_none() {
                create.push(NewTopic::new(
                    t.as_str(),
                    self.config.event_topic_partitions.max(1),
                    self.config.replication_factor,
                ));
            }
        }
        if !create.is_empty() {
            tracing::debug!(
                topics = create.len(),
                reason = "first use",
                "creating event topics"
            );
            self.client.create_topics(create).await?;
        }
        for t in unknown {
            let Some(meta) = self.client.topic_metadata(&t).await? else {
                return Err(JournalError::TopicCreation(format!(
                    "event topic {t} does not exist after creating it"
                )));
            };
            let n = i32::try_from(meta.partitions.len())
                .unwrap_or(i32::MAX)
                .max(1);
            self.known_event_topics
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(t.clone(), n);
            out.insert(t, n);
        }
        Ok(out)
    }

    async fn delete_to(&self, persistence_id: &str, to: u64) -> Result<(), JournalError> {
        let entry = self.entry(persistence_id);
        let _gate = entry.gate.ticket().enter().await;
        if !entry.topic_exists(&self.client).await? {
            return Ok(());
        }
        entry.drain().await;
        let v = entry.sync(&self.client).await?;
        let target = to.min(v.state.highest).max(v.state.deleted_to);
        if target <= v.state.deleted_to {
            return Ok(());
        }
        let marker = JournalRecord::deletion(target, v.state.highest);
        let sent = self
            .producer
            .send(
                &entry.topic,
                PARTITION,
                vec![marker.to_record(persistence_id, now_ms())],
            )
            .await;
        let meta = match sent {
            Ok(m) => m,
            Err(e) => {
                entry.lock().poisoned = true;
                return Err(e.into());
            }
        };
        let v = entry.sync(&self.client).await?;
        // Free the space below the first record that is not fully deleted (at most up to the
        // marker, so a truncated log still starts with the deletion state).
        let mut probe = Verified::from_state(v.start_for(target.saturating_add(1)), v.log_start);
        let mut truncate_to = meta.base_offset;
        scan(
            &self.client,
            &entry.topic,
            &mut probe,
            Until::Offset(meta.base_offset),
            ScanOptions::FULL,
            |m| {
                if matches!(m.applied, Applied::Event | Applied::Gap) && m.record.last() > target {
                    truncate_to = m.offset;
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .await?;
        if truncate_to > v.log_start {
            match self
                .client
                .delete_records(&entry.topic, PARTITION, truncate_to)
                .await
            {
                Ok(low) => {
                    if let Some(v) = entry.lock().verified.as_mut() {
                        v.set_log_start(low.max(truncate_to));
                    }
                }
                Err(e) => {
                    tracing::warn!(topic = %entry.topic, error = %e, reason = "DeleteRecords failed; the deletion marker still hides the events", "space not freed");
                }
            }
        }
        Ok(())
    }
}

//! [`SnapshotStore`]: save, load and delete snapshots on compacted Kafka topics.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures::future::try_join_all;
use kafka_persistence_wire::{
    self as wire, Client, ClientConfig, FetchRequest, NewTopic, Producer, ProducerConfig, Record,
};
use tracing::{debug, info, warn};

use crate::config::SnapshotConfig;
use crate::error::SnapshotError;
use crate::format::{
    chunk_key, encode_index, index_key, Corrupt, IndexRecord, Manifest, Payload, FORMAT_VERSION,
};
use crate::index::{scan, Entry, Index, INDEX_PARTITION};
use crate::model::{SelectedSnapshot, SnapshotMetadata, SnapshotSelectionCriteria};
use crate::topic::topic_for;

/// Kafka's broker default of `message.max.bytes`, used when a topic does not say.
const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;
/// Bytes left free in a record batch for the batch header, record framing and key.
const BATCH_HEADROOM: usize = 1024;
/// Upper bound of one chunk, whatever the topic allows (keeps fetches and frames moderate).
const MAX_CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Payloads up to this size are stored inside the index record.
pub(crate) const INLINE_PAYLOAD_MAX: usize = 1024;
/// Partition bytes asked for per fetch while reading chunks (at least one batch comes back).
const CHUNK_FETCH_BYTES: usize = 16 * 1024 * 1024;

/// A snapshot store: one compacted topic per persistence id (see the crate docs for the
/// layout). Cheap to share (`Arc`); every call takes `&self` and is bounded by
/// [`SnapshotConfig::with_timeout`].
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: SnapshotConfig,
    client: Client,
    producer: Producer,
    /// Topics known to exist, with what a save needs to know about them.
    topics: Mutex<HashMap<String, TopicInfo>>,
    /// What this store knows about each persistence id's live snapshots (from its last scan
    /// and its own writes since), so a save needs no scan.
    known: Mutex<HashMap<String, Known>>,
    /// Superseded chunk generations already tombstoned: (topic, sequence_nr, generation).
    cleaned: Mutex<HashSet<(String, u64, u64)>>,
    generation_seed: u64,
    generation_counter: AtomicU64,
}

/// The live snapshots of one id as far as this store knows (the log is the truth: another
/// process's writes are only learnt by the next scan).
#[derive(Debug, Clone, Default)]
struct Known {
    /// The highest timestamp assigned or seen.
    last_timestamp: Option<i64>,
    /// The manifests of live chunked snapshots (their chunks become garbage when replaced).
    chunked: BTreeMap<u64, Manifest>,
}

/// Bound of the `known` cache (ids); it is cleared when full.
const MAX_KNOWN_IDS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TopicInfo {
    data_partition: i32,
    max_message_bytes: usize,
}

impl TopicInfo {
    fn chunk_size(&self) -> usize {
        self.max_message_bytes
            .saturating_sub(BATCH_HEADROOM)
            .clamp(1, MAX_CHUNK_BYTES)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl SnapshotStore {
    /// Connects to the brokers of `config`. Creates nothing: topics are created by the first
    /// save of each persistence id.
    pub async fn connect(config: SnapshotConfig) -> Result<SnapshotStore, SnapshotError> {
        config.validate()?;
        let timeout = config.timeout();
        let mut client_config = ClientConfig::new(config.bootstrap_servers.clone())
            .with_request_timeout(timeout.min(Duration::from_secs(30)))
            .with_delivery_timeout(timeout);
        for (k, v) in &config.client_properties {
            client_config = client_config.with_property(k.clone(), v.clone());
        }
        let client = tokio::time::timeout(timeout, Client::connect(client_config))
            .await
            .map_err(|_| SnapshotError::Timeout {
                operation: "connect",
                timeout,
            })??;
        // Batch size 1: every send is its own record batch, so chunks sent back to back are
        // never coalesced into a batch above the topic's `max.message.bytes`.
        let producer = client.producer(ProducerConfig::default().with_batch_size(1));
        let generation_seed = RandomState::new().build_hasher().finish();
        Ok(SnapshotStore {
            inner: Arc::new(Inner {
                config,
                client,
                producer,
                topics: Mutex::new(HashMap::new()),
                known: Mutex::new(HashMap::new()),
                cleaned: Mutex::new(HashSet::new()),
                generation_seed,
                generation_counter: AtomicU64::new(0),
            }),
        })
    }

    /// The configuration this store was connected with.
    pub fn config(&self) -> &SnapshotConfig {
        &self.inner.config
    }

    /// The topic that holds the snapshots of `persistence_id`.
    pub fn topic_for(&self, persistence_id: &str) -> String {
        topic_for(&self.inner.config.topic_prefix, persistence_id)
    }

    /// Saves a snapshot and returns its metadata as stored: a timestamp of 0 is replaced by
    /// the current time, made strictly greater than every timestamp this store assigned or
    /// finds stored for the id. Saving again at the same sequence number overwrites. A
    /// snapshot larger than the topic's `max.message.bytes` is stored in chunks, committed
    /// by one index record written after them.
    pub async fn save(
        &self,
        metadata: SnapshotMetadata,
        payload: impl Into<Bytes>,
    ) -> Result<SnapshotMetadata, SnapshotError> {
        let payload = payload.into();
        self.bounded("save", self.inner.save(metadata, payload))
            .await
    }

    /// Loads the youngest snapshot (highest sequence number) matching all four bounds of
    /// `criteria`, or `None`. A snapshot that cannot be decoded (or whose chunks are
    /// incomplete) is skipped with a warning, and the next older matching one is tried.
    /// Never creates a topic.
    pub async fn load(
        &self,
        persistence_id: &str,
        criteria: SnapshotSelectionCriteria,
    ) -> Result<Option<SelectedSnapshot>, SnapshotError> {
        self.bounded("load", self.inner.load(persistence_id, criteria, None))
            .await
    }

    /// [`load`](Self::load) for recovery: snapshots above the journal's highest sequence
    /// number (orphans: the journal lost its tail, or the snapshot was saved for events that
    /// were never stored) are ignored, including one at exactly `journal_highest + 1`.
    pub async fn load_for_recovery(
        &self,
        persistence_id: &str,
        criteria: SnapshotSelectionCriteria,
        journal_highest: u64,
    ) -> Result<Option<SelectedSnapshot>, SnapshotError> {
        self.bounded(
            "load_for_recovery",
            self.inner
                .load(persistence_id, criteria, Some(journal_highest)),
        )
        .await
    }

    /// Deletes the snapshot at `metadata.sequence_nr` of `metadata.persistence_id`: with a
    /// timestamp of 0 whatever its timestamp, otherwise only if the timestamp matches too.
    /// The deletion is a tombstone, so it holds for every later load from any process.
    pub async fn delete(&self, metadata: &SnapshotMetadata) -> Result<(), SnapshotError> {
        let seq = metadata.sequence_nr;
        let ts = metadata.timestamp;
        self.bounded(
            "delete",
            self.inner
                .delete_where(&metadata.persistence_id, |s, entry| {
                    s == seq
                        && (ts == 0
                            || matches!(entry, Entry::Valid { record, .. } if record.timestamp == ts))
                }),
        )
        .await
    }

    /// Deletes every snapshot of `persistence_id` matching `criteria` (in one record batch:
    /// all of them or none).
    pub async fn delete_matching(
        &self,
        persistence_id: &str,
        criteria: SnapshotSelectionCriteria,
    ) -> Result<(), SnapshotError> {
        self.bounded(
            "delete_matching",
            self.inner
                .delete_where(persistence_id, |seq, entry| match entry {
                    Entry::Valid { record, .. } => criteria.matches(seq, record.timestamp),
                    // Its timestamp is unknown: deleted only if the timestamp bounds are open.
                    Entry::Corrupt { .. } => {
                        criteria.matches_sequence_nr(seq) && criteria.admits_any_timestamp()
                    }
                }),
        )
        .await
    }

    async fn bounded<T>(
        &self,
        operation: &'static str,
        fut: impl Future<Output = Result<T, SnapshotError>>,
    ) -> Result<T, SnapshotError> {
        let timeout = self.inner.config.timeout();
        match tokio::time::timeout(timeout, fut).await {
            // The client's delivery timeout is the same bound: report it the same way.
            Ok(Err(SnapshotError::Kafka(wire::Error::Timeout { what, after }))) => {
                debug!(operation, what, ?after, "client timed out");
                Err(SnapshotError::Timeout { operation, timeout })
            }
            Ok(r) => r,
            Err(_) => Err(SnapshotError::Timeout { operation, timeout }),
        }
    }
}

impl Inner {
    fn topic(&self, persistence_id: &str) -> String {
        topic_for(&self.config.topic_prefix, persistence_id)
    }

    fn next_generation(&self) -> u64 {
        let n = self.generation_counter.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        // splitmix64 of seed + counter, mixed with the clock: unique per store and save.
        let mut z = self
            .generation_seed
            .wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            ^ nanos;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Whether the topic exists (cached once seen).
    async fn topic_exists(&self, topic: &str) -> Result<bool, SnapshotError> {
        if lock(&self.topics).contains_key(topic) {
            return Ok(true);
        }
        Ok(self.client.topic_metadata(topic).await?.is_some())
    }

    /// Creates the topic if needed and learns its data partition and message size limit.
    async fn ensure_topic(&self, topic: &str) -> Result<TopicInfo, SnapshotError> {
        if let Some(info) = lock(&self.topics).get(topic) {
            return Ok(*info);
        }
        let md = match self.client.topic_metadata(topic).await? {
            Some(md) => md,
            None => {
                let mut new = NewTopic::new(topic, 2, self.config.replication_factor)
                    .with_config("cleanup.policy", "compact");
                if let Some(bytes) = self.config.max_message_bytes {
                    new = new.with_config("max.message.bytes", bytes.to_string());
                }
                for (k, v) in &self.config.topic_configs {
                    if k != "cleanup.policy" {
                        new = new.with_config(k.clone(), v.clone());
                    }
                }
                info!(topic, "creating snapshot topic");
                self.client.create_topics(vec![new]).await?;
                self.client
                    .topic_metadata(topic)
                    .await?
                    .ok_or_else(|| SnapshotError::Topic {
                        topic: topic.to_owned(),
                        reason: "not in the metadata after it was created".into(),
                    })?
            }
        };
        let data_partition = match md.partitions.len() {
            0 => {
                return Err(SnapshotError::Topic {
                    topic: topic.to_owned(),
                    reason: "it has no partitions".into(),
                })
            }
            1 => 0,
            _ => 1,
        };
        let configs = self.client.describe_topic_config(topic).await?;
        if !configs
            .get("cleanup.policy")
            .is_none_or(|p| p.contains("compact"))
        {
            warn!(topic, policy = ?configs.get("cleanup.policy"), "snapshot topic is not compacted: old snapshots are removed by retention, not by compaction");
        }
        let max_message_bytes = match configs
            .get("max.message.bytes")
            .map(|v| v.trim().parse::<usize>())
        {
            Some(Ok(n)) if n > 0 => n,
            other => {
                debug!(topic, value = ?other, reason = "max.message.bytes missing or invalid", "assuming the broker default");
                DEFAULT_MAX_MESSAGE_BYTES
            }
        };
        let info = TopicInfo {
            data_partition,
            max_message_bytes,
        };
        lock(&self.topics).insert(topic.to_owned(), info);
        Ok(info)
    }

    /// Records what a scan of `persistence_id`'s index showed.
    fn remember(&self, persistence_id: &str, index: &Index) {
        let chunked = index
            .entries
            .iter()
            .filter_map(|(seq, e)| e.manifest().map(|m| (*seq, m.clone())))
            .collect();
        let mut known = lock(&self.known);
        if known.len() >= MAX_KNOWN_IDS && !known.contains_key(persistence_id) {
            known.clear();
        }
        let k = known.entry(persistence_id.to_owned()).or_default();
        k.last_timestamp = k.last_timestamp.max(index.max_timestamp());
        k.chunked = chunked;
    }

    /// Assigns the timestamp of a save (0 = now, strictly above every known timestamp) and
    /// returns it with the manifest of the chunked snapshot it replaces, if any.
    fn assign_timestamp(
        &self,
        persistence_id: &str,
        seq: u64,
        requested: i64,
    ) -> (i64, Option<Manifest>) {
        let mut known = lock(&self.known);
        let k = known.entry(persistence_id.to_owned()).or_default();
        let ts = if requested != 0 {
            requested
        } else {
            let now = now_ms();
            match k.last_timestamp {
                Some(p) if p >= now => p.saturating_add(1),
                _ => now,
            }
        };
        k.last_timestamp = Some(k.last_timestamp.map_or(ts, |p| p.max(ts)));
        (ts, k.chunked.get(&seq).cloned())
    }

    /// Updates the known manifests after this store wrote `seq`.
    fn remember_write(&self, persistence_id: &str, seq: u64, manifest: Option<Manifest>) {
        let mut known = lock(&self.known);
        let k = known.entry(persistence_id.to_owned()).or_default();
        match manifest {
            Some(m) => k.chunked.insert(seq, m),
            None => k.chunked.remove(&seq),
        };
    }

    async fn save(
        &self,
        metadata: SnapshotMetadata,
        payload: Bytes,
    ) -> Result<SnapshotMetadata, SnapshotError> {
        let pid = metadata.persistence_id.clone();
        let seq = metadata.sequence_nr;
        if seq == 0 {
            return Err(SnapshotError::InvalidArgument(
                "sequence numbers start at 1".into(),
            ));
        }
        let topic = self.topic(&pid);
        let info = self.ensure_topic(&topic).await?;
        // First save of this id in this store: learn its timestamps and chunked snapshots.
        let superseded = if lock(&self.known).contains_key(&pid) {
            Vec::new()
        } else {
            let index = scan(&self.client, &topic).await?;
            self.remember(&pid, &index);
            index.superseded
        };
        let user_metadata_len = metadata.metadata.as_ref().map_or(0, Bytes::len);
        let index_budget = info.max_message_bytes.saturating_sub(BATCH_HEADROOM);
        if user_metadata_len
            .saturating_add(pid.len())
            .saturating_add(256)
            > index_budget
        {
            return Err(SnapshotError::InvalidArgument(format!(
                "snapshot metadata of {user_metadata_len} bytes does not fit the topic's max.message.bytes {}",
                info.max_message_bytes
            )));
        }
        let (timestamp, replaced) = self.assign_timestamp(&pid, seq, metadata.timestamp);
        let stored = SnapshotMetadata {
            timestamp,
            ..metadata
        };
        let mut record = IndexRecord {
            version: FORMAT_VERSION,
            persistence_id: pid.clone(),
            sequence_nr: seq,
            timestamp,
            metadata: stored.metadata.clone(),
            inline_payload: None,
            manifest: None,
        };
        let inline = payload.len() <= INLINE_PAYLOAD_MAX
            && payload.len() + user_metadata_len + pid.len() + 256 <= index_budget;
        if inline {
            record.inline_payload = Some(payload);
        } else {
            record.manifest = Some(self.write_chunks(&topic, info, seq, &payload).await?);
        }
        let value = encode_index(&record);
        let sent = self
            .producer
            .send(
                &topic,
                INDEX_PARTITION,
                vec![Record {
                    key: Some(index_key(seq)),
                    value: Some(value),
                    headers: Vec::new(),
                    timestamp: now_ms(),
                }],
            )
            .await;
        if let Err(e) = sent {
            if let Some(m) = &record.manifest {
                // The manifest may or may not be stored: only clean up what surely is garbage
                // once a later scan shows the manifest superseded. Chunks of an unknown
                // outcome are left alone.
                debug!(topic, seq, generation = m.generation, error = %e, "index record of a chunked snapshot failed");
            }
            return Err(e.into());
        }
        self.remember_write(&pid, seq, record.manifest.clone());
        // The old snapshot at this sequence number is replaced: its chunks are garbage.
        let mut garbage = superseded;
        garbage.extend(replaced.map(|m| (seq, m)));
        self.tombstone_chunks(&topic, garbage).await;
        debug!(topic, seq, timestamp, inline, "snapshot saved");
        Ok(stored)
    }

    /// Writes the chunks of `payload` (each its own record batch, pipelined) and returns the
    /// manifest that commits them. On failure, the chunks are tombstoned (best effort).
    async fn write_chunks(
        &self,
        topic: &str,
        info: TopicInfo,
        seq: u64,
        payload: &Bytes,
    ) -> Result<Manifest, SnapshotError> {
        let chunk_size = info.chunk_size();
        let count = payload.len().div_ceil(chunk_size).max(1);
        let too_large = || SnapshotError::TooLarge {
            persistence_id: topic.to_owned(),
            sequence_nr: seq,
            size: payload.len(),
        };
        if u32::try_from(count).is_err() {
            return Err(too_large());
        }
        let generation = self.next_generation();
        let now = now_ms();
        let sends = (0..count).map(|i| {
            let start = i * chunk_size;
            let end = (start + chunk_size).min(payload.len());
            let record = Record {
                key: Some(chunk_key(seq, generation, i as u32)),
                value: Some(payload.slice(start..end)),
                headers: Vec::new(),
                timestamp: now,
            };
            self.producer.send(topic, info.data_partition, vec![record])
        });
        match try_join_all(sends).await {
            Ok(mds) => Ok(Manifest {
                generation,
                partition: info.data_partition,
                offsets: mds.into_iter().map(|m| m.base_offset).collect(),
                total_length: payload.len() as u64,
                crc32c: crc32c::crc32c(payload),
            }),
            Err(e) => {
                warn!(topic, seq, generation, error = %e, reason = "chunk write failed", "tombstoning the chunks of a failed save");
                let manifest = Manifest {
                    generation,
                    partition: info.data_partition,
                    offsets: vec![0; count],
                    total_length: payload.len() as u64,
                    crc32c: 0,
                };
                self.tombstone_chunks(topic, vec![(seq, manifest)]).await;
                Err(e.into())
            }
        }
    }

    /// Tombstones the chunk records of superseded manifests (best effort: a failure leaves
    /// garbage, never a wrong load). Each generation is cleaned once per store.
    async fn tombstone_chunks(&self, topic: &str, manifests: Vec<(u64, Manifest)>) {
        let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
        let mut done = Vec::new();
        {
            let cleaned = lock(&self.cleaned);
            for (seq, m) in manifests {
                let id = (topic.to_owned(), seq, m.generation);
                if cleaned.contains(&id) || done.contains(&id) {
                    continue;
                }
                let records = by_partition.entry(m.partition).or_default();
                for i in 0..m.offsets.len() {
                    records.push(Record {
                        key: Some(chunk_key(seq, m.generation, i as u32)),
                        value: None,
                        headers: Vec::new(),
                        timestamp: now_ms(),
                    });
                }
                done.push(id);
            }
        }
        for (partition, records) in by_partition {
            if records.is_empty() {
                continue;
            }
            if let Err(e) = self.producer.send(topic, partition, records).await {
                warn!(topic, partition, error = %e, reason = "tombstones not written", "chunks of replaced snapshots stay until a later cleanup");
                return;
            }
        }
        let mut cleaned = lock(&self.cleaned);
        if cleaned.len() > 100_000 {
            cleaned.clear();
        }
        cleaned.extend(done);
    }

    async fn load(
        &self,
        persistence_id: &str,
        criteria: SnapshotSelectionCriteria,
        journal_highest: Option<u64>,
    ) -> Result<Option<SelectedSnapshot>, SnapshotError> {
        let topic = self.topic(persistence_id);
        if !self.topic_exists(&topic).await? {
            return Ok(None);
        }
        let index = scan(&self.client, &topic).await?;
        self.remember(persistence_id, &index);
        let criteria = match journal_highest {
            Some(highest) => {
                for seq in index
                    .entries
                    .range(highest.saturating_add(1)..)
                    .map(|(s, _)| s)
                {
                    if criteria.matches_sequence_nr(*seq) {
                        warn!(
                            persistence_id,
                            sequence_nr = *seq,
                            journal_highest = highest,
                            "ignoring orphan snapshot above the journal's highest sequence number"
                        );
                    }
                }
                criteria.limit(highest)
            }
            None => criteria,
        };
        for (&seq, entry) in index.entries.iter().rev() {
            if !criteria.matches_sequence_nr(seq) {
                continue;
            }
            match entry {
                Entry::Corrupt { reason, offset } => {
                    warn!(persistence_id, sequence_nr = seq, offset, reason = %reason, "snapshot fails to decode; falling back to the next older one");
                }
                Entry::Valid { record, payload } => {
                    if !criteria.matches(seq, record.timestamp) {
                        continue;
                    }
                    let bytes = match payload {
                        Payload::Inline(b) => Ok(b.clone()),
                        Payload::Chunked(m) => self.read_chunks(&topic, seq, m).await?,
                    };
                    match bytes {
                        Ok(snapshot) => {
                            return Ok(Some(SelectedSnapshot {
                                metadata: SnapshotMetadata {
                                    persistence_id: persistence_id.to_owned(),
                                    sequence_nr: seq,
                                    timestamp: record.timestamp,
                                    metadata: record.metadata.clone(),
                                },
                                snapshot,
                            }))
                        }
                        Err(Corrupt(reason)) => {
                            warn!(persistence_id, sequence_nr = seq, reason = %reason, "snapshot payload unusable; falling back to the next older one");
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// Reads and checks the chunks of a manifest. `Ok(Err(_))`: the stored data is unusable
    /// (missing or foreign chunk, wrong length or checksum); `Err(_)`: the read failed.
    async fn read_chunks(
        &self,
        topic: &str,
        seq: u64,
        m: &Manifest,
    ) -> Result<Result<Bytes, Corrupt>, SnapshotError> {
        let n = m.offsets.len();
        let mut chunks: Vec<Option<Bytes>> = vec![None; n];
        let mut wanted: HashMap<i64, usize> = HashMap::with_capacity(n);
        for (i, &off) in m.offsets.iter().enumerate() {
            if wanted.insert(off, i).is_some() {
                return Ok(Err(Corrupt(format!("manifest names offset {off} twice"))));
            }
        }
        let mut received = 0_usize;
        let mut next = 0_usize;
        while next < n {
            let offset = m.offsets[next];
            let remaining = usize::try_from(m.total_length)
                .unwrap_or(usize::MAX)
                .saturating_sub(received)
                .saturating_add(64 * 1024)
                .min(CHUNK_FETCH_BYTES);
            let req = FetchRequest::new(topic, m.partition, offset)
                .with_max_bytes(i32::try_from(remaining).unwrap_or(i32::MAX));
            let resp = match self.client.fetch(req).await {
                Ok(r) => r,
                Err(wire::Error::OffsetOutOfRange { .. }) => {
                    return Ok(Err(Corrupt(format!(
                        "chunk {next} at offset {offset} is outside the log"
                    ))))
                }
                Err(e) => return Err(e.into()),
            };
            for r in resp.records {
                let Some(&i) = wanted.get(&r.offset) else {
                    continue;
                };
                if chunks[i].is_some() {
                    continue;
                }
                let expected = chunk_key(seq, m.generation, i as u32);
                if r.key.as_deref() != Some(&expected[..]) {
                    return Ok(Err(Corrupt(format!(
                        "offset {} holds a record other than chunk {i}",
                        r.offset
                    ))));
                }
                let Some(value) = r.value else {
                    return Ok(Err(Corrupt(format!("chunk {i} was deleted"))));
                };
                received = received.saturating_add(value.len());
                if received as u64 > m.total_length {
                    return Ok(Err(Corrupt("chunks longer than the manifest says".into())));
                }
                chunks[i] = Some(value);
            }
            if chunks[next].is_none() {
                return Ok(Err(Corrupt(format!(
                    "chunk {next} at offset {offset} is missing (compacted or deleted)"
                ))));
            }
            while next < n && chunks[next].is_some() {
                next += 1;
            }
        }
        let mut out = BytesMut::with_capacity(received);
        for c in chunks.into_iter().flatten() {
            out.extend_from_slice(&c);
        }
        let out = out.freeze();
        if out.len() as u64 != m.total_length {
            return Ok(Err(Corrupt(format!(
                "payload is {} bytes, manifest says {}",
                out.len(),
                m.total_length
            ))));
        }
        if crc32c::crc32c(&out) != m.crc32c {
            return Ok(Err(Corrupt("payload checksum mismatch".into())));
        }
        Ok(Ok(out))
    }

    async fn delete_where(
        &self,
        persistence_id: &str,
        select: impl Fn(u64, &Entry) -> bool,
    ) -> Result<(), SnapshotError> {
        let topic = self.topic(persistence_id);
        if !self.topic_exists(&topic).await? {
            return Ok(());
        }
        let index = scan(&self.client, &topic).await?;
        self.remember(persistence_id, &index);
        let selected: Vec<(u64, &Entry)> = index
            .entries
            .iter()
            .filter(|(seq, entry)| select(**seq, entry))
            .map(|(seq, entry)| (*seq, entry))
            .collect();
        if selected.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let tombstones = selected
            .iter()
            .map(|(seq, _)| Record {
                key: Some(index_key(*seq)),
                value: None,
                headers: Vec::new(),
                timestamp: now,
            })
            .collect();
        self.producer
            .send(&topic, INDEX_PARTITION, tombstones)
            .await?;
        debug!(topic, count = selected.len(), "snapshots deleted");
        for (seq, _) in &selected {
            self.remember_write(persistence_id, *seq, None);
        }
        let mut garbage = index.superseded.clone();
        garbage.extend(
            selected
                .iter()
                .filter_map(|(seq, e)| e.manifest().map(|m| (*seq, m.clone()))),
        );
        self.tombstone_chunks(&topic, garbage).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_leaves_headroom_and_is_bounded() {
        let t = |max| TopicInfo {
            data_partition: 1,
            max_message_bytes: max,
        };
        assert_eq!(
            t(DEFAULT_MAX_MESSAGE_BYTES).chunk_size(),
            DEFAULT_MAX_MESSAGE_BYTES - BATCH_HEADROOM
        );
        assert_eq!(t(100 * 1024 * 1024).chunk_size(), MAX_CHUNK_BYTES);
        assert_eq!(t(10).chunk_size(), 1);
    }
}

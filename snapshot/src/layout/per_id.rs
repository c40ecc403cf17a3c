//! Layout v1 ("per-id"): one compacted topic per persistence id (see the crate docs).
//!
//! Partition 0 holds the index records (key = sequence number), partition 1 the chunks. A
//! topic is created by the first save of its id, never by a load or a delete. Every load and
//! delete scans the id's index partition; a save scans it only the first time this store
//! sees the id (it then knows the id's timestamps and chunk manifests from its own writes).

mod index;
mod keys;

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_persistence_wire::Record;
use std::sync::Mutex;
use tracing::{debug, info, warn};

use crate::chunks::{self, ChunkTarget, Generations};
use crate::clock::{assign_timestamp, now_ms};
use crate::error::SnapshotError;
use crate::format::{encode_index, IndexRecord, Manifest, Payload, FORMAT_VERSION};
use crate::layout::{lock, Backend, Kafka};
use crate::model::{
    SelectedSnapshot, SnapshotMetadata, SnapshotPlacement, SnapshotSelectionCriteria,
};
use crate::selection::{load_order, without_orphans, Deletion};
use crate::topics::{self, TopicLimits};
use index::{scan, Entry, Index};
use keys::{chunk_key, index_key, topic_for, DATA_PARTITION, INDEX_KEY_LEN, INDEX_PARTITION};

pub(crate) use keys::topic_for as v1_topic_name;

/// Bound of the `known` cache (ids); it is cleared when full.
const MAX_KNOWN_IDS: usize = 100_000;
/// Bound of the `cleaned` set; it is cleared when full.
const MAX_CLEANED: usize = 100_000;

/// The v1 backend.
#[derive(Debug)]
pub(crate) struct PerId {
    kafka: Kafka,
    /// Topics known to exist, with what a save needs to know about them.
    topics: Mutex<HashMap<String, TopicInfo>>,
    /// What this store knows about each persistence id's live snapshots (from its last scan
    /// and its own writes since), so a save needs no scan.
    known: Mutex<HashMap<String, Known>>,
    /// Superseded chunk generations already tombstoned: (topic, sequence_nr, generation).
    cleaned: Mutex<HashSet<(String, u64, u64)>>,
    generations: Generations,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TopicInfo {
    data_partition: i32,
    limits: TopicLimits,
}

impl PerId {
    /// The v1 backend on `kafka`; creates nothing.
    pub(crate) fn new(kafka: Kafka) -> Self {
        PerId {
            kafka,
            topics: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
            cleaned: Mutex::new(HashSet::new()),
            generations: Generations::new(),
        }
    }

    fn topic(&self, persistence_id: &str) -> String {
        topic_for(&self.kafka.config.topic_prefix, persistence_id)
    }

    /// Whether the topic exists (cached once seen).
    async fn topic_exists(&self, topic: &str) -> Result<bool, SnapshotError> {
        if lock(&self.topics).contains_key(topic) {
            return Ok(true);
        }
        Ok(self.kafka.client.topic_metadata(topic).await?.is_some())
    }

    /// Creates the topic if needed and learns its data partition and message size limit.
    async fn ensure_topic(&self, topic: &str) -> Result<TopicInfo, SnapshotError> {
        if let Some(info) = lock(&self.topics).get(topic) {
            return Ok(*info);
        }
        let client = &self.kafka.client;
        let md = match client.topic_metadata(topic).await? {
            Some(md) => md,
            None => {
                info!(topic, "creating snapshot topic");
                client
                    .create_topics(vec![topics::new_topic(&self.kafka.config, topic, 2)])
                    .await?;
                client
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
            1 => INDEX_PARTITION,
            _ => DATA_PARTITION,
        };
        let settings = topics::describe(client, topic).await?;
        if !settings.compacted() {
            warn!(topic, policy = ?settings.cleanup_policy, "snapshot topic is not compacted: old snapshots are removed by retention, not by compaction");
        }
        let info = TopicInfo {
            data_partition,
            limits: settings.limits,
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

    /// Assigns the timestamp of a save and returns it with the manifest of the chunked
    /// snapshot it replaces, if any.
    fn assign_timestamp(
        &self,
        persistence_id: &str,
        seq: u64,
        requested: i64,
    ) -> (i64, Option<Manifest>) {
        let mut known = lock(&self.known);
        let k = known.entry(persistence_id.to_owned()).or_default();
        let ts = assign_timestamp(requested, k.last_timestamp, now_ms());
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

    async fn save_impl(
        &self,
        metadata: SnapshotMetadata,
        payload: Bytes,
    ) -> Result<SnapshotMetadata, SnapshotError> {
        let pid = metadata.persistence_id.clone();
        let seq = metadata.sequence_nr;
        let topic = self.topic(&pid);
        let info = self.ensure_topic(&topic).await?;
        // First save of this id in this store: learn its timestamps and chunked snapshots.
        let superseded = if lock(&self.known).contains_key(&pid) {
            Vec::new()
        } else {
            let index = scan(&self.kafka.client, &topic).await?;
            self.remember(&pid, &index);
            index.superseded
        };
        let metadata_len = metadata.metadata.as_ref().map_or(0, Bytes::len);
        info.limits
            .check_metadata(&pid, INDEX_KEY_LEN, metadata_len)?;
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
        let inline = info
            .limits
            .inline(payload.len(), &pid, INDEX_KEY_LEN, metadata_len);
        if inline {
            record.inline_payload = Some(payload);
        } else {
            let target = ChunkTarget {
                persistence_id: &pid,
                sequence_nr: seq,
                topic: &topic,
                partition: info.data_partition,
                chunk_size: info.limits.chunk_size(),
            };
            let generation = self.generations.next();
            let manifest = chunks::write(&self.kafka.producer, target, generation, &payload, |i| {
                chunk_key(seq, generation, i)
            })
            .await?;
            record.manifest = Some(manifest);
        }
        let sent = self
            .kafka
            .producer
            .send(
                &topic,
                INDEX_PARTITION,
                vec![Record {
                    key: Some(index_key(seq)),
                    value: Some(encode_index(&record)),
                    headers: Vec::new(),
                    timestamp: now_ms(),
                }],
            )
            .await;
        if let Err(e) = sent {
            if let Some(m) = &record.manifest {
                // The manifest may or may not be stored: chunks of an unknown outcome are
                // left alone until a later scan shows them superseded.
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
                by_partition
                    .entry(m.partition)
                    .or_default()
                    .extend(chunks::tombstones(chunks::count(&m), |i| {
                        chunk_key(seq, m.generation, i)
                    }));
                done.push(id);
            }
        }
        for (partition, records) in by_partition {
            if records.is_empty() {
                continue;
            }
            if let Err(e) = self.kafka.producer.send(topic, partition, records).await {
                warn!(topic, partition, error = %e, reason = "tombstones not written", "chunks of replaced snapshots stay until a later cleanup");
                return;
            }
        }
        let mut cleaned = lock(&self.cleaned);
        if cleaned.len() > MAX_CLEANED {
            cleaned.clear();
        }
        cleaned.extend(done);
    }

    async fn load_impl(
        &self,
        persistence_id: &str,
        criteria: SnapshotSelectionCriteria,
        journal_highest: Option<u64>,
    ) -> Result<Option<SelectedSnapshot>, SnapshotError> {
        let topic = self.topic(persistence_id);
        if !self.topic_exists(&topic).await? {
            return Ok(None);
        }
        let index = scan(&self.kafka.client, &topic).await?;
        self.remember(persistence_id, &index);
        let criteria = without_orphans(
            persistence_id,
            criteria,
            journal_highest,
            index.entries.keys().copied(),
        );
        let order = load_order(
            index.entries.iter().map(|(seq, e)| (*seq, e.timestamp())),
            criteria,
        );
        for candidate in order {
            let seq = candidate.sequence_nr;
            match index.entries.get(&seq) {
                None => continue,
                Some(Entry::Corrupt { reason, offset }) => {
                    warn!(persistence_id, sequence_nr = seq, offset, reason = %reason, "snapshot fails to decode; falling back to the next older one");
                }
                Some(Entry::Valid { record, payload }) => {
                    let bytes = match payload {
                        Payload::Inline(b) => Ok(b.clone()),
                        Payload::Chunked(m) => {
                            chunks::read(&self.kafka.client, &topic, m, |i| {
                                chunk_key(seq, m.generation, i)
                            })
                            .await?
                        }
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
                        Err(reason) => {
                            warn!(persistence_id, sequence_nr = seq, reason = %reason, "snapshot payload unusable; falling back to the next older one");
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    async fn delete_impl(
        &self,
        persistence_id: &str,
        deletion: Deletion,
    ) -> Result<(), SnapshotError> {
        let topic = self.topic(persistence_id);
        if !self.topic_exists(&topic).await? {
            return Ok(());
        }
        let index = scan(&self.kafka.client, &topic).await?;
        self.remember(persistence_id, &index);
        let selected: Vec<(u64, &Entry)> = index
            .entries
            .iter()
            .filter(|(seq, entry)| deletion.selects(**seq, entry.timestamp()))
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
        self.kafka
            .producer
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

impl Backend for PerId {
    fn placement(&self, persistence_id: &str) -> SnapshotPlacement {
        SnapshotPlacement {
            topic: self.topic(persistence_id),
            index_partition: INDEX_PARTITION,
            chunk_partition: DATA_PARTITION,
        }
    }

    fn index_key(&self, _persistence_id: &str, sequence_nr: u64) -> Bytes {
        index_key(sequence_nr)
    }

    fn save(
        &self,
        metadata: SnapshotMetadata,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<SnapshotMetadata, SnapshotError>> {
        self.save_impl(metadata, payload).boxed()
    }

    fn load<'a>(
        &'a self,
        persistence_id: &'a str,
        criteria: SnapshotSelectionCriteria,
        journal_highest: Option<u64>,
    ) -> BoxFuture<'a, Result<Option<SelectedSnapshot>, SnapshotError>> {
        self.load_impl(persistence_id, criteria, journal_highest)
            .boxed()
    }

    fn delete<'a>(
        &'a self,
        persistence_id: &'a str,
        deletion: Deletion,
    ) -> BoxFuture<'a, Result<(), SnapshotError>> {
        self.delete_impl(persistence_id, deletion).boxed()
    }
}

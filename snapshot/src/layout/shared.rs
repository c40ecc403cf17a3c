//! Layout v2 ("shared"): every persistence id on one compacted topic with a fixed number of
//! partitions (see [`keys`] for names, partitions and keys, and the crate docs for the whole
//! format).
//!
//! The store keeps an in-memory index per index partition ([`index`]), restored at connect
//! by reading the P index partitions (never the chunk partitions), and brought up to the
//! high watermark of the id's partition before every save, load and delete (one fetch when
//! nothing is new), so what other store instances wrote is seen. A load then fetches exactly
//! the index record it picked (by offset) and its chunks (by their offsets).
//!
//! Ordering: the index changes only by applying the partition in offset order ([`tail`]);
//! this store's own writes are learnt the same way, and the next catch-up waits until they
//! are visible (read-your-writes even if a new leader's high watermark lags).

mod index;
mod keys;
mod tail;
mod topic;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use kafka_persistence_wire::{self as wire, FetchRequest, Record};
use tracing::{debug, info, warn};

use crate::chunks::{self, ChunkTarget, Generations};
use crate::clock::{assign_timestamp, now_ms};
use crate::error::SnapshotError;
use crate::format::{decode_index, encode_index, IndexRecord, Manifest, Payload, FORMAT_VERSION};
use crate::layout::{lock, Backend, Kafka};
use crate::model::{
    SelectedSnapshot, SnapshotMetadata, SnapshotPlacement, SnapshotSelectionCriteria,
};
use crate::selection::{load_order, without_orphans, Deletion};
use crate::topics::TopicLimits;
use index::{Entry, Kind};
use tail::Partition;

/// Index partitions restored at once at connect.
const RESTORE_CONCURRENCY: usize = 8;
/// Partition bytes asked for when fetching one index record (the broker returns at least
/// the whole batch that holds it).
const INDEX_RECORD_FETCH_BYTES: i32 = 64 * 1024;
/// Bound of the map of recently assigned timestamps; it is cleared when full.
const MAX_RECENT: usize = 10_000;

/// The v2 backend.
#[derive(Debug)]
pub(crate) struct Shared {
    kafka: Kafka,
    topic: String,
    /// P: index partitions `0..P`, chunk partitions `P..2P`.
    partitions: i32,
    limits: TopicLimits,
    /// One per index partition.
    parts: Vec<Partition>,
    /// Timestamps this store assigned lately, per id (so two saves of one id in quick
    /// succession get increasing timestamps even before the first is read back).
    recent: Mutex<HashMap<String, i64>>,
    generations: Generations,
}

/// The outcome of fetching one index record by offset.
enum Fetched {
    Record(IndexRecord, Payload),
    /// The record is there but unusable.
    Corrupt(String),
    /// No such record at that offset any more (compacted away after a newer write).
    Gone,
}

impl Shared {
    /// Creates or checks the topic and restores the index from the index partitions.
    pub(crate) async fn connect(kafka: Kafka) -> Result<Shared, SnapshotError> {
        let topic = keys::topic_name(&kafka.config.topic_prefix);
        let partitions = kafka.config.partitions;
        let limits = topic::ensure(&kafka.client, &kafka.config, &topic, partitions).await?;
        let shared = Shared {
            kafka,
            topic,
            partitions,
            limits,
            parts: (0..partitions).map(|_| Partition::default()).collect(),
            recent: Mutex::new(HashMap::new()),
            generations: Generations::new(),
        };
        futures::stream::iter(0..partitions)
            .map(|p| shared.catch_up(p))
            .buffer_unordered(RESTORE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        let ids: usize = shared.parts.iter().map(|p| lock(&p.index).id_count()).sum();
        info!(
            topic = shared.topic,
            partitions, ids, "snapshot index restored"
        );
        Ok(shared)
    }

    fn index_partition(&self, persistence_id: &str) -> i32 {
        keys::index_partition(persistence_id, self.partitions)
    }

    fn part(&self, partition: i32) -> &Partition {
        // `index_partition` is in 0..P, and `parts` has P elements.
        &self.parts[usize::try_from(partition).unwrap_or(0) % self.parts.len().max(1)]
    }

    /// Catches up the index partition `partition` (see [`tail::catch_up`]).
    async fn catch_up(&self, partition: i32) -> Result<(), SnapshotError> {
        tail::catch_up(
            &self.kafka.client,
            &self.topic,
            partition,
            self.part(partition),
        )
        .await
    }

    /// Fetches the index record of `entry` by its offset.
    async fn fetch_index_record(
        &self,
        partition: i32,
        persistence_id: &str,
        entry: &Entry,
    ) -> Result<Fetched, SnapshotError> {
        let req = FetchRequest::new(&self.topic, partition, entry.offset)
            .with_max_bytes(INDEX_RECORD_FETCH_BYTES);
        let resp = match self.kafka.client.fetch(req).await {
            Ok(r) => r,
            Err(wire::Error::OffsetOutOfRange { .. }) => return Ok(Fetched::Gone),
            Err(e) => return Err(e.into()),
        };
        let Some(record) = resp.records.into_iter().find(|r| r.offset >= entry.offset) else {
            return Ok(Fetched::Gone);
        };
        let key = keys::index_key(persistence_id, entry.sequence_nr);
        if record.offset != entry.offset || record.key.as_deref() != Some(&key[..]) {
            return Ok(Fetched::Gone);
        }
        let Some(value) = record.value else {
            return Ok(Fetched::Gone);
        };
        Ok(match decode_index(entry.sequence_nr, value) {
            Ok((rec, _)) if rec.persistence_id != persistence_id => Fetched::Corrupt(format!(
                "index record names persistence id {:?}",
                rec.persistence_id
            )),
            Ok((rec, payload)) => Fetched::Record(rec, payload),
            Err(e) => Fetched::Corrupt(e.0),
        })
    }

    /// The manifest of a chunked entry (to tombstone its chunks once it is superseded);
    /// `None` if its record is gone or unusable.
    async fn manifest_of(
        &self,
        partition: i32,
        persistence_id: &str,
        entry: &Entry,
    ) -> Result<Option<Manifest>, SnapshotError> {
        Ok(
            match self
                .fetch_index_record(partition, persistence_id, entry)
                .await?
            {
                Fetched::Record(_, Payload::Chunked(m)) => Some(m),
                _ => None,
            },
        )
    }

    /// Tombstones the chunks of superseded manifests (best effort: a failure leaves garbage,
    /// never a wrong load).
    async fn tombstone_chunks(&self, persistence_id: &str, manifests: Vec<(u64, Manifest)>) {
        let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
        for (seq, m) in manifests {
            by_partition
                .entry(m.partition)
                .or_default()
                .extend(chunks::tombstones(chunks::count(&m), |i| {
                    keys::chunk_key(persistence_id, seq, m.generation, i)
                }));
        }
        for (partition, records) in by_partition {
            if records.is_empty() {
                continue;
            }
            if let Err(e) = self
                .kafka
                .producer
                .send(&self.topic, partition, records)
                .await
            {
                warn!(topic = self.topic, partition, error = %e, reason = "tombstones not written", "chunks of replaced snapshots stay behind");
            }
        }
    }

    /// Assigns a save's timestamp above `stored` (the id's highest live timestamp) and above
    /// what this store assigned lately.
    fn assign(&self, persistence_id: &str, requested: i64, stored: Option<i64>) -> i64 {
        let mut recent = lock(&self.recent);
        let last = stored.max(recent.get(persistence_id).copied());
        let ts = assign_timestamp(requested, last, now_ms());
        if recent.len() >= MAX_RECENT && !recent.contains_key(persistence_id) {
            recent.clear();
        }
        let slot = recent.entry(persistence_id.to_owned()).or_insert(ts);
        *slot = (*slot).max(ts);
        ts
    }

    async fn save_impl(
        &self,
        metadata: SnapshotMetadata,
        payload: Bytes,
    ) -> Result<SnapshotMetadata, SnapshotError> {
        let pid = metadata.persistence_id.clone();
        let seq = metadata.sequence_nr;
        let partition = self.index_partition(&pid);
        let key = keys::index_key(&pid, seq);
        let metadata_len = metadata.metadata.as_ref().map_or(0, Bytes::len);
        self.limits.check_metadata(&pid, key.len(), metadata_len)?;
        self.catch_up(partition).await?;
        let entries = lock(&self.part(partition).index).snapshots(&pid);
        // A chunked snapshot at this sequence number is replaced: learn its manifest now,
        // before the new record lets compaction remove the old one.
        let replaced = match entries
            .iter()
            .find(|e| e.sequence_nr == seq && e.kind == Kind::Chunked)
        {
            Some(e) => self.manifest_of(partition, &pid, e).await?,
            None => None,
        };
        let stored_max = entries.iter().filter_map(Entry::decoded_timestamp).max();
        let timestamp = self.assign(&pid, metadata.timestamp, stored_max);
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
        let inline = self
            .limits
            .inline(payload.len(), &pid, key.len(), metadata_len);
        if inline {
            record.inline_payload = Some(payload);
        } else {
            let target = ChunkTarget {
                persistence_id: &pid,
                sequence_nr: seq,
                topic: &self.topic,
                partition: keys::chunk_partition(&pid, self.partitions),
                chunk_size: self.limits.chunk_size(),
            };
            let generation = self.generations.next();
            let manifest = chunks::write(&self.kafka.producer, target, generation, &payload, |i| {
                keys::chunk_key(&pid, seq, generation, i)
            })
            .await?;
            record.manifest = Some(manifest);
        }
        let sent = self
            .kafka
            .producer
            .send(
                &self.topic,
                partition,
                vec![Record {
                    key: Some(key),
                    value: Some(encode_index(&record)),
                    headers: Vec::new(),
                    timestamp: now_ms(),
                }],
            )
            .await;
        let md = match sent {
            Ok(md) => md,
            Err(e) => {
                if let Some(m) = &record.manifest {
                    // The outcome may be unknown: the chunks are left alone.
                    debug!(topic = self.topic, seq, generation = m.generation, error = %e, "index record of a chunked snapshot failed");
                }
                return Err(e.into());
            }
        };
        self.part(partition).wrote_to(md.base_offset + 1);
        if let Some(m) = replaced {
            self.tombstone_chunks(&pid, vec![(seq, m)]).await;
        }
        debug!(
            topic = self.topic,
            partition,
            offset = md.base_offset,
            seq,
            timestamp,
            inline,
            "snapshot saved"
        );
        Ok(stored)
    }

    async fn load_impl(
        &self,
        persistence_id: &str,
        criteria: SnapshotSelectionCriteria,
        journal_highest: Option<u64>,
    ) -> Result<Option<SelectedSnapshot>, SnapshotError> {
        let partition = self.index_partition(persistence_id);
        // A picked record can be gone only if a newer one for its key arrived after the
        // catch-up (compaction removed the old one): then catch up once more and pick again.
        for attempt in 0..2 {
            self.catch_up(partition).await?;
            let entries = lock(&self.part(partition).index).snapshots(persistence_id);
            let criteria = without_orphans(
                persistence_id,
                criteria,
                journal_highest,
                entries.iter().map(|e| e.sequence_nr),
            );
            let order = load_order(
                entries
                    .iter()
                    .map(|e| (e.sequence_nr, e.decoded_timestamp())),
                criteria,
            );
            let mut stale = false;
            for candidate in order {
                let seq = candidate.sequence_nr;
                let Some(entry) = entries.iter().find(|e| e.sequence_nr == seq) else {
                    continue;
                };
                if entry.kind == Kind::Corrupt {
                    warn!(
                        persistence_id,
                        sequence_nr = seq,
                        offset = entry.offset,
                        "snapshot fails to decode; falling back to the next older one"
                    );
                    continue;
                }
                let (record, payload) = match self
                    .fetch_index_record(partition, persistence_id, entry)
                    .await?
                {
                    Fetched::Record(r, p) => (r, p),
                    Fetched::Corrupt(reason) => {
                        warn!(persistence_id, sequence_nr = seq, offset = entry.offset, reason = %reason, "snapshot fails to decode; falling back to the next older one");
                        continue;
                    }
                    Fetched::Gone if attempt == 0 => {
                        debug!(
                            persistence_id,
                            sequence_nr = seq,
                            offset = entry.offset,
                            reason = "index record superseded since the catch-up",
                            "catching up again"
                        );
                        stale = true;
                        break;
                    }
                    Fetched::Gone => {
                        warn!(
                            persistence_id,
                            sequence_nr = seq,
                            offset = entry.offset,
                            "snapshot's index record is gone; falling back to the next older one"
                        );
                        continue;
                    }
                };
                let bytes = match payload {
                    Payload::Inline(b) => Ok(b),
                    Payload::Chunked(m) => {
                        chunks::read(&self.kafka.client, &self.topic, &m, |i| {
                            keys::chunk_key(persistence_id, seq, m.generation, i)
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
                                metadata: record.metadata,
                            },
                            snapshot,
                        }))
                    }
                    Err(reason) => {
                        warn!(persistence_id, sequence_nr = seq, reason = %reason, "snapshot payload unusable; falling back to the next older one");
                    }
                }
            }
            if !stale {
                break;
            }
        }
        Ok(None)
    }

    async fn delete_impl(
        &self,
        persistence_id: &str,
        deletion: Deletion,
    ) -> Result<(), SnapshotError> {
        let partition = self.index_partition(persistence_id);
        self.catch_up(partition).await?;
        let selected: Vec<Entry> = lock(&self.part(partition).index)
            .snapshots(persistence_id)
            .into_iter()
            .filter(|e| deletion.selects(e.sequence_nr, e.decoded_timestamp()))
            .collect();
        if selected.is_empty() {
            return Ok(());
        }
        // Learn the manifests first: the tombstones let compaction remove the records.
        let mut garbage = Vec::new();
        for e in selected.iter().filter(|e| e.kind == Kind::Chunked) {
            if let Some(m) = self.manifest_of(partition, persistence_id, e).await? {
                garbage.push((e.sequence_nr, m));
            }
        }
        let now = now_ms();
        let tombstones: Vec<Record> = selected
            .iter()
            .map(|e| Record {
                key: Some(keys::index_key(persistence_id, e.sequence_nr)),
                value: None,
                headers: Vec::new(),
                timestamp: now,
            })
            .collect();
        let count = tombstones.len();
        let md = self
            .kafka
            .producer
            .send(&self.topic, partition, tombstones)
            .await?;
        self.part(partition)
            .wrote_to(md.base_offset + i64::try_from(count).unwrap_or(i64::MAX));
        debug!(topic = self.topic, partition, count, "snapshots deleted");
        self.tombstone_chunks(persistence_id, garbage).await;
        Ok(())
    }
}

impl Backend for Shared {
    fn placement(&self, persistence_id: &str) -> SnapshotPlacement {
        SnapshotPlacement {
            topic: self.topic.clone(),
            index_partition: self.index_partition(persistence_id),
            chunk_partition: keys::chunk_partition(persistence_id, self.partitions),
        }
    }

    fn index_key(&self, persistence_id: &str, sequence_nr: u64) -> Bytes {
        keys::index_key(persistence_id, sequence_nr)
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

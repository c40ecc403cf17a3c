//! Log compaction for `cleanup.policy=compact` topics.
//!
//! Rules (Kafka's, simplified):
//! - the newest record of every key is kept, older records with the same key are removed;
//! - a tombstone (null value) is itself the newest record of its key, so it is kept while it
//!   is younger than `delete.retention.ms` (by its record timestamp, default 1 day) and
//!   removed afterwards; set `delete.retention.ms=0` to see tombstones disappear at once;
//! - records without a key (possible only in data loaded from disk) are kept;
//! - the last batch of the log (the "active segment") is never rewritten, but its keys do
//!   shadow older records;
//! - offsets never change: a thinned batch is re-encoded with its original offset deltas,
//!   producer id/epoch/sequence, compression and timestamp type; a batch left empty is dropped;
//!   the high watermark and the log start offset stay as they were;
//! - a batch that fails to decode is left alone (never lose data on a codec error);
//! - transaction markers and the batches of aborted or open transactions are kept as they are
//!   and shadow nothing (Kafka removes aborted data while cleaning; we keep it, visible only to
//!   read_uncommitted readers).
//!
//! Runs on demand (`TestServer::compact`) and from a background task over dirty logs.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_persistence_wire::record::{
    decode_batch, encode_batch_with_offsets, set_base_offset, set_partition_leader_epoch,
    DecodeLimits, DecodedBatch, EncodeOptions, Record,
};
use tokio::task::AbortHandle;

use crate::cluster::{lock, now_ms, Cluster, Topic};
use crate::log::{PartitionLog, StoredBatch};

/// Spawns the background compactor (holds only a weak reference to the cluster).
pub(crate) fn spawn_background(cluster: &Arc<Cluster>, every: Duration) -> AbortHandle {
    let weak: Weak<Cluster> = Arc::downgrade(cluster);
    let every = every.max(Duration::from_millis(10));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(cluster) = weak.upgrade() else {
                return;
            };
            for t in cluster.all_topics() {
                if t.config.compact {
                    compact_topic(&t, now_ms(), false);
                }
            }
        }
    })
    .abort_handle()
}

/// Compacts every partition of `topic` (only if it is a compacted topic). With `force`,
/// clean logs are compacted too (tombstones may have expired since).
pub(crate) fn compact_topic(topic: &Topic, now: i64, force: bool) {
    if !topic.config.compact {
        return;
    }
    for (i, p) in topic.partitions.iter().enumerate() {
        let mut log = lock(&p.log);
        if !force && !log.dirty {
            continue;
        }
        let before = log.batches.len();
        compact_log(&mut log, topic.config.delete_retention_ms, now);
        log.dirty = false;
        tracing::debug!(topic = %topic.name, partition = i, before, after = log.batches.len(), reason = if force { "on demand" } else { "background" }, "compacted partition");
    }
}

/// Compacts one log in place (see the module docs).
pub(crate) fn compact_log(log: &mut PartitionLog, delete_retention_ms: i64, now: i64) {
    let n = log.batches.len();
    if n < 2 {
        return;
    }
    let limits = DecodeLimits::default();
    // Decode everything once; the newest offset per key over the whole log.
    let decoded: Vec<Option<DecodedBatch>> = log
        .batches
        .iter()
        .map(|b| {
            let mut buf = b.bytes.clone();
            decode_batch(&mut buf, &limits).ok()
        })
        .collect();
    // Markers, and the batches of aborted or still open transactions, shadow nothing: an
    // aborted record must not remove the committed one with the same key.
    let undecided = |d: &DecodedBatch| {
        let h = &d.header;
        h.is_control()
            || (h.is_transactional()
                && (log.txns.is_open(h.producer_id)
                    || log
                        .txns
                        .aborted_between(h.base_offset, h.base_offset + 1)
                        .iter()
                        .any(|a| a.producer_id == h.producer_id)))
    };
    let mut newest: HashMap<Bytes, i64> = HashMap::new();
    for d in decoded.iter().flatten().filter(|d| !undecided(d)) {
        for r in &d.records {
            if let Some(k) = &r.key {
                newest.insert(k.clone(), r.offset);
            }
        }
    }
    let mut out: Vec<StoredBatch> = Vec::with_capacity(n);
    let mut changed = false;
    for (i, (stored, dec)) in log.batches.iter().zip(decoded).enumerate() {
        let Some(dec) = dec else {
            out.push(stored.clone());
            continue;
        };
        if i == n - 1 || undecided(&dec) {
            out.push(stored.clone());
            continue;
        }
        let keep: Vec<usize> = dec
            .records
            .iter()
            .enumerate()
            .filter(|(_, r)| match &r.key {
                None => true,
                Some(k) => {
                    newest.get(k) == Some(&r.offset)
                        && (r.value.is_some()
                            || now.saturating_sub(r.timestamp) < delete_retention_ms)
                }
            })
            .map(|(j, _)| j)
            .collect();
        if keep.len() == dec.records.len() {
            out.push(stored.clone());
            continue;
        }
        changed = true;
        if keep.is_empty() {
            continue;
        }
        match reencode(stored, &dec, &keep) {
            Some(b) => out.push(b),
            None => out.push(stored.clone()),
        }
    }
    if changed {
        Cluster::replace_batches(log, out);
    }
}

fn reencode(stored: &StoredBatch, dec: &DecodedBatch, keep: &[usize]) -> Option<StoredBatch> {
    let h = &dec.header;
    let opts = EncodeOptions {
        base_offset: h.base_offset,
        partition_leader_epoch: h.partition_leader_epoch,
        producer_id: h.producer_id,
        producer_epoch: h.producer_epoch,
        base_sequence: h.base_sequence,
        compression: h.compression().ok()?,
        is_transactional: h.is_transactional(),
        timestamp_type: h.timestamp_type(),
        ..EncodeOptions::default()
    };
    let records: Vec<(i32, Record)> = keep
        .iter()
        .filter_map(|&j| dec.records.get(j))
        .map(|r| {
            let mut rec = Record::new(Bytes::new(), r.timestamp);
            rec.key = r.key.clone();
            rec.value = r.value.clone();
            rec.headers = r.headers.clone();
            ((r.offset - h.base_offset) as i32, rec)
        })
        .collect();
    let mut out = BytesMut::new();
    if let Err(e) = encode_batch_with_offsets(&records, h.last_offset_delta, &opts, &mut out) {
        tracing::warn!(error = %e, base_offset = h.base_offset, reason = "re-encode failed", "batch left uncompacted");
        return None;
    }
    set_base_offset(&mut out, h.base_offset);
    set_partition_leader_epoch(&mut out, h.partition_leader_epoch);
    let max_timestamp = kafka_persistence_wire::record::BatchHeader::parse(&out)
        .map(|x| x.max_timestamp)
        .unwrap_or(stored.max_timestamp);
    Some(StoredBatch {
        base_offset: stored.base_offset,
        last_offset: stored.last_offset,
        max_timestamp,
        bytes: out.freeze(),
    })
}

//! One partition's log: raw record batches as `Bytes`, offsets, and idempotent producer state
//! (its transaction state, the last stable offset and aborted index, is `txn::partition`).
//!
//! Invariants (all under the partition's mutex):
//! - `batches` are in offset order, contiguous or with gaps left by compaction;
//!   `log_start_offset <= batches[0].base_offset` is not required (a batch may straddle the
//!   log start after DeleteRecords; fetch still returns it whole, like Kafka).
//! - `high_watermark` is the next offset to assign (one replica, so HW = log end offset).
//! - Each stored batch's bytes carry its real base offset and the leader epoch of its append.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use kafka_persistence_wire::record::BatchHeader;
use kafka_persistence_wire::ErrorCode;

use crate::storage::PartitionFile;
use crate::txn::partition::PartitionTxns;

/// How many recent batches per producer are remembered for duplicate detection (Kafka: 5).
const PRODUCER_WINDOW: usize = 5;

/// One stored batch.
#[derive(Debug, Clone)]
pub(crate) struct StoredBatch {
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) bytes: Bytes,
}

/// One remembered batch of an idempotent producer.
#[derive(Debug, Clone, Copy)]
struct SeqEntry {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
}

/// Per (producer id, partition) state: the epoch, the next expected sequence, the last 5.
#[derive(Debug, Clone)]
struct ProducerWindow {
    epoch: i16,
    next_seq: i32,
    recent: VecDeque<SeqEntry>,
}

/// Outcome of the idempotence check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqCheck {
    /// New batch, append it.
    Append,
    /// Already appended at this base offset: answer it again, append nothing.
    Duplicate(i64),
}

/// `seq + delta` modulo 2^31, as Kafka increments sequences.
fn seq_add(seq: i32, delta: i32) -> i32 {
    ((i64::from(seq) + i64::from(delta)) % (i64::from(i32::MAX) + 1)) as i32
}

/// The log of one partition.
#[derive(Debug)]
pub(crate) struct PartitionLog {
    pub(crate) batches: VecDeque<StoredBatch>,
    pub(crate) log_start_offset: i64,
    pub(crate) high_watermark: i64,
    pub(crate) leader: i32,
    pub(crate) leader_epoch: i32,
    /// Appends since the last compaction (the background compactor skips clean logs).
    pub(crate) dirty: bool,
    producers: HashMap<i64, ProducerWindow>,
    /// Open transactions (the last stable offset) and the aborted-transaction index.
    pub(crate) txns: PartitionTxns,
    pub(crate) file: Option<PartitionFile>,
}

impl PartitionLog {
    /// An empty log led by `leader`.
    pub(crate) fn new(leader: i32) -> PartitionLog {
        PartitionLog {
            batches: VecDeque::new(),
            log_start_offset: 0,
            high_watermark: 0,
            leader,
            leader_epoch: 0,
            dirty: false,
            producers: HashMap::new(),
            txns: PartitionTxns::default(),
            file: None,
        }
    }

    /// Checks an idempotent batch against the producer's window (KIP-98 rules as kfake and
    /// Kafka apply them): a duplicate of one of the last 5 batches answers its original base
    /// offset; a stale epoch is INVALID_PRODUCER_EPOCH; a new epoch must start at 0; any gap
    /// is OUT_OF_ORDER_SEQUENCE_NUMBER. An unknown producer seeds its state with any sequence.
    pub(crate) fn check_sequence(&self, h: &BatchHeader) -> Result<SeqCheck, i16> {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return Ok(SeqCheck::Append);
        }
        let Some(w) = self.producers.get(&h.producer_id) else {
            return Ok(SeqCheck::Append);
        };
        if h.producer_epoch < w.epoch {
            return Err(ErrorCode::INVALID_PRODUCER_EPOCH);
        }
        if h.producer_epoch > w.epoch {
            return if h.base_sequence == 0 {
                Ok(SeqCheck::Append)
            } else {
                Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
            };
        }
        let last_seq = seq_add(h.base_sequence, h.last_offset_delta);
        if let Some(e) = w
            .recent
            .iter()
            .find(|e| e.first_seq == h.base_sequence && e.last_seq == last_seq)
        {
            return Ok(SeqCheck::Duplicate(e.base_offset));
        }
        if h.base_sequence != w.next_seq {
            return Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
        }
        Ok(SeqCheck::Append)
    }

    /// Rebuilds the idempotent producers' windows from the batches in the log (after loading
    /// it from disk), as Kafka rebuilds its producer state from the log; returns the highest
    /// producer id and epoch seen per producer.
    pub(crate) fn rebuild_producers(&mut self) -> Vec<(i64, i16)> {
        let headers: Vec<(BatchHeader, i64)> = self
            .batches
            .iter()
            .filter_map(|b| {
                BatchHeader::parse(&b.bytes)
                    .ok()
                    .map(|h| (h, b.base_offset))
            })
            .collect();
        for (h, base) in &headers {
            self.record_sequence(h, *base);
        }
        self.producers
            .iter()
            .map(|(id, w)| (*id, w.epoch))
            .collect()
    }

    /// Records an appended idempotent batch in its producer's window.
    fn record_sequence(&mut self, h: &BatchHeader, base_offset: i64) {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return;
        }
        let last_seq = seq_add(h.base_sequence, h.last_offset_delta);
        let w = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerWindow {
                epoch: h.producer_epoch,
                next_seq: 0,
                recent: VecDeque::with_capacity(PRODUCER_WINDOW),
            });
        if w.epoch != h.producer_epoch {
            w.epoch = h.producer_epoch;
            w.recent.clear();
        }
        if w.recent.len() == PRODUCER_WINDOW {
            w.recent.pop_front();
        }
        w.recent.push_back(SeqEntry {
            first_seq: h.base_sequence,
            last_seq,
            base_offset,
        });
        w.next_seq = seq_add(last_seq, 1);
    }

    /// Appends one validated batch whose `bytes` already carry `base_offset ==
    /// self.high_watermark`; returns that base offset.
    pub(crate) fn append(&mut self, h: &BatchHeader, bytes: Bytes) -> std::io::Result<i64> {
        let base = self.high_watermark;
        let last = base + i64::from(h.last_offset_delta);
        if let Some(f) = self.file.as_mut() {
            f.append(&bytes)?;
        }
        self.record_sequence(h, base);
        self.txns.on_append(h, base, &bytes);
        self.batches.push_back(StoredBatch {
            base_offset: base,
            last_offset: last,
            max_timestamp: h.max_timestamp,
            bytes,
        });
        self.high_watermark = last + 1;
        self.dirty = true;
        Ok(base)
    }

    /// Index of the first batch whose last offset is `>= offset`.
    pub(crate) fn find_batch(&self, offset: i64) -> usize {
        self.batches.partition_point(|b| b.last_offset < offset)
    }

    /// Collects whole batches from the one containing `offset`, up to `max_bytes`, but at
    /// least one batch when `at_least_one` (KIP-74), none starting at or above `upper` (the
    /// last stable offset for `read_committed`). Returns the slices and their total size.
    pub(crate) fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        at_least_one: bool,
        upper: i64,
    ) -> (Vec<Bytes>, usize) {
        let mut out = Vec::new();
        let mut total = 0usize;
        let start = self.find_batch(offset);
        for b in self.batches.range(start..) {
            if b.base_offset >= upper {
                break;
            }
            let len = b.bytes.len();
            if total + len > max_bytes && !(at_least_one && out.is_empty()) {
                break;
            }
            total += len;
            out.push(b.bytes.clone());
            if total >= max_bytes {
                break;
            }
        }
        (out, total)
    }

    /// Moves the log start offset forward (DeleteRecords, retention) and drops batches that
    /// end before it. Never moves it backwards or past the high watermark.
    pub(crate) fn advance_log_start(&mut self, offset: i64) -> std::io::Result<i64> {
        let offset = offset.min(self.high_watermark);
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.log_start_offset = offset;
        while self
            .batches
            .front()
            .is_some_and(|b| b.last_offset < self.log_start_offset)
        {
            self.batches.pop_front();
        }
        self.txns.trim(self.log_start_offset);
        if let Some(f) = self.file.as_mut() {
            f.write_log_start(offset)?;
        }
        Ok(self.log_start_offset)
    }

    /// The offset of the first record with timestamp `>= ts`, with that timestamp, using the
    /// batches' max timestamps and decoding only the one batch that matters.
    pub(crate) fn offset_for_timestamp(&self, ts: i64) -> Option<(i64, i64)> {
        use kafka_persistence_wire::record::{decode_batch, DecodeLimits, TimestampType};
        for b in &self.batches {
            if b.max_timestamp < ts {
                continue;
            }
            let mut buf = b.bytes.clone();
            let Ok(decoded) = decode_batch(&mut buf, &DecodeLimits::default()) else {
                return Some((b.base_offset.max(self.log_start_offset), b.max_timestamp));
            };
            if decoded.header.timestamp_type() == TimestampType::LogAppendTime {
                return Some((b.base_offset.max(self.log_start_offset), b.max_timestamp));
            }
            if let Some(r) = decoded
                .records
                .iter()
                .find(|r| r.timestamp >= ts && r.offset >= self.log_start_offset)
            {
                return Some((r.offset, r.timestamp));
            }
        }
        None
    }

    /// The offset and timestamp of the record with the largest timestamp (ListOffsets -3).
    pub(crate) fn max_timestamp_offset(&self) -> Option<(i64, i64)> {
        let b = self
            .batches
            .iter()
            .filter(|b| b.last_offset >= self.log_start_offset)
            .max_by_key(|b| b.max_timestamp)?;
        // Within a batch, the last record carrying the max timestamp is the best cheap answer.
        Some((b.last_offset, b.max_timestamp))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sequence_wraps_like_kafka() {
        assert_eq!(seq_add(i32::MAX, 1), 0);
        assert_eq!(seq_add(i32::MAX - 1, 3), 1);
        assert_eq!(seq_add(5, 2), 7);
    }
}

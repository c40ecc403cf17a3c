//! One partition's view of transactions: the open transactions (producer id → offset of its
//! first record in this partition), hence the last stable offset, and the aborted-transaction
//! index that `read_committed` fetches return.
//!
//! Kept current by every append (`PartitionLog::append` calls [`PartitionTxns::on_append`]),
//! and rebuilt from the batches after loading a log from disk, so it needs no file of its own.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_persistence_wire::record::{
    decode_batch, set_base_offset, set_partition_leader_epoch, BatchHeader, ControlType,
    DecodeLimits,
};

use crate::log::PartitionLog;

/// One aborted transaction of a partition: its producer and the offsets from its first
/// record to its abort marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Aborted {
    pub(crate) producer_id: i64,
    pub(crate) first_offset: i64,
    pub(crate) last_offset: i64,
}

/// Open transactions and the aborted index of one partition.
#[derive(Debug, Default)]
pub(crate) struct PartitionTxns {
    /// Producer id → first offset of its open transaction here.
    open: BTreeMap<i64, i64>,
    /// Aborted transactions, in the order of their markers (so by `last_offset`).
    aborted: Vec<Aborted>,
}

impl PartitionTxns {
    /// Accounts for one appended batch at `base`: a transactional data batch opens (or
    /// continues) its producer's transaction; a marker closes it, an abort marker also
    /// entering the aborted index.
    pub(crate) fn on_append(&mut self, h: &BatchHeader, base: i64, bytes: &Bytes) {
        if !h.is_transactional() || h.producer_id < 0 {
            return;
        }
        if !h.is_control() {
            self.open.entry(h.producer_id).or_insert(base);
            return;
        }
        let mut buf = bytes.clone();
        let kind = decode_batch(&mut buf, &DecodeLimits::default())
            .ok()
            .and_then(|b| {
                b.records
                    .first()
                    .and_then(|r| r.key.as_deref())
                    .and_then(ControlType::from_key)
            });
        let Some(kind) = kind else { return };
        let first = self.open.remove(&h.producer_id);
        if kind == ControlType::Abort {
            if let Some(first_offset) = first {
                self.aborted.push(Aborted {
                    producer_id: h.producer_id,
                    first_offset,
                    last_offset: h.last_offset(),
                });
            }
        }
    }

    /// The last stable offset: the first offset of the oldest open transaction, else the
    /// high watermark.
    pub(crate) fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.open
            .values()
            .copied()
            .min()
            .map_or(high_watermark, |o| o.min(high_watermark))
    }

    /// Whether `producer_id` has an open transaction here.
    pub(crate) fn is_open(&self, producer_id: i64) -> bool {
        self.open.contains_key(&producer_id)
    }

    /// The aborted transactions that overlap `from..to` (what a fetch returning those
    /// offsets must tell a `read_committed` reader).
    pub(crate) fn aborted_between(&self, from: i64, to: i64) -> Vec<Aborted> {
        // `aborted` is ordered by last offset: skip those that ended before `from`.
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly below the log start offset.
    pub(crate) fn trim(&mut self, log_start_offset: i64) {
        let n = self
            .aborted
            .partition_point(|a| a.last_offset < log_start_offset);
        self.aborted.drain(..n);
    }
}

impl PartitionLog {
    /// Rebuilds the transaction state from the batches (after loading the log from disk).
    pub(crate) fn rebuild_transactions(&mut self) {
        let mut txns = PartitionTxns::default();
        for b in &self.batches {
            if let Ok(h) = BatchHeader::parse(&b.bytes) {
                txns.on_append(&h, b.base_offset, &b.bytes);
            }
        }
        self.txns = txns;
    }

    /// Appends a transaction marker for `producer_id`/`epoch` at the high watermark; returns
    /// its offset. A partition without an open transaction of that producer gets a marker
    /// anyway (Kafka writes one to every partition of the transaction, even an empty one).
    pub(crate) fn append_marker(
        &mut self,
        kind: ControlType,
        producer_id: i64,
        epoch: i16,
        now: i64,
    ) -> std::io::Result<i64> {
        let bytes = kafka_persistence_wire::record::encode_marker(kind, producer_id, epoch, 0, now)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut bytes = bytes::BytesMut::from(&bytes[..]);
        set_base_offset(&mut bytes, self.high_watermark);
        set_partition_leader_epoch(&mut bytes, self.leader_epoch);
        let bytes = bytes.freeze();
        let h = BatchHeader::parse(&bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
        self.append(&h, bytes)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_persistence_wire::record::{encode_batch, EncodeOptions, Record};

    fn data(log: &mut PartitionLog, pid: i64, txn: bool) -> i64 {
        let opts = EncodeOptions {
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: -1,
            is_transactional: txn,
            ..Default::default()
        };
        let mut b = BytesMut::new();
        encode_batch(&[Record::new("v", 1)], &opts, &mut b).unwrap();
        set_base_offset(&mut b, log.high_watermark);
        let b = b.freeze();
        let h = BatchHeader::parse(&b).unwrap();
        log.append(&h, b).unwrap()
    }

    #[test]
    fn lso_and_aborted_index_follow_markers() {
        let mut log = PartitionLog::new(0);
        data(&mut log, -1, false); // 0
        let a0 = data(&mut log, 1, true); // 1: txn of producer 1 opens
        data(&mut log, 2, true); // 2: txn of producer 2 opens
        assert_eq!(log.txns.last_stable_offset(log.high_watermark), a0);
        let abort = log.append_marker(ControlType::Abort, 1, 0, 5).unwrap(); // 3
        assert_eq!(log.txns.last_stable_offset(log.high_watermark), 2);
        assert!(!log.txns.is_open(1) && log.txns.is_open(2));
        log.append_marker(ControlType::Commit, 2, 0, 5).unwrap(); // 4
        assert_eq!(log.txns.last_stable_offset(log.high_watermark), 5);
        let expect = Aborted {
            producer_id: 1,
            first_offset: 1,
            last_offset: abort,
        };
        assert_eq!(log.txns.aborted_between(0, 5), vec![expect]);
        assert_eq!(log.txns.aborted_between(4, 5), vec![]);
        assert_eq!(log.txns.aborted_between(0, 1), vec![]);
        // The same state again from the batches alone (a restart).
        let before = log.txns.aborted_between(0, 5);
        log.rebuild_transactions();
        assert_eq!(log.txns.aborted_between(0, 5), before);
        assert_eq!(log.txns.last_stable_offset(log.high_watermark), 5);
        log.txns.trim(4);
        assert_eq!(log.txns.aborted_between(0, 5), vec![]);
    }
}

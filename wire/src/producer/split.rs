//! Batch splitting: a batch of several sends that the topic refuses as too large
//! (MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE) becomes two batches, each with half of the sends,
//! covering the same sequence numbers; a single send is never split.

use std::sync::atomic::Ordering;

use bytes::BytesMut;

use super::accumulator::{record_size, seq_add, Batch, BatchState, PartitionState, Waiter};
use super::Inner;
use crate::record::{encode_batch, EncodeOptions, Record};

impl Inner {
    /// Replaces the batch at `idx` (refused as too large, not stored) by two batches with the
    /// first and second half of its sends, covering the same sequence numbers, and lowers the
    /// partition's batch limit. `false` (nothing changed) if the batch cannot be re-read.
    pub(super) fn split_batch(&self, p: &mut PartitionState, idx: usize) -> bool {
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
}

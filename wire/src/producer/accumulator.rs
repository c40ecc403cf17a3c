//! The accumulator: per-partition open batches, the queue of closed (encoded) batches, the
//! backlog of sends waiting for the producer id or buffer space, and the completion of sends.
//!
//! A send is appended to its partition's open batch (or starts one); the open batch is closed
//! into an encoded [`Batch`] with the next sequence number when it is due (linger, size, flush)
//! and the in-flight window has room. Completions are queued while the state is locked and run
//! when the [`StateGuard`] drops, so no sender is woken while others wait for the lock.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use super::sink::Route;
use super::Inner;
use crate::backoff::Backoff;
use crate::error::Error;
use crate::record::{encode_batch, EncodeOptions, Record};
use crate::sync::lock;

/// Where a send's result goes, and the index of its first record in the batch.
pub(super) type Waiter = (oneshot::Sender<Result<i64, Error>>, i32);

pub(super) struct OpenBatch {
    pub(super) records: Vec<Record>,
    pub(super) waiters: Vec<Waiter>,
    pub(super) bytes: usize,
    pub(super) permits: u32,
    pub(super) created: Instant,
    pub(super) id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BatchState {
    Queued,
    InFlight,
}

pub(super) struct Batch {
    pub(super) id: u64,
    pub(super) seq: i32,
    pub(super) count: i32,
    pub(super) bytes: Bytes,
    pub(super) waiters: Vec<Waiter>,
    pub(super) permits: u32,
    pub(super) state: BatchState,
    pub(super) deadline: Instant,
    pub(super) last_error: Option<Error>,
}

pub(super) struct PartitionState {
    pub(super) topic: Arc<str>,
    pub(super) partition: i32,
    pub(super) pid: i64,
    pub(super) epoch: i16,
    pub(super) next_seq: i32,
    pub(super) open: Option<OpenBatch>,
    pub(super) queue: VecDeque<Batch>,
    pub(super) inflight: usize,
    pub(super) blocked: bool,
    pub(super) recovering: bool,
    pub(super) need_refresh: bool,
    pub(super) need_reset: bool,
    pub(super) dirty: bool,
    pub(super) route: Option<Route>,
    pub(super) backoff: Option<Backoff>,
    pub(super) last_acked_offset: i64,
    /// Largest batch (in [`record_size`] units) to build, learnt from MESSAGE_TOO_LARGE
    /// answers to batches that held several sends (`usize::MAX`: the configured size).
    pub(super) max_batch: usize,
    /// A batch of the current producer id/epoch was acknowledged on this partition since the
    /// last error. Until then only one batch is in flight: a broker without state for us
    /// accepts any first sequence, so a pipelined batch could overtake a failed first one.
    pub(super) confirmed: bool,
    /// Whether batches may be sent (a transactional producer's partitions wait until the
    /// partition is in the transaction; always open otherwise).
    pub(super) gate: Gate,
}

/// A partition's admission to sending (see [`Producer::admit`](super::Producer::admit)).
#[derive(Debug, Clone)]
pub(super) enum Gate {
    /// Batches accumulate but are not sent.
    Held,
    /// Batches are sent.
    Open,
    /// The partition could not join the transaction: its sends fail with this error.
    Failed(Arc<Error>),
}

/// A send that took its place in line but could not enter the accumulator yet (no producer
/// id, or no buffer space). The backlog is entered and left in call order.
pub(super) struct Pending {
    pub(super) topic: Arc<str>,
    pub(super) partition: i32,
    pub(super) records: Vec<Record>,
    pub(super) bytes: usize,
    pub(super) permits: u32,
    pub(super) tx: oneshot::Sender<Result<i64, Error>>,
    pub(super) since: Instant,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) topics: HashMap<String, HashMap<i32, PartitionState>>,
    /// Partitions that may have something to send.
    pub(super) dirty: Vec<(Arc<str>, i32)>,
    /// Sends waiting for the producer id or buffer space, in call order.
    pub(super) backlog: VecDeque<Pending>,
    /// A task is moving the backlog into the accumulator.
    pub(super) backlog_task: bool,
    /// Gates set for partitions that had no state yet (taken when their first send arrives).
    pub(super) early_gates: Vec<(String, i32, Gate)>,
}

/// A batch's sends to complete once the state lock is released.
pub(super) struct Completion {
    waiters: Vec<Waiter>,
    permits: u32,
    result: Result<i64, Error>,
}

/// The state lock; on drop it unlocks, then runs the queued completions.
pub(super) struct StateGuard<'a> {
    guard: Option<std::sync::MutexGuard<'a, State>>,
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

/// The buffer accounting size of a record (payload plus a per-record overhead).
pub(super) fn record_size(r: &Record) -> usize {
    let h: usize = r
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len) + 4)
        .sum();
    r.key.as_ref().map_or(0, Bytes::len) + r.value.as_ref().map_or(0, Bytes::len) + h + 21
}

/// Adds `n` to a sequence number, wrapping at `i32::MAX` back to 0 (Kafka's rule).
pub(super) fn seq_add(seq: i32, n: i32) -> i32 {
    let s = i64::from(seq) + i64::from(n);
    (s % (i64::from(i32::MAX) + 1)) as i32
}

pub(super) fn partition_mut<'a>(
    st: &'a mut State,
    topic: &str,
    partition: i32,
) -> Option<&'a mut PartitionState> {
    st.topics.get_mut(topic).and_then(|m| m.get_mut(&partition))
}

/// The gate a new partition starts with: one set before its first send, else held for a
/// gated (transactional) producer, open for others.
fn initial_gate(
    early: &mut Vec<(String, i32, Gate)>,
    topic: &str,
    partition: i32,
    gated: bool,
) -> Gate {
    if !gated {
        return Gate::Open;
    }
    match early
        .iter()
        .position(|(t, p, _)| t == topic && *p == partition)
    {
        Some(i) => early.swap_remove(i).2,
        None => Gate::Held,
    }
}

pub(super) fn mark_dirty(dirty: &mut Vec<(Arc<str>, i32)>, p: &mut PartitionState) {
    if !p.dirty {
        p.dirty = true;
        dirty.push((Arc::clone(&p.topic), p.partition));
    }
}

impl Inner {
    /// Locks the state; completions queued meanwhile run when the guard drops.
    pub(super) fn lock_state(&self) -> StateGuard<'_> {
        StateGuard {
            guard: Some(lock(&self.state)),
            inner: self,
        }
    }

    /// Appends one send (whose buffer permits are held) to its partition's open batch.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn append(
        self: &Arc<Self>,
        st: &mut State,
        topic: &str,
        partition: i32,
        records: Vec<Record>,
        bytes: usize,
        permits: u32,
        pid: i64,
        epoch: i16,
        tx: oneshot::Sender<Result<i64, Error>>,
    ) {
        let batch_size = self.config.batch_size;
        let State {
            topics,
            dirty,
            early_gates,
            ..
        } = st;
        let parts = match topics.get_mut(topic) {
            Some(p) => p,
            None => topics.entry(topic.to_owned()).or_default(),
        };
        let gated = self.gated;
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
            gate: initial_gate(early_gates, topic, partition, gated),
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
    }

    fn schedule_linger(self: &Arc<Self>, topic: Arc<str>, partition: i32, id: u64) {
        let linger = self.config.linger;
        let me = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(linger).await;
            let mut st = me.lock_state();
            let State { topics, dirty, .. } = &mut *st;
            if let Some(p) = topics.get_mut(&*topic).and_then(|m| m.get_mut(&partition)) {
                if p.open.as_ref().is_some_and(|o| o.id == id) {
                    mark_dirty(dirty, p);
                }
            }
            me.drain(&mut st, false);
        });
    }

    /// Turns the open batch into a queued, encoded batch with the next sequence.
    pub(super) fn close_open(&self, p: &mut PartitionState) {
        let Some(o) = p.open.take() else { return };
        let count = o.records.len() as i32;
        let seq = if self.idempotent { p.next_seq } else { -1 };
        let opts = EncodeOptions {
            producer_id: if self.idempotent { p.pid } else { -1 },
            producer_epoch: if self.idempotent { p.epoch } else { -1 },
            base_sequence: seq,
            compression: self.config.compression,
            is_transactional: self.config.transactional_id.is_some(),
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
    pub(super) fn finish(&self, waiters: Vec<Waiter>, permits: u32, result: Result<i64, &Error>) {
        let c = Completion {
            waiters,
            permits,
            result: result.map_err(Error::duplicate),
        };
        lock(&self.completions).push(c);
    }

    /// Runs the queued completions.
    pub(super) fn run_completions(&self) {
        let list = std::mem::take(&mut *lock(&self.completions));
        if list.is_empty() {
            return;
        }
        for c in list {
            if let Err(e) = &c.result {
                self.report_failure(e);
            }
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
}

#[cfg(test)]
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
    fn record_size_counts_key_value_and_headers() {
        let mut r = Record::new("vv", 1);
        assert_eq!(record_size(&r), 2 + 21);
        r.key = Some(Bytes::from_static(b"k"));
        r.headers.push(crate::record::Header::new("h", "xyz"));
        assert_eq!(record_size(&r), 1 + 2 + (1 + 3 + 4) + 21);
    }
}

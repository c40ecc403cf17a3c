//! One shared journal partition as this instance knows it: the heads of its ids and the
//! *frontier*, the offset below which every record of the partition has been applied, in
//! offset order, to the heads.
//!
//! Records reach the heads two ways, and both go through [`PartitionState::apply`] in
//! offset order:
//! - this instance's own acknowledged sends ([`PartitionState::register_ack`]): a send whose
//!   base offset is the frontier is applied at once, from the records it sent (no read);
//!   one above the frontier waits in `pending` until the records before it are known;
//! - records read from the partition ([`super::tail`]): everything another instance wrote,
//!   and whatever fills a gap before a pending send.
//!
//! The log decides who wins: a send is accepted if its first record is accepted by the
//! id's state machine ([`crate::scan`]) at its offset, so two instances writing one id end
//! with one winner per sequence number. On the happy path (one writer per partition) every
//! send lands at the frontier and is decided without reading anything.
//!
//! Gaps: a pending send is behind a gap that only a read can fill when every send this
//! instance made to the partition before it has been registered (acks arrive in send order
//! per partition; their tasks may not run in that order). [`SendBook`] keeps that count.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use tokio::sync::oneshot;

use super::head::{head_key, Head, HeadRecord};
use super::heads::{HeadId, Heads};
use crate::format::{JournalRecord, KIND_DELETION, KIND_EVENT, KIND_GAP};
use crate::scan::Applied;

/// How many batch-first records' acceptance is remembered, for acks that arrive after a
/// read already applied their records.
const RECENT: usize = 16 * 1024;

/// The outcome of one of this instance's sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The log accepted (true) or refused (false: another writer came first) the send.
    Accepted(bool),
    /// The records were applied so long ago that their outcome is forgotten.
    Unknown,
}

/// What [`PartitionState::register_ack`] found.
#[derive(Debug)]
pub(crate) enum Registered {
    Now(Decision),
    /// Decided once the records before the send are known.
    Later(oneshot::Receiver<Decision>),
}

#[derive(Debug)]
struct Pending {
    send: u64,
    persistence_id: String,
    stubs: Vec<JournalRecord>,
    tx: oneshot::Sender<Decision>,
}

/// Which of this instance's sends to the partition have reported back (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct SendBook {
    next: u64,
    /// Every send below this one has reported.
    prefix: u64,
    done: BTreeSet<u64>,
}

impl SendBook {
    /// Numbers a new send (call in the order the sends are handed to the producer).
    pub(crate) fn start(&mut self) -> u64 {
        let n = self.next;
        self.next += 1;
        n
    }

    fn finish(&mut self, send: u64) {
        if send == self.prefix {
            self.prefix += 1;
            while self.done.remove(&self.prefix) {
                self.prefix += 1;
            }
        } else if send > self.prefix {
            self.done.insert(send);
        }
    }

    /// Every send numbered below `send` has reported.
    fn all_before(&self, send: u64) -> bool {
        self.prefix >= send
    }
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct PartitionState {
    pub(crate) heads: Heads,
    /// Every record below this offset is applied.
    pub(crate) frontier: i64,
    /// The partition's log start offset, as last seen.
    pub(crate) log_start: i64,
    /// Whether ids first met from now on start initialized (false while the partition's
    /// early records may have been removed without the index knowing them).
    pub(crate) fresh_initialized: bool,
    pending: BTreeMap<i64, Pending>,
    recent: VecDeque<(i64, bool)>,
    /// Heads changed since the index last stored them (entry numbers of `heads`).
    dirty: Vec<HeadId>,
    pub(crate) sends: SendBook,
}

impl PartitionState {
    pub(crate) fn new() -> Self {
        PartitionState {
            heads: Heads::default(),
            frontier: 0,
            log_start: 0,
            fresh_initialized: true,
            pending: BTreeMap::new(),
            recent: VecDeque::new(),
            dirty: Vec::new(),
            sends: SendBook::default(),
        }
    }

    /// Puts a head restored from the index (before anything is applied).
    pub(crate) fn restore_head(&mut self, persistence_id: String, head: Head) {
        self.heads.insert(&persistence_id, head);
    }

    /// Applies the record of `persistence_id` at `offset`, which must be the frontier or
    /// above it (offsets in between hold no journal record: compacted, control batches).
    /// Returns `None` for a record the id's head already reflects.
    pub(crate) fn apply(
        &mut self,
        offset: i64,
        persistence_id: &str,
        rec: &JournalRecord,
    ) -> Option<Applied> {
        debug_assert!(offset >= self.frontier);
        self.frontier = self.frontier.max(offset.saturating_add(1));
        let applied = match self.heads.find(persistence_id) {
            Some(i) => {
                let (_, head) = self.heads.entry_mut(i)?;
                if offset < head.as_of {
                    return None;
                }
                let was_dirty = head.dirty;
                let applied = head.apply(offset, rec);
                if !was_dirty {
                    self.dirty.push(i);
                }
                applied
            }
            None => {
                let mut head = Head::new(self.fresh_initialized);
                let applied = head.apply(offset, rec);
                let i = self.heads.insert_new(persistence_id, head);
                self.dirty.push(i);
                applied
            }
        };
        // A record that may begin one of our sends: a batch's first record or a marker.
        let may_begin_send = rec.kind == KIND_DELETION
            || ((rec.kind == KIND_EVENT || rec.kind == KIND_GAP)
                && rec.sequence_nr == rec.batch_start);
        if may_begin_send {
            let ok = matches!(applied, Applied::Event | Applied::Gap | Applied::Deletion);
            if self.recent.len() >= RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back((offset, ok));
            if let Some(p) = self.pending.remove(&offset) {
                // Another id at our acknowledged offset cannot happen; say unknown rather
                // than guess.
                let decision = if p.persistence_id == persistence_id {
                    Decision::Accepted(ok)
                } else {
                    Decision::Unknown
                };
                let _ = p.tx.send(decision);
            }
        }
        Some(applied)
    }

    /// Records that offsets below `offset` hold no further journal records (the fetch
    /// skipped them).
    pub(crate) fn skip_to(&mut self, offset: i64) {
        if offset > self.frontier {
            self.frontier = offset;
            self.resolve_passed();
        }
    }

    /// Sends whose offsets the frontier passed without meeting their first record: their
    /// records are gone (cannot happen with an acknowledged send); unknown.
    fn resolve_passed(&mut self) {
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() >= self.frontier {
                break;
            }
            let p = entry.remove();
            let _ = p.tx.send(Decision::Unknown);
        }
    }

    /// One of this instance's sends was acknowledged at `base` (see the module docs).
    pub(crate) fn register_ack(
        &mut self,
        send: u64,
        base: i64,
        persistence_id: &str,
        stubs: Vec<JournalRecord>,
    ) -> Registered {
        let r = self.register_chunk(send, base, persistence_id, stubs);
        self.sends.finish(send);
        r
    }

    /// A send of several chunks (ids) was acknowledged at `base`: each chunk is registered at
    /// its offset, in order.
    pub(crate) fn register_acks<'a>(
        &mut self,
        send: u64,
        base: i64,
        chunks: impl IntoIterator<Item = (&'a str, Vec<JournalRecord>)>,
    ) -> Vec<Registered> {
        let mut offset = base;
        let mut out = Vec::new();
        for (persistence_id, stubs) in chunks {
            let n = stubs.len() as i64;
            out.push(self.register_chunk(send, offset, persistence_id, stubs));
            offset += n;
        }
        self.sends.finish(send);
        out
    }

    fn register_chunk(
        &mut self,
        send: u64,
        base: i64,
        persistence_id: &str,
        stubs: Vec<JournalRecord>,
    ) -> Registered {
        if base < self.frontier {
            let found = self
                .recent
                .binary_search_by_key(&base, |(o, _)| *o)
                .ok()
                .and_then(|i| self.recent.get(i))
                .map(|(_, ok)| *ok);
            return Registered::Now(found.map_or(Decision::Unknown, Decision::Accepted));
        }
        if base == self.frontier {
            let decision = self.apply_stubs(base, persistence_id, &stubs);
            self.drain_pending();
            return Registered::Now(decision);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.insert(
            base,
            Pending {
                send,
                persistence_id: persistence_id.to_string(),
                stubs,
                tx,
            },
        );
        Registered::Later(rx)
    }

    /// One of this instance's sends failed (its outcome is unknown: a read will apply its
    /// records if they landed).
    pub(crate) fn register_failed(&mut self, send: u64) {
        self.sends.finish(send);
    }

    fn apply_stubs(
        &mut self,
        base: i64,
        persistence_id: &str,
        stubs: &[JournalRecord],
    ) -> Decision {
        let mut first = None;
        for (k, stub) in stubs.iter().enumerate() {
            let applied = self.apply(base + k as i64, persistence_id, stub);
            if k == 0 {
                first = applied;
            }
        }
        match first {
            Some(a) => Decision::Accepted(matches!(
                a,
                Applied::Event | Applied::Gap | Applied::Deletion
            )),
            None => Decision::Unknown,
        }
    }

    fn drain_pending(&mut self) {
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() != self.frontier {
                break;
            }
            let p = entry.remove();
            let decision = self.apply_stubs(self.frontier, &p.persistence_id, &p.stubs);
            let _ = p.tx.send(decision);
        }
    }

    /// Whether a pending send waits behind records only a read can supply: every send made
    /// before it has reported, and still there is a gap.
    pub(crate) fn needs_read(&self) -> bool {
        self.pending
            .first_key_value()
            .is_some_and(|(_, p)| self.sends.all_before(p.send))
    }

    /// Whether any send waits for its decision.
    #[cfg(test)]
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// What the heads take in memory: `(ids, ranges, bytes)`, counting the map's buckets and
    /// entries at their capacity, the keys and the ranges (allocator overhead not included).
    pub(crate) fn memory(&self) -> (u64, u64, u64) {
        let mut bytes = self.heads.bytes();
        let mut ranges = 0u64;
        for (_, h) in self.heads.iter() {
            bytes += (h.ranges.capacity() * std::mem::size_of::<super::head::Range>()) as u64;
            ranges += h.ranges.len() as u64;
        }
        bytes += (self.dirty.capacity() * std::mem::size_of::<HeadId>()) as u64;
        (self.heads.len() as u64, ranges, bytes)
    }

    /// Takes up to `max` changed heads to store, marking them stored: their index record
    /// keys ([`head_key`]) and records.
    pub(crate) fn take_dirty(&mut self, max: usize) -> Vec<(bytes::Bytes, HeadRecord)> {
        let n = self.dirty.len().min(max);
        let mut out = Vec::with_capacity(n);
        for i in self.dirty.drain(..n) {
            if let Some((id, h)) = self.heads.entry_mut(i) {
                if h.dirty {
                    h.dirty = false;
                    out.push((head_key(id), h.to_record()));
                }
            }
        }
        out
    }

    /// Marks `persistence_id`'s head as to be stored again (the index holds an older one).
    #[cfg(test)]
    pub(crate) fn mark_dirty(&mut self, persistence_id: &str) {
        if let Some(i) = self.heads.find(persistence_id) {
            self.mark_dirty_at(i);
        }
    }

    /// Marks head number `i` as to be stored again.
    pub(crate) fn mark_dirty_at(&mut self, i: HeadId) {
        if let Some((_, h)) = self.heads.entry_mut(i) {
            if !h.dirty {
                h.dirty = true;
                self.dirty.push(i);
            }
        }
    }

    /// How many heads wait to be stored.
    #[cfg(test)]
    pub(crate) fn dirty_len(&self) -> usize {
        self.dirty.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::repr::PersistentRepr;

    fn ev(pid: &str, seq: u64, batch: u64) -> JournalRecord {
        JournalRecord::event(&PersistentRepr::new(pid, seq, &b"x"[..]), seq, batch)
    }

    #[test]
    fn acks_at_the_frontier_are_decided_at_once() {
        let mut st = PartitionState::new();
        let s0 = st.sends.start();
        let s1 = st.sends.start();
        match st.register_ack(s0, 0, "a", vec![ev("a", 1, 1)]) {
            Registered::Now(d) => assert_eq!(d, Decision::Accepted(true)),
            other => panic!("{other:?}"),
        }
        match st.register_ack(s1, 1, "b", vec![ev("b", 1, 2)]) {
            Registered::Now(d) => assert_eq!(d, Decision::Accepted(true)),
            other => panic!("{other:?}"),
        }
        assert_eq!(st.frontier, 2);
        assert!(!st.needs_read());
        assert_eq!(st.heads["a"].highest, 1);
    }

    #[test]
    fn out_of_order_acks_wait_for_their_predecessors() {
        let mut st = PartitionState::new();
        let s0 = st.sends.start();
        let s1 = st.sends.start();
        let mut rx = match st.register_ack(s1, 1, "a", vec![ev("a", 2, 2)]) {
            Registered::Later(rx) => rx,
            other => panic!("{other:?}"),
        };
        assert!(!st.needs_read(), "the earlier send will fill the gap");
        assert!(rx.try_recv().is_err());
        match st.register_ack(s0, 0, "a", vec![ev("a", 1, 1)]) {
            Registered::Now(d) => assert_eq!(d, Decision::Accepted(true)),
            other => panic!("{other:?}"),
        }
        assert_eq!(rx.try_recv().unwrap(), Decision::Accepted(true));
        assert_eq!((st.frontier, st.heads["a"].highest), (2, 2));
    }

    #[test]
    fn a_foreign_gap_needs_a_read_and_the_read_decides() {
        let mut st = PartitionState::new();
        let s0 = st.sends.start();
        // another instance wrote a:1 at offset 0; ours (also a:1) landed at 1
        let mut rx = match st.register_ack(s0, 1, "a", vec![ev("a", 1, 7)]) {
            Registered::Later(rx) => rx,
            other => panic!("{other:?}"),
        };
        assert!(st.needs_read());
        assert_eq!(st.apply(0, "a", &ev("a", 1, 3)), Some(Applied::Event));
        assert_eq!(st.apply(1, "a", &ev("a", 1, 7)), Some(Applied::Ignored));
        assert_eq!(rx.try_recv().unwrap(), Decision::Accepted(false), "fenced");
        assert!(!st.has_pending());
        assert_eq!(st.heads["a"].highest, 1);
    }

    #[test]
    fn an_ack_after_a_read_passed_it_is_looked_up() {
        let mut st = PartitionState::new();
        let s0 = st.sends.start();
        st.apply(0, "a", &ev("a", 1, 1));
        st.apply(1, "b", &ev("b", 1, 2));
        match st.register_ack(s0, 0, "a", vec![ev("a", 1, 1)]) {
            Registered::Now(d) => assert_eq!(d, Decision::Accepted(true)),
            other => panic!("{other:?}"),
        }
        assert_eq!(st.heads["a"].highest, 1, "not applied twice");
        let s1 = st.sends.start();
        match st.register_ack(s1, 1_000_000, "c", vec![ev("c", 1, 1)]) {
            Registered::Later(_) => {}
            other => panic!("{other:?}"),
        }
        st.skip_to(2_000_000);
        assert!(!st.has_pending());
    }

    #[test]
    fn records_an_index_head_reflects_are_skipped() {
        let mut st = PartitionState::new();
        let mut h = Head::new(true);
        h.apply(0, &ev("a", 1, 1));
        h.dirty = false;
        st.restore_head("a".into(), h);
        assert_eq!(st.apply(0, "a", &ev("a", 1, 1)), None);
        assert_eq!(st.apply(1, "a", &ev("a", 2, 2)), Some(Applied::Event));
        assert_eq!(st.heads["a"].highest, 2);
        let dirty = st.take_dirty(10);
        assert_eq!(dirty.len(), 1);
        assert_eq!(dirty[0].1.highest, 2);
        assert!(st.take_dirty(10).is_empty());
        st.mark_dirty("a");
        assert_eq!(st.dirty_len(), 1);
    }
}

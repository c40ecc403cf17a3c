//! The replay state machine: which records of a persistence id's log are accepted.
//!
//! The log's order is the arbiter. A record accounting for the sequence numbers `s..=e` is
//! accepted only if `s` continues the accepted ones (`s == highest + 1`) and, when it is not
//! the first record of its produce batch, its batch's first record was accepted: a batch is
//! accepted or refused as a whole. Deletion markers raise `deleted_to` (and carry the
//! highest, so a log truncated up to a marker still knows it).
//!
//! A log whose start offset is above 0 starts "uninitialized": its first record seeds the
//! state; sequence numbers below it were removed and count as lost unless a deletion marker
//! covers them.

use crate::format::{JournalRecord, KIND_DELETION, KIND_EVENT, KIND_GAP};

/// The state after a prefix of the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScanState {
    /// The highest accepted sequence number (events and gaps; deletion markers raise it).
    pub(crate) highest: u64,
    /// Every sequence number up to this one is deleted.
    pub(crate) deleted_to: u64,
    /// Sequence numbers up to this one were removed from the log (not necessarily deleted).
    pub(crate) removed_to: u64,
    /// The batch whose continuation records are accepted.
    current_batch: Option<u64>,
    /// False until the first record when the log does not start at offset 0.
    initialized: bool,
    /// The offset after the last record applied.
    pub(crate) next_offset: i64,
}

/// What [`ScanState::apply`] decided about one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    /// An accepted event.
    Event,
    /// An accepted gap marker.
    Gap,
    /// A deletion marker.
    Deletion,
    /// A record that does not continue the accepted ones (a fenced writer's), or of an
    /// unknown kind: ignored.
    Ignored,
}

impl ScanState {
    /// The state before the first record of a log starting at `log_start_offset`.
    pub(crate) fn at_log_start(log_start_offset: i64) -> Self {
        ScanState {
            initialized: log_start_offset <= 0,
            next_offset: log_start_offset.max(0),
            ..ScanState::default()
        }
    }

    /// The state of an id resumed from what an index stored: `highest`, `deleted_to`,
    /// `removed_to`, the batch whose continuation records are accepted, and the offset after
    /// its last record. `initialized` false: the id's first record seeds it (its history
    /// before may have been removed).
    pub(crate) fn resume(
        highest: u64,
        deleted_to: u64,
        removed_to: u64,
        current_batch: Option<u64>,
        initialized: bool,
        next_offset: i64,
    ) -> Self {
        ScanState {
            highest,
            deleted_to,
            removed_to,
            current_batch,
            initialized,
            next_offset,
        }
    }

    /// The batch whose continuation records are accepted.
    pub(crate) fn current_batch(&self) -> Option<u64> {
        self.current_batch
    }

    /// False until the first record when the id's history may have been removed.
    pub(crate) fn initialized(&self) -> bool {
        self.initialized
    }

    /// Applies the record at `offset`.
    pub(crate) fn apply(&mut self, offset: i64, rec: &JournalRecord) -> Applied {
        self.next_offset = offset.saturating_add(1);
        if rec.kind == KIND_DELETION {
            if !self.initialized {
                self.initialized = true;
                self.removed_to = rec.highest;
            }
            self.deleted_to = self.deleted_to.max(rec.deleted_to);
            self.highest = self.highest.max(rec.highest);
            return Applied::Deletion;
        }
        if rec.kind != KIND_EVENT && rec.kind != KIND_GAP {
            return Applied::Ignored;
        }
        let first = rec.sequence_nr;
        if first == 0 {
            self.current_batch = None;
            return Applied::Ignored;
        }
        if !self.initialized {
            self.initialized = true;
            self.highest = first - 1;
            self.removed_to = first - 1;
            self.current_batch = Some(rec.batch_id);
        }
        let continues = first == self.highest.saturating_add(1);
        let batch_ok = first == rec.batch_start || self.current_batch == Some(rec.batch_id);
        if continues && batch_ok {
            self.highest = rec.last();
            self.current_batch = Some(rec.batch_id);
            if rec.kind == KIND_EVENT {
                Applied::Event
            } else {
                Applied::Gap
            }
        } else {
            self.current_batch = None;
            Applied::Ignored
        }
    }

    /// Sequence numbers that were removed from Kafka without being deleted, if any.
    pub(crate) fn lost_range(&self) -> Option<(u64, u64)> {
        (self.removed_to > self.deleted_to).then(|| (self.deleted_to + 1, self.removed_to))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::repr::PersistentRepr;

    fn ev(seq: u64, batch_start: u64, batch: u64) -> JournalRecord {
        JournalRecord::event(
            &PersistentRepr::new("p", seq, &b"x"[..]),
            batch_start,
            batch,
        )
    }

    fn run(state: &mut ScanState, start: i64, recs: &[JournalRecord]) -> Vec<Applied> {
        recs.iter()
            .enumerate()
            .map(|(i, r)| state.apply(start + i as i64, r))
            .collect()
    }

    #[test]
    fn contiguous_events_are_accepted() {
        let mut s = ScanState::at_log_start(0);
        let out = run(&mut s, 0, &[ev(1, 1, 1), ev(2, 2, 2), ev(3, 2, 2)]);
        assert_eq!(out, vec![Applied::Event; 3]);
        assert_eq!((s.highest, s.next_offset), (3, 3));
        assert_eq!(s.lost_range(), None);
    }

    #[test]
    fn fenced_writer_loses_whole_batch() {
        // Writer A wrote 1..=2; writer B (stale) also wrote 2..=3 in one batch: B's 2 does not
        // continue, and its 3 must not be accepted either although 3 == highest + 1.
        let mut s = ScanState::at_log_start(0);
        let out = run(
            &mut s,
            0,
            &[ev(1, 1, 1), ev(2, 2, 2), ev(2, 2, 9), ev(3, 2, 9)],
        );
        assert_eq!(
            out,
            vec![
                Applied::Event,
                Applied::Event,
                Applied::Ignored,
                Applied::Ignored
            ]
        );
        assert_eq!(s.highest, 2);
        // A continues with 3: accepted.
        assert_eq!(s.apply(4, &ev(3, 3, 3)), Applied::Event);
    }

    #[test]
    fn gaps_count_as_sequence_numbers() {
        let mut s = ScanState::at_log_start(0);
        let out = run(
            &mut s,
            0,
            &[ev(6, 6, 1), JournalRecord::gap(7, 7, 6, 1), ev(8, 6, 1)],
        );
        // the log starts at 0 but the first sequence number is 6: not a continuation of 0
        assert_eq!(out, vec![Applied::Ignored; 3]);
        let mut s = ScanState::at_log_start(0);
        let out = run(
            &mut s,
            0,
            &[ev(1, 1, 1), JournalRecord::gap(2, 4, 2, 2), ev(5, 2, 2)],
        );
        assert_eq!(out, vec![Applied::Event, Applied::Gap, Applied::Event]);
        assert_eq!(s.highest, 5);
    }

    #[test]
    fn deletion_marker_raises_deleted_to_and_keeps_highest() {
        let mut s = ScanState::at_log_start(0);
        run(
            &mut s,
            0,
            &[ev(1, 1, 1), ev(2, 2, 2), JournalRecord::deletion(2, 2)],
        );
        assert_eq!((s.highest, s.deleted_to), (2, 2));
        // truncated log starting at the marker
        let mut t = ScanState::at_log_start(2);
        assert_eq!(
            t.apply(2, &JournalRecord::deletion(2, 2)),
            Applied::Deletion
        );
        assert_eq!((t.highest, t.deleted_to, t.lost_range()), (2, 2, None));
        assert_eq!(t.apply(3, &ev(3, 3, 3)), Applied::Event);
        assert_eq!(t.apply(4, &ev(3, 3, 4)), Applied::Ignored);
    }

    #[test]
    fn truncation_without_deletion_is_lost() {
        let mut s = ScanState::at_log_start(2);
        assert_eq!(s.apply(2, &ev(3, 3, 3)), Applied::Event);
        assert_eq!(s.lost_range(), Some((1, 2)));
        // a later marker covering 1..=2 (delete_messages_to truncated up to the first live
        // event) makes it legal
        s.apply(3, &JournalRecord::deletion(2, 3));
        assert_eq!(s.lost_range(), None);
    }

    #[test]
    fn truncated_marker_with_undeleted_events_before_it_is_lost() {
        let mut s = ScanState::at_log_start(10);
        s.apply(10, &JournalRecord::deletion(3, 5));
        assert_eq!(s.lost_range(), Some((4, 5)));
    }
}

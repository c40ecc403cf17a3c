//! One persistence id's entry in layout v2's index ("head"): its accepted state, and the
//! offset ranges of its records in the shared partition, so a replay fetches exactly those.
//! Also the index topic's record format (heads and checkpoints).
//!
//! Index topic records (compacted, co-partitioned with the journal topic):
//! - key `0x01` + UTF-8 persistence id, value [`HeadRecord`]: the id's head as of the journal
//!   offset `as_of` (every record of the id below it is reflected);
//! - key `0x00`, value [`CheckpointRecord`]: "the index records before index offset
//!   `index_offset` cover every journal record below `journal_offset`".

use bytes::{Bytes, BytesMut};
use prost::Message;

use crate::format::{JournalRecord, KIND_DELETION};
use crate::scan::{Applied, ScanState};

/// The most records one range holds: ranges double as replay checkpoints, so a replay from
/// the middle of a long history starts near its first sequence number.
const MAX_RANGE_RECORDS: i64 = 1024;

/// Whether `rec` begins a batch (or is a marker): a range may start there.
fn starts_batch(rec: &JournalRecord) -> bool {
    rec.kind == KIND_DELETION || rec.sequence_nr == rec.batch_start
}

/// Key prefix of a head record in the index topic.
pub(crate) const HEAD_KEY: u8 = 0x01;
/// The key of the checkpoint record.
pub(crate) const CHECKPOINT_KEY: u8 = 0x00;

/// Consecutive offsets `start..end` of the shared partition that hold records of one id (and
/// only of it); `highest_before` is the id's accepted highest sequence number before `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) start: i64,
    /// Exclusive.
    pub(crate) end: i64,
    pub(crate) highest_before: u64,
    /// The range begins inside a batch (an id first met in the middle of its history): its
    /// first record seeds the state.
    pub(crate) mid_batch: bool,
}

/// One id's head (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) highest: u64,
    pub(crate) deleted_to: u64,
    /// Sequence numbers up to this one were removed from the log before the id was indexed.
    pub(crate) removed_to: u64,
    /// The batch whose continuation records are accepted (0: none).
    pub(crate) current_batch: u64,
    /// False until the id's first record when its history may have been removed.
    pub(crate) initialized: bool,
    /// The offset after the id's last record: records below it are reflected.
    pub(crate) as_of: i64,
    /// Where the id's records are, ascending. Ranges wholly below the deletion mark are
    /// dropped.
    pub(crate) ranges: Vec<Range>,
    /// Changed since the index last stored it.
    pub(crate) dirty: bool,
}

impl Head {
    /// A head for an id seen for the first time.
    pub(crate) fn new(initialized: bool) -> Self {
        Head {
            highest: 0,
            deleted_to: 0,
            removed_to: 0,
            current_batch: 0,
            initialized,
            as_of: 0,
            ranges: Vec::new(),
            // Set by the first `apply` (which also queues the head to be stored).
            dirty: false,
        }
    }

    fn scan_state(&self) -> ScanState {
        ScanState::resume(
            self.highest,
            self.deleted_to,
            self.removed_to,
            (self.current_batch != 0).then_some(self.current_batch),
            self.initialized,
            self.as_of,
        )
    }

    /// Applies the id's record at `offset` (which must be at or above `as_of`).
    pub(crate) fn apply(&mut self, offset: i64, rec: &JournalRecord) -> Applied {
        let before = self.highest;
        let mut st = self.scan_state();
        let applied = st.apply(offset, rec);
        // A first record of an uninitialized id seeds it: its range starts "before" it.
        let highest_before = if self.initialized {
            before
        } else {
            st.removed_to
        };
        self.highest = st.highest;
        self.deleted_to = st.deleted_to;
        self.removed_to = st.removed_to;
        self.current_batch = st.current_batch().unwrap_or(0);
        self.initialized = st.initialized();
        self.as_of = offset.saturating_add(1);
        match self.ranges.last_mut() {
            // A range ends only where a batch starts, so a range's start state never needs
            // the batch in progress.
            Some(r)
                if r.end == offset
                    && (r.end - r.start < MAX_RANGE_RECORDS || !starts_batch(rec)) =>
            {
                r.end = offset + 1
            }
            _ => self.ranges.push(Range {
                start: offset,
                end: offset + 1,
                highest_before,
                mid_batch: !starts_batch(rec),
            }),
        }
        if applied == Applied::Deletion {
            self.prune();
        }
        self.dirty = true;
        applied
    }

    /// The highest sequence number a range can hold: up to the next range's start state.
    pub(crate) fn range_last(&self, i: usize) -> u64 {
        self.ranges
            .get(i + 1)
            .map_or(self.highest, |next| next.highest_before)
    }

    /// Drops the ranges whose sequence numbers are all deleted (never the last one, which
    /// holds the marker).
    fn prune(&mut self) {
        let n = self.ranges.len();
        if n < 2 {
            return;
        }
        let keep_from = (0..n - 1)
            .find(|&i| self.range_last(i) > self.deleted_to)
            .unwrap_or(n - 1);
        if keep_from > 0 {
            self.ranges.drain(..keep_from);
        }
    }

    /// The index record of this head.
    pub(crate) fn to_record(&self) -> HeadRecord {
        let mut starts = Vec::with_capacity(self.ranges.len());
        let mut lens = Vec::with_capacity(self.ranges.len());
        let mut befores = Vec::with_capacity(self.ranges.len());
        let mut mids = Vec::new();
        for r in &self.ranges {
            starts.push(r.start);
            lens.push(u64::try_from(r.end - r.start).unwrap_or(0));
            befores.push(r.highest_before);
        }
        if self.ranges.iter().any(|r| r.mid_batch) {
            mids = self.ranges.iter().map(|r| r.mid_batch).collect();
        }
        HeadRecord {
            highest: self.highest,
            deleted_to: self.deleted_to,
            removed_to: self.removed_to,
            current_batch: self.current_batch,
            uninitialized: !self.initialized,
            as_of: self.as_of,
            range_starts: starts,
            range_lens: lens,
            range_highest_before: befores,
            range_mid_batch: mids,
        }
    }

    /// The head stored in an index record; `None` if the record is inconsistent.
    pub(crate) fn from_record(rec: &HeadRecord) -> Option<Head> {
        let mut ranges = Vec::with_capacity(rec.range_starts.len());
        checked_ranges(rec, |r| ranges.push(r))?;
        Some(Head {
            highest: rec.highest,
            deleted_to: rec.deleted_to,
            removed_to: rec.removed_to,
            current_batch: rec.current_batch,
            initialized: !rec.uninitialized,
            as_of: rec.as_of,
            ranges,
            dirty: false,
        })
    }
}

/// Checks a head record's ranges (parallel arrays, ascending, non-empty, within `i64`) and
/// gives each to `push`; `None` if the record is inconsistent.
fn checked_ranges(rec: &HeadRecord, mut push: impl FnMut(Range)) -> Option<()> {
    let n = rec.range_starts.len();
    if rec.range_lens.len() != n
        || rec.range_highest_before.len() != n
        || !(rec.range_mid_batch.is_empty() || rec.range_mid_batch.len() == n)
    {
        return None;
    }
    let mut last_end = i64::MIN;
    for i in 0..n {
        let start = rec.range_starts[i];
        let len = i64::try_from(rec.range_lens[i]).ok()?;
        let end = start.checked_add(len)?;
        if start < last_end || len == 0 || start < 0 {
            return None;
        }
        last_end = end;
        push(Range {
            start,
            end,
            highest_before: rec.range_highest_before[i],
            mid_batch: rec.range_mid_batch.get(i).copied().unwrap_or(false),
        });
    }
    Some(())
}

/// The value of a head record in the index topic.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HeadRecord {
    #[prost(uint64, tag = "1")]
    pub(crate) highest: u64,
    #[prost(uint64, tag = "2")]
    pub(crate) deleted_to: u64,
    #[prost(uint64, tag = "3")]
    pub(crate) removed_to: u64,
    #[prost(fixed64, tag = "4")]
    pub(crate) current_batch: u64,
    #[prost(bool, tag = "5")]
    pub(crate) uninitialized: bool,
    #[prost(int64, tag = "6")]
    pub(crate) as_of: i64,
    #[prost(int64, repeated, tag = "7")]
    pub(crate) range_starts: Vec<i64>,
    #[prost(uint64, repeated, tag = "8")]
    pub(crate) range_lens: Vec<u64>,
    #[prost(uint64, repeated, tag = "9")]
    pub(crate) range_highest_before: Vec<u64>,
    /// Empty when no range begins inside a batch.
    #[prost(bool, repeated, tag = "10")]
    pub(crate) range_mid_batch: Vec<bool>,
}

/// The value of the checkpoint record in the index topic.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CheckpointRecord {
    /// Every journal record below this offset is covered by the index records before
    /// `index_offset`.
    #[prost(int64, tag = "1")]
    pub(crate) journal_offset: i64,
    /// The index offset the writer of this checkpoint had verified the index through.
    #[prost(int64, tag = "2")]
    pub(crate) index_offset: i64,
}

/// The key of `persistence_id`'s head record.
pub(crate) fn head_key(persistence_id: &str) -> Bytes {
    let mut k = BytesMut::with_capacity(1 + persistence_id.len());
    k.extend_from_slice(&[HEAD_KEY]);
    k.extend_from_slice(persistence_id.as_bytes());
    k.freeze()
}

/// Encodes a protobuf message.
pub(crate) fn encode<M: Message>(m: &M) -> Bytes {
    let mut b = BytesMut::with_capacity(m.encoded_len());
    // Encoding into a buffer with enough capacity cannot fail.
    let _ = m.encode(&mut b);
    b.freeze()
}

/// One decoded index record.
#[derive(Debug)]
pub(crate) enum IndexEntry {
    Head(String, Head),
    Checkpoint(CheckpointRecord),
}

/// Decodes an index record; `None` for a tombstone or anything this version does not know
/// (the index is a cache: such a record is ignored and the journal's tail repairs it).
pub(crate) fn decode_index(key: Option<&[u8]>, value: Option<&Bytes>) -> Option<IndexEntry> {
    let key = key?;
    let value = value?;
    match *key.first()? {
        CHECKPOINT_KEY if key.len() == 1 => CheckpointRecord::decode(value.clone())
            .ok()
            .map(IndexEntry::Checkpoint),
        HEAD_KEY => {
            let id = std::str::from_utf8(&key[1..]).ok()?.to_string();
            let rec = HeadRecord::decode(value.clone()).ok()?;
            Head::from_record(&rec).map(|h| IndexEntry::Head(id, h))
        }
        _ => None,
    }
}

/// The id and `as_of` of a head record, borrowed from the record (what verifying the index
/// needs: no id copied, no head built); `None` wherever [`decode_index`] gives no head.
pub(crate) fn decode_head_as_of<'a>(
    key: Option<&'a [u8]>,
    value: Option<&Bytes>,
) -> Option<(&'a str, i64)> {
    let key = key?;
    let value = value?;
    if *key.first()? != HEAD_KEY {
        return None;
    }
    let id = std::str::from_utf8(&key[1..]).ok()?;
    let rec = HeadRecord::decode(value.clone()).ok()?;
    checked_ranges(&rec, |_| {})?;
    Some((id, rec.as_of))
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

    #[test]
    fn ranges_follow_the_ids_records() {
        let mut h = Head::new(true);
        assert_eq!(h.apply(10, &ev(1, 1, 1)), Applied::Event);
        assert_eq!(h.apply(11, &ev(2, 2, 2)), Applied::Event);
        assert_eq!(h.apply(20, &ev(3, 3, 3)), Applied::Event);
        assert_eq!(h.highest, 3);
        assert_eq!(
            h.ranges,
            vec![
                Range {
                    start: 10,
                    end: 12,
                    highest_before: 0,
                    mid_batch: false,
                },
                Range {
                    start: 20,
                    end: 21,
                    highest_before: 2,
                    mid_batch: false,
                }
            ]
        );
        assert_eq!((h.range_last(0), h.range_last(1)), (2, 3));
        assert_eq!(h.as_of, 21);
        // a loser's record is kept in a range (replays skip it) but does not count
        assert_eq!(h.apply(30, &ev(3, 3, 9)), Applied::Ignored);
        assert_eq!(h.highest, 3);
        assert_eq!(h.ranges.len(), 3);
    }

    #[test]
    fn deletion_prunes_wholly_deleted_ranges() {
        let mut h = Head::new(true);
        h.apply(0, &ev(1, 1, 1));
        h.apply(5, &ev(2, 2, 2));
        h.apply(9, &ev(3, 3, 3));
        h.apply(12, &JournalRecord::deletion(2, 3));
        assert_eq!((h.deleted_to, h.highest), (2, 3));
        assert_eq!(h.ranges.first().map(|r| r.start), Some(9));
        h.apply(13, &JournalRecord::deletion(3, 3));
        assert_eq!(h.ranges.len(), 1, "{:?}", h.ranges);
    }

    #[test]
    fn uninitialized_ids_are_seeded_by_their_first_record() {
        let mut h = Head::new(false);
        assert_eq!(h.apply(100, &ev(7, 7, 1)), Applied::Event);
        assert_eq!((h.highest, h.removed_to), (7, 6));
        assert_eq!(h.ranges[0].highest_before, 6);
    }

    #[test]
    fn head_records_round_trip_and_reject_nonsense() {
        let mut h = Head::new(true);
        h.apply(3, &ev(1, 1, 1));
        h.apply(8, &ev(2, 2, 5));
        let rec = h.to_record();
        let back = Head::from_record(&rec).unwrap();
        assert_eq!(
            back,
            Head {
                dirty: false,
                ..h.clone()
            }
        );
        let mut bad = rec.clone();
        bad.range_lens.pop();
        assert!(Head::from_record(&bad).is_none());
        let mut bad = rec;
        bad.range_starts = vec![8, 3];
        assert!(Head::from_record(&bad).is_none());
        let key = head_key("a/b");
        let value = encode(&h.to_record());
        match decode_index(Some(&key), Some(&value)) {
            Some(IndexEntry::Head(id, _)) => assert_eq!(id, "a/b"),
            other => panic!("{other:?}"),
        }
        assert!(decode_index(Some(&[0x07][..]), Some(&value)).is_none());
        assert!(decode_index(Some(&key), None).is_none());
        assert!(decode_index(Some(&key), Some(&Bytes::from_static(&[0xff, 0xff]))).is_none());
    }
}

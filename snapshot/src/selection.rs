//! Which snapshots a load tries and a deletion removes: pure functions over what an index
//! knows about one id (sequence number, and the timestamp when the record decodes), shared
//! by both layouts.

use tracing::warn;

use crate::model::SnapshotSelectionCriteria;

/// What a deletion removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deletion {
    /// The snapshot at `sequence_nr`; with a non-zero `timestamp` only if it matches too.
    One {
        /// The sequence number.
        sequence_nr: u64,
        /// 0 = any.
        timestamp: i64,
    },
    /// Every snapshot matching the criteria.
    Matching(SnapshotSelectionCriteria),
}

impl Deletion {
    /// Whether the snapshot at `seq` is deleted; `timestamp` is `None` for a record that does
    /// not decode (its timestamp is unknown).
    pub(crate) fn selects(&self, seq: u64, timestamp: Option<i64>) -> bool {
        match *self {
            Deletion::One {
                sequence_nr,
                timestamp: wanted,
            } => seq == sequence_nr && (wanted == 0 || timestamp == Some(wanted)),
            Deletion::Matching(c) => match timestamp {
                Some(ts) => c.matches(seq, ts),
                // Unknown timestamp: deleted only if the timestamp bounds are open.
                None => c.matches_sequence_nr(seq) && c.admits_any_timestamp(),
            },
        }
    }
}

/// One snapshot a load tries, in the order returned by [`load_order`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Its sequence number.
    pub(crate) sequence_nr: u64,
    /// Whether its record decodes (an undecodable one is skipped with a warning).
    pub(crate) decodable: bool,
}

/// The criteria of a load, with orphans excluded: for recovery (`journal_highest` given),
/// snapshots above the journal's highest sequence number are ignored (each one the criteria
/// would have admitted is logged).
pub(crate) fn without_orphans(
    persistence_id: &str,
    criteria: SnapshotSelectionCriteria,
    journal_highest: Option<u64>,
    stored: impl IntoIterator<Item = u64>,
) -> SnapshotSelectionCriteria {
    let Some(highest) = journal_highest else {
        return criteria;
    };
    for seq in stored {
        if seq > highest && criteria.matches_sequence_nr(seq) {
            warn!(
                persistence_id,
                sequence_nr = seq,
                journal_highest = highest,
                "ignoring orphan snapshot above the journal's highest sequence number"
            );
        }
    }
    criteria.limit(highest)
}

/// The snapshots a load tries, youngest (highest sequence number) first: the decodable ones
/// matching all four bounds, and the undecodable ones whose sequence number matches (they
/// are reported and skipped, so the load falls back to the next older one).
/// `entries` = (sequence number, timestamp if the record decodes), in any order.
pub(crate) fn load_order(
    entries: impl IntoIterator<Item = (u64, Option<i64>)>,
    criteria: SnapshotSelectionCriteria,
) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = entries
        .into_iter()
        .filter(|(seq, ts)| match ts {
            Some(ts) => criteria.matches(*seq, *ts),
            None => criteria.matches_sequence_nr(*seq),
        })
        .map(|(seq, ts)| Candidate {
            sequence_nr: seq,
            decodable: ts.is_some(),
        })
        .collect();
    out.sort_by_key(|c| std::cmp::Reverse(c.sequence_nr));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use SnapshotSelectionCriteria as C;

    #[test]
    fn deletion_table() {
        let one = |s, t| Deletion::One {
            sequence_nr: s,
            timestamp: t,
        };
        let cases: &[(Deletion, u64, Option<i64>, bool)] = &[
            (one(3, 0), 3, Some(10), true),
            (one(3, 0), 3, None, true),
            (one(3, 0), 4, Some(10), false),
            (one(3, 10), 3, Some(10), true),
            (one(3, 11), 3, Some(10), false),
            (one(3, 10), 3, None, false),
            (Deletion::Matching(C::latest()), 9, Some(1), true),
            (Deletion::Matching(C::latest()), 9, None, true),
            (
                Deletion::Matching(C::latest().with_max_timestamp(5)),
                9,
                None,
                false,
            ),
            (
                Deletion::Matching(C::latest().with_max_timestamp(5)),
                9,
                Some(5),
                true,
            ),
            (
                Deletion::Matching(C::latest().with_min_sequence_nr(10)),
                9,
                Some(5),
                false,
            ),
        ];
        for (i, (d, seq, ts, want)) in cases.iter().enumerate() {
            assert_eq!(d.selects(*seq, *ts), *want, "case {i}: {d:?} {seq} {ts:?}");
        }
    }

    #[test]
    fn load_order_is_youngest_first_and_keeps_undecodable_matches() {
        let entries = [
            (11, Some(100)),
            (15, None),
            (13, Some(300)),
            (12, Some(200)),
        ];
        let order = load_order(entries, C::latest().with_max_timestamp(250));
        let seqs: Vec<_> = order.iter().map(|c| (c.sequence_nr, c.decodable)).collect();
        assert_eq!(seqs, vec![(15, false), (12, true), (11, true)]);
        let order = load_order(entries, C::latest().with_max_sequence_nr(14));
        assert_eq!(order[0].sequence_nr, 13);
        assert!(load_order(entries, C::none()).is_empty());
    }

    #[test]
    fn orphans_are_cut_for_recovery_only() {
        let c = without_orphans("p", C::latest(), Some(3), [2, 4]);
        assert_eq!(c.max_sequence_nr, 3);
        let c = without_orphans("p", C::latest().with_max_sequence_nr(2), Some(3), [2, 4]);
        assert_eq!(c.max_sequence_nr, 2);
        assert_eq!(without_orphans("p", C::latest(), None, [2, 4]), C::latest());
    }
}

//! The snapshot store's data types: metadata, selection criteria, a loaded snapshot.

use bytes::Bytes;

/// Identifies one snapshot: its persistence id, the sequence number of the last event it
/// covers, and when it was taken.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SnapshotMetadata {
    /// The persistence id of the entity.
    pub persistence_id: String,
    /// The sequence number of the last event the snapshot covers (starts at 1).
    pub sequence_nr: u64,
    /// Milliseconds since the Unix epoch. On save, 0 means "now" (the store assigns it); on
    /// delete, 0 means "any timestamp".
    pub timestamp: i64,
    /// Optional user metadata stored with the snapshot (`Some` of empty stays `Some`).
    pub metadata: Option<Bytes>,
}

impl SnapshotMetadata {
    /// Metadata without user metadata.
    pub fn new(persistence_id: impl Into<String>, sequence_nr: u64, timestamp: i64) -> Self {
        SnapshotMetadata {
            persistence_id: persistence_id.into(),
            sequence_nr,
            timestamp,
            metadata: None,
        }
    }

    /// Sets the user metadata.
    pub fn with_metadata(mut self, metadata: impl Into<Bytes>) -> Self {
        self.metadata = Some(metadata.into());
        self
    }
}

/// Which snapshots a load or a deletion considers: those with
/// `min_sequence_nr <= sequence_nr <= max_sequence_nr` and
/// `min_timestamp <= timestamp <= max_timestamp` (all four bounds inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SnapshotSelectionCriteria {
    /// Upper bound of the sequence number (inclusive).
    pub max_sequence_nr: u64,
    /// Upper bound of the timestamp (inclusive).
    pub max_timestamp: i64,
    /// Lower bound of the sequence number (inclusive).
    pub min_sequence_nr: u64,
    /// Lower bound of the timestamp (inclusive).
    pub min_timestamp: i64,
}

impl Default for SnapshotSelectionCriteria {
    fn default() -> Self {
        SnapshotSelectionCriteria::latest()
    }
}

impl SnapshotSelectionCriteria {
    /// No bounds: every snapshot matches (a load returns the youngest).
    pub const fn latest() -> Self {
        SnapshotSelectionCriteria {
            max_sequence_nr: u64::MAX,
            max_timestamp: i64::MAX,
            min_sequence_nr: 0,
            min_timestamp: 0,
        }
    }

    /// Matches nothing (maximum sequence number and timestamp 0; sequence numbers start at 1).
    pub const fn none() -> Self {
        SnapshotSelectionCriteria {
            max_sequence_nr: 0,
            max_timestamp: 0,
            min_sequence_nr: 0,
            min_timestamp: 0,
        }
    }

    /// Sets the upper bound of the sequence number.
    pub const fn with_max_sequence_nr(mut self, max: u64) -> Self {
        self.max_sequence_nr = max;
        self
    }

    /// Sets the upper bound of the timestamp.
    pub const fn with_max_timestamp(mut self, max: i64) -> Self {
        self.max_timestamp = max;
        self
    }

    /// Sets the lower bound of the sequence number.
    pub const fn with_min_sequence_nr(mut self, min: u64) -> Self {
        self.min_sequence_nr = min;
        self
    }

    /// Sets the lower bound of the timestamp.
    pub const fn with_min_timestamp(mut self, min: i64) -> Self {
        self.min_timestamp = min;
        self
    }

    /// Caps the upper sequence number bound at `to` (never raises it).
    pub fn limit(self, to: u64) -> Self {
        self.with_max_sequence_nr(self.max_sequence_nr.min(to))
    }

    /// Whether a snapshot with this sequence number and timestamp matches.
    pub fn matches(&self, sequence_nr: u64, timestamp: i64) -> bool {
        self.matches_sequence_nr(sequence_nr)
            && self.min_timestamp <= timestamp
            && timestamp <= self.max_timestamp
    }

    /// Whether the sequence number bounds admit `sequence_nr` (timestamps not considered).
    pub fn matches_sequence_nr(&self, sequence_nr: u64) -> bool {
        self.min_sequence_nr <= sequence_nr && sequence_nr <= self.max_sequence_nr
    }

    /// Whether the timestamp bounds admit every timestamp (used for snapshots whose metadata
    /// cannot be decoded).
    pub(crate) fn admits_any_timestamp(&self) -> bool {
        self.min_timestamp <= 0 && self.max_timestamp == i64::MAX
    }
}

/// A loaded snapshot: its metadata exactly as stored, and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedSnapshot {
    /// The metadata, exactly as returned by `save`.
    pub metadata: SnapshotMetadata,
    /// The snapshot payload.
    pub snapshot: Bytes,
}

/// Where the snapshot records of one persistence id are (see the crate documentation for
/// both layouts' formats): for tools and tests that read or write the topic directly.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SnapshotPlacement {
    /// The topic.
    pub topic: String,
    /// The partition holding the id's index records.
    pub index_partition: i32,
    /// The partition holding the id's chunk records.
    pub chunk_partition: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_matches_everything_and_none_nothing() {
        let latest = SnapshotSelectionCriteria::latest();
        let none = SnapshotSelectionCriteria::none();
        for (seq, ts) in [
            (1, 1),
            (1, i64::MAX),
            (u64::MAX, 0),
            (15, 1_700_000_000_000),
        ] {
            assert!(latest.matches(seq, ts));
            assert!(!none.matches(seq, ts));
        }
    }

    #[test]
    fn all_four_bounds_are_inclusive() {
        let c = SnapshotSelectionCriteria::latest()
            .with_min_sequence_nr(12)
            .with_max_sequence_nr(13)
            .with_min_timestamp(100)
            .with_max_timestamp(200);
        assert!(c.matches(12, 100));
        assert!(c.matches(13, 200));
        assert!(!c.matches(11, 150));
        assert!(!c.matches(14, 150));
        assert!(!c.matches(12, 99));
        assert!(!c.matches(12, 201));
        assert_eq!(c.limit(12).max_sequence_nr, 12);
        assert_eq!(c.limit(20).max_sequence_nr, 13);
        assert!(!c.admits_any_timestamp());
        assert!(SnapshotSelectionCriteria::latest().admits_any_timestamp());
    }
}

//! When an entity saves snapshots, and what it deletes once a snapshot is saved.
//!
//! A [`SnapshotPolicy`] says three things: save a snapshot every N events (and always on
//! demand), keep only the youngest K snapshots (deleting older ones), and delete the events
//! the kept snapshots cover (`Journal::delete_messages_to`). Deletions never reach what
//! recovery still needs: recovery loads the youngest usable snapshot and replays the events
//! after it, so events are deleted only up to the **oldest** kept snapshot, and only after the
//! new snapshot is stored. Keeping two snapshots means a snapshot that fails to decode still
//! has an older one, with its events, to fall back to.
//!
//! ```
//! use kafka_persistence::snapshot_policy::SnapshotPolicy;
//!
//! // A snapshot every 100 events; keep the youngest two; delete events the older one covers.
//! let policy = SnapshotPolicy::every(100).keep_snapshots(2).delete_events(true);
//! assert_eq!(policy.snapshot_every(), Some(100));
//! ```

use std::collections::VecDeque;

/// When to save snapshots and what to delete after saving one (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(default)]
pub struct SnapshotPolicy {
    /// Save a snapshot after every this many events (`None`: only on demand).
    pub every: Option<u64>,
    /// Keep only the youngest this many snapshots, deleting older ones (`None`: keep all).
    /// Zero is treated as one: the snapshot just saved is never deleted.
    pub keep_snapshots: Option<usize>,
    /// Delete the events covered by the oldest kept snapshot (with `keep_snapshots` unset,
    /// by the latest snapshot).
    pub delete_events: bool,
}

/// What to delete after a snapshot was saved: the result of [`SnapshotPolicy::after_save`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cleanup {
    /// Delete the snapshots with sequence numbers up to and including this one.
    pub snapshots_to: Option<u64>,
    /// Delete the events up to and including this sequence number.
    pub events_to: Option<u64>,
}

impl SnapshotPolicy {
    /// Snapshots only on demand, nothing deleted.
    pub const fn on_demand() -> Self {
        SnapshotPolicy {
            every: None,
            keep_snapshots: None,
            delete_events: false,
        }
    }

    /// A snapshot after every `n` events (`0`: only on demand), nothing deleted.
    pub const fn every(n: u64) -> Self {
        SnapshotPolicy {
            every: if n == 0 { None } else { Some(n) },
            keep_snapshots: None,
            delete_events: false,
        }
    }

    /// The policy of a `Behavior::snapshot_every` value.
    pub const fn from_every(every: Option<u64>) -> Self {
        match every {
            Some(n) => SnapshotPolicy::every(n),
            None => SnapshotPolicy::on_demand(),
        }
    }

    /// Keeps only the youngest `n` snapshots (at least one), deleting older ones.
    pub const fn keep_snapshots(mut self, n: usize) -> Self {
        self.keep_snapshots = Some(n);
        self
    }

    /// Deletes the events the oldest kept snapshot covers after each snapshot.
    pub const fn delete_events(mut self, delete: bool) -> Self {
        self.delete_events = delete;
        self
    }

    /// After how many events a snapshot is due (`None`: only on demand).
    pub const fn snapshot_every(&self) -> Option<u64> {
        self.every
    }

    /// Whether a snapshot is due at `sequence_nr` when the last one was at `last_snapshot_nr`.
    pub fn is_due(&self, sequence_nr: u64, last_snapshot_nr: u64) -> bool {
        match self.every {
            Some(every) => sequence_nr.saturating_sub(last_snapshot_nr) >= every,
            None => false,
        }
    }

    /// Records that a snapshot was saved at `saved` in `known` (the sequence numbers of the
    /// snapshots known to exist, ascending) and returns what to delete now. `known` keeps
    /// only the snapshots this policy keeps.
    pub fn after_save(&self, known: &mut VecDeque<u64>, saved: u64) -> Cleanup {
        // A snapshot saved again at the same (or a lower, after a deletion) number replaces
        // what was known above it.
        while known.back().is_some_and(|&last| last >= saved) {
            known.pop_back();
        }
        known.push_back(saved);
        // Only the kept snapshots matter (with every snapshot kept, the latest: it bounds the
        // event deletion), so `known` stays small.
        let keep = self.keep_snapshots.unwrap_or(1).max(1);
        while known.len() > keep {
            known.pop_front();
        }
        let oldest_kept = known.front().copied();
        let mut cleanup = Cleanup::default();
        if self.keep_snapshots.is_some() {
            // Every snapshot below the oldest kept one goes, also those of earlier
            // incarnations this one never saw.
            cleanup.snapshots_to = oldest_kept.and_then(|oldest| oldest.checked_sub(1));
        }
        if self.delete_events {
            // Recovery from any kept snapshot needs the events after it: delete only what
            // the oldest kept one covers.
            cleanup.events_to = oldest_kept;
        }
        cleanup.snapshots_to = cleanup.snapshots_to.filter(|&to| to > 0);
        cleanup
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_every_n_events() {
        let p = SnapshotPolicy::every(3);
        assert!(!p.is_due(2, 0));
        assert!(p.is_due(3, 0));
        assert!(p.is_due(7, 3));
        assert!(!SnapshotPolicy::on_demand().is_due(100, 0));
        assert_eq!(SnapshotPolicy::every(0), SnapshotPolicy::on_demand());
    }

    #[test]
    fn keeping_everything_deletes_nothing() {
        let p = SnapshotPolicy::every(3);
        let mut known = VecDeque::new();
        assert_eq!(p.after_save(&mut known, 3), Cleanup::default());
        assert_eq!(p.after_save(&mut known, 6), Cleanup::default());
        assert_eq!(
            known,
            [6],
            "only the latest matters when everything is kept"
        );
    }

    #[test]
    fn keep_one_deletes_every_older_snapshot() {
        let p = SnapshotPolicy::every(3).keep_snapshots(1);
        let mut known = VecDeque::new();
        assert_eq!(p.after_save(&mut known, 3).snapshots_to, Some(2));
        assert_eq!(p.after_save(&mut known, 6).snapshots_to, Some(5));
        assert_eq!(known, [6]);
        assert_eq!(p.after_save(&mut known, 6).events_to, None);
    }

    #[test]
    fn keep_two_with_events_deletes_up_to_the_older_kept_one() {
        let p = SnapshotPolicy::every(3)
            .keep_snapshots(2)
            .delete_events(true);
        let mut known = VecDeque::new();
        let c = p.after_save(&mut known, 3);
        assert_eq!(
            c,
            Cleanup {
                snapshots_to: Some(2),
                events_to: Some(3)
            }
        );
        let c = p.after_save(&mut known, 6);
        assert_eq!(
            c,
            Cleanup {
                snapshots_to: Some(2),
                events_to: Some(3)
            }
        );
        let c = p.after_save(&mut known, 9);
        assert_eq!(
            c,
            Cleanup {
                snapshots_to: Some(5),
                events_to: Some(6)
            }
        );
        assert_eq!(known, [6, 9]);
    }

    #[test]
    fn events_only_keeps_snapshots_and_deletes_to_the_latest() {
        let p = SnapshotPolicy::every(3).delete_events(true);
        let mut known = VecDeque::from([1]);
        let c = p.after_save(&mut known, 4);
        assert_eq!(
            c,
            Cleanup {
                snapshots_to: None,
                events_to: Some(4)
            }
        );
        assert_eq!(known, [4]);
    }

    #[test]
    fn zero_keep_never_deletes_the_new_snapshot() {
        let p = SnapshotPolicy::every(1)
            .keep_snapshots(0)
            .delete_events(true);
        let mut known = VecDeque::from([1, 2]);
        let c = p.after_save(&mut known, 5);
        assert_eq!(
            c,
            Cleanup {
                snapshots_to: Some(4),
                events_to: Some(5)
            }
        );
    }

    #[test]
    fn saving_again_at_a_lower_number_forgets_what_was_above() {
        let p = SnapshotPolicy::every(1).keep_snapshots(2);
        let mut known = VecDeque::from([4, 8]);
        p.after_save(&mut known, 6);
        assert_eq!(known, [4, 6]);
    }
}

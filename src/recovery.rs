//! Recovery: the latest usable snapshot, then the events after it.
//!
//! [`recover`] is what the entity runtime runs when an entity starts: it asks the journal for
//! the highest sequence number, loads the youngest snapshot at or below it (orphan snapshots
//! above it are ignored, including one at exactly highest + 1; a snapshot that fails to
//! decode falls back to the next older one, with a `tracing` warning), and replays the events
//! after the snapshot up to the highest sequence number.

use bytes::Bytes;
use futures::TryStreamExt;
use tracing::{debug, warn};

use crate::journal::{Journal, JournalError, PersistentRepr};
use crate::snapshot::{SelectedSnapshot, SnapshotError, SnapshotSelectionCriteria, SnapshotStore};

/// The state an entity recovers from.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    /// The snapshot to start from (`None`: start from the empty state).
    pub snapshot: Option<SelectedSnapshot>,
    /// The events after the snapshot, ascending, up to `highest_sequence_nr`.
    pub events: Vec<PersistentRepr>,
    /// The journal's highest sequence number: the entity's next event gets this + 1.
    pub highest_sequence_nr: u64,
}

/// Why recovery failed (the entity must not start).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// The journal failed (highest sequence number or replay).
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    /// The snapshot store failed (not a snapshot that fails to decode: that one is skipped).
    #[error("snapshot store: {0}")]
    Snapshot(#[from] SnapshotError),
}

/// Recovers `persistence_id` with every snapshot admitted (see [`recover_with`]).
pub async fn recover(
    journal: &Journal,
    store: &SnapshotStore,
    persistence_id: &str,
) -> Result<Recovered, RecoveryError> {
    recover_with(
        journal,
        store,
        persistence_id,
        SnapshotSelectionCriteria::latest(),
    )
    .await
}

/// Recovers `persistence_id`: the youngest snapshot matching `criteria` at or below the
/// journal's highest sequence number, then the events after it up to that highest.
/// With [`SnapshotSelectionCriteria::none`] no snapshot is loaded (a full replay).
pub async fn recover_with(
    journal: &Journal,
    store: &SnapshotStore,
    persistence_id: &str,
    criteria: SnapshotSelectionCriteria,
) -> Result<Recovered, RecoveryError> {
    let highest = journal.highest_sequence_nr(persistence_id).await?;
    let snapshot = if criteria == SnapshotSelectionCriteria::none() {
        None
    } else {
        store
            .load_for_recovery(persistence_id, criteria, highest)
            .await?
    };
    let from = snapshot
        .as_ref()
        .map_or(1, |s| s.metadata.sequence_nr.saturating_add(1));
    let events: Vec<PersistentRepr> = if from > highest {
        Vec::new()
    } else {
        journal
            .replay(persistence_id, from, highest, u64::MAX)
            .try_collect()
            .await?
    };
    debug!(
        persistence_id,
        snapshot = snapshot.as_ref().map(|s| s.metadata.sequence_nr),
        events = events.len(),
        highest,
        "recovered"
    );
    Ok(Recovered {
        snapshot,
        events,
        highest_sequence_nr: highest,
    })
}

/// [`recover_with`], then decodes the snapshot's payload with `decode`; a snapshot that
/// `decode` refuses (say, of an older state type) is skipped for the next older one, down to
/// a full replay. Returns the recovery and the decoded state of its snapshot (`None`: start
/// from the empty state). The entity runtime and the cqrs-es adapter both recover this way.
pub async fn recover_decoded<S, E: std::fmt::Display>(
    journal: &Journal,
    store: &SnapshotStore,
    persistence_id: &str,
    criteria: SnapshotSelectionCriteria,
    decode: impl Fn(&Bytes) -> Result<S, E>,
) -> Result<(Recovered, Option<S>), RecoveryError> {
    let mut criteria = criteria;
    loop {
        let recovered = recover_with(journal, store, persistence_id, criteria).await?;
        let Some(selected) = &recovered.snapshot else {
            return Ok((recovered, None));
        };
        let snapshot_nr = selected.metadata.sequence_nr;
        match decode(&selected.snapshot) {
            Ok(state) => return Ok((recovered, Some(state))),
            Err(e) => {
                warn!(
                    persistence_id,
                    snapshot_nr,
                    reason = %e,
                    "snapshot cannot be decoded into the state; trying an older one"
                );
                criteria = match snapshot_nr.checked_sub(1) {
                    Some(below) if below > 0 => criteria.with_max_sequence_nr(below),
                    _ => SnapshotSelectionCriteria::none(),
                };
            }
        }
    }
}

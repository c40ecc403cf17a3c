//! The persistent-entity runtime: an entity recovers its state from the latest usable snapshot
//! and the events after it, handles commands by persisting the events they produce (all events
//! of one command in one atomic write), and saves snapshots as its [`SnapshotPolicy`] says.
//!
//! [`Entity`] is one entity that the caller drives (`&mut self`); [`crate::entities`] runs
//! many of them as tasks behind cloneable handles, with passivation, on top of this type.
//!
//! ```no_run
//! use bytes::Bytes;
//! use kafka_persistence::entity::{Behavior, CodecError, Entity};
//! use kafka_persistence::journal::{Journal, JournalConfig};
//! use kafka_persistence::snapshot::{SnapshotConfig, SnapshotStore};
//!
//! /// A counter: commands add to it, events record each addition.
//! struct Counter;
//!
//! impl Behavior for Counter {
//!     type State = i64;
//!     type Command = i64;
//!     type Event = i64;
//!     type Rejection = String;
//!
//!     fn handle(&self, state: &i64, add: i64) -> Result<Vec<i64>, String> {
//!         if state.checked_add(add).is_none() {
//!             return Err("overflow".into());
//!         }
//!         Ok(vec![add])
//!     }
//!     fn apply(&self, state: &mut i64, event: &i64) {
//!         *state += event;
//!     }
//!     fn encode_event(&self, event: &i64) -> Result<(String, Bytes), CodecError> {
//!         Ok((String::new(), Bytes::copy_from_slice(&event.to_be_bytes())))
//!     }
//!     fn decode_event(&self, _manifest: &str, bytes: &Bytes) -> Result<i64, CodecError> {
//!         let raw: [u8; 8] = bytes[..].try_into().map_err(|_| CodecError::new("not 8 bytes"))?;
//!         Ok(i64::from_be_bytes(raw))
//!     }
//!     fn encode_state(&self, state: &i64) -> Result<Bytes, CodecError> {
//!         Ok(Bytes::copy_from_slice(&state.to_be_bytes()))
//!     }
//!     fn decode_state(&self, bytes: &Bytes) -> Result<i64, CodecError> {
//!         self.decode_event("", bytes)
//!     }
//! }
//!
//! # async fn run(bootstrap: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let journal = Journal::connect(JournalConfig::new(bootstrap)).await?;
//! let store = SnapshotStore::connect(SnapshotConfig::new(bootstrap)).await?;
//! let mut counter = Entity::recover(journal.into(), store.into(), "counter-1", Counter).await?;
//! counter.handle(5).await?;
//! assert_eq!(*counter.state(), 5);
//! # Ok(())
//! # }
//! ```

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use tracing::warn;

use crate::journal::{AtomicWrite, Journal, JournalError, PersistentRepr, WriteError};
use crate::recovery::{recover_decoded, RecoveryError};
use crate::snapshot::{SnapshotError, SnapshotMetadata, SnapshotSelectionCriteria, SnapshotStore};
use crate::snapshot_policy::SnapshotPolicy;

/// What an entity does: decide which events a command produces, and fold events into state.
pub trait Behavior: Send + Sync + 'static {
    /// The entity's state; `Default` is the state before the first event.
    type State: Default + Send + 'static;
    /// A command the entity handles.
    type Command: Send + 'static;
    /// An event the entity persists.
    type Event: Send + 'static;
    /// Why a command was refused (nothing is persisted).
    type Rejection: Send + 'static;

    /// The events `command` produces in `state` (all persisted atomically), or a rejection.
    fn handle(
        &self,
        state: &Self::State,
        command: Self::Command,
    ) -> Result<Vec<Self::Event>, Self::Rejection>;
    /// Applies a persisted (or replayed) event to the state.
    fn apply(&self, state: &mut Self::State, event: &Self::Event);
    /// Serializes an event: a manifest (type hint, may be empty) and the payload. The
    /// [`crate::codec`] module has serde (JSON) and protobuf codecs for this.
    fn encode_event(&self, event: &Self::Event) -> Result<(String, Bytes), CodecError>;
    /// Deserializes an event written by [`Behavior::encode_event`].
    fn decode_event(&self, manifest: &str, payload: &Bytes) -> Result<Self::Event, CodecError>;
    /// Serializes the state for a snapshot.
    fn encode_state(&self, state: &Self::State) -> Result<Bytes, CodecError>;
    /// Deserializes a snapshot written by [`Behavior::encode_state`].
    fn decode_state(&self, snapshot: &Bytes) -> Result<Self::State, CodecError>;
    /// Save a snapshot after every this many events (`None`: only on demand).
    fn snapshot_every(&self) -> Option<u64> {
        None
    }
    /// When to save snapshots and what to delete after one; by default a snapshot every
    /// [`Behavior::snapshot_every`] events, nothing deleted.
    fn snapshot_policy(&self) -> SnapshotPolicy {
        SnapshotPolicy::from_every(self.snapshot_every())
    }
}

/// An event or state that could not be deserialized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(String);

impl CodecError {
    /// A codec error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        CodecError(message.into())
    }
}

/// Why the entity runtime failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntityError {
    /// Recovery failed; the entity must not run.
    #[error("recovery of {persistence_id} failed: {source}")]
    Recovery {
        /// The entity.
        persistence_id: String,
        /// What failed.
        #[source]
        source: RecoveryError,
    },
    /// A replayed event or the chosen snapshot could not be deserialized.
    #[error("recovery of {persistence_id} failed at sequence number {sequence_nr}: {source}")]
    Decode {
        /// The entity.
        persistence_id: String,
        /// The event's (or snapshot's) sequence number.
        sequence_nr: u64,
        /// What the codec said.
        #[source]
        source: CodecError,
    },
    /// The journal failed or the write's outcome is unknown: the entity must stop and recover.
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    /// The journal refused the events (nothing was stored); the entity goes on.
    #[error("events rejected: {0}")]
    Rejected(WriteError),
    /// Another incarnation of the entity wrote first: this one must stop.
    #[error("fenced by another writer: {0}")]
    Fenced(WriteError),
    /// Saving a snapshot on demand failed ([`Entity::save_snapshot`]).
    #[error("snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
    /// An event or the state could not be serialized; nothing was persisted.
    #[error("encoding failed: {0}")]
    Encode(CodecError),
    /// The entity stopped (a journal failure, a fencing refusal or a failed recovery) while
    /// this request waited in its mailbox; the request was not applied. The next request
    /// recovers the entity afresh.
    #[error("entity {persistence_id} stopped before handling the request: {reason}")]
    Stopped {
        /// The entity.
        persistence_id: String,
        /// Why it stopped.
        reason: String,
    },
    /// No reply within the ask timeout. The request may still be applied later.
    #[error("no reply from entity {persistence_id} within {after:?}")]
    Timeout {
        /// The entity.
        persistence_id: String,
        /// The ask timeout.
        after: std::time::Duration,
    },
    /// The entity runtime was shut down.
    #[error("the entity runtime is shut down")]
    ShutDown,
}

impl EntityError {
    /// Whether the entity must stop after this error (and recover before the next command):
    /// a journal failure or unknown outcome, a fencing refusal, or a failed recovery. A
    /// rejection, a refused encoding or a failed snapshot leave the entity consistent.
    pub fn must_stop(&self) -> bool {
        matches!(
            self,
            EntityError::Journal(_)
                | EntityError::Fenced(_)
                | EntityError::Recovery { .. }
                | EntityError::Decode { .. }
                | EntityError::Stopped { .. }
        )
    }
}

/// What [`Entity::handle`] did with a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled<R> {
    /// The command's events were persisted and applied; the last one has this sequence number
    /// (the current one when the command produced no event).
    Persisted {
        /// Sequence number of the entity's last event.
        sequence_nr: u64,
    },
    /// The behaviour refused the command; nothing was persisted.
    Refused(R),
}

/// A running entity: its state, and the journal and snapshot store it persists to.
pub struct Entity<B: Behavior> {
    persistence_id: String,
    behavior: Arc<B>,
    state: B::State,
    sequence_nr: u64,
    last_snapshot_nr: u64,
    policy: SnapshotPolicy,
    /// The kept snapshots' sequence numbers, ascending (see [`SnapshotPolicy::after_save`]).
    snapshots: VecDeque<u64>,
    writer_uuid: String,
    journal: Arc<Journal>,
    store: Arc<SnapshotStore>,
}

impl<B: Behavior> std::fmt::Debug for Entity<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entity")
            .field("persistence_id", &self.persistence_id)
            .field("sequence_nr", &self.sequence_nr)
            .field("writer_uuid", &self.writer_uuid)
            .finish_non_exhaustive()
    }
}

impl<B: Behavior> Entity<B> {
    /// Recovers the entity: the latest usable snapshot (orphans above the journal's highest
    /// sequence number are ignored), then every event after it. A snapshot the behaviour
    /// cannot decode (say, of an older state type) is skipped for the next older one, down
    /// to a full replay.
    pub async fn recover(
        journal: Arc<Journal>,
        store: Arc<SnapshotStore>,
        persistence_id: impl Into<String>,
        behavior: B,
    ) -> Result<Self, EntityError> {
        Self::recover_shared(journal, store, persistence_id.into(), Arc::new(behavior)).await
    }

    /// [`Entity::recover`] with a behaviour shared by many entities.
    pub(crate) async fn recover_shared(
        journal: Arc<Journal>,
        store: Arc<SnapshotStore>,
        persistence_id: String,
        behavior: Arc<B>,
    ) -> Result<Self, EntityError> {
        let (recovered, state) = recover_decoded(
            &journal,
            &store,
            &persistence_id,
            SnapshotSelectionCriteria::latest(),
            |payload| behavior.decode_state(payload),
        )
        .await
        .map_err(|source| EntityError::Recovery {
            persistence_id: persistence_id.clone(),
            source,
        })?;
        let state = state.unwrap_or_default();
        let snapshot_nr = recovered
            .snapshot
            .as_ref()
            .map_or(0, |s| s.metadata.sequence_nr);
        let mut state = state;
        for event in &recovered.events {
            let decoded = behavior
                .decode_event(&event.manifest, &event.payload)
                .map_err(|source| EntityError::Decode {
                    persistence_id: persistence_id.clone(),
                    sequence_nr: event.sequence_nr,
                    source,
                })?;
            behavior.apply(&mut state, &decoded);
        }
        let policy = behavior.snapshot_policy();
        Ok(Entity {
            persistence_id,
            policy,
            snapshots: (snapshot_nr > 0)
                .then_some(snapshot_nr)
                .into_iter()
                .collect(),
            behavior,
            state,
            sequence_nr: recovered.highest_sequence_nr,
            last_snapshot_nr: snapshot_nr,
            writer_uuid: writer_uuid(),
            journal,
            store,
        })
    }

    /// The entity's persistence id.
    pub fn persistence_id(&self) -> &str {
        &self.persistence_id
    }

    /// The current state.
    pub fn state(&self) -> &B::State {
        &self.state
    }

    /// The behaviour.
    pub(crate) fn behavior(&self) -> &B {
        &self.behavior
    }

    /// The state, giving the entity up.
    pub(crate) fn into_state(self) -> B::State {
        self.state
    }

    /// The sequence number of the last persisted (or rejected) event.
    pub fn last_sequence_nr(&self) -> u64 {
        self.sequence_nr
    }

    /// The sequence number of the latest snapshot this entity recovered from or saved (0:
    /// none).
    pub fn last_snapshot_nr(&self) -> u64 {
        self.last_snapshot_nr
    }

    /// Handles a command: the events it produces are persisted in one atomic write, then
    /// applied; a snapshot is saved when the [`Behavior::snapshot_policy`] says one is due (a
    /// failed automatic snapshot is logged, not returned: the command succeeded, and the next
    /// command tries the snapshot again).
    ///
    /// A rejected write ([`EntityError::Rejected`]) consumed its sequence numbers (the gap is
    /// legal) and left the state unchanged; after [`EntityError::Fenced`] or
    /// [`EntityError::Journal`] the entity must be dropped and recovered again.
    pub async fn handle(
        &mut self,
        command: B::Command,
    ) -> Result<Handled<B::Rejection>, EntityError> {
        let events = match self.behavior.handle(&self.state, command) {
            Ok(events) => events,
            Err(rejection) => return Ok(Handled::Refused(rejection)),
        };
        if events.is_empty() {
            return Ok(Handled::Persisted {
                sequence_nr: self.sequence_nr,
            });
        }
        let reprs = events
            .iter()
            .zip(self.sequence_nr + 1..)
            .map(|(event, seq)| {
                let (manifest, payload) = self.behavior.encode_event(event)?;
                let mut repr = PersistentRepr::new(self.persistence_id.clone(), seq, payload);
                repr.manifest = manifest;
                repr.writer_uuid = self.writer_uuid.clone();
                repr.timestamp = now_ms();
                Ok(repr)
            })
            .collect::<Result<Vec<PersistentRepr>, CodecError>>()
            .map_err(EntityError::Encode)?;
        let count = reprs.len() as u64;
        let mut results = self.journal.write(vec![AtomicWrite::new(reprs)]).await?;
        let result = results.pop().unwrap_or(Ok(()));
        match result {
            Ok(()) => {}
            Err(e @ WriteError::Fenced { .. }) => return Err(EntityError::Fenced(e)),
            Err(e @ WriteError::Rejected { .. }) => {
                // The rejected numbers are used up: a gap marker in the log accounts for them.
                self.sequence_nr += count;
                return Err(EntityError::Rejected(e));
            }
            Err(e) => return Err(EntityError::Rejected(e)),
        }
        for event in &events {
            self.behavior.apply(&mut self.state, event);
        }
        self.sequence_nr += count;
        if self.policy.is_due(self.sequence_nr, self.last_snapshot_nr) {
            // The command succeeded (its events are stored and applied): a failed snapshot
            // must not make the caller think otherwise and retry it. The next command tries
            // the snapshot again.
            if let Err(e) = self.save_snapshot().await {
                warn!(persistence_id = %self.persistence_id, sequence_nr = self.sequence_nr, reason = %e, "automatic snapshot failed");
            }
        }
        Ok(Handled::Persisted {
            sequence_nr: self.sequence_nr,
        })
    }

    /// Saves a snapshot of the current state at the current sequence number, then deletes
    /// what the snapshot policy says (older snapshots, covered events). A failed deletion is
    /// logged, not returned: the snapshot is stored and nothing recovery needs is gone.
    pub async fn save_snapshot(&mut self) -> Result<SnapshotMetadata, EntityError> {
        let payload = self
            .behavior
            .encode_state(&self.state)
            .map_err(EntityError::Encode)?;
        let saved = self
            .store
            .save(
                SnapshotMetadata::new(self.persistence_id.clone(), self.sequence_nr, 0),
                payload,
            )
            .await?;
        self.last_snapshot_nr = self.sequence_nr;
        let cleanup = self
            .policy
            .after_save(&mut self.snapshots, saved.sequence_nr);
        if let Some(to) = cleanup.snapshots_to {
            let older = SnapshotSelectionCriteria::latest().with_max_sequence_nr(to);
            if let Err(e) = self
                .store
                .delete_matching(&self.persistence_id, older)
                .await
            {
                warn!(persistence_id = %self.persistence_id, to, reason = %e, "deleting older snapshots failed");
            }
        }
        if let Some(to) = cleanup.events_to {
            if let Err(e) = self
                .journal
                .delete_messages_to(&self.persistence_id, to)
                .await
            {
                warn!(persistence_id = %self.persistence_id, to, reason = %e, "deleting the events covered by a snapshot failed");
            }
        }
        Ok(saved)
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A random writer id (128 bits from the clock, the process id and a counter, mixed).
pub(crate) fn writer_uuid() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mix = |mut x: u64| {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    };
    let a = mix(nanos ^ u64::from(std::process::id()) << 32);
    let b = mix(COUNTER.fetch_add(1, Ordering::Relaxed) ^ nanos.rotate_left(17));
    format!("{a:016x}{b:016x}")
}

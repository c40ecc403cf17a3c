//! The persistent-entity runtime: an entity recovers its state from the latest usable snapshot
//! and the events after it, handles commands by persisting the events they produce (all events
//! of one command in one atomic write), and saves a snapshot every N events.
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
//!     fn encode_event(&self, event: &i64) -> (String, Bytes) {
//!         (String::new(), Bytes::copy_from_slice(&event.to_be_bytes()))
//!     }
//!     fn decode_event(&self, _manifest: &str, bytes: &Bytes) -> Result<i64, CodecError> {
//!         let raw: [u8; 8] = bytes[..].try_into().map_err(|_| CodecError::new("not 8 bytes"))?;
//!         Ok(i64::from_be_bytes(raw))
//!     }
//!     fn encode_state(&self, state: &i64) -> Bytes {
//!         Bytes::copy_from_slice(&state.to_be_bytes())
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

use std::sync::Arc;

use bytes::Bytes;

use crate::journal::{AtomicWrite, Journal, JournalError, PersistentRepr, WriteError};
use crate::recovery::{recover, RecoveryError};
use crate::snapshot::{SnapshotError, SnapshotMetadata, SnapshotStore};

/// What an entity does: decide which events a command produces, and fold events into state.
pub trait Behavior: Send + Sync + 'static {
    /// The entity's state; `Default` is the state before the first event.
    type State: Default + Send;
    /// A command the entity handles.
    type Command: Send;
    /// An event the entity persists.
    type Event: Send;
    /// Why a command was refused (nothing is persisted).
    type Rejection: Send;

    /// The events `command` produces in `state` (all persisted atomically), or a rejection.
    fn handle(
        &self,
        state: &Self::State,
        command: Self::Command,
    ) -> Result<Vec<Self::Event>, Self::Rejection>;
    /// Applies a persisted (or replayed) event to the state.
    fn apply(&self, state: &mut Self::State, event: &Self::Event);
    /// Serializes an event: a manifest (type hint, may be empty) and the payload.
    fn encode_event(&self, event: &Self::Event) -> (String, Bytes);
    /// Deserializes an event written by [`Behavior::encode_event`].
    fn decode_event(&self, manifest: &str, payload: &Bytes) -> Result<Self::Event, CodecError>;
    /// Serializes the state for a snapshot.
    fn encode_state(&self, state: &Self::State) -> Bytes;
    /// Deserializes a snapshot written by [`Behavior::encode_state`].
    fn decode_state(&self, snapshot: &Bytes) -> Result<Self::State, CodecError>;
    /// Save a snapshot after every this many events (`None`: never).
    fn snapshot_every(&self) -> Option<u64> {
        None
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
    /// Saving a snapshot failed (the events are stored).
    #[error("snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
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
    behavior: B,
    state: B::State,
    sequence_nr: u64,
    last_snapshot_nr: u64,
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
    /// sequence number are ignored), then every event after it.
    pub async fn recover(
        journal: Arc<Journal>,
        store: Arc<SnapshotStore>,
        persistence_id: impl Into<String>,
        behavior: B,
    ) -> Result<Self, EntityError> {
        let persistence_id = persistence_id.into();
        let recovered = recover(&journal, &store, &persistence_id)
            .await
            .map_err(|source| EntityError::Recovery {
                persistence_id: persistence_id.clone(),
                source,
            })?;
        let (mut state, snapshot_nr) = match &recovered.snapshot {
            Some(selected) => {
                let state = behavior
                    .decode_state(&selected.snapshot)
                    .map_err(|source| EntityError::Decode {
                        persistence_id: persistence_id.clone(),
                        sequence_nr: selected.metadata.sequence_nr,
                        source,
                    })?;
                (state, selected.metadata.sequence_nr)
            }
            None => (B::State::default(), 0),
        };
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
        Ok(Entity {
            persistence_id,
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

    /// The sequence number of the last persisted (or rejected) event.
    pub fn last_sequence_nr(&self) -> u64 {
        self.sequence_nr
    }

    /// Handles a command: the events it produces are persisted in one atomic write, then
    /// applied; a snapshot is saved when [`Behavior::snapshot_every`] events have passed.
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
        let reprs: Vec<PersistentRepr> = events
            .iter()
            .zip(self.sequence_nr + 1..)
            .map(|(event, seq)| {
                let (manifest, payload) = self.behavior.encode_event(event);
                let mut repr = PersistentRepr::new(self.persistence_id.clone(), seq, payload);
                repr.manifest = manifest;
                repr.writer_uuid = self.writer_uuid.clone();
                repr.timestamp = now_ms();
                repr
            })
            .collect();
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
        if let Some(every) = self.behavior.snapshot_every() {
            if every > 0 && self.sequence_nr - self.last_snapshot_nr >= every {
                self.save_snapshot().await?;
            }
        }
        Ok(Handled::Persisted {
            sequence_nr: self.sequence_nr,
        })
    }

    /// Saves a snapshot of the current state at the current sequence number.
    pub async fn save_snapshot(&mut self) -> Result<SnapshotMetadata, EntityError> {
        let payload = self.behavior.encode_state(&self.state);
        let saved = self
            .store
            .save(
                SnapshotMetadata::new(self.persistence_id.clone(), self.sequence_nr, 0),
                payload,
            )
            .await?;
        self.last_snapshot_nr = self.sequence_nr;
        Ok(saved)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A random writer id (128 bits from the clock, the process id and a counter, mixed).
fn writer_uuid() -> String {
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

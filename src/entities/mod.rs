//! Entities as handles: a runtime per behaviour that starts an entity on first use, runs it
//! as a tokio task with a bounded mailbox, and hands out cloneable [`EntityRef`]s.
//!
//! - Requests to one persistence id are applied strictly one at a time, in arrival order;
//!   different ids run in parallel.
//! - Passivation: an entity idle for [`EntitiesConfig::with_idle_timeout`] stops, and at
//!   most [`EntitiesConfig::with_max_entities`] are in memory (the least recently used one
//!   stops first). The next request recovers it from the latest snapshot and the events
//!   after it ([`crate::recovery`]).
//! - A journal failure or a fencing refusal stops the entity: the request that hit it gets
//!   the error, every request still waiting gets [`EntityError::Stopped`], and the next
//!   request recovers the entity afresh.
//! - Every request has a timeout ([`EntitiesConfig::with_ask_timeout`]); a request that
//!   timed out may still be applied later (as with any ask of an actor).
//!
//! Each entity is an [`Entity`](crate::entity::Entity), the type for callers who drive one
//! entity themselves.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use kafka_persistence::entity::{Behavior, Handled};
//! # use kafka_persistence::entities::{Entities, EntitiesConfig};
//! # async fn run<B: Behavior<Command = i64>>(
//! #     journal: Arc<kafka_persistence::journal::Journal>,
//! #     store: Arc<kafka_persistence::snapshot::SnapshotStore>,
//! #     counter: B,
//! # ) -> Result<(), kafka_persistence::entity::EntityError> {
//! let counters = Entities::new(journal, store, counter, EntitiesConfig::default());
//! let handle = counters.entity("counter-1"); // cheap; the entity starts on first use
//! let handled = handle.ask(5).await?;
//! assert!(matches!(handled, Handled::Persisted { .. }));
//! # Ok(())
//! # }
//! ```

mod registry;
mod task;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::entity::{Behavior, EntityError, Handled};
use crate::journal::Journal;
use crate::snapshot::{SnapshotMetadata, SnapshotStore};
use registry::Registry;
use task::Message;

/// Settings of an [`Entities`] runtime (a builder, and `serde::Deserialize` with the field
/// names below).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct EntitiesConfig {
    /// Requests that can wait in one entity's mailbox; a sender waits for room beyond that.
    pub mailbox_capacity: usize,
    /// How long an ask waits for its reply, recovery included, in milliseconds.
    pub ask_timeout_ms: u64,
    /// An entity that received nothing for this long stops (`None`: never idles out).
    pub idle_timeout_ms: Option<u64>,
    /// At most this many entities in memory; starting one more stops the least recently used.
    pub max_entities: usize,
}

impl Default for EntitiesConfig {
    fn default() -> Self {
        EntitiesConfig {
            mailbox_capacity: 64,
            ask_timeout_ms: 10_000,
            idle_timeout_ms: Some(120_000),
            max_entities: 10_000,
        }
    }
}

impl EntitiesConfig {
    /// Sets the mailbox capacity (at least 1).
    pub fn with_mailbox_capacity(mut self, capacity: usize) -> Self {
        self.mailbox_capacity = capacity.max(1);
        self
    }

    /// Sets the ask timeout.
    pub fn with_ask_timeout(mut self, timeout: Duration) -> Self {
        self.ask_timeout_ms = duration_ms(timeout);
        self
    }

    /// Sets the idle time after which an entity stops (`None`: never).
    pub fn with_idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.idle_timeout_ms = idle.map(duration_ms);
        self
    }

    /// Sets the maximum number of entities in memory (at least 1).
    pub fn with_max_entities(mut self, max: usize) -> Self {
        self.max_entities = max.max(1);
        self
    }

    /// The ask timeout.
    pub fn ask_timeout(&self) -> Duration {
        Duration::from_millis(self.ask_timeout_ms)
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout_ms.map(Duration::from_millis)
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Counters of an [`Entities`] runtime since it was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntitiesStats {
    /// Incarnations started (each one a recovery).
    pub recoveries: u64,
    /// Entities stopped after their idle timeout.
    pub passivated: u64,
    /// Entities stopped to stay within the maximum in memory.
    pub evicted: u64,
    /// Incarnations stopped by a failure (journal, fencing, recovery).
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Stats {
    recoveries: AtomicU64,
    passivated: AtomicU64,
    evicted: AtomicU64,
    failed: AtomicU64,
}

impl Stats {
    fn recovered(&self) {
        self.recoveries.fetch_add(1, Ordering::Relaxed);
    }
    fn passivated(&self) {
        self.passivated.fetch_add(1, Ordering::Relaxed);
    }
    fn evicted(&self) {
        self.evicted.fetch_add(1, Ordering::Relaxed);
    }
    fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
    fn snapshot(&self) -> EntitiesStats {
        EntitiesStats {
            recoveries: self.recoveries.load(Ordering::Relaxed),
            passivated: self.passivated.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// What the runtime and its tasks share.
pub(crate) struct Shared<B: Behavior> {
    journal: Arc<Journal>,
    store: Arc<SnapshotStore>,
    behavior: Arc<B>,
    config: EntitiesConfig,
    registry: Mutex<Registry<Message<B>>>,
    stats: Stats,
}

impl<B: Behavior> Shared<B> {
    /// The registry (never held across an await; a poisoned lock is recovered: every
    /// registry operation leaves it consistent).
    fn registry(&self) -> MutexGuard<'_, Registry<Message<B>>> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Puts `message` in the mailbox of `persistence_id`, starting the entity if needed.
async fn deliver<B: Behavior>(
    shared: &Arc<Shared<B>>,
    persistence_id: &Arc<str>,
    mut message: Message<B>,
) -> Result<(), EntityError> {
    // A mailbox closed under a waiting sender (the entity failed) is retried once with a new
    // incarnation; a third attempt means something keeps killing the entity.
    for _ in 0..3 {
        let Some(lookup) = shared.registry().mailbox(persistence_id) else {
            return Err(EntityError::ShutDown);
        };
        if lookup.evicted.is_some() {
            shared.stats.evicted();
        }
        if let Some(spawn) = lookup.spawn {
            tokio::spawn(task::run(
                Arc::clone(shared),
                Arc::clone(persistence_id),
                spawn,
            ));
        }
        match lookup.mailbox.sender.send(message).await {
            Ok(()) => return Ok(()),
            Err(returned) => {
                message = returned.0;
                // A running slot whose task is gone (a panic in the behaviour) is forgotten.
                shared
                    .registry()
                    .finished(persistence_id, lookup.mailbox.generation);
            }
        }
    }
    Err(EntityError::Stopped {
        persistence_id: persistence_id.to_string(),
        reason: "the entity's mailbox closed three times in a row".to_string(),
    })
}

/// The runtime of one behaviour: starts entities on first use and keeps a bounded number in
/// memory. Cloning it is cheap (the clones share the entities).
pub struct Entities<B: Behavior> {
    shared: Arc<Shared<B>>,
}

impl<B: Behavior> Clone for Entities<B> {
    fn clone(&self) -> Self {
        Entities {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<B: Behavior> std::fmt::Debug for Entities<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entities")
            .field("config", &self.shared.config)
            .field("running", &self.running())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<B: Behavior> Entities<B> {
    /// A runtime for `behavior` on `journal` and `store`. Entities start on first use.
    pub fn new(
        journal: Arc<Journal>,
        store: Arc<SnapshotStore>,
        behavior: B,
        config: EntitiesConfig,
    ) -> Self {
        let registry = Registry::new(config.mailbox_capacity, config.max_entities);
        Entities {
            shared: Arc::new(Shared {
                journal,
                store,
                behavior: Arc::new(behavior),
                config,
                registry: Mutex::new(registry),
                stats: Stats::default(),
            }),
        }
    }

    /// The handle of `persistence_id` (nothing starts until its first request).
    pub fn entity(&self, persistence_id: impl Into<String>) -> EntityRef<B> {
        EntityRef {
            shared: Arc::clone(&self.shared),
            persistence_id: Arc::from(persistence_id.into()),
        }
    }

    /// Sends `command` to `persistence_id` and waits for the reply (see [`EntityRef::ask`]).
    pub async fn ask(
        &self,
        persistence_id: &str,
        command: B::Command,
    ) -> Result<Handled<B::Rejection>, EntityError> {
        self.entity(persistence_id).ask(command).await
    }

    /// The number of entities in memory (running, not stopping).
    pub fn running(&self) -> usize {
        self.shared.registry().running()
    }

    /// Whether `persistence_id` is in memory.
    pub fn is_running(&self, persistence_id: &str) -> bool {
        self.shared.registry().is_running(persistence_id)
    }

    /// The runtime's counters.
    pub fn stats(&self) -> EntitiesStats {
        self.shared.stats.snapshot()
    }

    /// The settings.
    pub fn config(&self) -> &EntitiesConfig {
        &self.shared.config
    }

    /// Stops every entity after it handled what is queued, and waits until all have ended.
    /// Later requests fail with [`EntityError::ShutDown`].
    pub async fn shutdown(&self) {
        let done = self.shared.registry().close();
        for d in done {
            let _ = d.await;
        }
    }
}

/// A cloneable, `Send` handle to one entity of an [`Entities`] runtime. It stays valid across
/// passivation and failures: each request goes to the current incarnation, starting one if
/// the entity is not in memory.
pub struct EntityRef<B: Behavior> {
    shared: Arc<Shared<B>>,
    persistence_id: Arc<str>,
}

impl<B: Behavior> Clone for EntityRef<B> {
    fn clone(&self) -> Self {
        EntityRef {
            shared: Arc::clone(&self.shared),
            persistence_id: Arc::clone(&self.persistence_id),
        }
    }
}

impl<B: Behavior> std::fmt::Debug for EntityRef<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityRef")
            .field("persistence_id", &self.persistence_id)
            .finish_non_exhaustive()
    }
}

impl<B: Behavior> EntityRef<B> {
    /// The entity's persistence id.
    pub fn persistence_id(&self) -> &str {
        &self.persistence_id
    }

    /// Sends `command` and waits for the reply: [`Handled::Persisted`] once its events are
    /// stored and applied, [`Handled::Refused`] if the behaviour refused it, or the error
    /// (see [`EntityError::must_stop`] for which errors stop the entity).
    pub async fn ask(&self, command: B::Command) -> Result<Handled<B::Rejection>, EntityError> {
        let (reply, answer) = oneshot::channel();
        self.request(Message::Command { command, reply }, answer)
            .await
    }

    /// Reads the entity's current state (after every request sent before this one).
    pub async fn state<R, F>(&self, read: F) -> Result<R, EntityError>
    where
        R: Send + 'static,
        F: FnOnce(&B::State) -> R + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let message = Message::State(Box::new(move |state: Result<&B::State, EntityError>| {
            let _ = reply.send(state.map(read));
        }));
        self.request(message, answer).await
    }

    /// Saves a snapshot now (and deletes what the snapshot policy says).
    pub async fn snapshot(&self) -> Result<SnapshotMetadata, EntityError> {
        let (reply, answer) = oneshot::channel();
        self.request(Message::Snapshot { reply }, answer).await
    }

    async fn request<T>(
        &self,
        message: Message<B>,
        answer: oneshot::Receiver<Result<T, EntityError>>,
    ) -> Result<T, EntityError> {
        let after = self.shared.config.ask_timeout();
        let exchange = async {
            deliver(&self.shared, &self.persistence_id, message).await?;
            answer.await.unwrap_or_else(|_| {
                Err(EntityError::Stopped {
                    persistence_id: self.persistence_id.to_string(),
                    reason: "the entity's task ended without replying".to_string(),
                })
            })
        };
        match tokio::time::timeout(after, exchange).await {
            Ok(result) => result,
            Err(_) => Err(EntityError::Timeout {
                persistence_id: self.persistence_id.to_string(),
                after,
            }),
        }
    }
}

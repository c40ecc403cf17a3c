//! One entity incarnation as a tokio task: wait for the previous incarnation to end, recover,
//! then handle the mailbox one message at a time, in arrival order, until the registry drops
//! the mailbox's sender (passivation, eviction, shutdown) or a failure stops the entity.
//!
//! On a failure that means the entity must stop ([`EntityError::must_stop`]) the request that
//! hit it gets the error itself, the slot is stopped, the mailbox is closed, and every request
//! still queued gets [`EntityError::Stopped`] with the reason: none of them is applied by an
//! incarnation whose state may be wrong. The next request starts a new incarnation, which
//! recovers from the journal.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::registry::Spawn;
use super::Shared;
use crate::entity::{Behavior, Entity, EntityError, Handled};
use crate::snapshot::SnapshotMetadata;

/// A reply channel of one request.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, EntityError>>;

/// A read of the state that sends its own reply (an error if the entity stopped first).
pub(crate) type ReadState<S> = Box<dyn FnOnce(Result<&S, EntityError>) + Send>;

/// A request in an entity's mailbox.
pub(crate) enum Message<B: Behavior> {
    /// Handle a command.
    Command {
        command: B::Command,
        reply: Reply<Handled<B::Rejection>>,
    },
    /// Read the state (the closure sends its own reply).
    State(ReadState<B::State>),
    /// Save a snapshot now.
    Snapshot { reply: Reply<SnapshotMetadata> },
}

impl<B: Behavior> Message<B> {
    /// Answers the request with `error` without applying it.
    fn fail(self, error: EntityError) {
        match self {
            Message::Command { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Message::State(read) => read(Err(error)),
            Message::Snapshot { reply } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// Forgets the slot when the task ends, however it ends (also by a panic in the behaviour).
struct Finished<B: Behavior> {
    shared: Arc<Shared<B>>,
    persistence_id: Arc<str>,
    generation: u64,
}

impl<B: Behavior> Drop for Finished<B> {
    fn drop(&mut self) {
        self.shared
            .registry()
            .finished(&self.persistence_id, self.generation);
    }
}

/// Runs one incarnation of `persistence_id`.
pub(crate) async fn run<B: Behavior>(
    shared: Arc<Shared<B>>,
    persistence_id: Arc<str>,
    spawn: Spawn<Message<B>>,
) {
    let Spawn {
        mut receiver,
        done,
        previous,
        generation,
    } = spawn;
    // Dropped last: the next incarnation starts only after this one has fully ended.
    let _done = done;
    let _finished = Finished {
        shared: Arc::clone(&shared),
        persistence_id: Arc::clone(&persistence_id),
        generation,
    };
    if let Some(previous) = previous {
        // Err means the previous task ended (its sender dropped): exactly what is awaited.
        let _ = previous.await;
    }
    shared.stats.recovered();
    // Boxed: the recovery's and the journal calls' futures are large, and an entity task
    // that held them inline would keep their size for its whole (mostly idle) life.
    let mut entity = match Box::pin(Entity::recover_shared(
        Arc::clone(&shared.journal),
        Arc::clone(&shared.store),
        persistence_id.to_string(),
        Arc::clone(&shared.behavior),
    ))
    .await
    {
        Ok(entity) => entity,
        Err(error) => {
            warn!(persistence_id = %persistence_id, reason = %error, "entity recovery failed");
            let reason = error.to_string();
            stop_failed(
                &shared,
                &persistence_id,
                generation,
                &mut receiver,
                Some(error),
                reason,
            )
            .await;
            return;
        }
    };
    debug!(persistence_id = %persistence_id, sequence_nr = entity.last_sequence_nr(), "entity started");
    let idle = shared.config.idle_timeout();
    let mut stopping = false;
    loop {
        let message = match idle {
            Some(idle) if !stopping => match tokio::time::timeout(idle, receiver.recv()).await {
                Ok(message) => message,
                Err(_) => {
                    // Drain what is already queued, then end (the sender is dropped).
                    if shared.registry().stop(&persistence_id, generation) {
                        shared.stats.passivated();
                        debug!(persistence_id = %persistence_id, ?idle, reason = "idle", "entity passivated");
                    }
                    stopping = true;
                    continue;
                }
            },
            _ => receiver.recv().await,
        };
        let Some(message) = message else {
            debug!(persistence_id = %persistence_id, "entity stopped");
            return;
        };
        let failure = match message {
            Message::Command { command, reply } => match Box::pin(entity.handle(command)).await {
                Err(error) if error.must_stop() => Some((error, Some(reply))),
                result => {
                    let _ = reply.send(result);
                    None
                }
            },
            Message::State(read) => {
                read(Ok(entity.state()));
                None
            }
            Message::Snapshot { reply } => {
                let _ = reply.send(Box::pin(entity.save_snapshot()).await);
                None
            }
        };
        if let Some((error, reply)) = failure {
            warn!(persistence_id = %persistence_id, reason = %error, "entity stops");
            let reason = error.to_string();
            if let Some(reply) = reply {
                let _ = reply.send(Err(error));
            }
            stop_failed(
                &shared,
                &persistence_id,
                generation,
                &mut receiver,
                None,
                reason,
            )
            .await;
            return;
        }
    }
}

/// Stops a failed incarnation: the first queued request gets `first` if given (for a failed
/// recovery, the request that started it), every other one [`EntityError::Stopped`] with
/// `reason`.
async fn stop_failed<B: Behavior>(
    shared: &Shared<B>,
    persistence_id: &str,
    generation: u64,
    receiver: &mut mpsc::Receiver<Message<B>>,
    first: Option<EntityError>,
    reason: String,
) {
    shared.registry().stop(persistence_id, generation);
    shared.stats.failed();
    // Senders waiting for room now fail and retry with a new incarnation.
    receiver.close();
    let mut first = first;
    while let Some(message) = receiver.recv().await {
        let e = first.take().unwrap_or_else(|| EntityError::Stopped {
            persistence_id: persistence_id.to_string(),
            reason: reason.clone(),
        });
        message.fail(e);
    }
}

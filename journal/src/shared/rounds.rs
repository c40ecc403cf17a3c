//! Group commit: concurrent `write` calls are gathered into rounds, and each round is
//! written in one pass ([`super::write::write_round`]): one plan, one send per partition and
//! one wait for their acknowledgements for all its calls, instead of one of each per call.
//!
//! A call takes its tickets when it is made ([`super::write::plan`]), so the order of calls
//! per id is fixed before it joins a round. It then joins the open round; the first call of
//! a round spawns the round's task, which runs once the tasks that are ready have run (their
//! calls join the same round). A round takes its calls in submission order and ends before
//! the first call that touches an id already in it: that call and those after it go to the
//! next round, which is started at once (it waits at the ids' gates behind this one).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use kafka_persistence_wire as wire;
use tokio::sync::oneshot;

use super::write::{write_round, Plan};
use super::Shared;
use crate::error::JournalError;
use crate::layout::Written;

/// A call waiting for its round.
type Call = (Plan, oneshot::Sender<Result<Written, JournalError>>);

/// The calls not yet taken by a round (see the module documentation).
#[derive(Default)]
pub(crate) struct Rounds {
    pending: Mutex<Pending>,
}

impl std::fmt::Debug for Rounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pending = self.lock();
        f.debug_struct("Rounds")
            .field("pending_calls", &pending.calls.len())
            .field("scheduled", &pending.scheduled)
            .finish()
    }
}

#[derive(Default)]
struct Pending {
    calls: Vec<Call>,
    /// A round task is spawned and has not yet taken the calls.
    scheduled: bool,
}

impl Rounds {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A vector and a flag, updated without panicking code in between.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Adds `plan` to the open round; the receiver gets the call's outcome.
pub(crate) fn submit(
    shared: &Arc<Shared>,
    plan: Plan,
) -> impl std::future::Future<Output = Result<Written, JournalError>> {
    let (tx, rx) = oneshot::channel();
    let spawn = {
        let mut pending = shared.rounds.lock();
        pending.calls.push((plan, tx));
        !std::mem::replace(&mut pending.scheduled, true)
    };
    if spawn {
        tokio::spawn(run(Arc::clone(shared)));
    }
    async move {
        // The round task ends only by answering every call; a dropped sender means the
        // runtime is shutting down.
        rx.await
            .unwrap_or(Err(JournalError::Kafka(wire::Error::Closed)))
    }
}

/// A round's task: takes the calls that fit one round and writes them.
async fn run(shared: Arc<Shared>) {
    let calls = take_round(&shared);
    let (plans, answers): (Vec<Plan>, Vec<_>) = calls.into_iter().unzip();
    let outcomes = write_round(&shared, plans).await;
    for (tx, outcome) in answers.into_iter().zip(outcomes) {
        // The caller may have given up (timeout, cancellation): its outcome is dropped.
        let _ = tx.send(outcome);
    }
}

/// Takes the pending calls up to the first one that touches an id already taken; schedules
/// the next round for the rest.
fn take_round(shared: &Arc<Shared>) -> Vec<Call> {
    let mut pending = shared.rounds.lock();
    let all = std::mem::take(&mut pending.calls);
    let cut = if all.len() <= 1 {
        all.len()
    } else {
        let mut seen: HashSet<&str, crate::hash::IdHashBuilder> = HashSet::default();
        all.iter()
            .position(|(plan, _)| !plan.insert_ids(&mut seen))
            .unwrap_or(all.len())
    };
    let mut round = all;
    let rest = round.split_off(cut);
    if rest.is_empty() {
        pending.scheduled = false;
    } else {
        pending.calls = rest;
        drop(pending);
        tokio::spawn(run(Arc::clone(shared)));
    }
    round
}

//! Per persistence id state cached by a [`crate::Journal`] in layout v1, and its only
//! mutators: [`PidEntry`] owns the id's verified log state (highest sequence number, deletion
//! mark, verified offset, checkpoints), its reservation view for pipelined writes, its writes
//! in flight, and the scans that advance the verified state ([`PidEntry::sync`] and the
//! verification of a write that landed elsewhere). Everything else reads copies.
//!
//! Lock order: `gate` (async, held while reserving offsets, syncing or deleting) before
//! `state` (sync, never held across an await). Writes decide their outcome one after another
//! in offset order through a chain of one-shot outcomes, so the verified state is only
//! advanced in log order.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) use crate::cache::IdCache;

use futures::future::{FutureExt, Shared};
use kafka_persistence_wire::Client;
use tokio::sync::oneshot;

use super::log::{scan, ScanOptions, Until, Verified};
use crate::chunk::ChunkPlan;
use crate::error::JournalError;
use crate::format::JournalRecord;
use crate::gate::{Gate, Ticket};
use crate::inflight::{Inflight, InflightWrite};
use crate::scan::Applied;

/// Whether the predecessor write landed where it was expected and was accepted.
pub(crate) type Outcome = Shared<oneshot::Receiver<bool>>;

/// The cached state of one persistence id (see the module documentation).
#[derive(Debug)]
pub(crate) struct PidEntry {
    /// The persistence id.
    pub(crate) persistence_id: String,
    /// Its journal topic.
    pub(crate) topic: String,
    /// Serializes reservations, syncs and deletions of this id, in the order they were
    /// issued (see [`Gate`]).
    pub(crate) gate: Arc<Gate>,
    state: Mutex<PidState>,
    /// Writes reserved and not yet decided; poisoned when the reservation view is wrong (a
    /// write failed or landed elsewhere, a deletion's outcome is unknown): resync when drained.
    inflight: Arc<Inflight>,
}

#[derive(Debug, Default)]
struct PidState {
    /// The topic is known to exist.
    topic_exists: bool,
    /// The topic's `max.message.bytes`, once read.
    max_message_bytes: Option<usize>,
    /// The verified log state; `None` until the first sync.
    verified: Option<Verified>,
    /// Reservation view: the offset the next write will land at, if nobody else writes.
    next_offset: i64,
    /// Reservation view: the highest sequence number including in-flight writes.
    highest: u64,
    /// The outcome of the last reserved write.
    last_outcome: Option<Outcome>,
}

/// One chunk's place in the id's log, taken by [`PidEntry::reserve`].
#[derive(Debug)]
pub(crate) struct Reservation {
    /// The offset the chunk lands at if nobody else writes the topic.
    pub(crate) expected: i64,
    /// The outcome of the write reserved before it, if any.
    pub(crate) prev: Option<Outcome>,
    /// Counts the write in flight and publishes its outcome.
    pub(crate) guard: InflightGuard,
}

impl PidEntry {
    pub(crate) fn new(persistence_id: &str, topic: String) -> Self {
        PidEntry {
            persistence_id: persistence_id.to_string(),
            topic,
            gate: Arc::new(Gate::default()),
            state: Mutex::new(PidState::default()),
            inflight: Arc::default(),
        }
    }

    /// The state (never held across an await).
    fn lock(&self) -> MutexGuard<'_, PidState> {
        // A panic while holding this lock cannot leave it inconsistent in a way that matters
        // more than losing the cache: recover the guard.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the id's topic is known to exist (without asking Kafka).
    pub(crate) fn topic_known(&self) -> bool {
        self.lock().topic_exists
    }

    /// The id's topic was created (or found to exist).
    pub(crate) fn topic_created(&self) {
        self.lock().topic_exists = true;
    }

    /// The topic's `max.message.bytes`, if read before.
    pub(crate) fn max_message_bytes(&self) -> Option<usize> {
        self.lock().max_message_bytes
    }

    /// Remembers the topic's `max.message.bytes`.
    pub(crate) fn set_max_message_bytes(&self, limit: usize) {
        self.lock().max_message_bytes = Some(limit);
    }

    /// Whether the reservation view must be read from the log before the next write (never
    /// read, or a write failed).
    pub(crate) fn needs_sync(&self) -> bool {
        self.lock().verified.is_none() || self.inflight.poisoned()
    }

    /// The highest sequence number the log is verified to hold (0 before the first sync).
    pub(crate) fn verified_highest(&self) -> u64 {
        self.lock()
            .verified
            .as_ref()
            .map_or(0, |v| v.state().highest)
    }

    /// The outcome of an operation on the log is unknown: read it again before the next write.
    pub(crate) fn poison(&self) {
        self.inflight.poison();
    }

    /// The log start moved to `log_start` (our DeleteRecords).
    pub(crate) fn log_start_moved(&self, log_start: i64) {
        if let Some(v) = self.lock().verified.as_mut() {
            v.set_log_start(log_start);
        }
    }

    /// Waits until no write of this id is in flight, then brings the verified state to the
    /// high watermark and resets the reservation view. Call with `gate` entered.
    pub(crate) async fn sync(&self, client: &Client) -> Result<Verified, JournalError> {
        self.inflight.drain().await;
        let mut verified = self
            .lock()
            .verified
            .clone()
            .unwrap_or_else(|| Verified::new(0));
        scan(
            client,
            &self.topic,
            &mut verified,
            Until::HighWatermark,
            ScanOptions::FULL,
            |_| ControlFlow::Continue(()),
        )
        .await?;
        let mut st = self.lock();
        st.topic_exists = true;
        st.next_offset = verified.state().next_offset;
        st.highest = verified.state().highest;
        st.last_outcome = None;
        st.verified = Some(verified.clone());
        drop(st);
        self.inflight.clear_poison();
        Ok(verified)
    }

    /// Whether the id's topic exists (never creates it).
    pub(crate) async fn topic_exists(&self, client: &Client) -> Result<bool, JournalError> {
        if self.topic_known() {
            return Ok(true);
        }
        let exists = client.topic_metadata(&self.topic).await?.is_some();
        if exists {
            self.topic_created();
        }
        Ok(exists)
    }

    /// The id's state as of now, including every operation of this journal on the id that
    /// took its ticket before `ticket` (taken from this entry's gate when the caller began):
    /// enters the gate, then `None` if the topic does not exist, else drains and syncs.
    pub(crate) async fn synced(
        &self,
        ticket: Ticket,
        client: &Client,
    ) -> Result<Option<Verified>, JournalError> {
        let _gate = ticket.enter().await;
        if !self.topic_exists(client).await? {
            return Ok(None);
        }
        self.sync(client).await.map(Some)
    }

    /// Plans a write on the reservation view's highest sequence number (`plan`) and reserves
    /// each planned chunk's offsets, in order. Call with `gate` entered.
    pub(crate) fn reserve(
        self: &Arc<Self>,
        plan: impl FnOnce(u64) -> ChunkPlan,
    ) -> (ChunkPlan, Vec<Reservation>) {
        let mut st = self.lock();
        let plan = plan(st.highest);
        st.highest = plan.highest;
        let mut reservations = Vec::with_capacity(plan.chunks.len());
        for c in &plan.chunks {
            let expected = st.next_offset;
            st.next_offset = st.next_offset.saturating_add(c.records.len() as i64);
            let (tx, rx) = oneshot::channel();
            let prev = st.last_outcome.replace(rx.shared());
            reservations.push(Reservation {
                expected,
                prev,
                guard: InflightGuard {
                    entry: Arc::clone(self),
                    write: self.inflight.begin(),
                    outcome: Some(tx),
                },
            });
        }
        (plan, reservations)
    }

    /// Decides a write acknowledged at `base` (its chunk's records without payloads:
    /// `stubs`), reserved at `expected` behind a predecessor that decided `prev_ok`: if it
    /// landed where reserved, right after the verified prefix, the verified state takes it
    /// without reading; otherwise the records up to it are read to learn whether the log
    /// accepted it. `None`: its records were not found.
    pub(crate) async fn settle(
        &self,
        client: &Client,
        guard: InflightGuard,
        expected: i64,
        prev_ok: bool,
        base: i64,
        stubs: &[JournalRecord],
    ) -> Result<Option<bool>, JournalError> {
        {
            let mut st = self.lock();
            if let Some(v) = st.verified.as_mut() {
                if prev_ok && base == expected && v.state().next_offset == expected {
                    for (k, stub) in stubs.iter().enumerate() {
                        v.apply(expected + k as i64, stub);
                    }
                    drop(st);
                    guard.complete(true, true);
                    return Ok(Some(true));
                }
            }
        }
        // The batch landed elsewhere (another writer, or an earlier write of ours failed):
        // read the records in between to learn whether the log accepted it.
        tracing::info!(persistence_id = %self.persistence_id, expected, landed = base, prev_ok, reason = "write landed at an unexpected offset", "verifying write against the log");
        let mut v = self
            .lock()
            .verified
            .clone()
            .unwrap_or_else(|| Verified::new(0));
        let mut accepted = None;
        let res = scan(
            client,
            &self.topic,
            &mut v,
            Until::Offset(base.saturating_add(stubs.len() as i64)),
            ScanOptions::FULL,
            |m| {
                if m.offset == base {
                    accepted = Some(matches!(m.applied, Applied::Event | Applied::Gap));
                }
                ControlFlow::Continue(())
            },
        )
        .await;
        if let Err(e) = res {
            guard.complete(false, false);
            return Err(e);
        }
        self.lock().verified = Some(v);
        guard.complete(false, false);
        Ok(accepted)
    }
}

/// Finishes an in-flight write (decrementing the count, poisoning when it failed) and
/// publishes its outcome to the next write; a write dropped (timeout or cancellation) before
/// it decided fails its outcome.
#[derive(Debug)]
pub(crate) struct InflightGuard {
    entry: Arc<PidEntry>,
    write: InflightWrite,
    outcome: Option<oneshot::Sender<bool>>,
}

impl InflightGuard {
    /// Publishes the outcome and finishes the write.
    pub(crate) fn complete(mut self, landed_as_expected: bool, ok: bool) {
        if let Some(tx) = self.outcome.take() {
            let _ = tx.send(landed_as_expected);
        }
        self.write.finish(ok);
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.outcome.take() {
            tracing::debug!(persistence_id = %self.entry.persistence_id, reason = "write dropped before its outcome was known", "poisoning cached write state");
            let _ = tx.send(false);
            self.write.finish(false);
        }
    }
}

/// The journal's [`PidEntry`]s, bounded (see [`IdCache`]).
pub(crate) type PidCache = IdCache<PidEntry>;

//! Per persistence id state cached by a [`crate::Journal`]: the verified log state, the
//! reservation view used by pipelined writes, and the lock order between them.
//!
//! Lock order: `gate` (async, held while reserving offsets, syncing or deleting) before
//! `state` (sync, never held across an await). Writes decide their outcome one after another
//! in offset order through a chain of one-shot outcomes, so the verified state is only
//! advanced in log order.

use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) use crate::cache::IdCache;

use futures::future::Shared;
use kafka_persistence_wire::Client;
use tokio::sync::{oneshot, Notify};

use super::log::{scan, ScanOptions, Until, Verified};
use crate::error::JournalError;
use crate::gate::{Gate, Ticket};

/// Whether the predecessor write landed where it was expected and was accepted.
pub(crate) type Outcome = Shared<oneshot::Receiver<bool>>;

/// The cached state of one persistence id.
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
    /// Signalled whenever an in-flight write of this id finishes.
    drained: Notify,
}

/// See [`PidEntry`].
#[derive(Debug, Default)]
pub(crate) struct PidState {
    /// The topic is known to exist.
    pub(crate) topic_exists: bool,
    /// The topic's `max.message.bytes`, once read.
    pub(crate) max_message_bytes: Option<usize>,
    /// The verified log state; `None` until the first sync.
    pub(crate) verified: Option<Verified>,
    /// Reservation view: the offset the next write will land at, if nobody else writes.
    pub(crate) next_offset: i64,
    /// Reservation view: the highest sequence number including in-flight writes.
    pub(crate) highest: u64,
    /// Writes reserved and not yet decided.
    pub(crate) inflight: usize,
    /// The reservation view is wrong (a write failed or landed elsewhere): resync when drained.
    pub(crate) poisoned: bool,
    /// The outcome of the last reserved write.
    pub(crate) last_outcome: Option<Outcome>,
}

impl PidEntry {
    pub(crate) fn new(persistence_id: &str, topic: String) -> Self {
        PidEntry {
            persistence_id: persistence_id.to_string(),
            topic,
            gate: Arc::new(Gate::default()),
            state: Mutex::new(PidState::default()),
            drained: Notify::new(),
        }
    }

    /// The state (never held across an await).
    pub(crate) fn lock(&self) -> MutexGuard<'_, PidState> {
        // A panic while holding this lock cannot leave it inconsistent in a way that matters
        // more than losing the cache: recover the guard.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until no write of this id is in flight. Call with `gate` held.
    pub(crate) async fn drain(&self) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().inflight == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Marks one in-flight write as finished.
    pub(crate) fn finish(&self, ok: bool) {
        let mut st = self.lock();
        st.inflight = st.inflight.saturating_sub(1);
        if !ok {
            st.poisoned = true;
        }
        drop(st);
        self.drained.notify_waiters();
    }

    /// Brings the verified state to the high watermark and resets the reservation view.
    /// Call with `gate` held and nothing in flight (see [`PidEntry::drain`]).
    pub(crate) async fn sync(&self, client: &Client) -> Result<Verified, JournalError> {
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
            |_| std::ops::ControlFlow::Continue(()),
        )
        .await?;
        let mut st = self.lock();
        st.topic_exists = true;
        st.next_offset = verified.state.next_offset;
        st.highest = verified.state.highest;
        st.poisoned = false;
        st.last_outcome = None;
        st.verified = Some(verified.clone());
        Ok(verified)
    }

    /// Whether the id's topic exists (never creates it).
    pub(crate) async fn topic_exists(&self, client: &Client) -> Result<bool, JournalError> {
        if self.lock().topic_exists {
            return Ok(true);
        }
        let exists = client.topic_metadata(&self.topic).await?.is_some();
        if exists {
            self.lock().topic_exists = true;
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
        self.drain().await;
        self.sync(client).await.map(Some)
    }
}

/// Decrements the in-flight count and fails the outcome if a write is dropped (timeout or
/// cancellation) before it decided.
#[derive(Debug)]
pub(crate) struct InflightGuard {
    pub(crate) entry: Arc<PidEntry>,
    pub(crate) outcome: Option<oneshot::Sender<bool>>,
}

impl InflightGuard {
    /// Publishes the outcome and finishes the write.
    pub(crate) fn complete(mut self, landed_as_expected: bool, ok: bool) {
        if let Some(tx) = self.outcome.take() {
            let _ = tx.send(landed_as_expected);
        }
        self.entry.finish(ok);
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.outcome.take() {
            tracing::debug!(persistence_id = %self.entry.persistence_id, reason = "write dropped before its outcome was known", "poisoning cached write state");
            let _ = tx.send(false);
            self.entry.finish(false);
        }
    }
}

/// The journal's [`PidEntry`]s, bounded (see [`IdCache`]).
pub(crate) type PidCache = IdCache<PidEntry>;

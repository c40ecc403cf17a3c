//! Per persistence id state cached by a [`crate::Journal`]: the verified log state, the
//! reservation view used by pipelined writes, and the lock order between them.
//!
//! Lock order: `gate` (async, held while reserving offsets, syncing or deleting) before
//! `state` (sync, never held across an await). Writes decide their outcome one after another
//! in offset order through a chain of one-shot outcomes, so the verified state is only
//! advanced in log order.

use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::Shared;
use kafka_persistence_wire::Client;
use tokio::sync::{oneshot, Notify};

use crate::error::JournalError;
use crate::gate::{Gate, Ticket};
use crate::log::{scan, ScanOptions, Until, Verified};

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

/// The journal's [`PidEntry`]s, bounded: beyond `capacity`, the least recently used entries
/// that nothing holds (no write, read or deletion in progress) are forgotten. A forgotten id
/// is read from its log again on its next use, as after a restart.
#[derive(Debug)]
pub(crate) struct PidCache {
    entries: std::collections::HashMap<String, (Arc<PidEntry>, u64)>,
    /// Bumped on every lookup; an entry's stamp is the tick of its last use.
    tick: u64,
    capacity: usize,
}

impl PidCache {
    pub(crate) fn new(capacity: usize) -> Self {
        PidCache {
            entries: std::collections::HashMap::new(),
            tick: 0,
            capacity: capacity.max(1),
        }
    }

    /// The entry of `persistence_id`, created by `make` if it is not cached.
    pub(crate) fn get_or_insert(
        &mut self,
        persistence_id: &str,
        make: impl FnOnce() -> PidEntry,
    ) -> Arc<PidEntry> {
        self.tick += 1;
        if let Some((entry, used)) = self.entries.get_mut(persistence_id) {
            *used = self.tick;
            return Arc::clone(entry);
        }
        if self.entries.len() >= self.capacity {
            self.evict();
        }
        let entry = Arc::new(make());
        self.entries
            .insert(persistence_id.to_string(), (Arc::clone(&entry), self.tick));
        entry
    }

    /// Forgets idle entries, least recently used first, down to 90% of the capacity (so the
    /// sweep runs once per tenth of the capacity of new ids, not on every one).
    fn evict(&mut self) {
        let target = self.capacity - self.capacity / 10 - 1;
        let excess = self.entries.len().saturating_sub(target);
        // Only the map holds an idle entry, and new holders must take the map's lock first.
        let mut idle: Vec<(u64, &String)> = self
            .entries
            .iter()
            .filter(|(_, (e, _))| Arc::strong_count(e) == 1)
            .map(|(k, (_, used))| (*used, k))
            .collect();
        let n = excess.min(idle.len());
        if n == 0 {
            tracing::debug!(
                cached = self.entries.len(),
                capacity = self.capacity,
                reason = "every cached id is in use",
                "id cache over capacity"
            );
            return;
        }
        if n < idle.len() {
            idle.select_nth_unstable(n - 1);
        }
        let forget: Vec<String> = idle[..n].iter().map(|(_, k)| (*k).clone()).collect();
        for k in &forget {
            self.entries.remove(k);
        }
        tracing::debug!(
            forgotten = forget.len(),
            cached = self.entries.len(),
            reason = "id cache at capacity",
            "forgetting least recently used ids"
        );
    }

    #[cfg(test)]
    fn contains(&self, persistence_id: &str) -> bool {
        self.entries.contains_key(persistence_id)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> PidEntry {
        PidEntry::new(id, format!("journal-{id}"))
    }

    #[test]
    fn least_recently_used_idle_ids_are_forgotten_first() {
        let mut cache = PidCache::new(10);
        let held = cache.get_or_insert("held", || entry("held"));
        for i in 0..9 {
            let id = format!("id{i}");
            drop(cache.get_or_insert(&id, || entry(&id)));
        }
        // Touch id0 so that it is recent.
        drop(cache.get_or_insert("id0", || entry("id0")));
        assert_eq!(cache.len(), 10);
        drop(cache.get_or_insert("new", || entry("new")));
        // Down to 90% - 1 before inserting: two forgotten, the oldest idle ones.
        assert_eq!(cache.len(), 9);
        assert!(cache.contains("held"), "an id in use is never forgotten");
        assert!(cache.contains("id0"), "recently used");
        assert!(!cache.contains("id1") && !cache.contains("id2"));
        assert!(cache.contains("id3") && cache.contains("new"));
        // The held entry is the same object as before.
        assert!(Arc::ptr_eq(
            &held,
            &cache.get_or_insert("held", || entry("held"))
        ));
    }

    #[test]
    fn ids_in_use_may_exceed_the_capacity() {
        let mut cache = PidCache::new(2);
        let a = cache.get_or_insert("a", || entry("a"));
        let b = cache.get_or_insert("b", || entry("b"));
        let c = cache.get_or_insert("c", || entry("c"));
        assert_eq!(cache.len(), 3);
        drop((a, b, c));
        drop(cache.get_or_insert("d", || entry("d")));
        assert!(cache.len() <= 2, "{}", cache.len());
        assert!(cache.contains("d"));
    }
}

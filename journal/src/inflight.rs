//! The writes of one persistence id in flight, in both layouts: how many are reserved and not
//! yet decided, whether one of them failed (the id's reservation view is then wrong and is
//! read again once drained), and a wake-up for callers waiting until none is in flight.
//!
//! A write counts from [`Inflight::begin`] until its [`InflightWrite`] is finished; a write
//! dropped before it decided (timeout, cancellation) finishes as failed, so the id's next
//! call reads the log instead of trusting the reservation view.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Inflight {
    counts: Mutex<Counts>,
    /// Signalled whenever a write finishes.
    drained: Notify,
}

#[derive(Debug, Default)]
struct Counts {
    /// Writes begun and not yet finished.
    writes: usize,
    /// A write failed or was refused since the last [`Inflight::clear_poison`].
    poisoned: bool,
}

impl Inflight {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        // Two plain fields: a panic while holding the lock cannot leave them inconsistent.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one more write in flight, of a counter held on its own (see [`begin`]).
    pub(crate) fn begin(self: &Arc<Self>) -> InflightWrite {
        begin(self)
    }

    /// Waits until no write is in flight. Call with the id's gate entered, so that no write
    /// begins meanwhile.
    pub(crate) async fn drain(&self) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.counts().writes == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Whether a write failed since the reservation view was last read from the log.
    pub(crate) fn poisoned(&self) -> bool {
        self.counts().poisoned
    }

    /// The reservation view is wrong (an operation's outcome is unknown): read it again.
    pub(crate) fn poison(&self) {
        self.counts().poisoned = true;
    }

    /// The reservation view was read from the log again (call drained, with the gate entered).
    pub(crate) fn clear_poison(&self) {
        self.counts().poisoned = false;
    }

    fn finish(&self, ok: bool) {
        {
            let mut c = self.counts();
            c.writes = c.writes.saturating_sub(1);
            if !ok {
                c.poisoned = true;
            }
        }
        self.drained.notify_waiters();
    }
}

/// What holds an [`Inflight`] inline (an id's entry: no allocation of its own); a write in
/// flight keeps the holder alive.
pub(crate) trait Tracked: std::fmt::Debug + Send + Sync + 'static {
    fn inflight(&self) -> &Inflight;
}

impl Tracked for Inflight {
    fn inflight(&self) -> &Inflight {
        self
    }
}

/// Counts one more write of `holder` in flight until the returned handle is finished or
/// dropped.
pub(crate) fn begin<T: Tracked>(holder: &Arc<T>) -> InflightWrite {
    holder.inflight().counts().writes += 1;
    let holder: Arc<dyn Tracked> = Arc::clone(holder) as Arc<dyn Tracked>;
    InflightWrite(Some(holder))
}

/// One write counted by [`begin`]; finished once, as failed if dropped unfinished.
#[derive(Debug)]
pub(crate) struct InflightWrite(Option<Arc<dyn Tracked>>);

impl InflightWrite {
    /// The write decided; `ok` false poisons the reservation view. Later calls do nothing.
    pub(crate) fn finish(&mut self, ok: bool) {
        if let Some(i) = self.0.take() {
            i.inflight().finish(ok);
        }
    }
}

impl Drop for InflightWrite {
    fn drop(&mut self) {
        self.finish(false);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn drain_waits_for_every_write_and_a_dropped_write_poisons() {
        let inflight = Arc::new(Inflight::default());
        let mut a = inflight.begin();
        let b = inflight.begin();
        let waiter = {
            let inflight = Arc::clone(&inflight);
            tokio::spawn(async move { inflight.drain().await })
        };
        a.finish(true);
        a.finish(false); // finished once: no effect
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "one write is still in flight");
        assert!(!inflight.poisoned());
        drop(b);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(inflight.poisoned(), "a write dropped undecided poisons");
        inflight.clear_poison();
        assert!(!inflight.poisoned());
        inflight.drain().await; // nothing in flight: returns at once
    }
}

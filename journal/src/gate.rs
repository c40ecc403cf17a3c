//! A first-come, first-served lock whose place in line is taken synchronously.
//!
//! Writes of one persistence id must reserve their offsets in the order they were issued.
//! An async lock orders its waiters by the moment their `lock()` future is first polled,
//! and anything awaited before that moment (topic creation, a timer, a channel that tokio's
//! cooperative budget makes return `Pending` for a while) can let a later call overtake an
//! earlier one. A [`Gate`] hands out numbered [`Ticket`]s without awaiting: the caller takes
//! its ticket at the very start of the operation and the holders enter strictly in ticket
//! order, whatever happens in between. A ticket dropped before entering gives up its place.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    /// The number the next ticket gets.
    next: u64,
    /// The ticket that may enter (or is inside).
    serving: u64,
    /// Tickets dropped before their turn came.
    abandoned: BTreeSet<u64>,
    /// Wakers of the tickets waiting to enter.
    wakers: HashMap<u64, Waker>,
}

impl GateState {
    /// Lets the next live ticket in; returns its waker, to be woken outside the lock.
    fn advance(&mut self) -> Option<Waker> {
        self.serving += 1;
        while self.abandoned.remove(&self.serving) {
            self.serving += 1;
        }
        self.wakers.remove(&self.serving)
    }
}

impl Gate {
    fn lock_state(&self) -> MutexGuard<'_, GateState> {
        // The state is a few counters updated without panicking code in between.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the next place in line of a gate held on its own (never waits).
    pub(crate) fn ticket(self: &Arc<Self>) -> Ticket {
        ticket(self)
    }
}

/// What holds a [`Gate`] inline (an id's entry: one allocation per id, not one for the entry
/// and one for its gate); tickets and guards keep the holder alive.
pub(crate) trait Gated: std::fmt::Debug + Send + Sync + 'static {
    fn gate(&self) -> &Gate;
}

impl Gated for Gate {
    fn gate(&self) -> &Gate {
        self
    }
}

/// Takes the next place in line of `holder`'s gate (never waits).
pub(crate) fn ticket<T: Gated>(holder: &Arc<T>) -> Ticket {
    let number = {
        let mut st = holder.gate().lock_state();
        let number = st.next;
        st.next += 1;
        number
    };
    let holder: Arc<dyn Gated> = Arc::clone(holder) as Arc<dyn Gated>;
    Ticket {
        gate: Some(holder),
        number,
    }
}

/// A place in a [`Gate`]'s line; dropping it gives the place up.
#[derive(Debug)]
pub(crate) struct Ticket {
    /// The gate's holder; `None` once the ticket entered (the guard releases the gate then).
    gate: Option<Arc<dyn Gated>>,
    number: u64,
}

impl Ticket {
    /// Waits until every earlier ticket has entered and left (or was given up).
    pub(crate) fn enter(self) -> Enter {
        Enter { ticket: self }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Some(gate) = self.gate.take() else {
            return;
        };
        let mut st = gate.gate().lock_state();
        st.wakers.remove(&self.number);
        let wake = if st.serving == self.number {
            st.advance()
        } else {
            st.abandoned.insert(self.number);
            None
        };
        drop(st);
        if let Some(w) = wake {
            w.wake();
        }
    }
}

/// The future of [`Ticket::enter`].
#[derive(Debug)]
pub(crate) struct Enter {
    ticket: Ticket,
}

impl Future for Enter {
    type Output = GateGuard;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<GateGuard> {
        let number = self.ticket.number;
        let Some(gate) = self.ticket.gate.as_ref() else {
            // Polled again after completing: a programming error, but not worth a panic.
            return Poll::Pending;
        };
        let mut st = gate.gate().lock_state();
        if st.serving == number {
            st.wakers.remove(&number);
            drop(st);
            let gate = self.ticket.gate.take();
            return Poll::Ready(GateGuard { gate });
        }
        match st.wakers.get_mut(&number) {
            Some(w) if w.will_wake(cx.waker()) => {}
            Some(w) => w.clone_from(cx.waker()),
            None => {
                st.wakers.insert(number, cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

/// Inside the gate; dropping it lets the next ticket in.
#[derive(Debug)]
pub(crate) struct GateGuard {
    gate: Option<Arc<dyn Gated>>,
}

impl Drop for GateGuard {
    fn drop(&mut self) {
        let Some(gate) = self.gate.take() else {
            return;
        };
        let wake = gate.gate().lock_state().advance();
        if let Some(w) = wake {
            w.wake();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn tickets_enter_in_ticket_order_whatever_the_poll_order() {
        let gate = Arc::new(Gate::default());
        let first = gate.ticket();
        let second = gate.ticket();
        let third = gate.ticket();
        let order = Arc::new(Mutex::new(Vec::new()));
        let run = |t: Ticket, n: u32| {
            let order = Arc::clone(&order);
            async move {
                let _g = t.enter().await;
                order.lock().unwrap().push(n);
                tokio::task::yield_now().await;
            }
        };
        // Polled in reverse order: still entered 1, 2, 3.
        let c = tokio::spawn(run(third, 3));
        let b = tokio::spawn(run(second, 2));
        tokio::task::yield_now().await;
        let a = tokio::spawn(run(first, 1));
        for h in [c, b, a] {
            h.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn a_dropped_ticket_gives_up_its_place() {
        let gate = Arc::new(Gate::default());
        let first = gate.ticket();
        let second = gate.ticket();
        let third = gate.ticket();
        let mut enter_third = third.enter();
        assert!((&mut enter_third).now_or_never().is_none());
        drop(second);
        assert!(
            (&mut enter_third).now_or_never().is_none(),
            "first still ahead"
        );
        let g1 = first.enter().now_or_never().expect("first may enter");
        drop(g1);
        let g3 = enter_third.now_or_never().expect("second was given up");
        drop(g3);
        // The gate is free again.
        assert!(gate.ticket().enter().now_or_never().is_some());
    }

    #[tokio::test]
    async fn dropping_the_ticket_whose_turn_it_is_wakes_the_next() {
        let gate = Arc::new(Gate::default());
        let first = gate.ticket();
        let second = gate.ticket();
        let entered = Arc::new(AtomicUsize::new(0));
        let e = Arc::clone(&entered);
        let waiter = tokio::spawn(async move {
            let _g = second.enter().await;
            e.fetch_add(1, Ordering::SeqCst);
        });
        tokio::task::yield_now().await;
        assert_eq!(entered.load(Ordering::SeqCst), 0);
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the second ticket was woken")
            .unwrap();
        assert_eq!(entered.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_cancelled_enter_gives_up_its_place() {
        let gate = Arc::new(Gate::default());
        let held = gate.ticket().enter().now_or_never().expect("free");
        let cancelled = gate.ticket();
        let last = gate.ticket();
        {
            let mut fut = cancelled.enter();
            assert!((&mut fut).now_or_never().is_none());
        } // dropped while waiting
        drop(held);
        assert!(last.enter().now_or_never().is_some());
    }
}

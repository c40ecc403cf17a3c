//! Which entities are in memory: one slot per persistence id, least-recently-used order.
//!
//! A slot is `Running` (the registry holds the mailbox's only long-lived sender) or
//! `Stopping` (the sender is dropped; the task drains what is queued and ends). Stopping an
//! entity is dropping its sender, so every request queued before the stop is still handled.
//! A new incarnation of an id that is still stopping waits for the old task's `done` signal
//! before it recovers: two incarnations of one id never write at the same time.
//!
//! Generations tell incarnations apart: a task changes its slot only while the slot is its
//! own generation.

use std::collections::{BTreeMap, HashMap};

use tokio::sync::{mpsc, oneshot};

/// A slot's mailbox sender, and the incarnation it belongs to.
pub(crate) struct Mailbox<M> {
    pub(crate) sender: mpsc::Sender<M>,
    pub(crate) generation: u64,
}

enum Slot<M> {
    Running {
        sender: mpsc::Sender<M>,
        generation: u64,
        tick: u64,
        done: oneshot::Receiver<()>,
    },
    Stopping {
        generation: u64,
        done: Option<oneshot::Receiver<()>>,
    },
}

impl<M> Slot<M> {
    fn generation(&self) -> u64 {
        match self {
            Slot::Running { generation, .. } | Slot::Stopping { generation, .. } => *generation,
        }
    }
}

/// A new incarnation to spawn: its mailbox receiver, the `done` sender it drops when it ends,
/// and the previous incarnation's `done` receiver to wait for.
pub(crate) struct Spawn<M> {
    pub(crate) receiver: mpsc::Receiver<M>,
    pub(crate) done: oneshot::Sender<()>,
    pub(crate) previous: Option<oneshot::Receiver<()>>,
    pub(crate) generation: u64,
}

/// The slots. Not thread-safe by itself: the runtime keeps it under a mutex and never holds
/// that mutex across an await.
pub(crate) struct Registry<M> {
    slots: HashMap<String, Slot<M>>,
    /// Running slots by last use: tick -> persistence id.
    lru: BTreeMap<u64, String>,
    next_tick: u64,
    next_generation: u64,
    capacity: usize,
    max_running: usize,
    /// Set by [`Registry::close`]: no new incarnation starts.
    closed: bool,
}

/// What [`Registry::mailbox`] found or made.
pub(crate) struct Lookup<M> {
    pub(crate) mailbox: Mailbox<M>,
    /// Set when a new incarnation must be spawned.
    pub(crate) spawn: Option<Spawn<M>>,
    /// The id of an entity stopped to make room (least recently used), if any.
    pub(crate) evicted: Option<String>,
}

impl<M> Registry<M> {
    pub(crate) fn new(mailbox_capacity: usize, max_running: usize) -> Self {
        Registry {
            slots: HashMap::new(),
            lru: BTreeMap::new(),
            next_tick: 0,
            next_generation: 0,
            capacity: mailbox_capacity.max(1),
            max_running: max_running.max(1),
            closed: false,
        }
    }

    /// The number of running entities.
    pub(crate) fn running(&self) -> usize {
        self.lru.len()
    }

    /// Whether `persistence_id` is running.
    pub(crate) fn is_running(&self, persistence_id: &str) -> bool {
        matches!(self.slots.get(persistence_id), Some(Slot::Running { .. }))
    }

    /// The mailbox of `persistence_id`, marking it most recently used; starts a new
    /// incarnation (stopping the least recently used entity first when full) if it is not
    /// running. `None` once the registry is closed.
    pub(crate) fn mailbox(&mut self, persistence_id: &str) -> Option<Lookup<M>> {
        if self.closed {
            return None;
        }
        let tick = self.next_tick;
        self.next_tick += 1;
        if let Some(Slot::Running {
            sender,
            generation,
            tick: last,
            ..
        }) = self.slots.get_mut(persistence_id)
        {
            let old = std::mem::replace(last, tick);
            let mailbox = Mailbox {
                sender: sender.clone(),
                generation: *generation,
            };
            if let Some(id) = self.lru.remove(&old) {
                self.lru.insert(tick, id);
            }
            return Some(Lookup {
                mailbox,
                spawn: None,
                evicted: None,
            });
        }
        let mut evicted = None;
        if self.lru.len() >= self.max_running {
            if let Some((_, id)) = self.lru.pop_first() {
                self.stop_slot(&id);
                evicted = Some(id);
            }
        }
        let previous = match self.slots.remove(persistence_id) {
            Some(Slot::Stopping { done, .. }) => done,
            Some(Slot::Running { done, .. }) => Some(done),
            None => None,
        };
        let generation = self.next_generation;
        self.next_generation += 1;
        let (sender, receiver) = mpsc::channel(self.capacity);
        let (done_tx, done_rx) = oneshot::channel();
        self.slots.insert(
            persistence_id.to_string(),
            Slot::Running {
                sender: sender.clone(),
                generation,
                tick,
                done: done_rx,
            },
        );
        self.lru.insert(tick, persistence_id.to_string());
        Some(Lookup {
            mailbox: Mailbox { sender, generation },
            spawn: Some(Spawn {
                receiver,
                done: done_tx,
                previous,
                generation,
            }),
            evicted,
        })
    }

    /// Moves a running slot to stopping (drops the registry's sender).
    fn stop_slot(&mut self, persistence_id: &str) {
        if let Some(slot) = self.slots.remove(persistence_id) {
            let stopped = match slot {
                Slot::Running {
                    generation,
                    tick,
                    done,
                    ..
                } => {
                    self.lru.remove(&tick);
                    Slot::Stopping {
                        generation,
                        done: Some(done),
                    }
                }
                stopping @ Slot::Stopping { .. } => stopping,
            };
            self.slots.insert(persistence_id.to_string(), stopped);
        }
    }

    /// Stops incarnation `generation` of `persistence_id` if it is still running; returns
    /// whether it did (the task asking for its own stop: idle or failed).
    pub(crate) fn stop(&mut self, persistence_id: &str, generation: u64) -> bool {
        match self.slots.get(persistence_id) {
            Some(Slot::Running { generation: g, .. }) if *g == generation => {
                self.stop_slot(persistence_id);
                true
            }
            _ => false,
        }
    }

    /// Incarnation `generation` of `persistence_id` ended: forgets its slot if it is still
    /// its own (a running slot whose task ended, e.g. after a panic, is forgotten too).
    pub(crate) fn finished(&mut self, persistence_id: &str, generation: u64) {
        if self
            .slots
            .get(persistence_id)
            .is_some_and(|slot| slot.generation() == generation)
        {
            if let Some(Slot::Running { tick, .. }) = self.slots.remove(persistence_id) {
                self.lru.remove(&tick);
            }
        }
    }

    /// Closes the registry (no new incarnation starts), stops every running entity and returns
    /// the `done` receivers to wait for.
    pub(crate) fn close(&mut self) -> Vec<oneshot::Receiver<()>> {
        self.closed = true;
        let ids: Vec<String> = self.lru.values().cloned().collect();
        for id in &ids {
            self.stop_slot(id);
        }
        self.slots
            .values_mut()
            .filter_map(|slot| match slot {
                Slot::Stopping { done, .. } => done.take(),
                Slot::Running { .. } => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_is_stopped_first() {
        let mut r: Registry<()> = Registry::new(4, 2);
        assert!(r.mailbox("a").expect("open").spawn.is_some());
        assert!(r.mailbox("b").expect("open").spawn.is_some());
        // "a" is used again, so "b" is the least recently used.
        assert!(r.mailbox("a").expect("open").spawn.is_none());
        let c = r.mailbox("c").expect("open");
        assert_eq!(c.evicted.as_deref(), Some("b"));
        assert_eq!(r.running(), 2);
        assert!(r.is_running("a") && r.is_running("c") && !r.is_running("b"));
        // "b" again: a new incarnation that waits for the stopping one.
        let b = r.mailbox("b").expect("open");
        let spawn = b.spawn.expect("new incarnation");
        assert!(spawn.previous.is_some());
        assert_eq!(b.evicted.as_deref(), Some("a"));
    }

    #[test]
    fn only_the_own_generation_stops_or_finishes_a_slot() {
        let mut r: Registry<()> = Registry::new(4, 10);
        let first = r.mailbox("a").expect("open").mailbox.generation;
        assert!(r.stop("a", first));
        let second = r.mailbox("a").expect("open").mailbox.generation;
        assert_ne!(first, second);
        // The old incarnation's late calls change nothing.
        assert!(!r.stop("a", first));
        r.finished("a", first);
        assert!(r.is_running("a"));
        r.finished("a", second);
        assert!(!r.is_running("a"));
        assert_eq!(r.running(), 0);
    }

    #[test]
    fn close_returns_every_done_receiver_and_starts_nothing_more() {
        let mut r: Registry<()> = Registry::new(4, 10);
        let _a = r.mailbox("a");
        let _b = r.mailbox("b");
        assert_eq!(r.close().len(), 2);
        assert_eq!(r.running(), 0);
        assert!(r.mailbox("c").is_none());
    }
}

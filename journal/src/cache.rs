//! A bounded map of per-persistence-id entries: beyond its capacity, the least recently used
//! entries that nothing holds are forgotten (and read again on their next use).

use std::sync::Arc;

/// Per-id entries, bounded: beyond `capacity`, the least recently used entries
/// that nothing holds (no write, read or deletion in progress) are forgotten. A forgotten id
/// is read from its log again on its next use, as after a restart.
#[derive(Debug)]
pub(crate) struct IdCache<T> {
    entries: std::collections::HashMap<Arc<str>, (Arc<T>, u64), crate::hash::IdHashBuilder>,
    /// Bumped on every lookup; an entry's stamp is the tick of its last use.
    tick: u64,
    capacity: usize,
}

impl<T> IdCache<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        IdCache {
            entries: std::collections::HashMap::default(),
            tick: 0,
            capacity: capacity.max(1),
        }
    }

    /// The entry of `persistence_id`, created by `make` if it is not cached (`make` is given
    /// the map's copy of the id, to share rather than copy again).
    pub(crate) fn get_or_insert(
        &mut self,
        persistence_id: &str,
        make: impl FnOnce(&Arc<str>) -> T,
    ) -> Arc<T> {
        self.tick += 1;
        if let Some((entry, used)) = self.entries.get_mut(persistence_id) {
            *used = self.tick;
            return Arc::clone(entry);
        }
        if self.entries.len() >= self.capacity {
            self.evict();
        }
        let key: Arc<str> = Arc::from(persistence_id);
        let entry = Arc::new(make(&key));
        self.entries.insert(key, (Arc::clone(&entry), self.tick));
        entry
    }

    /// Forgets idle entries, least recently used first, down to 90% of the capacity (so the
    /// sweep runs once per tenth of the capacity of new ids, not on every one).
    fn evict(&mut self) {
        let target = self.capacity - self.capacity / 10 - 1;
        let excess = self.entries.len().saturating_sub(target);
        // Only the map holds an idle entry, and new holders must take the map's lock first.
        // Stamps are unique (one tick per lookup), so the n-th smallest idle stamp bounds
        // exactly the n entries to forget.
        let mut idle: Vec<u64> = self
            .entries
            .values()
            .filter(|(e, _)| Arc::strong_count(e) == 1)
            .map(|(_, used)| *used)
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
        let (_, &mut newest_forgotten, _) = idle.select_nth_unstable(n - 1);
        self.entries
            .retain(|_, (e, used)| *used > newest_forgotten || Arc::strong_count(e) > 1);
        tracing::debug!(
            forgotten = n,
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

    fn entry(id: &str) -> String {
        format!("journal-{id}")
    }

    #[test]
    fn least_recently_used_idle_ids_are_forgotten_first() {
        let mut cache = IdCache::new(10);
        let held = cache.get_or_insert("held", |_| entry("held"));
        for i in 0..9 {
            let id = format!("id{i}");
            drop(cache.get_or_insert(&id, |_| entry(&id)));
        }
        // Touch id0 so that it is recent.
        drop(cache.get_or_insert("id0", |_| entry("id0")));
        assert_eq!(cache.len(), 10);
        drop(cache.get_or_insert("new", |_| entry("new")));
        // Down to 90% - 1 before inserting: two forgotten, the oldest idle ones.
        assert_eq!(cache.len(), 9);
        assert!(cache.contains("held"), "an id in use is never forgotten");
        assert!(cache.contains("id0"), "recently used");
        assert!(!cache.contains("id1") && !cache.contains("id2"));
        assert!(cache.contains("id3") && cache.contains("new"));
        // The held entry is the same object as before.
        assert!(Arc::ptr_eq(
            &held,
            &cache.get_or_insert("held", |_| entry("held"))
        ));
    }

    #[test]
    fn ids_in_use_may_exceed_the_capacity() {
        let mut cache = IdCache::new(2);
        let a = cache.get_or_insert("a", |_| entry("a"));
        let b = cache.get_or_insert("b", |_| entry("b"));
        let c = cache.get_or_insert("c", |_| entry("c"));
        assert_eq!(cache.len(), 3);
        drop((a, b, c));
        drop(cache.get_or_insert("d", |_| entry("d")));
        assert!(cache.len() <= 2, "{}", cache.len());
        assert!(cache.contains("d"));
    }
}

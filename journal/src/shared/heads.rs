//! The heads of one shared partition: an append-only map persistence id → [`Head`], laid out
//! for millions of mostly idle ids.
//!
//! A `HashMap<Arc<str>, Head>` costs about 187 bytes per id at a million ids: hashbrown keeps
//! at most 7/8 of its buckets full and doubles them, so right after a doubling every 90-byte
//! slot is paid about twice. Here the hash table holds only a `u32` per bucket (5 bytes with
//! its control byte) and the entries (key and head, 88 bytes) live in a vector grown by a
//! quarter at a time, so they are paid at most 1.25 times. Ids are never removed (a head
//! is the id's state, kept until the process ends), so an entry's number is stable: it names
//! the id where a key would be copied (the list of heads to store).

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::head::Head;
use crate::hash::IdHashBuilder;

/// The number of an entry: stable for the map's life.
pub(crate) type HeadId = u32;

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Heads {
    table: HashTable<HeadId>,
    entries: Vec<(Box<str>, Head)>,
    hasher: IdHashBuilder,
}

impl Heads {
    fn hash(&self, persistence_id: &str) -> u64 {
        self.hasher.hash_one(persistence_id)
    }

    /// The entry number of `persistence_id`.
    pub(crate) fn find(&self, persistence_id: &str) -> Option<HeadId> {
        let entries = &self.entries;
        self.table
            .find(self.hash(persistence_id), |&i| {
                entries[i as usize].0.as_ref() == persistence_id
            })
            .copied()
    }

    pub(crate) fn get(&self, persistence_id: &str) -> Option<&Head> {
        self.find(persistence_id)
            .map(|i| &self.entries[i as usize].1)
    }

    /// The id and head of entry `i`.
    pub(crate) fn entry_mut(&mut self, i: HeadId) -> Option<(&str, &mut Head)> {
        self.entries.get_mut(i as usize).map(|(k, h)| (&**k, h))
    }

    /// Puts `head` as `persistence_id`'s (replacing the one it had), returning its number.
    ///
    /// # Panics
    /// Never in practice: past `u32::MAX` ids in one partition the process would need
    /// hundreds of gigabytes first; the map then refuses loudly rather than alias entries.
    pub(crate) fn insert(&mut self, persistence_id: &str, head: Head) -> HeadId {
        if let Some(i) = self.find(persistence_id) {
            self.entries[i as usize].1 = head;
            return i;
        }
        self.insert_new(persistence_id, head)
    }

    /// Adds `persistence_id`, which the caller has just failed to [`Heads::find`].
    pub(crate) fn insert_new(&mut self, persistence_id: &str, head: Head) -> HeadId {
        debug_assert!(self.find(persistence_id).is_none());
        #[allow(clippy::expect_used)]
        let i = HeadId::try_from(self.entries.len()).expect("fewer than 2^32 ids per partition");
        if self.entries.len() == self.entries.capacity() {
            // Grow by a quarter (at least 16): the entries are the bulk of the memory.
            let more = (self.entries.len() / 4).max(16);
            self.entries.reserve_exact(more);
        }
        self.entries.push((Box::from(persistence_id), head));
        let hash = self.hash(persistence_id);
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.table.insert_unique(hash, i, |&j| {
            hasher.hash_one(entries[j as usize].0.as_ref())
        });
        i
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_ref())
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Head)> {
        self.entries.iter().map(|(k, h)| (k.as_ref(), h))
    }

    /// Bytes held: the table's buckets (a `u32` and a control byte each), the entries'
    /// capacity and the keys (allocator overhead not included; the heads' ranges are the
    /// caller's to count).
    pub(crate) fn bytes(&self) -> u64 {
        // hashbrown keeps at most 7/8 of its buckets full.
        let buckets = self.table.capacity() * 8 / 7;
        let table = buckets * (std::mem::size_of::<HeadId>() + 1);
        let entries = self.entries.capacity() * std::mem::size_of::<(Box<str>, Head)>();
        let keys: usize = self.entries.iter().map(|(k, _)| k.len()).sum();
        (table + entries + keys) as u64
    }
}

impl std::ops::Index<&str> for Heads {
    type Output = Head;

    #[allow(clippy::expect_used)]
    fn index(&self, persistence_id: &str) -> &Head {
        self.get(persistence_id).expect("no head for this id")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn head(highest: u64) -> Head {
        let mut h = Head::new(true);
        h.highest = highest;
        h
    }

    #[test]
    fn ids_keep_their_numbers_and_heads_as_the_map_grows() {
        let mut m = Heads::default();
        let n = 10_000u64;
        for i in 0..n {
            assert_eq!(m.insert(&format!("id-{i}"), head(i)), i as u32);
        }
        assert_eq!(m.len(), n as usize);
        for i in 0..n {
            let id = format!("id-{i}");
            assert_eq!(m.find(&id), Some(i as u32));
            assert_eq!(m.get(&id).unwrap().highest, i);
        }
        assert!(m.get("id-x").is_none());
        // replacing keeps the number
        assert_eq!(m.insert("id-7", head(70)), 7);
        assert_eq!(m["id-7"].highest, 70);
        assert_eq!(m.len(), n as usize);
        m.entry_mut(8).unwrap().1.highest = 80;
        assert_eq!(m["id-8"].highest, 80);
        assert_eq!(m.entry_mut(8).unwrap().0, "id-8");
        assert!(m.entry_mut(n as u32).is_none());
        assert_eq!(m.keys().count(), n as usize);
        assert_eq!(
            m.iter().filter(|(_, h)| h.highest >= 70).count() as u64,
            n - 70 + 2
        );
    }

    #[test]
    fn entries_grow_by_a_quarter_not_by_doubling() {
        let mut m = Heads::default();
        for i in 0..100_000 {
            m.insert(&format!("{i:08}"), head(0));
        }
        let entry = std::mem::size_of::<(Box<str>, Head)>() as u64;
        let per_id = m.bytes() / m.len() as u64;
        // entries at most 1.25x, the table's u32 buckets at most ~2.3x, the 8-byte keys
        assert!(per_id <= entry * 5 / 4 + 12 + 8, "{per_id} B per id");
        assert!(per_id >= entry + 8, "{per_id} B per id");
    }
}

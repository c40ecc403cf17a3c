//! A fast hasher for the maps keyed by persistence id (the index's heads, the id cache):
//! SipHash was a tenth of a million-id write. Multiply-rotate over 8-byte words (as FxHash),
//! seeded per process so that the layout of the maps differs between runs.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// Builds [`IdHasher`]s with this process's seed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdHashBuilder(u64);

impl Default for IdHashBuilder {
    fn default() -> Self {
        static SEED: OnceLock<u64> = OnceLock::new();
        IdHashBuilder(*SEED.get_or_init(crate::random_nonce))
    }
}

impl BuildHasher for IdHashBuilder {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.0)
    }
}

/// See the module documentation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdHasher(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl IdHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(K).rotate_left(26);
    }
}

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // A final avalanche so the low bits (the map's bucket) depend on every input bit.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn distinct_ids_spread_over_buckets() {
        let b = IdHashBuilder::default();
        let mut low = HashSet::new();
        for i in 0..10_000 {
            low.insert(b.hash_one(format!("order-{i}")) & 0xfff);
        }
        // 4,096 buckets, 10,000 keys: a random function fills 4096 * (1 - e^(-10000/4096)),
        // about 3,740 of them; a weak one (e.g. clustering on the common prefix) far fewer.
        assert!(low.len() > 3_600, "{}", low.len());
        assert_ne!(b.hash_one("ab"), b.hash_one("ba"));
        assert_ne!(b.hash_one("a"), b.hash_one("a\0"));
    }
}

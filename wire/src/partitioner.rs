//! The Java client's default partitioner for keyed records: `murmur2` (seed `0x9747b28c`) of
//! the key bytes, made positive by masking the sign bit, modulo the partition count. Using the
//! same function means a key lands on the partition every other Kafka client picks.
//!
//! [`Partitioner`] lets a producer pick partitions its own way; [`DefaultPartitioner`] is
//! murmur2 for keyed records and round-robin for records without a key.

use std::sync::atomic::{AtomicU32, Ordering};

const SEED: u32 = 0x9747_b28c;
const M: u32 = 0x5bd1_e995;
const R: u32 = 24;

/// MurmurHash2 (32-bit) as the Java client's `Utils.murmur2` computes it.
pub fn murmur2(data: &[u8]) -> i32 {
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition for `key` among `num_partitions` (Java's `toPositive(murmur2(key)) % n`).
/// Returns 0 when `num_partitions <= 0`.
pub fn murmur2_partition(key: &[u8], num_partitions: i32) -> i32 {
    if num_partitions <= 0 {
        return 0;
    }
    (murmur2(key) & 0x7fff_ffff) % num_partitions
}

/// Chooses the partition of a record that the caller did not place itself
/// ([`Producer::send_keyed`](crate::Producer::send_keyed)).
pub trait Partitioner: Send + Sync + std::fmt::Debug {
    /// The partition in `0..num_partitions` (`num_partitions >= 1`) for a record of `topic`
    /// with `key` (`None`: no key). A value outside the range is refused by the producer.
    fn partition(&self, topic: &str, key: Option<&[u8]>, num_partitions: i32) -> i32;
}

/// The Java client's choice for keyed records ([`murmur2_partition`]); records without a key
/// go round-robin over the partitions.
#[derive(Debug, Default)]
pub struct DefaultPartitioner {
    next: AtomicU32,
}

impl Partitioner for DefaultPartitioner {
    fn partition(&self, _topic: &str, key: Option<&[u8]>, num_partitions: i32) -> i32 {
        let n = num_partitions.max(1);
        match key {
            Some(k) => murmur2_partition(k, n),
            None => (self.next.fetch_add(1, Ordering::Relaxed) % n as u32) as i32,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_partitioner_hashes_keys_and_rotates_the_rest() {
        let p = DefaultPartitioner::default();
        assert_eq!(p.partition("t", Some(b"abc"), 7), 479_470_107 % 7);
        let unkeyed: Vec<i32> = (0..6).map(|_| p.partition("t", None, 3)).collect();
        assert_eq!(unkeyed, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn known_answers_from_the_java_client() {
        // The vectors of Kafka's own UtilsTest.testMurmur2.
        let cases: &[(&str, i32)] = &[
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (k, want) in cases {
            assert_eq!(murmur2(k.as_bytes()), *want, "murmur2({k:?})");
        }
    }

    #[test]
    fn partition_is_positive_modulo() {
        assert_eq!(murmur2_partition(b"foobar", 1), 0);
        // (-790332482 & 0x7fffffff) = 1357151166
        assert_eq!(murmur2_partition(b"foobar", 10), 1_357_151_166 % 10);
        assert_eq!(murmur2_partition(b"abc", 7), 479_470_107 % 7);
        assert_eq!(murmur2_partition(b"x", 0), 0);
        for n in 1..50 {
            let p = murmur2_partition(b"some key", n);
            assert!((0..n).contains(&p));
        }
    }
}

//! Layout v2's topic name, partitions and record keys.
//!
//! - Topic: `{prefix}v2.snapshots` (contains a `.`, which the v1 name encoding never
//!   produces after the prefix, so it never collides with a v1 per-id topic).
//! - Partitions: 2 × P. The index partition of an id is `murmur2(utf8(id)) mod P` (the Java
//!   client's partitioner, `toPositive(murmur2(bytes)) % P`); its chunk partition is P plus
//!   that.
//! - Index key: `'I'` (0x49), the id's UTF-8 bytes, the sequence number (8 bytes, big-endian).
//! - Chunk key: `'C'` (0x43), the id's UTF-8 bytes, the sequence number (8), the save's
//!   generation (8), the chunk index (4), all big-endian.
//!
//! Both keys end in a fixed-length suffix, so the id is everything between the tag byte and
//! the suffix: unambiguous for any UTF-8 id, including empty ones and ones holding any byte.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_persistence_wire::murmur2_partition;

/// Tag byte of an index record key.
pub(crate) const INDEX_TAG: u8 = b'I';
/// Tag byte of a chunk record key.
pub(crate) const CHUNK_TAG: u8 = b'C';
/// Bytes of an index key besides the id.
pub(crate) const INDEX_KEY_OVERHEAD: usize = 1 + 8;
/// Bytes of a chunk key besides the id.
const CHUNK_KEY_OVERHEAD: usize = 1 + 8 + 8 + 4;

/// The v2 snapshot topic under `prefix`.
pub(crate) fn topic_name(prefix: &str) -> String {
    format!("{prefix}v2.snapshots")
}

/// The index partition of `persistence_id` among `partitions` (P).
pub(crate) fn index_partition(persistence_id: &str, partitions: i32) -> i32 {
    murmur2_partition(persistence_id.as_bytes(), partitions)
}

/// The chunk partition of `persistence_id` among `partitions` (P): P + its index partition.
pub(crate) fn chunk_partition(persistence_id: &str, partitions: i32) -> i32 {
    partitions + index_partition(persistence_id, partitions)
}

/// The key of the index record of `persistence_id` at `sequence_nr`.
pub(crate) fn index_key(persistence_id: &str, sequence_nr: u64) -> Bytes {
    let mut k = BytesMut::with_capacity(INDEX_KEY_OVERHEAD + persistence_id.len());
    k.put_u8(INDEX_TAG);
    k.put_slice(persistence_id.as_bytes());
    k.put_u64(sequence_nr);
    k.freeze()
}

/// The persistence id and sequence number of an index key; `None` for any other key.
pub(crate) fn parse_index_key(key: &[u8]) -> Option<(&str, u64)> {
    let (&tag, rest) = key.split_first()?;
    if tag != INDEX_TAG || rest.len() < 8 {
        return None;
    }
    let (id, seq) = rest.split_at(rest.len() - 8);
    let seq = u64::from_be_bytes(seq.try_into().ok()?);
    Some((std::str::from_utf8(id).ok()?, seq))
}

/// The key of chunk `index` of generation `generation` of `persistence_id`'s snapshot at
/// `sequence_nr`.
pub(crate) fn chunk_key(
    persistence_id: &str,
    sequence_nr: u64,
    generation: u64,
    index: u32,
) -> Bytes {
    let mut k = BytesMut::with_capacity(CHUNK_KEY_OVERHEAD + persistence_id.len());
    k.put_u8(CHUNK_TAG);
    k.put_slice(persistence_id.as_bytes());
    k.put_u64(sequence_nr);
    k.put_u64(generation);
    k.put_u32(index);
    k.freeze()
}

/// The parts of a chunk key (id, sequence number, generation, index); `None` for any other
/// key.
#[cfg(test)]
pub(crate) fn parse_chunk_key(key: &[u8]) -> Option<(&str, u64, u64, u32)> {
    let (&tag, rest) = key.split_first()?;
    if tag != CHUNK_TAG || rest.len() < 20 {
        return None;
    }
    let (id, suffix) = rest.split_at(rest.len() - 20);
    let seq = u64::from_be_bytes(suffix[..8].try_into().ok()?);
    let generation = u64::from_be_bytes(suffix[8..16].try_into().ok()?);
    let index = u32::from_be_bytes(suffix[16..].try_into().ok()?);
    Some((std::str::from_utf8(id).ok()?, seq, generation, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_vectors() {
        assert_eq!(topic_name("snapshot-"), "snapshot-v2.snapshots");
        assert_eq!(&index_key("a", 258)[..], b"Ia\0\0\0\0\0\0\x01\x02");
        assert_eq!(
            &chunk_key("", 1, 2, 3)[..],
            b"C\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\x02\0\0\0\x03"
        );
        // The Java client's partitions for these keys (murmur2 vectors of Kafka's UtilsTest).
        assert_eq!(
            index_partition("21", 16),
            (-973_932_308_i32 & 0x7fff_ffff) % 16
        );
        assert_eq!(chunk_partition("21", 16), 16 + index_partition("21", 16));
        assert_eq!(index_partition("anything", 1), 0);
    }

    #[test]
    fn the_v2_topic_never_collides_with_a_v1_topic() {
        let v1 = crate::layout::per_id::v1_topic_name("snapshot-", "v2.snapshots");
        assert_ne!(v1, topic_name("snapshot-"));
        assert!(!v1.contains('.'));
    }

    #[test]
    fn foreign_keys_do_not_parse() {
        assert_eq!(parse_index_key(b""), None);
        assert_eq!(parse_index_key(b"I1234567"), None);
        assert_eq!(parse_index_key(&chunk_key("a", 1, 2, 3)), None);
        assert_eq!(parse_index_key(&15u64.to_be_bytes()), None);
        assert_eq!(parse_index_key(b"I\xff\0\0\0\0\0\0\0\x01"), None);
        assert_eq!(parse_chunk_key(&index_key("a", 1)), None);
        assert_eq!(parse_index_key(b"I\0\0\0\0\0\0\0\x07"), Some(("", 7)));
    }

    proptest::proptest! {
        #[test]
        fn keys_round_trip_and_are_injective(a in ".{0,30}", b in ".{0,30}", s in proptest::num::u64::ANY, t in proptest::num::u64::ANY, g in proptest::num::u64::ANY, i in proptest::num::u32::ANY) {
            let ka = index_key(&a, s);
            proptest::prop_assert_eq!(parse_index_key(&ka), Some((a.as_str(), s)));
            proptest::prop_assert_eq!(ka == index_key(&b, t), a == b && s == t);
            let ca = chunk_key(&a, s, g, i);
            proptest::prop_assert_eq!(parse_chunk_key(&ca), Some((a.as_str(), s, g, i)));
            proptest::prop_assert_eq!(ca == chunk_key(&b, t, g, i), a == b && s == t);
        }
    }
}

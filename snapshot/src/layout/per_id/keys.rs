//! Layout v1's names and keys: one compacted topic per persistence id, named by the same
//! injective encoding as the journal's topics
//! ([`kafka_persistence_wire::naming::encode_topic_name`]); index records in partition 0
//! keyed by the sequence number, chunk records in partition 1 keyed by sequence number,
//! generation and chunk index (all big-endian).

use bytes::{BufMut, Bytes, BytesMut};
#[cfg(test)]
use kafka_persistence_wire::naming::{fnv1a64, MAX_TOPIC_NAME_LEN as MAX_TOPIC_NAME};

/// The index partition (partition 0 of every v1 snapshot topic).
pub(crate) const INDEX_PARTITION: i32 = 0;
/// The chunk ("data") partition of a two-partition topic.
pub(crate) const DATA_PARTITION: i32 = 1;
/// Key length of an index record.
pub(crate) const INDEX_KEY_LEN: usize = 8;
/// Key length of a chunk record.
pub(crate) const CHUNK_KEY_LEN: usize = 20;

/// The snapshot topic of `persistence_id` under `prefix`.
pub(crate) fn topic_for(prefix: &str, persistence_id: &str) -> String {
    kafka_persistence_wire::naming::encode_topic_name(prefix, persistence_id)
}

/// The key of the index record of `sequence_nr`.
pub(crate) fn index_key(sequence_nr: u64) -> Bytes {
    Bytes::copy_from_slice(&sequence_nr.to_be_bytes())
}

/// The sequence number of an index key, `None` for any other key.
pub(crate) fn parse_index_key(key: &[u8]) -> Option<u64> {
    let arr: [u8; INDEX_KEY_LEN] = key.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

/// The key of chunk `index` of generation `generation` of the snapshot at `sequence_nr`.
pub(crate) fn chunk_key(sequence_nr: u64, generation: u64, index: u32) -> Bytes {
    let mut k = BytesMut::with_capacity(CHUNK_KEY_LEN);
    k.put_u64(sequence_nr);
    k.put_u64(generation);
    k.put_u32(index);
    k.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The same vectors the journal pins: both crates must map ids to the same names.
    #[test]
    fn pinned_vectors_match_the_journal() {
        assert_eq!(topic_for("", "a/b"), "a_2fb");
        assert_eq!(topic_for("", "a_b"), "a_5fb");
        assert_eq!(topic_for("", "a.b"), "a_2eb");
        assert_eq!(topic_for("", "ä"), "_c3_a4");
        assert_eq!(topic_for("", "a b"), "a_20b");
        assert_eq!(topic_for("snapshot-", "a:b"), "snapshot-a_3ab");
        assert_eq!(topic_for("snapshot-", "Cart-1"), "snapshot-Cart-1");
    }

    #[test]
    fn long_ids_are_truncated_with_a_pinned_hash_suffix() {
        let id = "x".repeat(300);
        let t = topic_for("snapshot-", &id);
        assert_eq!(t.len(), MAX_TOPIC_NAME);
        assert!(t.starts_with("snapshot-xxx"));
        assert_eq!(
            &t[t.len() - 18..],
            &format!("_h{:016x}", fnv1a64(id.as_bytes()))
        );
        // FNV-1a 64 reference values.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        let other = format!("{}y", "x".repeat(299));
        assert_ne!(topic_for("snapshot-", &other), t);
        // Exactly at the limit: no hash.
        let fits = "y".repeat(MAX_TOPIC_NAME - "snapshot-".len());
        assert_eq!(topic_for("snapshot-", &fits), format!("snapshot-{fits}"));
    }

    #[test]
    fn distinct_ids_get_distinct_legal_names() {
        let ids = [
            "a/b", "a:b", "a_b", "a.b", "ä", "a b", "a-b", "ab", "a_2fb", "", "_", "__",
        ];
        let mut seen = HashSet::new();
        for id in ids {
            let t = topic_for("snapshot-", id);
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{t}"
            );
            assert!(seen.insert(t.clone()), "collision for {id:?}: {t}");
        }
    }

    #[test]
    fn keys_are_big_endian_and_told_apart_by_length() {
        assert_eq!(&index_key(258)[..], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(parse_index_key(&index_key(u64::MAX)), Some(u64::MAX));
        let ck = chunk_key(1, 2, 3);
        assert_eq!(ck.len(), CHUNK_KEY_LEN);
        assert_eq!(parse_index_key(&ck), None);
        assert_eq!(
            &ck[..],
            &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3]
        );
    }

    proptest::proptest! {
        #[test]
        fn encoding_is_injective(a in ".{0,40}", b in ".{0,40}") {
            let ta = topic_for("p-", &a);
            let tb = topic_for("p-", &b);
            proptest::prop_assert_eq!(a == b, ta == tb);
            proptest::prop_assert!(ta.len() <= MAX_TOPIC_NAME);
        }
    }
}

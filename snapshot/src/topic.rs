//! Topic names: one compacted topic per persistence id, named by the same injective encoding as
//! the journal's topics ([`kafka_persistence_wire::naming::encode_topic_name`]).

#[cfg(test)]
use kafka_persistence_wire::naming::{fnv1a64, MAX_TOPIC_NAME_LEN as MAX_TOPIC_NAME};

/// The snapshot topic of `persistence_id` under `prefix`.
pub(crate) fn topic_for(prefix: &str, persistence_id: &str) -> String {
    kafka_persistence_wire::naming::encode_topic_name(prefix, persistence_id)
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

//! Topic names: one compacted topic per persistence id.
//!
//! The SAME injective encoding as the journal's topic layout (kept as a private copy so the
//! snapshot store does not depend on the journal crate): the prefix, then the persistence id
//! with every character outside `[A-Za-z0-9-]` (including `_` and `.`) written as `_` + two
//! lowercase hex digits per UTF-8 byte. The result never contains `.` (Kafka treats `.` and
//! `_` as colliding in metric names). A name longer than Kafka's 249 characters is truncated
//! and ends in `_h` + 16 hex digits of the FNV-1a hash of the whole id (`_h` cannot occur in
//! an unhashed name, because `h` is not a hex digit).

/// Kafka's maximum topic name length.
pub(crate) const MAX_TOPIC_NAME: usize = 249;
const HASH_SUFFIX_LEN: usize = 18; // "_h" + 16 hex digits

/// The snapshot topic of `persistence_id` under `prefix`.
pub(crate) fn topic_for(prefix: &str, persistence_id: &str) -> String {
    let mut name = String::with_capacity(prefix.len() + persistence_id.len());
    name.push_str(prefix);
    for &b in persistence_id.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            name.push(char::from(b));
        } else {
            name.push('_');
            name.push(hex_digit(b >> 4));
            name.push(hex_digit(b & 0x0f));
        }
    }
    if name.len() <= MAX_TOPIC_NAME {
        return name;
    }
    // Every pushed character is ASCII; only the prefix may not be. Cut at a char boundary.
    let mut keep = MAX_TOPIC_NAME.saturating_sub(HASH_SUFFIX_LEN);
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    name.truncate(keep);
    name.push_str("_h");
    name.push_str(&format!("{:016x}", fnv1a64(persistence_id.as_bytes())));
    name
}

fn hex_digit(v: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(v & 0x0f)])
}

/// FNV-1a, 64 bit: a stable hash (unlike `std`'s `DefaultHasher`).
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
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

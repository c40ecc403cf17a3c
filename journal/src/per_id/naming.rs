//! Layout v1 topic names: one single-partition topic per persistence id.
//!
//! Topic names: [`kafka_persistence_wire::naming::encode_topic_name`] of the id under the
//! prefix (injective, never `.`; names past 249 characters end in a hash of the id, and such
//! ids are recovered from the record keys). The snapshot store uses the same encoding.

use kafka_persistence_wire::naming::{
    encode_topic_name, HASH_SUFFIX_LEN, MAX_TOPIC_NAME_LEN as MAX_TOPIC_NAME,
};

/// The only partition of a journal topic in layout v1.
pub(crate) const PARTITION: i32 = 0;

/// The journal topic of `persistence_id` under `prefix`.
pub(crate) fn topic_for(prefix: &str, persistence_id: &str) -> String {
    encode_topic_name(prefix, persistence_id)
}

/// The decoded name of a journal topic under `prefix`:
/// `Some(Ok(id))` for a full name, `Some(Err(()))` for a hashed (truncated) name whose id must
/// be read from a record key, `None` if the topic is not a journal topic of this prefix.
pub(crate) fn decode_topic(prefix: &str, topic: &str) -> Option<Result<String, ()>> {
    let rest = topic.strip_prefix(prefix)?;
    if topic.len() == MAX_TOPIC_NAME && is_hashed(rest) {
        return Some(Err(()));
    }
    let bytes = rest.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(b);
            i += 1;
        } else if b == b'_' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value)?;
            let lo = bytes.get(i + 2).copied().and_then(hex_value)?;
            let v = (hi << 4) | lo;
            if v.is_ascii_alphanumeric() || v == b'-' {
                return None; // never produced by topic_for
            }
            out.push(v);
            i += 3;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok().map(Ok)
}

fn is_hashed(rest: &str) -> bool {
    rest.len() >= HASH_SUFFIX_LEN && {
        let suffix = &rest.as_bytes()[rest.len() - HASH_SUFFIX_LEN..];
        suffix.starts_with(b"_h") && suffix[2..].iter().all(|&c| hex_value(c).is_some())
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn distinct_ids_get_distinct_legal_names() {
        let ids = [
            "a/b", "a:b", "a_b", "a.b", "ä", "a b", "a-b", "ab", "a_2fb", "Cart|1", "Cart_1",
        ];
        let mut seen = HashSet::new();
        for id in ids {
            let t = topic_for("journal-", id);
            assert!(!t.contains('.'), "{t}");
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{t}"
            );
            assert!(seen.insert(t.clone()), "collision for {id}: {t}");
            assert_eq!(decode_topic("journal-", &t), Some(Ok(id.to_string())));
        }
        assert_eq!(topic_for("j-", "a_b"), "j-a_5fb");
        assert_eq!(topic_for("j-", "ä"), "j-_c3_a4");
    }

    #[test]
    fn long_ids_are_hashed_and_distinct() {
        let a = "x".repeat(300);
        let b = format!("{}y", "x".repeat(299));
        let ta = topic_for("journal-", &a);
        let tb = topic_for("journal-", &b);
        assert_eq!(ta.len(), MAX_TOPIC_NAME);
        assert_ne!(ta, tb);
        assert_eq!(decode_topic("journal-", &ta), Some(Err(())));
        let c = "x".repeat(241 - 8);
        let tc = topic_for("journal-", &c);
        assert_eq!(tc.len(), 241);
        assert_eq!(decode_topic("journal-", &tc), Some(Ok(c)));
    }

    #[test]
    fn foreign_topics_are_not_decoded() {
        assert_eq!(decode_topic("journal-", "events"), None);
        assert_eq!(decode_topic("journal-", "journal-a.b"), None);
        assert_eq!(decode_topic("journal-", "journal-_6"), None);
        assert_eq!(decode_topic("journal-", "journal-_61"), None);
    }

    proptest::proptest! {
        #[test]
        fn encoding_is_injective_and_reversible(a in ".{0,40}", b in ".{0,40}") {
            let ta = topic_for("p-", &a);
            let tb = topic_for("p-", &b);
            proptest::prop_assert_eq!(ta == tb, a == b);
            proptest::prop_assert!(ta.len() <= MAX_TOPIC_NAME);
            match decode_topic("p-", &ta) {
                Some(Ok(back)) => proptest::prop_assert_eq!(back, a.clone()),
                Some(Err(())) => proptest::prop_assert_eq!(ta.len(), MAX_TOPIC_NAME),
                None => proptest::prop_assert!(false, "undecodable {}", ta),
            }
        }
    }
}

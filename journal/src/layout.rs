//! The topic layout (v1): one single-partition topic per persistence id.
//!
//! Everything that knows how persistence ids map to topics and partitions lives here, so a
//! shared-topic layout can replace it later.
//!
//! Topic names: the prefix, then the persistence id with every character outside
//! `[A-Za-z0-9-]` (including `_` and `.`) written as `_` + two lowercase hex digits per
//! UTF-8 byte. The encoding is injective and never produces `.` (Kafka treats `.` and `_`
//! as colliding). A name longer than Kafka's 249 characters is truncated and ends in
//! `_h` + 16 hex digits of a hash of the whole id (`_h` cannot occur in an unhashed name);
//! such ids are recovered from the record keys.

/// Kafka's maximum topic name length.
pub(crate) const MAX_TOPIC_NAME: usize = 249;
/// The only partition of a journal topic in layout v1.
pub(crate) const PARTITION: i32 = 0;
const HASH_SUFFIX_LEN: usize = 18; // "_h" + 16 hex digits

/// The journal topic of `persistence_id` under `prefix`.
pub(crate) fn topic_for(prefix: &str, persistence_id: &str) -> String {
    let mut name = String::with_capacity(prefix.len() + persistence_id.len());
    name.push_str(prefix);
    for &b in persistence_id.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            name.push(b as char);
        } else {
            name.push('_');
            name.push(hex_digit(b >> 4));
            name.push(hex_digit(b & 0x0f));
        }
    }
    if name.len() <= MAX_TOPIC_NAME {
        return name;
    }
    let keep = MAX_TOPIC_NAME.saturating_sub(HASH_SUFFIX_LEN);
    // The name is ASCII, so truncating at any byte index is a char boundary.
    name.truncate(keep);
    name.push_str("_h");
    name.push_str(&format!("{:016x}", fnv1a64(persistence_id.as_bytes())));
    name
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

fn hex_digit(v: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(v & 0x0f)])
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
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

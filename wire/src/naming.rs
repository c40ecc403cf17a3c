//! Topic names: Kafka's rules for them, and an injective encoding of arbitrary keys (such as
//! persistence ids) into legal names under a prefix.
//!
//! The encoding: the prefix, then the key with every byte outside `[A-Za-z0-9-]` (including
//! `_` and `.`) written as `_` + two lowercase hex digits. It is injective and never produces
//! `.` (Kafka treats `.` and `_` as colliding in metric names). A name longer than Kafka's 249
//! characters is truncated and ends in `_h` + 16 hex digits of the FNV-1a hash of the whole
//! key (`_h` cannot occur in an unhashed name, because `h` is not a hex digit).

/// Kafka's longest legal topic name.
pub const MAX_TOPIC_NAME_LEN: usize = 249;
/// Length of the `_h` + 16 hex digits suffix of a truncated [`encode_topic_name`].
pub const HASH_SUFFIX_LEN: usize = 18;
/// The longest prefix [`topic_settings_error`] accepts (room for the encoded key).
pub const MAX_PREFIX_LEN: usize = 200;

/// Why `name` is not a legal Kafka topic name (or a legal beginning of one, with
/// `prefix_only`), or `None` if it is: ASCII letters, digits, `.`, `_` and `-`, at most
/// [`MAX_TOPIC_NAME_LEN`] characters, not empty, not `.` or `..`.
///
/// ```
/// use kafka_persistence_wire::naming::topic_name_error;
/// assert_eq!(topic_name_error("journal-", true), None);
/// assert!(topic_name_error("a/b", false).is_some());
/// ```
pub fn topic_name_error(name: &str, prefix_only: bool) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".to_owned());
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Some(format!(
            "is {} characters long (at most {MAX_TOPIC_NAME_LEN})",
            name.len()
        ));
    }
    if !prefix_only && (name == "." || name == "..") {
        return Some(format!("cannot be {name:?}"));
    }
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .map(|c| format!("contains {c:?} (only ASCII letters, digits, '.', '_' and '-')"))
}

/// What is wrong with the settings of topics created under `prefix` (one topic per key, see
/// [`encode_topic_name`]), naming the setting; `None` if they are usable.
pub fn topic_settings_error(
    prefix: &str,
    replication_factor: i16,
    max_message_bytes: Option<i32>,
) -> Option<String> {
    if let Some(e) = topic_name_error(prefix, true) {
        return Some(format!("topic_prefix {prefix:?} {e}"));
    }
    if prefix.len() > MAX_PREFIX_LEN {
        return Some(format!(
            "topic_prefix is {} characters long (at most {MAX_PREFIX_LEN})",
            prefix.len()
        ));
    }
    if replication_factor == 0 || replication_factor < -1 {
        return Some(format!(
            "replication_factor {replication_factor} (at least 1, or -1 for the broker's default)"
        ));
    }
    max_message_bytes
        .filter(|m| *m < 1024)
        .map(|m| format!("max_message_bytes {m} (at least 1024)"))
}

/// The topic name of `key` under `prefix` (see the module documentation).
pub fn encode_topic_name(prefix: &str, key: &str) -> String {
    let mut name = String::with_capacity(prefix.len() + key.len());
    name.push_str(prefix);
    for &b in key.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            name.push(char::from(b));
        } else {
            name.push('_');
            name.push(hex_digit(b >> 4));
            name.push(hex_digit(b & 0x0f));
        }
    }
    if name.len() <= MAX_TOPIC_NAME_LEN {
        return name;
    }
    // Every pushed character is ASCII; only the prefix may not be. Cut at a char boundary.
    let mut keep = MAX_TOPIC_NAME_LEN.saturating_sub(HASH_SUFFIX_LEN);
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    name.truncate(keep);
    name.push_str("_h");
    name.push_str(&format!("{:016x}", fnv1a64(key.as_bytes())));
    name
}

fn hex_digit(v: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(v & 0x0f)])
}

/// FNV-1a, 64 bit: a stable hash (unlike `std`'s `DefaultHasher`).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
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

    #[test]
    fn topic_names_follow_kafkas_rules() {
        assert_eq!(topic_name_error("journal-a_b.c", false), None);
        assert_eq!(topic_name_error(&"x".repeat(249), false), None);
        assert!(topic_name_error(&"x".repeat(250), false).is_some());
        assert!(topic_name_error("", true).is_some());
        assert!(topic_name_error("..", false).is_some());
        assert_eq!(topic_name_error("..", true), None, "a prefix may be '..'");
        assert!(topic_name_error("ä", false).is_some());
        assert!(topic_name_error("a b", false).is_some());
    }

    #[test]
    fn topic_settings_name_the_bad_setting() {
        assert_eq!(topic_settings_error("journal-", 1, None), None);
        assert_eq!(topic_settings_error("journal-", -1, Some(1024)), None);
        let bad = |p: &str, r, m| topic_settings_error(p, r, m).unwrap_or_default();
        assert!(bad("j/", 1, None).contains("topic_prefix"));
        assert!(bad(&"x".repeat(201), 1, None).contains("at most 200"));
        assert!(bad("j-", 0, None).contains("replication_factor"));
        assert!(bad("j-", 1, Some(10)).contains("max_message_bytes"));
    }
}

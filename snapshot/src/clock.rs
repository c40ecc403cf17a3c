//! Time: the wall clock in milliseconds, and the rule that assigns a save's timestamp.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The timestamp a save stores: a non-zero `requested` as given; 0 means "now", made
/// strictly greater than `last`, the highest timestamp known for the id.
pub(crate) fn assign_timestamp(requested: i64, last: Option<i64>, now: i64) -> i64 {
    if requested != 0 {
        return requested;
    }
    match last {
        Some(p) if p >= now => p.saturating_add(1),
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_now_strictly_above_the_last_and_explicit_is_kept() {
        assert_eq!(assign_timestamp(0, None, 100), 100);
        assert_eq!(assign_timestamp(0, Some(50), 100), 100);
        assert_eq!(assign_timestamp(0, Some(100), 100), 101);
        assert_eq!(assign_timestamp(0, Some(500), 100), 501);
        assert_eq!(assign_timestamp(0, Some(i64::MAX), 100), i64::MAX);
        assert_eq!(assign_timestamp(7, Some(500), 100), 7);
        assert_eq!(assign_timestamp(-3, None, 100), -3);
    }
}

//! Regex subscriptions under the classic protocol, resolved by the client as the Java client
//! does: the pattern is matched against every topic in the cluster's metadata (internal
//! topics excluded, `exclude.internal.topics=true`), the member subscribes to the matching
//! set, and the metadata is looked at again every `metadata.max.age.ms`; when the matching
//! set changes, the member rejoins the group, so a new matching topic's partitions are
//! assigned.
//!
//! Syntax: the Rust `regex` crate's, matching the whole topic name (as Java's
//! `Pattern.matcher(topic).matches()` and the testserver's KIP-848 coordinator do), which
//! shares RE2's syntax with Apache Kafka's RE2J for the consumer protocol.

use std::time::{Duration, Instant};

use regex::Regex;

use crate::error::Error;

/// A compiled subscription pattern and when the topics are next looked at.
#[derive(Debug, Clone)]
pub(crate) struct TopicPattern {
    regex: Regex,
    /// `None`: at the next poll.
    next_refresh: Option<Instant>,
}

impl TopicPattern {
    /// Compiles `pattern` (anchored at both ends); a bad regex is a configuration error.
    pub(crate) fn new(pattern: &str) -> Result<TopicPattern, Error> {
        if pattern.is_empty() {
            return Err(Error::Config("the subscription regex is empty".to_owned()));
        }
        let regex = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| Error::Config(format!("invalid subscription regex {pattern:?}: {e}")))?;
        Ok(TopicPattern {
            regex,
            next_refresh: None,
        })
    }

    /// Whether the topics should be looked at again.
    pub(crate) fn due(&self, now: Instant) -> bool {
        self.next_refresh.is_none_or(|t| now >= t)
    }

    /// The sorted names among `topics` (all non-internal topics) that match, and the next
    /// look is `max_age` from `now`.
    pub(crate) fn resolve(
        &mut self,
        topics: &[String],
        now: Instant,
        max_age: Duration,
    ) -> Vec<String> {
        self.next_refresh = Some(now + max_age);
        let mut out: Vec<String> = topics
            .iter()
            .filter(|t| self.regex.is_match(t))
            .cloned()
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_whole_name_must_match_and_results_are_sorted() {
        let mut p = TopicPattern::new("orders|events-.*").unwrap();
        let topics = names(&["events-b", "orders", "orders-x", "my-events-a", "events-a"]);
        let now = Instant::now();
        assert_eq!(
            p.resolve(&topics, now, Duration::from_secs(1)),
            names(&["events-a", "events-b", "orders"])
        );
        // An alternation is grouped before anchoring: "xorders" must not match "orders|...".
        assert!(p
            .resolve(&names(&["xorders"]), now, Duration::ZERO)
            .is_empty());
    }

    #[test]
    fn refresh_is_due_first_then_after_max_age() {
        let mut p = TopicPattern::new("t.*").unwrap();
        let now = Instant::now();
        assert!(p.due(now), "due before the first look");
        p.resolve(&[], now, Duration::from_millis(500));
        assert!(!p.due(now + Duration::from_millis(499)));
        assert!(p.due(now + Duration::from_millis(500)));
    }

    #[test]
    fn bad_patterns_are_configuration_errors() {
        for bad in ["", "(", "a{2,1}"] {
            match TopicPattern::new(bad) {
                Err(Error::Config(m)) => assert!(m.contains("regex"), "{m}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}

//! The metadata cache: brokers, the controller, and per topic its partitions' leaders.
//!
//! Refreshes happen on demand (a topic not yet cached) and after errors that mean stale
//! metadata (see [`crate::error::lookup`]'s `refresh_metadata`). Error-triggered refreshes are
//! rate limited per topic (`metadata.min.refresh.interval.ms`): a caller that asks again too
//! soon waits for the rest of the interval, so a storm of NOT_LEADER_OR_FOLLOWER answers cannot
//! become a storm of Metadata requests. Metadata requests never create topics
//! (`allow_auto_topic_creation = false`).
//!
//! A partition's leader is only replaced by information with an equal or newer leader epoch,
//! so a late answer from a lagging broker cannot move a leader back (KIP-320).

use std::collections::HashMap;
use std::time::Instant;

use kafka_protocol::messages::MetadataResponse;

/// What the cluster says about one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// Partition index.
    pub partition: i32,
    /// Node id of the leader (-1 while there is none).
    pub leader: i32,
    /// Leader epoch (-1 if the broker does not report it).
    pub leader_epoch: i32,
}

/// What the cluster says about one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// Topic name.
    pub name: String,
    /// Partitions, sorted by index.
    pub partitions: Vec<PartitionMetadata>,
}

impl TopicMetadata {
    /// Whether every partition has a leader.
    pub fn all_leaders_known(&self) -> bool {
        !self.partitions.is_empty() && self.partitions.iter().all(|p| p.leader >= 0)
    }
}

/// The state of one topic in the cache.
#[derive(Debug, Clone)]
pub(crate) enum TopicState {
    /// The topic exists.
    Known(TopicMetadata),
    /// The last refresh said the topic does not exist.
    Missing,
}

/// The cache proper (kept behind a mutex by the client).
#[derive(Debug, Default)]
pub(crate) struct MetadataCache {
    /// node id -> `host:port`
    pub(crate) brokers: HashMap<i32, String>,
    /// Node id of the controller (-1 unknown).
    pub(crate) controller: i32,
    pub(crate) topics: HashMap<String, TopicState>,
    /// When each topic was last refreshed (rate limit).
    pub(crate) refreshed_at: HashMap<String, Instant>,
    /// When the broker list was last refreshed.
    pub(crate) brokers_refreshed_at: Option<Instant>,
    /// Counts metadata requests begun and invalidations (see [`MetadataCache::begin`]).
    generation: u64,
    /// Per topic, the generation its cached state comes from: a response to a request begun
    /// earlier is stale for that topic and ignored.
    topic_generation: HashMap<String, u64>,
}

impl MetadataCache {
    /// Call when a Metadata request is about to be sent; pass the result to
    /// [`MetadataCache::apply_as_of`] with its response. Responses can arrive out of order
    /// (several requests in flight, on several connections): one begun before a topic was
    /// created, deleted or invalidated must not overwrite what was learnt since.
    pub(crate) fn begin(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// Merges a Metadata response of a request begun now. `requested` lists the topics asked
    /// for (`None` = all).
    #[cfg(test)]
    pub(crate) fn apply(&mut self, resp: &MetadataResponse, requested: Option<&[String]>) {
        let generation = self.begin();
        self.apply_as_of(resp, requested, generation);
    }

    /// Whether a response of `generation` may set `topic`'s state (and records it did).
    fn fresh_for(&mut self, topic: &str, generation: u64) -> bool {
        match self.topic_generation.get_mut(topic) {
            Some(g) if *g > generation => false,
            Some(g) => {
                *g = generation;
                true
            }
            None => {
                self.topic_generation.insert(topic.to_owned(), generation);
                true
            }
        }
    }

    /// Merges a Metadata response to the request begun as `generation` (see
    /// [`MetadataCache::begin`]). `requested` lists the topics asked for (`None` = all).
    pub(crate) fn apply_as_of(
        &mut self,
        resp: &MetadataResponse,
        requested: Option<&[String]>,
        generation: u64,
    ) {
        let now = Instant::now();
        if !resp.brokers.is_empty() {
            self.brokers = resp
                .brokers
                .iter()
                .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
                .collect();
        }
        self.controller = resp.controller_id.0;
        self.brokers_refreshed_at = Some(now);
        let mut seen: Vec<&str> = Vec::new();
        for t in &resp.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.as_str()) else {
                continue;
            };
            seen.push(name);
            if !self.fresh_for(name, generation) {
                continue;
            }
            self.refreshed_at.insert(name.to_owned(), now);
            if t.error_code == crate::error::ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                || (t.error_code == 0 && t.partitions.is_empty())
            {
                self.topics.insert(name.to_owned(), TopicState::Missing);
                continue;
            }
            if t.error_code != 0 && t.partitions.is_empty() {
                // e.g. LEADER_NOT_AVAILABLE right after creation: keep what we had.
                continue;
            }
            let mut parts: Vec<PartitionMetadata> = t
                .partitions
                .iter()
                .map(|p| PartitionMetadata {
                    partition: p.partition_index,
                    leader: if p.error_code == crate::error::ErrorCode::LEADER_NOT_AVAILABLE {
                        -1
                    } else {
                        p.leader_id.0
                    },
                    leader_epoch: p.leader_epoch,
                })
                .collect();
            parts.sort_by_key(|p| p.partition);
            parts.dedup_by_key(|p| p.partition);
            if let Some(TopicState::Known(old)) = self.topics.get(name) {
                for p in parts.iter_mut() {
                    if let Some(o) = old.partitions.iter().find(|o| o.partition == p.partition) {
                        if o.leader_epoch > p.leader_epoch && p.leader_epoch >= 0 {
                            *p = o.clone();
                        }
                    }
                }
            }
            self.topics.insert(
                name.to_owned(),
                TopicState::Known(TopicMetadata {
                    name: name.to_owned(),
                    partitions: parts,
                }),
            );
        }
        if let Some(req) = requested {
            for r in req {
                if !seen.contains(&r.as_str()) && self.fresh_for(r, generation) {
                    self.topics.insert(r.clone(), TopicState::Missing);
                    self.refreshed_at.insert(r.clone(), now);
                }
            }
        }
    }

    /// Applies a KIP-951 leader hint (from a Produce or Fetch error response) if it is newer.
    pub(crate) fn apply_leader_hint(
        &mut self,
        topic: &str,
        partition: i32,
        leader: i32,
        epoch: i32,
    ) -> bool {
        if leader < 0 || !self.brokers.contains_key(&leader) {
            return false;
        }
        if let Some(TopicState::Known(t)) = self.topics.get_mut(topic) {
            if let Some(p) = t.partitions.iter_mut().find(|p| p.partition == partition) {
                if epoch > p.leader_epoch {
                    p.leader = leader;
                    p.leader_epoch = epoch;
                    return true;
                }
            }
        }
        false
    }

    /// The leader of a partition, if cached: `Ok(Some(node))`, `Ok(None)` while leaderless,
    /// `Err(true)` if the topic/partition is known not to exist, `Err(false)` if not cached.
    /// A `Missing` entry older than `missing_ttl` counts as not cached (another client may
    /// have created the topic since).
    pub(crate) fn leader(
        &self,
        topic: &str,
        partition: i32,
        missing_ttl: std::time::Duration,
    ) -> Result<Option<i32>, bool> {
        match self.state(topic, missing_ttl) {
            Some(TopicState::Known(t)) => {
                match t.partitions.iter().find(|p| p.partition == partition) {
                    Some(p) if p.leader >= 0 => Ok(Some(p.leader)),
                    Some(_) => Ok(None),
                    None => Err(true),
                }
            }
            Some(TopicState::Missing) => Err(true),
            None => Err(false),
        }
    }

    /// The cached state of a topic; a `Missing` entry older than `missing_ttl` is `None`.
    pub(crate) fn state(
        &self,
        topic: &str,
        missing_ttl: std::time::Duration,
    ) -> Option<&TopicState> {
        match self.topics.get(topic) {
            Some(TopicState::Missing) => {
                let fresh = self
                    .refreshed_at
                    .get(topic)
                    .is_some_and(|t| t.elapsed() < missing_ttl);
                if fresh {
                    Some(&TopicState::Missing)
                } else {
                    None
                }
            }
            other => other,
        }
    }

    /// Marks a topic stale so that the next lookup refreshes it.
    pub(crate) fn invalidate(&mut self, topic: &str) {
        self.topics.remove(topic);
        // Responses to requests begun before now are stale for this topic.
        let generation = self.begin();
        self.topic_generation.insert(topic.to_owned(), generation);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn resp(leader: i32, epoch: i32) -> MetadataResponse {
        MetadataResponse::default()
            .with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_static_str("h"))
                    .with_port(1),
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(2))
                    .with_host(StrBytes::from_static_str("h"))
                    .with_port(2),
            ])
            .with_topics(vec![MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                .with_partitions(vec![MetadataResponsePartition::default()
                    .with_partition_index(0)
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch)])])
    }

    #[test]
    fn older_epoch_does_not_move_leader_back() {
        let mut c = MetadataCache::default();
        c.apply(&resp(1, 5), Some(&["t".to_owned(), "gone".to_owned()]));
        let ttl = std::time::Duration::from_secs(60);
        assert_eq!(c.leader("t", 0, ttl), Ok(Some(1)));
        assert_eq!(c.leader("t", 1, ttl), Err(true));
        assert_eq!(c.leader("gone", 0, ttl), Err(true));
        assert_eq!(
            c.leader("gone", 0, std::time::Duration::ZERO),
            Err(false),
            "missing expires"
        );
        assert_eq!(c.leader("other", 0, ttl), Err(false));
        c.apply(&resp(2, 4), None);
        assert_eq!(c.leader("t", 0, ttl), Ok(Some(1)));
        c.apply(&resp(2, 6), None);
        assert_eq!(c.leader("t", 0, ttl), Ok(Some(2)));
        assert!(c.apply_leader_hint("t", 0, 1, 7));
        assert_eq!(c.leader("t", 0, ttl), Ok(Some(1)));
        assert!(!c.apply_leader_hint("t", 0, 2, 7));
        assert!(!c.apply_leader_hint("t", 0, 9, 8), "unknown broker ignored");
        assert_eq!(c.brokers.get(&2).map(String::as_str), Some("h:2"));
    }

    /// A response to a request begun before the topic was created (it says "no such topic")
    /// arrives after the topic's creation invalidated the cache: it must not make the topic
    /// missing again (seen as "unknown topic" failures of the first sends to a new topic).
    #[test]
    fn a_stale_response_does_not_undo_a_newer_state() {
        let ttl = std::time::Duration::from_secs(60);
        let mut c = MetadataCache::default();
        let asked = ["t".to_owned()];
        let before_creation = c.begin();
        c.invalidate("t"); // created meanwhile
        let after_creation = c.begin();
        c.apply_as_of(&resp(1, 5), Some(&asked), after_creation);
        assert_eq!(c.leader("t", 0, ttl), Ok(Some(1)));
        c.apply_as_of(&MetadataResponse::default(), Some(&asked), before_creation);
        assert_eq!(
            c.leader("t", 0, ttl),
            Ok(Some(1)),
            "stale 'missing' ignored"
        );
        // Out-of-order responses to two requests: the older is ignored for the topic.
        let older = c.begin();
        let newer = c.begin();
        c.apply_as_of(&resp(2, 9), Some(&asked), newer);
        c.apply_as_of(&MetadataResponse::default(), Some(&asked), older);
        assert_eq!(c.leader("t", 0, ttl), Ok(Some(2)));
        // A newer response still applies, also a "missing" one (the topic was deleted).
        let later = c.begin();
        c.apply_as_of(&MetadataResponse::default(), Some(&asked), later);
        assert_eq!(c.leader("t", 0, ttl), Err(true));
    }
}

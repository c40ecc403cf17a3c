//! Client-side partition assignors of the classic group protocol, as pure functions, and the
//! `consumer` protocol's embedded formats (ConsumerProtocolSubscription / Assignment).
//!
//! The group leader decodes every member's subscription, runs the assignor the coordinator
//! chose, and hands each member its partitions in SyncGroup. Members are ordered as the Java
//! client orders them (`group.instance.id` if set, else member id), so a mixed group of Java
//! and Rust members computes the same range and round-robin assignments.
//!
//! - `range`: per topic, consecutive partition ranges; the first `partitions % members`
//!   members get one more (Java `RangeAssignor`).
//! - `roundrobin`: every subscribed partition, sorted, dealt round the members subscribed to
//!   its topic (Java `RoundRobinAssignor`).
//! - `cooperative-sticky`: keeps each member's owned partitions while the member stays within
//!   its balanced quota, deals the rest to the least loaded subscribed member, and (the
//!   cooperative part, KIP-429) withholds every partition that changes owner: its old owner
//!   revokes it first and rejoins, and the follow-up rebalance hands it over.
//!   Skipped: the Java assignor's multi-round balancing for members with unequal
//!   subscriptions (ours is greedy: balanced for equal subscriptions, fair but not optimal
//!   otherwise) and rack awareness.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{consumer_protocol_assignment, consumer_protocol_subscription};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::error::Error;
use crate::protocol::ProtocolError;

/// A topic partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`/`partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// The assignment strategies this client implements (`partition.assignment.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    /// `range` (the Java client's first default).
    Range,
    /// `roundrobin`.
    RoundRobin,
    /// `cooperative-sticky` (incremental rebalances, KIP-429).
    CooperativeSticky,
}

impl Assignor {
    /// The protocol name in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The assignor of a protocol name.
    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "range" => Some(Assignor::Range),
            "roundrobin" => Some(Assignor::RoundRobin),
            "cooperative-sticky" => Some(Assignor::CooperativeSticky),
            _ => None,
        }
    }

    /// Whether members keep their partitions during a rebalance (only revoking what moves).
    pub fn is_cooperative(self) -> bool {
        self == Assignor::CooperativeSticky
    }

    /// Runs the assignor: member id -> partitions.
    pub fn assign(
        self,
        members: &[MemberSubscription],
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        match self {
            Assignor::Range => range(members, partitions),
            Assignor::RoundRobin => round_robin(members, partitions),
            Assignor::CooperativeSticky => cooperative_sticky(members, partitions),
        }
    }
}

/// One member's subscription as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberSubscription {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` (static membership).
    pub instance_id: Option<String>,
    /// Subscribed topics.
    pub topics: Vec<String>,
    /// Partitions the member owns now (cooperative protocol).
    pub owned: Vec<TopicPartition>,
    /// The generation in which it got them (-1 unknown).
    pub generation: i32,
}

/// Members in the Java client's order (instance id if any, else member id).
fn ordered(members: &[MemberSubscription]) -> Vec<&MemberSubscription> {
    let mut v: Vec<&MemberSubscription> = members.iter().collect();
    v.sort_by(|a, b| {
        let ka = a.instance_id.as_deref().unwrap_or(&a.member_id);
        let kb = b.instance_id.as_deref().unwrap_or(&b.member_id);
        ka.cmp(kb).then_with(|| a.member_id.cmp(&b.member_id))
    });
    v
}

fn empty_result(members: &[MemberSubscription]) -> BTreeMap<String, Vec<TopicPartition>> {
    members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect()
}

/// Java's `RangeAssignor`.
pub fn range(
    members: &[MemberSubscription],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out = empty_result(members);
    let members = ordered(members);
    for (topic, &count) in partitions {
        let subs: Vec<&&MemberSubscription> = members
            .iter()
            .filter(|m| m.topics.iter().any(|t| t == topic))
            .collect();
        if subs.is_empty() || count <= 0 {
            continue;
        }
        let n = subs.len() as i32;
        let (per, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, m) in subs.iter().enumerate() {
            let take = per + i32::from((i as i32) < extra);
            let list = out.entry(m.member_id.clone()).or_default();
            list.extend((next..next + take).map(|p| TopicPartition::new(topic.clone(), p)));
            next += take;
        }
    }
    out
}

/// Java's `RoundRobinAssignor`.
pub fn round_robin(
    members: &[MemberSubscription],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out = empty_result(members);
    let members = ordered(members);
    if members.is_empty() {
        return out;
    }
    let mut cursor = 0usize;
    for (topic, &count) in partitions {
        if !members.iter().any(|m| m.topics.iter().any(|t| t == topic)) {
            continue;
        }
        for p in 0..count.max(0) {
            // The next member (cyclically) subscribed to the topic.
            loop {
                let m = members[cursor % members.len()];
                cursor += 1;
                if m.topics.iter().any(|t| t == topic) {
                    out.entry(m.member_id.clone())
                        .or_default()
                        .push(TopicPartition::new(topic.clone(), p));
                    break;
                }
            }
        }
    }
    out
}

/// Sticky with balanced quotas, then the cooperative adjustment (see the module docs).
pub fn cooperative_sticky(
    members: &[MemberSubscription],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out = empty_result(members);
    let ordered = ordered(members);
    if ordered.is_empty() {
        return out;
    }
    let subscribed = |m: &MemberSubscription, t: &str| m.topics.iter().any(|x| x == t);
    let all: BTreeSet<TopicPartition> = partitions
        .iter()
        .filter(|(t, _)| ordered.iter().any(|m| subscribed(m, t)))
        .flat_map(|(t, &n)| (0..n.max(0)).map(move |p| TopicPartition::new(t.clone(), p)))
        .collect();
    // Previous owner of each partition; a partition claimed twice goes to the claim of the
    // highest generation (the other claim is stale).
    let mut owner: HashMap<&TopicPartition, (&str, i32)> = HashMap::new();
    for m in &ordered {
        for tp in &m.owned {
            if !all.contains(tp) || !subscribed(m, &tp.topic) {
                continue;
            }
            match owner.get(tp) {
                Some((_, g)) if *g >= m.generation => {}
                _ => {
                    owner.insert(tp, (m.member_id.as_str(), m.generation));
                }
            }
        }
    }
    let total = all.len();
    let n = ordered.len();
    let (floor, extra) = (total / n, total % n);
    // Members allowed to keep floor+1: the first `extra` that own more than floor.
    let mut ceil_slots = extra;
    let mut assigned: BTreeSet<TopicPartition> = BTreeSet::new();
    for m in &ordered {
        let mut keep: Vec<TopicPartition> = m
            .owned
            .iter()
            .filter(|tp| owner.get(tp).is_some_and(|(id, _)| *id == m.member_id))
            .cloned()
            .collect();
        keep.sort();
        keep.dedup();
        let quota = if keep.len() > floor && ceil_slots > 0 {
            ceil_slots -= 1;
            floor + 1
        } else {
            floor
        };
        keep.truncate(quota);
        assigned.extend(keep.iter().cloned());
        out.insert(m.member_id.clone(), keep);
    }
    // Deal the rest to the least loaded subscribed member (ties: member order).
    for tp in all.iter().filter(|tp| !assigned.contains(*tp)) {
        let best = ordered
            .iter()
            .filter(|m| subscribed(m, &tp.topic))
            .min_by_key(|m| out.get(&m.member_id).map_or(0, Vec::len));
        if let Some(m) = best {
            out.entry(m.member_id.clone()).or_default().push(tp.clone());
        }
    }
    // Cooperative: a partition that changes owner is withheld this round.
    for (member, list) in out.iter_mut() {
        list.retain(|tp| owner.get(tp).is_none_or(|(id, _)| id == member));
        list.sort();
    }
    out
}

/// The subscription version we write (v2: owned partitions and generation).
const SUBSCRIPTION_VERSION: i16 = 2;
/// The assignment version we write.
const ASSIGNMENT_VERSION: i16 = 1;
/// Newest versions `kafka-protocol` knows; newer ones are read as these (their fields are a
/// superset, as the consumer protocol requires).
const SUBSCRIPTION_MAX: i16 = 3;
const ASSIGNMENT_MAX: i16 = 3;

fn malformed(what: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Protocol(ProtocolError::Decode {
        what,
        message: format!("{e:#}"),
    })
}

fn encode_failed(what: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Protocol(ProtocolError::Encode {
        what,
        message: format!("{e:#}"),
    })
}

/// Encodes our subscription metadata for JoinGroup.
pub fn encode_subscription(
    topics: &[String],
    owned: &[TopicPartition],
    generation: i32,
) -> Result<Bytes, Error> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in owned {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    let s = ConsumerProtocolSubscription::default()
        .with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        )
        .with_owned_partitions(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    consumer_protocol_subscription::TopicPartition::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_owned())))
                        .with_partitions(ps)
                })
                .collect(),
        )
        .with_generation_id(generation);
    let mut buf = BytesMut::new();
    buf.put_i16(SUBSCRIPTION_VERSION);
    s.encode(&mut buf, SUBSCRIPTION_VERSION)
        .map_err(|e| encode_failed("subscription", e))?;
    Ok(buf.freeze())
}

/// Decodes a member's subscription metadata (from the JoinGroup response, untrusted).
pub fn decode_subscription(
    member_id: &str,
    instance_id: Option<String>,
    mut data: Bytes,
) -> Result<MemberSubscription, Error> {
    if data.remaining() < 2 {
        return Err(malformed("subscription", "shorter than its version"));
    }
    let version = data.get_i16();
    if version < 0 {
        return Err(malformed("subscription", format_args!("version {version}")));
    }
    let s = ConsumerProtocolSubscription::decode(&mut data, version.min(SUBSCRIPTION_MAX))
        .map_err(|e| malformed("subscription", e))?;
    let owned = s
        .owned_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| TopicPartition::new(t.topic.0.to_string(), *p))
        })
        .collect();
    Ok(MemberSubscription {
        member_id: member_id.to_owned(),
        instance_id,
        topics: s.topics.iter().map(|t| t.to_string()).collect(),
        owned,
        generation: if version >= 2 { s.generation_id } else { -1 },
    })
}

/// Encodes one member's assignment for SyncGroup.
pub fn encode_assignment(partitions: &[TopicPartition]) -> Result<Bytes, Error> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                consumer_protocol_assignment::TopicPartition::default()
                    .with_topic(TopicName(StrBytes::from_string(t.to_owned())))
                    .with_partitions(ps)
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(ASSIGNMENT_VERSION);
    a.encode(&mut buf, ASSIGNMENT_VERSION)
        .map_err(|e| encode_failed("assignment", e))?;
    Ok(buf.freeze())
}

/// Decodes our assignment from the SyncGroup response (untrusted). Empty bytes are an empty
/// assignment (what a coordinator sends a member the leader gave nothing).
pub fn decode_assignment(mut data: Bytes) -> Result<Vec<TopicPartition>, Error> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    if data.remaining() < 2 {
        return Err(malformed("assignment", "shorter than its version"));
    }
    let version = data.get_i16();
    if version < 0 {
        return Err(malformed("assignment", format_args!("version {version}")));
    }
    let a = ConsumerProtocolAssignment::decode(&mut data, version.min(ASSIGNMENT_MAX))
        .map_err(|e| malformed("assignment", e))?;
    let mut out: Vec<TopicPartition> = a
        .assigned_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| TopicPartition::new(t.topic.0.to_string(), *p))
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn member(id: &str, topics: &[&str], owned: &[(&str, i32)]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.to_owned(),
            instance_id: None,
            topics: topics.iter().map(|t| t.to_string()).collect(),
            owned: owned
                .iter()
                .map(|(t, p)| TopicPartition::new(*t, *p))
                .collect(),
            generation: 1,
        }
    }

    fn parts(list: &[(&str, i32)]) -> BTreeMap<String, i32> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn show(r: &BTreeMap<String, Vec<TopicPartition>>) -> Vec<(String, Vec<String>)> {
        r.iter()
            .map(|(m, l)| (m.clone(), l.iter().map(ToString::to_string).collect()))
            .collect()
    }

    fn want(rows: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        rows.iter()
            .map(|(m, l)| (m.to_string(), l.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn range_table() {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            &str,
            Vec<MemberSubscription>,
            BTreeMap<String, i32>,
            Vec<(String, Vec<String>)>,
        )> = vec![
            (
                "uneven: first members take the extra",
                vec![member("a", &["t"], &[]), member("b", &["t"], &[])],
                parts(&[("t", 3)]),
                want(&[("a", &["t/0", "t/1"]), ("b", &["t/2"])]),
            ),
            (
                "per topic, so two topics of 1 both go to the first",
                vec![member("a", &["t", "u"], &[]), member("b", &["t", "u"], &[])],
                parts(&[("t", 1), ("u", 1)]),
                want(&[("a", &["t/0", "u/0"]), ("b", &[])]),
            ),
            (
                "only subscribers of a topic share it",
                vec![member("a", &["t"], &[]), member("b", &["u"], &[])],
                parts(&[("t", 2), ("u", 2)]),
                want(&[("a", &["t/0", "t/1"]), ("b", &["u/0", "u/1"])]),
            ),
            (
                "more members than partitions",
                vec![
                    member("c", &["t"], &[]),
                    member("a", &["t"], &[]),
                    member("b", &["t"], &[]),
                ],
                parts(&[("t", 2)]),
                want(&[("a", &["t/0"]), ("b", &["t/1"]), ("c", &[])]),
            ),
            ("no members", vec![], parts(&[("t", 2)]), want(&[])),
        ];
        for (name, members, p, expected) in rows {
            assert_eq!(show(&range(&members, &p)), expected, "{name}");
        }
    }

    #[test]
    fn range_orders_static_members_by_instance_id() {
        let mut a = member("a", &["t"], &[]);
        let mut b = member("b", &["t"], &[]);
        a.instance_id = Some("z".into());
        b.instance_id = Some("y".into());
        let r = range(&[a, b], &parts(&[("t", 2)]));
        assert_eq!(show(&r), want(&[("a", &["t/1"]), ("b", &["t/0"])]));
    }

    #[test]
    fn round_robin_table() {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            &str,
            Vec<MemberSubscription>,
            BTreeMap<String, i32>,
            Vec<(String, Vec<String>)>,
        )> = vec![
            (
                "dealt across topics",
                vec![member("a", &["t", "u"], &[]), member("b", &["t", "u"], &[])],
                parts(&[("t", 1), ("u", 1)]),
                want(&[("a", &["t/0"]), ("b", &["u/0"])]),
            ),
            (
                "three partitions, two members",
                vec![member("a", &["t"], &[]), member("b", &["t"], &[])],
                parts(&[("t", 3)]),
                want(&[("a", &["t/0", "t/2"]), ("b", &["t/1"])]),
            ),
            (
                "skips members not subscribed",
                vec![
                    member("a", &["t"], &[]),
                    member("b", &["u"], &[]),
                    member("c", &["t"], &[]),
                ],
                parts(&[("t", 3), ("u", 1)]),
                want(&[("a", &["t/0", "t/2"]), ("b", &["u/0"]), ("c", &["t/1"])]),
            ),
        ];
        for (name, members, p, expected) in rows {
            assert_eq!(show(&round_robin(&members, &p)), expected, "{name}");
        }
    }

    #[test]
    fn cooperative_sticky_table() {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            &str,
            Vec<MemberSubscription>,
            BTreeMap<String, i32>,
            Vec<(String, Vec<String>)>,
        )> = vec![
            (
                "first assignment is balanced",
                vec![
                    member("a", &["t"], &[]),
                    member("b", &["t"], &[]),
                    member("c", &["t"], &[]),
                ],
                parts(&[("t", 6)]),
                want(&[
                    ("a", &["t/0", "t/3"]),
                    ("b", &["t/1", "t/4"]),
                    ("c", &["t/2", "t/5"]),
                ]),
            ),
            (
                "a joiner gets nothing that is still owned: the owner revokes first",
                vec![
                    member("a", &["t"], &[("t", 0), ("t", 1), ("t", 2)]),
                    member("b", &["t"], &[("t", 3), ("t", 4), ("t", 5)]),
                    member("c", &["t"], &[]),
                ],
                parts(&[("t", 6)]),
                want(&[("a", &["t/0", "t/1"]), ("b", &["t/3", "t/4"]), ("c", &[])]),
            ),
            (
                "the follow-up round hands the revoked partitions over",
                vec![
                    member("a", &["t"], &[("t", 0), ("t", 1)]),
                    member("b", &["t"], &[("t", 3), ("t", 4)]),
                    member("c", &["t"], &[]),
                ],
                parts(&[("t", 6)]),
                want(&[
                    ("a", &["t/0", "t/1"]),
                    ("b", &["t/3", "t/4"]),
                    ("c", &["t/2", "t/5"]),
                ]),
            ),
            (
                "a leaver's partitions go to the others, who keep theirs",
                vec![
                    member("a", &["t"], &[("t", 0), ("t", 3)]),
                    member("c", &["t"], &[("t", 2), ("t", 5)]),
                ],
                parts(&[("t", 6)]),
                want(&[("a", &["t/0", "t/1", "t/3"]), ("c", &["t/2", "t/4", "t/5"])]),
            ),
            (
                "partitions of deleted topics are dropped",
                vec![member("a", &["t", "gone"], &[("gone", 0), ("t", 0)])],
                parts(&[("t", 1)]),
                want(&[("a", &["t/0"])]),
            ),
        ];
        for (name, members, p, expected) in rows {
            assert_eq!(show(&cooperative_sticky(&members, &p)), expected, "{name}");
        }
    }

    #[test]
    fn every_assignor_assigns_each_partition_at_most_once_and_all_when_free() {
        let members: Vec<MemberSubscription> = (0..4)
            .map(|i| member(&format!("m{i}"), &["t", "u"], &[]))
            .collect();
        let p = parts(&[("t", 7), ("u", 5)]);
        for a in [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ] {
            let r = a.assign(&members, &p);
            let mut seen: Vec<TopicPartition> = r.values().flatten().cloned().collect();
            let n = seen.len();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), n, "{a:?} assigned a partition twice");
            assert_eq!(n, 12, "{a:?}");
            let sizes: Vec<usize> = r.values().map(Vec::len).collect();
            assert!(
                sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 2,
                "{a:?} {sizes:?}"
            );
        }
    }

    #[test]
    fn subscription_and_assignment_round_trip() {
        let owned = vec![TopicPartition::new("t", 1), TopicPartition::new("t", 4)];
        let b = encode_subscription(&["t".into(), "u".into()], &owned, 7).unwrap();
        let s = decode_subscription("m", Some("i".into()), b).unwrap();
        assert_eq!(s.topics, vec!["t", "u"]);
        assert_eq!(s.owned, owned);
        assert_eq!(s.generation, 7);
        assert_eq!(s.instance_id.as_deref(), Some("i"));
        let b = encode_assignment(&owned).unwrap();
        assert_eq!(decode_assignment(b).unwrap(), owned);
        assert_eq!(decode_assignment(Bytes::new()).unwrap(), vec![]);
    }

    #[test]
    fn hostile_embedded_bytes_are_errors() {
        for bad in [&[0u8][..], &[0xff, 0xff], &[0, 0, 0x7f, 0xff, 0xff, 0xff]] {
            assert!(decode_subscription("m", None, Bytes::copy_from_slice(bad)).is_err());
            assert!(decode_assignment(Bytes::copy_from_slice(bad)).is_err());
        }
        // A huge array count with no elements behind it.
        let b = Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        assert!(decode_assignment(b).is_err());
    }
}

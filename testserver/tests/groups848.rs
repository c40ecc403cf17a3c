//! Raw-protocol tests of the consumer group protocol (KIP-848, ConsumerGroupHeartbeat): epochs,
//! revocation before reassignment, fencing, timeouts, static members, the server-side
//! assignors and the commits of consumer-protocol members. Those that need short broker
//! timeouts build their own testserver; the others also run against Apache Kafka 4.x
//! (`KP_EXTERNAL_BOOTSTRAP`).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use kafka_persistence_testserver::TestServer;
use kafka_persistence_wire::ErrorCode;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;
use uuid::Uuid;

/// What a member owns: topic id → partitions.
type Owned = BTreeMap<Uuid, Vec<i32>>;

struct Hb<'a> {
    group: &'a str,
    member: &'a str,
    epoch: i32,
    topics: Option<&'a [&'a str]>,
    owned: Option<&'a Owned>,
    instance: Option<&'a str>,
    assignor: Option<&'a str>,
    rebalance_timeout_ms: i32,
}

impl<'a> Hb<'a> {
    fn new(group: &'a str, member: &'a str, epoch: i32) -> Self {
        Hb {
            group,
            member,
            epoch,
            topics: None,
            owned: None,
            instance: None,
            assignor: None,
            rebalance_timeout_ms: -1,
        }
    }
}

async fn heartbeat(raw: &mut Raw, h: Hb<'_>) -> ConsumerGroupHeartbeatResponse {
    let mut req = ConsumerGroupHeartbeatRequest::default();
    req.group_id = GroupId(sb(h.group));
    req.member_id = sb(h.member);
    req.member_epoch = h.epoch;
    req.instance_id = h.instance.map(sb);
    req.rebalance_timeout_ms = h.rebalance_timeout_ms;
    req.subscribed_topic_names = h.topics.map(|ts| ts.iter().map(|t| tn(t)).collect());
    req.server_assignor = h.assignor.map(sb);
    req.topic_partitions = h.owned.map(|o| {
        o.iter()
            .map(|(id, ps)| {
                let mut tp = TopicPartitions::default();
                tp.topic_id = *id;
                tp.partitions = ps.clone();
                tp
            })
            .collect()
    });
    raw.call(ApiKey::ConsumerGroupHeartbeat, 1, &req).await
}

/// Joins (epoch 0) subscribed to `topics`.
async fn join(
    raw: &mut Raw,
    group: &str,
    member: &str,
    topics: &[&str],
) -> ConsumerGroupHeartbeatResponse {
    let owned = Owned::new();
    let mut h = Hb::new(group, member, 0);
    h.topics = Some(topics);
    h.owned = Some(&owned);
    h.rebalance_timeout_ms = 30_000;
    heartbeat(raw, h).await
}

/// A steady heartbeat reporting `owned`.
async fn beat(
    raw: &mut Raw,
    group: &str,
    member: &str,
    epoch: i32,
    owned: &Owned,
) -> ConsumerGroupHeartbeatResponse {
    let mut h = Hb::new(group, member, epoch);
    h.owned = Some(owned);
    heartbeat(raw, h).await
}

fn assignment(r: &ConsumerGroupHeartbeatResponse) -> Option<Owned> {
    r.assignment.as_ref().map(|a| {
        a.topic_partitions
            .iter()
            .map(|tp| {
                let mut ps = tp.partitions.clone();
                ps.sort_unstable();
                (tp.topic_id, ps)
            })
            .filter(|(_, ps)| !ps.is_empty())
            .collect()
    })
}

fn count(o: &Owned) -> usize {
    o.values().map(Vec::len).sum()
}

async fn topic_id(raw: &mut Raw, topic: &str) -> Uuid {
    let mut req = MetadataRequest::default();
    let mut t = MetadataRequestTopic::default();
    t.name = Some(tn(topic));
    req.topics = Some(vec![t]);
    let r: MetadataResponse = raw.call(ApiKey::Metadata, 12, &req).await;
    r.topics[0].topic_id
}

/// A coordinator connection and a topic with `partitions`.
async fn setup(b: &Broker, partitions: i32) -> (Raw, String, Uuid) {
    let mut raw = Raw::connect(&b.addr()).await;
    let t = unique("cg");
    assert_eq!(create_topic(&mut raw, &t, partitions, &[]).await, 0);
    let id = topic_id(&mut raw, &t).await;
    let mut req = FindCoordinatorRequest::default();
    req.key = sb("any");
    let r: FindCoordinatorResponse = raw.call(ApiKey::FindCoordinator, 3, &req).await;
    assert_eq!(r.error_code, 0);
    let raw = Raw::connect(&format!("{}:{}", &*r.host, r.port)).await;
    (raw, t, id)
}

/// Heartbeats `member` (reporting what it was assigned: revocations acknowledged at once)
/// until it owns `n` partitions and said so; returns (epoch, owned).
async fn beat_until(
    raw: &mut Raw,
    group: &str,
    member: &str,
    mut epoch: i32,
    mut owned: Owned,
    n: usize,
) -> (i32, Owned) {
    for _ in 0..200 {
        let r = beat(raw, group, member, epoch, &owned).await;
        assert_eq!(r.error_code, 0, "{r:?}");
        epoch = r.member_epoch;
        let reported = owned.clone();
        if let Some(a) = assignment(&r) {
            owned = a;
        }
        // Done once the coordinator heard us own exactly that.
        if count(&owned) == n && owned == reported {
            return (epoch, owned);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{member} never reached {n} partitions: {owned:?}");
}

#[tokio::test]
async fn a_partition_moves_only_after_its_owner_acknowledged_the_revocation() {
    let b = broker().await;
    let (mut raw, t, id) = setup(&b, 4).await;
    let group = unique("g");
    let ra = join(&mut raw, &group, "member-a", &[&t]).await;
    assert_eq!(ra.error_code, 0, "{ra:?}");
    assert!(ra.member_epoch >= 1);
    assert!(ra.heartbeat_interval_ms > 0);
    let (epoch_a, owned_a) = beat_until(
        &mut raw,
        &group,
        "member-a",
        ra.member_epoch,
        assignment(&ra).unwrap_or_default(),
        4,
    )
    .await;
    assert_eq!(owned_a[&id], vec![0, 1, 2, 3]);
    // B joins: the group epoch moves; B gets nothing while A still owns everything.
    let rb = join(&mut raw, &group, "member-b", &[&t]).await;
    assert_eq!(rb.error_code, 0);
    assert!(rb.member_epoch > epoch_a);
    assert_eq!(count(&assignment(&rb).unwrap_or_default()), 0, "{rb:?}");
    // A is told to give two up, and keeps its epoch until it did.
    let r = beat(&mut raw, &group, "member-a", epoch_a, &owned_a).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(
        r.member_epoch, epoch_a,
        "the epoch moved before the revocation"
    );
    let kept = assignment(&r).expect("a shrunk assignment");
    assert_eq!(count(&kept), 2);
    // Still nothing for B: A did not acknowledge yet.
    let r = beat(&mut raw, &group, "member-b", rb.member_epoch, &Owned::new()).await;
    assert_eq!(count(&assignment(&r).unwrap_or_default()), 0, "{r:?}");
    // A acknowledges (reports only what it kept): its epoch reaches the group's.
    let r = beat(&mut raw, &group, "member-a", epoch_a, &kept).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.member_epoch, rb.member_epoch);
    // Now B gets the other two.
    let (epoch_b, owned_b) = beat_until(
        &mut raw,
        &group,
        "member-b",
        rb.member_epoch,
        Owned::new(),
        2,
    )
    .await;
    let mut all: Vec<i32> = kept[&id]
        .iter()
        .chain(owned_b[&id].iter())
        .copied()
        .collect();
    all.sort_unstable();
    assert_eq!(all, vec![0, 1, 2, 3]);
    // Leaving (-1) hands A's partitions to B.
    let r = heartbeat(&mut raw, Hb::new(&group, "member-a", -1)).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.member_epoch, -1);
    beat_until(&mut raw, &group, "member-b", epoch_b, owned_b, 4).await;
}

#[tokio::test]
async fn epochs_fence_stale_members_and_commits_carry_the_member_epoch() {
    let b = broker().await;
    let (mut raw, t, _id) = setup(&b, 2).await;
    let group = unique("g");
    let r = join(&mut raw, &group, "member-a", &[&t]).await;
    assert_eq!(r.error_code, 0);
    let (epoch, owned) = beat_until(
        &mut raw,
        &group,
        "member-a",
        r.member_epoch,
        assignment(&r).unwrap_or_default(),
        2,
    )
    .await;
    // A wrong epoch is fenced; an unknown member is unknown.
    let r = beat(&mut raw, &group, "member-a", epoch + 5, &owned).await;
    assert_eq!(r.error_code, ErrorCode::FENCED_MEMBER_EPOCH);
    let r = beat(&mut raw, &group, "nobody", 3, &owned).await;
    assert_eq!(r.error_code, ErrorCode::UNKNOWN_MEMBER_ID);
    // The empty member id is refused from v1 on.
    let r = join(&mut raw, &group, "", &[&t]).await;
    assert_eq!(r.error_code, ErrorCode::INVALID_REQUEST);
    let commit = |generation: i32, version: i16, offset: i64| {
        let mut req = OffsetCommitRequest::default();
        req.group_id = GroupId(sb(&group));
        req.generation_id_or_member_epoch = generation;
        req.member_id = sb("member-a");
        let mut tt = OffsetCommitRequestTopic::default();
        tt.name = tn(&t);
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = 0;
        p.committed_offset = offset;
        p.committed_leader_epoch = -1;
        p.committed_metadata = Some(sb("m"));
        tt.partitions.push(p);
        req.topics.push(tt);
        (req, version)
    };
    let mut codes = Vec::new();
    for (generation, version, offset) in [
        (epoch, 9, 7),
        (epoch - 1, 9, 8),
        (epoch + 1, 9, 9),
        (epoch, 8, 10),
    ] {
        let (req, v) = commit(generation, version, offset);
        let r: OffsetCommitResponse = raw.call(ApiKey::OffsetCommit, v, &req).await;
        codes.push(r.topics[0].partitions[0].error_code);
    }
    assert_eq!(
        codes,
        vec![
            0,
            ErrorCode::STALE_MEMBER_EPOCH,
            // Newer than the member's: also stale, as Apache Kafka 4.1 answers.
            ErrorCode::STALE_MEMBER_EPOCH,
            ErrorCode::UNSUPPORTED_VERSION
        ]
    );
    // Only the accepted commit is stored; OffsetFetch is shared with the classic groups.
    let mut req = OffsetFetchRequest::default();
    req.group_id = GroupId(sb(&group));
    let mut ft = OffsetFetchRequestTopic::default();
    ft.name = tn(&t);
    ft.partition_indexes = vec![0];
    req.topics = Some(vec![ft]);
    let r: OffsetFetchResponse = raw.call(ApiKey::OffsetFetch, 7, &req).await;
    assert_eq!(r.topics[0].partitions[0].committed_offset, 7);
    if b.server.is_none() {
        // Apache Kafka 4.x lets classic members into a consumer group (its upgrade path);
        // the testserver keeps a group id to one protocol while it has members.
        return;
    }
    let mut jreq = JoinGroupRequest::default();
    jreq.group_id = GroupId(sb(&group));
    jreq.session_timeout_ms = 30_000;
    jreq.rebalance_timeout_ms = 30_000;
    jreq.member_id = sb("");
    jreq.protocol_type = sb("consumer");
    let mut p = kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol::default();
    p.name = sb("range");
    jreq.protocols.push(p);
    let r: JoinGroupResponse = raw.call(ApiKey::JoinGroup, 7, &jreq).await;
    assert_eq!(r.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");
}

#[tokio::test]
async fn the_range_assignor_is_chosen_by_name_and_unknown_ones_are_refused() {
    let b = broker().await;
    let (mut raw, t, id) = setup(&b, 4).await;
    let group = unique("g");
    let owned = Owned::new();
    let topics = [t.as_str()];
    let mut h = Hb::new(&group, "m-1", 0);
    h.topics = Some(&topics);
    h.owned = Some(&owned);
    h.assignor = Some("no-such-assignor");
    h.rebalance_timeout_ms = 30_000;
    let r = heartbeat(&mut raw, h).await;
    assert_eq!(r.error_code, ErrorCode::UNSUPPORTED_ASSIGNOR);
    let mut joined = Vec::new();
    for m in ["m-1", "m-2"] {
        let mut h = Hb::new(&group, m, 0);
        h.topics = Some(&topics);
        h.owned = Some(&owned);
        h.assignor = Some("range");
        h.rebalance_timeout_ms = 30_000;
        let r = heartbeat(&mut raw, h).await;
        assert_eq!(r.error_code, 0, "{r:?}");
        joined.push((r.member_epoch, assignment(&r).unwrap_or_default()));
    }
    // m-1 gives up the upper half of what it got alone, then m-2 takes it.
    let (e1, a1) = joined[0].clone();
    let (_, o1) = beat_until(&mut raw, &group, "m-1", e1, a1, 2).await;
    let (_, o2) = beat_until(&mut raw, &group, "m-2", joined[1].0, Owned::new(), 2).await;
    assert_eq!(o1[&id], vec![0, 1]);
    assert_eq!(o2[&id], vec![2, 3]);
}

async fn short_timeouts() -> Broker {
    let server = TestServer::builder()
        .consumer_group_timeouts(Duration::from_millis(800), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    Broker {
        bootstrap: server.bootstrap_servers(),
        server: Some(server),
    }
}

#[tokio::test]
async fn a_silent_member_is_removed_after_the_session_timeout() {
    let b = short_timeouts().await;
    let (mut raw, t, _) = setup(&b, 2).await;
    let group = unique("g");
    let ra = join(&mut raw, &group, "a", &[&t]).await;
    let rb = join(&mut raw, &group, "b", &[&t]).await;
    assert_eq!(rb.heartbeat_interval_ms, 100);
    let (ea, oa) = beat_until(&mut raw, &group, "a", ra.member_epoch, Owned::new(), 1).await;
    let _ = beat_until(&mut raw, &group, "b", rb.member_epoch, Owned::new(), 1).await;
    // B goes silent; A keeps heartbeating and gets both once B's session expired.
    let started = std::time::Instant::now();
    let (_, _) = beat_until(&mut raw, &group, "a", ea, oa, 2).await;
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    let r = beat(&mut raw, &group, "b", rb.member_epoch, &Owned::new()).await;
    assert_eq!(r.error_code, ErrorCode::UNKNOWN_MEMBER_ID);
}

#[tokio::test]
async fn a_member_that_does_not_revoke_within_its_rebalance_timeout_is_fenced() {
    let b = short_timeouts().await;
    let (mut raw, t, _) = setup(&b, 2).await;
    let group = unique("g");
    let owned = Owned::new();
    let topics = [t.as_str()];
    let mut h = Hb::new(&group, "a", 0);
    h.topics = Some(&topics);
    h.owned = Some(&owned);
    h.rebalance_timeout_ms = 300;
    let ra = heartbeat(&mut raw, h).await;
    let (ea, oa) = beat_until(&mut raw, &group, "a", ra.member_epoch, Owned::new(), 2).await;
    let rb = join(&mut raw, &group, "b", &[&t]).await;
    // A keeps heartbeating but never gives the revoked partition up.
    let mut fenced = false;
    for _ in 0..40 {
        let r = beat(&mut raw, &group, "a", ea, &oa).await;
        if r.error_code == ErrorCode::UNKNOWN_MEMBER_ID {
            fenced = true;
            break;
        }
        assert_eq!(r.error_code, 0);
        let _ = beat(&mut raw, &group, "b", rb.member_epoch, &Owned::new()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fenced, "A was never removed");
    beat_until(&mut raw, &group, "b", rb.member_epoch, Owned::new(), 2).await;
}

#[tokio::test]
async fn a_static_member_gets_its_slot_back_and_a_live_slot_is_not_released() {
    let b = short_timeouts().await;
    let (mut raw, t, _) = setup(&b, 2).await;
    let group = unique("g");
    let owned = Owned::new();
    let topics = [t.as_str()];
    let static_join = |member: &'static str| {
        let mut h = Hb::new(&group, member, 0);
        h.instance = Some("inst-1");
        h.rebalance_timeout_ms = 30_000;
        h
    };
    let mut h = static_join("s-1");
    h.topics = Some(&topics);
    h.owned = Some(&owned);
    let r = heartbeat(&mut raw, h).await;
    assert_eq!(r.error_code, 0);
    let ra = join(&mut raw, &group, "a", &[&t]).await;
    let (es, os) = beat_until(&mut raw, &group, "s-1", r.member_epoch, Owned::new(), 1).await;
    let (ea, _) = beat_until(&mut raw, &group, "a", ra.member_epoch, Owned::new(), 1).await;
    // While s-1 lives, another process with the same instance id is refused.
    let mut h = static_join("s-2");
    h.topics = Some(&topics);
    h.owned = Some(&owned);
    assert_eq!(
        heartbeat(&mut raw, h).await.error_code,
        ErrorCode::UNRELEASED_INSTANCE_ID
    );
    // s-1 leaves its slot (-2); s-2 takes it over with the same partitions and epoch, and
    // A's epoch does not move (no rebalance).
    let mut h = static_join("s-1");
    h.epoch = -2;
    assert_eq!(heartbeat(&mut raw, h).await.member_epoch, -2);
    let mut h = static_join("s-2");
    h.topics = Some(&topics);
    h.owned = Some(&owned);
    let r = heartbeat(&mut raw, h).await;
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(r.member_epoch, es);
    assert_eq!(assignment(&r), Some(os));
    let r = beat(&mut raw, &group, "a", ea, &Owned::new()).await;
    assert_eq!(r.member_epoch, ea);
}

#[tokio::test]
async fn a_regex_subscription_follows_the_matching_topics() {
    let b = short_timeouts().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let prefix = unique("rx");
    for suffix in ["a", "b"] {
        assert_eq!(
            create_topic(&mut raw, &format!("{prefix}-{suffix}"), 1, &[]).await,
            0
        );
    }
    assert_eq!(
        create_topic(&mut raw, &format!("other-{prefix}"), 1, &[]).await,
        0
    );
    let group = unique("g");
    let pattern = format!("{prefix}-.*");
    let mut req = ConsumerGroupHeartbeatRequest::default();
    req.group_id = GroupId(sb(&group));
    req.member_id = sb("m");
    req.rebalance_timeout_ms = 30_000;
    req.subscribed_topic_regex = Some(sb("(unclosed"));
    req.topic_partitions = Some(vec![]);
    let r: ConsumerGroupHeartbeatResponse = raw.call(ApiKey::ConsumerGroupHeartbeat, 1, &req).await;
    assert_eq!(r.error_code, ErrorCode::INVALID_REGULAR_EXPRESSION);
    req.subscribed_topic_regex = Some(sb(&pattern));
    let r: ConsumerGroupHeartbeatResponse = raw.call(ApiKey::ConsumerGroupHeartbeat, 1, &req).await;
    assert_eq!(r.error_code, 0, "{r:?}");
    let (epoch, o) = beat_until(
        &mut raw,
        &group,
        "m",
        r.member_epoch,
        assignment(&r).unwrap_or_default(),
        2,
    )
    .await;
    let a = topic_id(&mut raw, &format!("{prefix}-a")).await;
    let bb = topic_id(&mut raw, &format!("{prefix}-b")).await;
    assert_eq!(o.keys().copied().collect::<Vec<_>>(), {
        let mut v = vec![a, bb];
        v.sort();
        v
    });
    // A topic created later that matches joins the subscription.
    assert_eq!(
        create_topic(&mut raw, &format!("{prefix}-c"), 1, &[]).await,
        0
    );
    beat_until(&mut raw, &group, "m", epoch, o, 3).await;
}

#[tokio::test]
async fn commits_of_a_consumer_group_survive_a_restart_on_the_data_dir() {
    let dir = temp_data_dir("kp-cg-offsets");
    let start = || TestServer::builder().data_dir(&dir).start();
    let group = unique("g");
    let server = start().await.unwrap();
    let b = Broker {
        bootstrap: server.bootstrap_servers(),
        server: None,
    };
    let (mut raw, t, _id) = setup(&b, 2).await;
    let r = join(&mut raw, &group, "member-a", &[&t]).await;
    assert_eq!(r.error_code, 0);
    let (epoch, _) = beat_until(
        &mut raw,
        &group,
        "member-a",
        r.member_epoch,
        assignment(&r).unwrap_or_default(),
        2,
    )
    .await;
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(sb(&group));
    req.generation_id_or_member_epoch = epoch;
    req.member_id = sb("member-a");
    let mut tt = OffsetCommitRequestTopic::default();
    tt.name = tn(&t);
    for (partition, offset, metadata) in [(0, 7, "seven"), (1, 3, "three")] {
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = partition;
        p.committed_offset = offset;
        p.committed_leader_epoch = 4;
        p.committed_metadata = Some(sb(metadata));
        tt.partitions.push(p);
    }
    req.topics.push(tt);
    let r: OffsetCommitResponse = raw.call(ApiKey::OffsetCommit, 9, &req).await;
    assert!(r.topics[0].partitions.iter().all(|p| p.error_code == 0));
    let expected = vec![
        (t.clone(), 0, 7, 4, "seven".to_string()),
        (t.clone(), 1, 3, 4, "three".to_string()),
    ];
    assert_eq!(committed_offsets(&mut raw, &group).await, expected);
    drop(raw);
    server.shutdown().await;
    let server = start().await.unwrap();
    let mut raw = Raw::connect(&server.bootstrap_servers()).await;
    assert_eq!(committed_offsets(&mut raw, &group).await, expected);
    // The member is gone with the old process; it joins again from epoch 0.
    let r = join(&mut raw, &group, "member-a", &[&t]).await;
    assert_eq!(r.error_code, 0, "{r:?}");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

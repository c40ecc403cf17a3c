//! The group-inspection apis: DescribeGroups and ListGroups (classic groups) and
//! ConsumerGroupDescribe (KIP-848 groups), on the raw protocol and through wire's admin calls
//! (`describe_groups`, `list_groups`, `describe_consumer_groups`).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use kafka_persistence_testserver::TestServer;
use kafka_persistence_wire::{Client, ClientConfig, ErrorCode, GroupDescription};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use uuid::Uuid;

async fn client(bootstrap: &str) -> Client {
    Client::connect(
        ClientConfig::new(bootstrap.to_owned()).with_delivery_timeout(Duration::from_secs(10)),
    )
    .await
    .unwrap()
}

async fn join(raw: &mut Raw, group: &str, member_id: &str) -> JoinGroupResponse {
    let mut req = JoinGroupRequest::default();
    req.group_id = GroupId(sb(group));
    req.session_timeout_ms = 30_000;
    req.rebalance_timeout_ms = 30_000;
    req.member_id = sb(member_id);
    req.protocol_type = sb("consumer");
    let mut p = JoinGroupRequestProtocol::default();
    p.name = sb("range");
    p.metadata = Bytes::from_static(b"meta");
    req.protocols.push(p);
    raw.call(ApiKey::JoinGroup, 7, &req).await
}

async fn sync(
    raw: &mut Raw,
    group: &str,
    generation: i32,
    member: &str,
    assign: &[(&str, &str)],
) -> SyncGroupResponse {
    let mut req = SyncGroupRequest::default();
    req.group_id = GroupId(sb(group));
    req.generation_id = generation;
    req.member_id = sb(member);
    req.protocol_type = Some(sb("consumer"));
    req.protocol_name = Some(sb("range"));
    for (m, a) in assign {
        let mut x = SyncGroupRequestAssignment::default();
        x.member_id = sb(m);
        x.assignment = Bytes::from(a.to_string());
        req.assignments.push(x);
    }
    raw.call(ApiKey::SyncGroup, 5, &req).await
}

async fn describe_one(c: &Client, group: &str) -> GroupDescription {
    c.describe_groups(&[group]).await.unwrap().remove(0)
}

/// Polls until the group is in `state` with `members` members.
async fn wait_state(c: &Client, group: &str, state: &str, members: usize) -> GroupDescription {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = describe_one(c, group).await;
        if d.state == state && d.members.len() == members {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "group never reached {state}: {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn raw_describe(raw: &mut Raw, group: &str, version: i16) -> DescribeGroupsResponse {
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(group))]);
    raw.call(ApiKey::DescribeGroups, version, &req).await
}

fn ids(groups: &[kafka_persistence_wire::ListedGroup]) -> Vec<&str> {
    groups.iter().map(|g| g.group_id.as_str()).collect()
}

#[tokio::test]
async fn a_classic_group_of_two_is_described_in_every_state_it_passes_through() {
    let server = TestServer::start().await.unwrap();
    let boot = server.bootstrap_servers();
    let c = client(&boot).await;
    let group = unique("dg");

    // Unknown: Dead without members (v5 no error, v6 GROUP_ID_NOT_FOUND).
    let d = describe_one(&c, &group).await;
    assert_eq!((d.state.as_str(), d.members.len()), ("Dead", 0));
    let mut raw = Raw::connect(&boot).await;
    let r5 = raw_describe(&mut raw, &group, 5).await;
    assert_eq!(
        (r5.groups[0].error_code, &*r5.groups[0].group_state),
        (0, "Dead")
    );
    let r6 = raw_describe(&mut raw, &group, 6).await;
    assert_eq!(r6.groups[0].error_code, ErrorCode::GROUP_ID_NOT_FOUND);
    assert_eq!(&*r6.groups[0].group_state, "Dead");
    assert!(r6.groups[0].error_message.is_some());

    // A joins alone: CompletingRebalance, no protocol or metadata until Stable.
    let mut a = Raw::connect(&boot).await;
    let ja = join(&mut a, &group, "").await;
    assert_eq!(ja.error_code, 0);
    let id_a = ja.member_id.to_string();
    let d = describe_one(&c, &group).await;
    assert_eq!(d.state, "CompletingRebalance");
    assert_eq!(
        (d.protocol_type.as_str(), d.protocol.as_str()),
        ("consumer", "")
    );
    assert_eq!(d.members.len(), 1);
    let m = &d.members[0];
    assert_eq!(m.member_id, id_a);
    assert_eq!(m.client_id, "testserver-tests");
    assert_eq!(m.client_host, "/127.0.0.1");
    assert!(m.metadata.is_empty() && m.assignment.is_empty());

    let sa = sync(&mut a, &group, ja.generation_id, &id_a, &[(&id_a, "all")]).await;
    assert_eq!(sa.error_code, 0);
    let d = describe_one(&c, &group).await;
    assert_eq!((d.state.as_str(), d.protocol.as_str()), ("Stable", "range"));
    assert_eq!(&d.members[0].metadata[..], b"meta");
    assert_eq!(&d.members[0].assignment[..], b"all");

    // B joins: PreparingRebalance with both members (B parked in its join).
    let boot_b = boot.clone();
    let group_b = group.clone();
    let jb = tokio::spawn(async move {
        let mut b = Raw::connect(&boot_b).await;
        let r = join(&mut b, &group_b, "").await;
        (b, r)
    });
    let d = wait_state(&c, &group, "PreparingRebalance", 2).await;
    assert_eq!(d.protocol, "");
    assert!(d.members.iter().all(|m| m.metadata.is_empty()));

    // A rejoins: both in CompletingRebalance, then Stable with their assignments.
    let ja2 = join(&mut a, &group, &id_a).await;
    assert_eq!(ja2.error_code, 0);
    let (b, jb) = jb.await.unwrap();
    assert_eq!(jb.error_code, 0);
    let id_b = jb.member_id.to_string();
    let d = describe_one(&c, &group).await;
    assert_eq!(
        (d.state.as_str(), d.members.len()),
        ("CompletingRebalance", 2)
    );
    let gen = ja2.generation_id;
    let leader = ja2.leader.to_string();
    let (mut lconn, mut fconn, follower) = if leader == id_a {
        (a, b, id_b.clone())
    } else {
        (b, a, id_a.clone())
    };
    let assign = [(leader.as_str(), "p0"), (follower.as_str(), "p1")];
    let (sl, sf) = tokio::join!(
        sync(&mut lconn, &group, gen, &leader, &assign),
        sync(&mut fconn, &group, gen, &follower, &[])
    );
    assert_eq!((sl.error_code, sf.error_code), (0, 0));
    let d = describe_one(&c, &group).await;
    assert_eq!((d.state.as_str(), d.members.len()), ("Stable", 2));
    let by_id: BTreeMap<&str, &[u8]> = d
        .members
        .iter()
        .map(|m| (m.member_id.as_str(), &m.assignment[..]))
        .collect();
    assert_eq!(by_id[leader.as_str()], b"p0");
    assert_eq!(by_id[follower.as_str()], b"p1");
    let meta: Vec<&[u8]> = d.members.iter().map(|m| &m.metadata[..]).collect();
    assert_eq!(meta, vec![&b"meta"[..], &b"meta"[..]]);

    // ListGroups with filters (state v4, type v5), case-insensitive.
    let all = c.list_groups(&[], &[]).await.unwrap();
    let g = all.iter().find(|g| g.group_id == group).unwrap();
    assert_eq!(
        (
            g.protocol_type.as_str(),
            g.state.as_str(),
            g.group_type.as_str()
        ),
        ("consumer", "Stable", "classic")
    );
    assert!(ids(&c.list_groups(&["stable"], &[]).await.unwrap()).contains(&group.as_str()));
    assert!(!ids(&c.list_groups(&["Empty"], &[]).await.unwrap()).contains(&group.as_str()));
    assert!(ids(&c.list_groups(&[], &["CLASSIC"]).await.unwrap()).contains(&group.as_str()));
    assert!(!ids(&c.list_groups(&[], &["consumer"]).await.unwrap()).contains(&group.as_str()));
    // v3 has no states: every group is listed, the state left empty.
    let r: ListGroupsResponse = lconn
        .call(ApiKey::ListGroups, 3, &ListGroupsRequest::default())
        .await;
    let g3 = r
        .groups
        .iter()
        .find(|g| &*g.group_id.0 == group.as_str())
        .unwrap();
    assert_eq!(&*g3.group_state, "");

    // Both leave: Empty, protocol type kept, no members.
    let mut leave = LeaveGroupRequest::default();
    leave.group_id = GroupId(sb(&group));
    leave.members = [&id_a, &id_b]
        .iter()
        .map(|id| {
            let mut m = MemberIdentity::default();
            m.member_id = sb(id);
            m
        })
        .collect();
    let lr: LeaveGroupResponse = lconn.call(ApiKey::LeaveGroup, 4, &leave).await;
    assert_eq!(lr.error_code, 0);
    let d = describe_one(&c, &group).await;
    assert_eq!((d.state.as_str(), d.members.len()), ("Empty", 0));
    assert_eq!(d.protocol_type, "consumer");
    assert!(ids(&c.list_groups(&["Empty"], &[]).await.unwrap()).contains(&group.as_str()));
    // ConsumerGroupDescribe of a classic group: GROUP_ID_NOT_FOUND.
    let e = c.describe_consumer_groups(&[&group]).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::GROUP_ID_NOT_FOUND));
}

type Owned = BTreeMap<Uuid, Vec<i32>>;

async fn heartbeat(
    raw: &mut Raw,
    group: &str,
    member: &str,
    epoch: i32,
    topics: Option<&[&str]>,
    owned: &Owned,
) -> ConsumerGroupHeartbeatResponse {
    let mut req = ConsumerGroupHeartbeatRequest::default();
    req.group_id = GroupId(sb(group));
    req.member_id = sb(member);
    req.member_epoch = epoch;
    req.rebalance_timeout_ms = if epoch == 0 { 30_000 } else { -1 };
    req.subscribed_topic_names = topics.map(|ts| ts.iter().map(|t| tn(t)).collect());
    req.topic_partitions = Some(
        owned
            .iter()
            .map(|(id, ps)| {
                let mut tp = TopicPartitions::default();
                tp.topic_id = *id;
                tp.partitions = ps.clone();
                tp
            })
            .collect(),
    );
    let r: ConsumerGroupHeartbeatResponse = raw.call(ApiKey::ConsumerGroupHeartbeat, 1, &req).await;
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    r
}

fn owned_of(r: &ConsumerGroupHeartbeatResponse, before: &Owned) -> Owned {
    match &r.assignment {
        Some(a) => a
            .topic_partitions
            .iter()
            .map(|tp| {
                let mut ps = tp.partitions.clone();
                ps.sort_unstable();
                (tp.topic_id, ps)
            })
            .collect(),
        None => before.clone(),
    }
}

fn count(p: &BTreeMap<String, Vec<i32>>) -> usize {
    p.values().map(Vec::len).sum()
}

#[tokio::test]
async fn a_consumer_protocol_group_of_two_is_described_with_epochs_and_assignments() {
    let server = TestServer::start().await.unwrap();
    let boot = server.bootstrap_servers();
    server.create_topic("cgd", 4, &[]).await.unwrap();
    let c = client(&boot).await;
    let group = unique("cgd");

    let unknown = c.describe_consumer_groups(&[&group]).await.unwrap_err();
    assert_eq!(unknown.code(), Some(ErrorCode::GROUP_ID_NOT_FOUND));

    let mut a = Raw::connect(&boot).await;
    let mut b = Raw::connect(&boot).await;
    let none = Owned::new();
    let ra = heartbeat(&mut a, &group, "member-a", 0, Some(&["cgd"]), &none).await;
    let owned_a = owned_of(&ra, &none);
    let e1 = ra.member_epoch;
    assert!(e1 > 0);
    let d = c
        .describe_consumer_groups(&[&group])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (d.state.as_str(), d.epoch, d.assignment_epoch),
        ("Stable", e1, e1)
    );
    assert_eq!(d.assignor, "uniform");
    assert_eq!(d.members.len(), 1);
    let m = &d.members[0];
    assert_eq!((m.member_id.as_str(), m.epoch), ("member-a", e1));
    assert_eq!(
        (m.client_id.as_str(), m.client_host.as_str()),
        ("testserver-tests", "/127.0.0.1")
    );
    assert_eq!(m.subscribed_topics, vec!["cgd".to_owned()]);
    assert_eq!(m.assignment["cgd"], vec![0, 1, 2, 3]);
    assert_eq!(m.assignment, m.target_assignment);

    // B joins: epoch 2, B's target partitions still owned by A: Reconciling.
    let rb = heartbeat(&mut b, &group, "member-b", 0, Some(&["cgd"]), &none).await;
    let mut owned_b = owned_of(&rb, &none);
    let e2 = rb.member_epoch;
    assert!(e2 > e1);
    let d = c
        .describe_consumer_groups(&[&group])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (d.state.as_str(), d.epoch, d.assignment_epoch),
        ("Reconciling", e2, e2)
    );
    let by: BTreeMap<&str, _> = d
        .members
        .iter()
        .map(|m| (m.member_id.as_str(), m))
        .collect();
    assert_eq!(by["member-a"].epoch, e1);
    assert_eq!(count(&by["member-a"].assignment), 4);
    assert_eq!(count(&by["member-a"].target_assignment), 2);
    assert_eq!(by["member-b"].epoch, e2);
    assert_eq!(count(&by["member-b"].assignment), 0);
    assert_eq!(count(&by["member-b"].target_assignment), 2);

    // A is told to give two up, acknowledges; B then gets them: Stable at epoch 2.
    let ra = heartbeat(&mut a, &group, "member-a", e1, None, &owned_a).await;
    let owned_a = owned_of(&ra, &owned_a);
    let ra = heartbeat(&mut a, &group, "member-a", ra.member_epoch, None, &owned_a).await;
    assert_eq!(ra.member_epoch, e2);
    let rb = heartbeat(&mut b, &group, "member-b", e2, None, &owned_b).await;
    owned_b = owned_of(&rb, &owned_b);
    heartbeat(&mut b, &group, "member-b", e2, None, &owned_b).await;
    let d = c
        .describe_consumer_groups(&[&group])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (d.state.as_str(), d.epoch, d.assignment_epoch),
        ("Stable", e2, e2)
    );
    for m in &d.members {
        assert_eq!(m.epoch, e2);
        assert_eq!(count(&m.assignment), 2);
        assert_eq!(m.assignment, m.target_assignment);
    }
    let mut all: Vec<i32> = d
        .members
        .iter()
        .flat_map(|m| m.assignment["cgd"].clone())
        .collect();
    all.sort_unstable();
    assert_eq!(all, vec![0, 1, 2, 3]);

    // Listed as a consumer group; DescribeGroups sees no classic group there.
    let listed = c.list_groups(&[], &["consumer"]).await.unwrap();
    let g = listed.iter().find(|g| g.group_id == group).unwrap();
    assert_eq!(
        (
            g.protocol_type.as_str(),
            g.state.as_str(),
            g.group_type.as_str()
        ),
        ("consumer", "Stable", "consumer")
    );
    assert!(!ids(&c.list_groups(&[], &["classic"]).await.unwrap()).contains(&group.as_str()));
    assert!(ids(&c.list_groups(&["STABLE"], &[]).await.unwrap()).contains(&group.as_str()));
    assert!(!ids(&c.list_groups(&["Reconciling"], &[]).await.unwrap()).contains(&group.as_str()));
    let r6 = raw_describe(&mut a, &group, 6).await;
    assert_eq!(r6.groups[0].error_code, ErrorCode::GROUP_ID_NOT_FOUND);
    assert_eq!(describe_one(&c, &group).await.state, "Dead");
}

#[tokio::test]
async fn group_inspection_off_the_coordinator_is_not_coordinator_and_follows_a_move() {
    let server = TestServer::builder().nodes(2).start().await.unwrap();
    let boot = server.bootstrap_servers();
    let addrs: Vec<String> = boot.split(',').map(str::to_owned).collect();
    assert_eq!(addrs.len(), 2);
    let group = unique("nc");
    let mut coord = Raw::connect(&addrs[0]).await;
    let j = join(&mut coord, &group, "").await;
    assert_eq!(j.error_code, 0);

    let mut other = Raw::connect(&addrs[1]).await;
    let r = raw_describe(&mut other, &group, 5).await;
    assert_eq!(r.groups[0].error_code, ErrorCode::NOT_COORDINATOR);
    let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(sb(&group))]);
    let r: ConsumerGroupDescribeResponse = other.call(ApiKey::ConsumerGroupDescribe, 1, &req).await;
    assert_eq!(r.groups[0].error_code, ErrorCode::NOT_COORDINATOR);
    // A node lists the groups it coordinates: none here.
    let r: ListGroupsResponse = other
        .call(ApiKey::ListGroups, 5, &ListGroupsRequest::default())
        .await;
    assert_eq!((r.error_code, r.groups.len()), (0, 0));

    let c = client(&boot).await;
    assert_eq!(describe_one(&c, &group).await.state, "CompletingRebalance");
    assert!(ids(&c.list_groups(&[], &[]).await.unwrap()).contains(&group.as_str()));
    // The coordinator's node stops: the group (shared state) is described by the next one.
    server.stop_node(0).await.unwrap();
    let d = describe_one(&c, &group).await;
    assert_eq!(
        (d.state.as_str(), d.members.len()),
        ("CompletingRebalance", 1)
    );
}

//! Raw-protocol tests of the classic consumer-group apis.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;

async fn coordinator(raw: &mut Raw, group: &str) -> String {
    let mut req = FindCoordinatorRequest::default();
    req.key = sb(group);
    let r: FindCoordinatorResponse = raw.call(ApiKey::FindCoordinator, 3, &req).await;
    assert_eq!(r.error_code, 0);
    format!("{}:{}", &*r.host, r.port)
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
    let r: JoinGroupResponse = raw.call(ApiKey::JoinGroup, 7, &req).await;
    if r.error_code == 79 {
        // MEMBER_ID_REQUIRED (real Kafka): rejoin with the assigned id.
        let id = r.member_id.to_string();
        req.member_id = sb(&id);
        return raw.call(ApiKey::JoinGroup, 7, &req).await;
    }
    r
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

async fn heartbeat(raw: &mut Raw, group: &str, generation: i32, member: &str) -> i16 {
    let mut req = HeartbeatRequest::default();
    req.group_id = GroupId(sb(group));
    req.generation_id = generation;
    req.member_id = sb(member);
    let r: HeartbeatResponse = raw.call(ApiKey::Heartbeat, 4, &req).await;
    r.error_code
}

async fn commit(
    raw: &mut Raw,
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    offset: i64,
) -> i16 {
    let mut p = OffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = offset;
    p.committed_metadata = Some(sb("m"));
    let mut t = OffsetCommitRequestTopic::default();
    t.name = tn(topic);
    t.partitions.push(p);
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(sb(group));
    req.generation_id_or_member_epoch = generation;
    req.member_id = sb(member);
    req.topics.push(t);
    let r: OffsetCommitResponse = raw.call(ApiKey::OffsetCommit, 8, &req).await;
    r.topics[0].partitions[0].error_code
}

async fn committed(raw: &mut Raw, group: &str, topic: &str) -> i64 {
    let mut t = OffsetFetchRequestTopic::default();
    t.name = tn(topic);
    t.partition_indexes.push(0);
    let mut req = OffsetFetchRequest::default();
    req.group_id = GroupId(sb(group));
    req.topics = Some(vec![t]);
    let r: OffsetFetchResponse = raw.call(ApiKey::OffsetFetch, 7, &req).await;
    assert_eq!(r.error_code, 0);
    r.topics[0].partitions[0].committed_offset
}

#[tokio::test]
async fn group_join_sync_heartbeat_commit_and_rebalance() {
    let b = broker().await;
    let mut boot = Raw::connect(&b.addr()).await;
    let topic = unique("gt");
    assert_eq!(create_topic(&mut boot, &topic, 1, &[]).await, 0);
    let group = unique("group");
    let coord = coordinator(&mut boot, &group).await;
    let mut a = Raw::connect(&coord).await;
    let ja = join(&mut a, &group, "").await;
    assert_eq!(ja.error_code, 0);
    let id_a = ja.member_id.to_string();
    assert_eq!(&*ja.leader, id_a.as_str(), "a lone member leads");
    assert_eq!(ja.members.len(), 1);
    let gen1 = ja.generation_id;
    let sa = sync(&mut a, &group, gen1, &id_a, &[(&id_a, "all")]).await;
    assert_eq!((sa.error_code, &sa.assignment[..]), (0, &b"all"[..]));
    assert_eq!(heartbeat(&mut a, &group, gen1, &id_a).await, 0);
    assert_eq!(commit(&mut a, &group, gen1, &id_a, &topic, 42).await, 0);
    assert_eq!(committed(&mut a, &group, &topic).await, 42);

    // B joins: its join parks until A rejoins.
    let coord_b = coord.clone();
    let group_b = group.clone();
    let jb = tokio::spawn(async move {
        let mut bconn = Raw::connect(&coord_b).await;
        let r = join(&mut bconn, &group_b, "").await;
        (bconn, r)
    });
    let mut hb = 0;
    for _ in 0..100 {
        hb = heartbeat(&mut a, &group, gen1, &id_a).await;
        if hb == 27 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(hb, 27, "REBALANCE_IN_PROGRESS tells A to rejoin");
    let ja2 = join(&mut a, &group, &id_a).await;
    let (bconn, jb) = jb.await.unwrap();
    assert_eq!((ja2.error_code, jb.error_code), (0, 0));
    assert_eq!(ja2.generation_id, jb.generation_id);
    assert!(ja2.generation_id > gen1);
    let gen2 = ja2.generation_id;
    let id_b = jb.member_id.to_string();
    let (leader, mut lconn, follower, mut fconn) = if *ja2.leader == *id_a {
        assert_eq!(ja2.members.len(), 2);
        (id_a.clone(), a, id_b.clone(), bconn)
    } else {
        assert_eq!(jb.members.len(), 2);
        (id_b.clone(), bconn, id_a.clone(), a)
    };
    let f_group = group.clone();
    let f_id = follower.clone();
    let fsync = tokio::spawn(async move {
        let r = sync(&mut fconn, &f_group, gen2, &f_id, &[]).await;
        (fconn, r)
    });
    let ls = sync(
        &mut lconn,
        &group,
        gen2,
        &leader,
        &[(&leader, "L"), (&follower, "F")],
    )
    .await;
    assert_eq!((ls.error_code, &ls.assignment[..]), (0, &b"L"[..]));
    let (mut fconn, fs) = fsync.await.unwrap();
    assert_eq!((fs.error_code, &fs.assignment[..]), (0, &b"F"[..]));
    assert_eq!(
        commit(&mut lconn, &group, gen1, &leader, &topic, 50).await,
        22,
        "stale generation"
    );
    assert_eq!(
        commit(&mut lconn, &group, gen2, &leader, &topic, 50).await,
        0
    );
    assert_eq!(committed(&mut fconn, &group, &topic).await, 50);

    // The leader leaves: the follower is told to rejoin.
    let mut req = LeaveGroupRequest::default();
    req.group_id = GroupId(sb(&group));
    let mut m = MemberIdentity::default();
    m.member_id = sb(&leader);
    req.members.push(m);
    let r: LeaveGroupResponse = lconn.call(ApiKey::LeaveGroup, 4, &req).await;
    assert_eq!((r.error_code, r.members[0].error_code), (0, 0));
    assert_eq!(heartbeat(&mut fconn, &group, gen2, &follower).await, 27);
    let jf = join(&mut fconn, &group, &follower).await;
    assert_eq!((jf.error_code, jf.members.len()), (0, 1));
    assert_eq!(&*jf.leader, follower.as_str());
}

#[tokio::test]
async fn group_unknown_member_and_simple_commits() {
    let b = broker().await;
    let mut boot = Raw::connect(&b.addr()).await;
    let topic = unique("gs");
    assert_eq!(create_topic(&mut boot, &topic, 1, &[]).await, 0);
    let group = unique("simple");
    let coord = coordinator(&mut boot, &group).await;
    let mut c = Raw::connect(&coord).await;
    assert_eq!(
        committed(&mut c, &group, &topic).await,
        -1,
        "nothing committed yet"
    );
    assert_eq!(
        commit(&mut c, &group, -1, "", &topic, 7).await,
        0,
        "simple commit"
    );
    assert_eq!(committed(&mut c, &group, &topic).await, 7);
    assert_eq!(
        heartbeat(&mut c, &group, 1, "nobody").await,
        25,
        "UNKNOWN_MEMBER_ID"
    );
}

async fn join_static(
    raw: &mut Raw,
    group: &str,
    member_id: &str,
    instance: &str,
) -> JoinGroupResponse {
    let mut req = JoinGroupRequest::default();
    req.group_id = GroupId(sb(group));
    req.session_timeout_ms = 30_000;
    req.rebalance_timeout_ms = 30_000;
    req.member_id = sb(member_id);
    req.group_instance_id = Some(sb(instance));
    req.protocol_type = sb("consumer");
    let mut p = JoinGroupRequestProtocol::default();
    p.name = sb("range");
    p.metadata = Bytes::from(format!("meta-{member_id}"));
    req.protocols.push(p);
    raw.call(ApiKey::JoinGroup, 7, &req).await
}

/// Bug: commits were refused with REBALANCE_IN_PROGRESS while the group prepared a
/// rebalance, so an eager consumer could not commit what it was about to revoke (Kafka
/// accepts them; only CompletingRebalance refuses).
#[tokio::test]
async fn group_commit_of_the_current_generation_is_accepted_while_preparing_a_rebalance() {
    let b = broker().await;
    let mut boot = Raw::connect(&b.addr()).await;
    let topic = unique("gp");
    assert_eq!(create_topic(&mut boot, &topic, 1, &[]).await, 0);
    let group = unique("prep");
    let coord = coordinator(&mut boot, &group).await;
    let mut a = Raw::connect(&coord).await;
    let ja = join(&mut a, &group, "").await;
    let id_a = ja.member_id.to_string();
    let gen1 = ja.generation_id;
    assert_eq!(
        sync(&mut a, &group, gen1, &id_a, &[(&id_a, "x")])
            .await
            .error_code,
        0
    );
    // B's join puts the group into PreparingRebalance.
    let coord_b = coord.clone();
    let group_b = group.clone();
    let jb = tokio::spawn(async move {
        let mut bconn = Raw::connect(&coord_b).await;
        let r = join(&mut bconn, &group_b, "").await;
        (bconn, r)
    });
    let mut hb = 0;
    for _ in 0..100 {
        hb = heartbeat(&mut a, &group, gen1, &id_a).await;
        if hb == 27 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(hb, 27);
    assert_eq!(
        commit(&mut a, &group, gen1, &id_a, &topic, 11).await,
        0,
        "the revoking member's commit"
    );
    assert_eq!(committed(&mut a, &group, &topic).await, 11);
    // After the join round, before SyncGroup: REBALANCE_IN_PROGRESS.
    let ja2 = join(&mut a, &group, &id_a).await;
    let (_bconn, jb) = jb.await.unwrap();
    assert_eq!((ja2.error_code, jb.error_code), (0, 0));
    assert_eq!(
        commit(&mut a, &group, ja2.generation_id, &id_a, &topic, 12).await,
        27
    );
}

/// Bug: a restarted static member (KIP-345) always caused a rebalance; now it takes over its
/// slot and assignment, and the other members keep their generation.
#[tokio::test]
async fn group_static_member_rejoin_keeps_assignment_without_rebalance() {
    let b = broker().await;
    let mut boot = Raw::connect(&b.addr()).await;
    let group = unique("static");
    let coord = coordinator(&mut boot, &group).await;
    let mut a = Raw::connect(&coord).await;
    let ja1 = join_static(&mut a, &group, "", "a").await;
    let id_a = ja1.member_id.to_string();
    assert_eq!(
        sync(&mut a, &group, ja1.generation_id, &id_a, &[(&id_a, "A")])
            .await
            .error_code,
        0
    );
    let js = tokio::spawn({
        let coord = coord.clone();
        let group = group.clone();
        async move {
            let mut c = Raw::connect(&coord).await;
            let r = join_static(&mut c, &group, "", "s").await;
            (c, r)
        }
    });
    let mut hb = 0;
    for _ in 0..100 {
        hb = heartbeat(&mut a, &group, ja1.generation_id, &id_a).await;
        if hb == 27 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(hb, 27);
    let ja = join_static(&mut a, &group, &id_a, "a").await;
    let (mut s, js) = js.await.unwrap();
    assert_eq!((ja.error_code, js.error_code), (0, 0));
    let gen = ja.generation_id;
    assert_eq!(js.generation_id, gen);
    let (id_a, id_s) = (ja.member_id.to_string(), js.member_id.to_string());
    let leader = ja.leader.to_string();
    let assign = [(id_a.as_str(), "A"), (id_s.as_str(), "S")];
    let (lconn, fconn, lid, fid) = if leader == id_a {
        (&mut a, &mut s, id_a.clone(), id_s.clone())
    } else {
        (&mut s, &mut a, id_s.clone(), id_a.clone())
    };
    let group2 = group.clone();
    let (ls, fs) = tokio::join!(
        sync(lconn, &group, gen, &lid, &assign),
        sync(fconn, &group2, gen, &fid, &[])
    );
    assert_eq!((ls.error_code, fs.error_code), (0, 0));
    // "s" restarts: empty member id, same instance id.
    let mut s2 = Raw::connect(&coord).await;
    let js2 = join_static(&mut s2, &group, "", "s").await;
    assert_eq!(js2.error_code, 0);
    assert_eq!(js2.generation_id, gen, "no new generation");
    let id_s2 = js2.member_id.to_string();
    assert_ne!(id_s2, id_s);
    let ss = sync(&mut s2, &group, gen, &id_s2, &[]).await;
    assert_eq!((ss.error_code, &ss.assignment[..]), (0, &b"S"[..]));
    assert_eq!(
        heartbeat(&mut a, &group, gen, &id_a).await,
        0,
        "A is not rebalanced"
    );
    assert_eq!(
        heartbeat(&mut s2, &group, gen, &id_s).await,
        25,
        "the old id is fenced"
    );
}

/// Bug: a heartbeat of a stale generation got REBALANCE_IN_PROGRESS while the group prepared a
/// rebalance; Kafka fences it with ILLEGAL_GENERATION first.
#[tokio::test]
async fn group_stale_heartbeat_is_illegal_generation_even_while_preparing() {
    let b = broker().await;
    let mut boot = Raw::connect(&b.addr()).await;
    let group = unique("stale");
    let coord = coordinator(&mut boot, &group).await;
    let mut a = Raw::connect(&coord).await;
    let ja = join(&mut a, &group, "").await;
    let id_a = ja.member_id.to_string();
    let gen1 = ja.generation_id;
    assert_eq!(
        sync(&mut a, &group, gen1, &id_a, &[(&id_a, "x")])
            .await
            .error_code,
        0
    );
    let coord_b = coord.clone();
    let group_b = group.clone();
    let _jb = tokio::spawn(async move {
        let mut bconn = Raw::connect(&coord_b).await;
        join(&mut bconn, &group_b, "").await
    });
    let mut hb = 0;
    for _ in 0..100 {
        hb = heartbeat(&mut a, &group, gen1, &id_a).await;
        if hb == 27 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(hb, 27, "the current generation is told to rejoin");
    assert_eq!(
        heartbeat(&mut a, &group, gen1 - 1, &id_a).await,
        22,
        "a stale generation is fenced"
    );
}

/// OffsetCommit v8 of `parts` (partition, offset, leader epoch, metadata) of `topic`.
async fn commit_parts(
    raw: &mut Raw,
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    parts: &[(i32, i64, i32, Option<&str>)],
) -> Vec<i16> {
    let mut t = OffsetCommitRequestTopic::default();
    t.name = tn(topic);
    for (partition, offset, leader_epoch, metadata) in parts {
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = *partition;
        p.committed_offset = *offset;
        p.committed_leader_epoch = *leader_epoch;
        p.committed_metadata = metadata.map(sb);
        t.partitions.push(p);
    }
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(sb(group));
    req.generation_id_or_member_epoch = generation;
    req.member_id = sb(member);
    req.topics.push(t);
    let r: OffsetCommitResponse = raw.call(ApiKey::OffsetCommit, 8, &req).await;
    r.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

#[tokio::test]
async fn group_offsets_survive_a_restart_on_the_data_dir() {
    use kafka_persistence_testserver::TestServer;
    let dir = temp_data_dir("kp-group-offsets");
    let topic = unique("gt");
    let (member_group, simple_group) = (unique("group"), unique("simple"));
    let start = || TestServer::builder().data_dir(&dir).start();
    let before = {
        let server = start().await.unwrap();
        let mut raw = Raw::connect(&server.bootstrap_servers()).await;
        assert_eq!(create_topic(&mut raw, &topic, 3, &[]).await, 0);
        let j = join(&mut raw, &member_group, "").await;
        assert_eq!(j.error_code, 0);
        let id = j.member_id.to_string();
        assert_eq!(
            sync(
                &mut raw,
                &member_group,
                j.generation_id,
                &id,
                &[(&id, "all")]
            )
            .await
            .error_code,
            0
        );
        // A member's commit, a later one overwriting it, and a simple (memberless) commit.
        let parts = [(0, 5, 2, Some("first")), (1, 8, -1, None)];
        let codes = commit_parts(
            &mut raw,
            &member_group,
            j.generation_id,
            &id,
            &topic,
            &parts,
        );
        assert_eq!(codes.await, vec![0, 0]);
        let parts = [(0, 6, 3, Some("second, with spaces\nand a newline"))];
        let codes = commit_parts(
            &mut raw,
            &member_group,
            j.generation_id,
            &id,
            &topic,
            &parts,
        );
        assert_eq!(codes.await, vec![0]);
        let codes = commit_parts(
            &mut raw,
            &simple_group,
            -1,
            "",
            &topic,
            &[(2, 11, -1, Some(""))],
        );
        assert_eq!(codes.await, vec![0]);
        let before = (
            committed_offsets(&mut raw, &member_group).await,
            committed_offsets(&mut raw, &simple_group).await,
        );
        server.shutdown().await;
        before
    };
    assert_eq!(
        before.0,
        vec![
            (
                topic.clone(),
                0,
                6,
                3,
                "second, with spaces\nand a newline".into()
            ),
            (topic.clone(), 1, 8, -1, String::new()),
        ]
    );
    assert_eq!(before.1, vec![(topic.clone(), 2, 11, -1, String::new())]);
    let server = start().await.unwrap();
    let mut raw = Raw::connect(&server.bootstrap_servers()).await;
    let after = (
        committed_offsets(&mut raw, &member_group).await,
        committed_offsets(&mut raw, &simple_group).await,
    );
    assert_eq!(
        after, before,
        "offsets, leader epochs and metadata are kept"
    );
    // The membership is not kept: the group is empty, so a simple commit is accepted; it is
    // saved with the loaded offsets, which a second restart still finds.
    let codes = commit_parts(&mut raw, &member_group, -1, "", &topic, &[(2, 1, -1, None)]);
    assert_eq!(codes.await, vec![0]);
    server.shutdown().await;
    let server = start().await.unwrap();
    let mut raw = Raw::connect(&server.bootstrap_servers()).await;
    let mut expected = before.0.clone();
    expected.push((topic.clone(), 2, 1, -1, String::new()));
    assert_eq!(committed_offsets(&mut raw, &member_group).await, expected);
    assert_eq!(committed_offsets(&mut raw, &simple_group).await, before.1);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn group_damaged_offset_lines_are_skipped_and_an_unreadable_file_is_an_error() {
    use kafka_persistence_testserver::TestServer;
    let dir = temp_data_dir("kp-group-offsets-damaged");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("__consumer_offsets");
    // Group "g" (hex 67): a good line between a truncated one, garbage and invalid UTF-8.
    let mut text = b"v1 x67 t 0 42 -1 1700000000000 x6d\n".to_vec();
    text.extend_from_slice(b"v1 x67 t 1 43\nnot a line at all\n\xff\xfe\xfd\n");
    text.extend_from_slice(b"v1 x67 t 2 44 -1 1700000000000 -\n");
    std::fs::write(&file, &text).unwrap();
    let server = TestServer::builder().data_dir(&dir).start().await.unwrap();
    let mut raw = Raw::connect(&server.bootstrap_servers()).await;
    assert_eq!(
        committed_offsets(&mut raw, "g").await,
        vec![
            ("t".into(), 0, 42, -1, "m".into()),
            ("t".into(), 2, 44, -1, String::new()),
        ]
    );
    server.shutdown().await;
    // A path that cannot be read as a file fails the start with a message naming it.
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    let err = TestServer::builder()
        .data_dir(&dir)
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot read the committed offsets") && err.contains("__consumer_offsets"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

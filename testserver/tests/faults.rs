//! The control API: injected errors and faults, latency, leader moves, node stop/start,
//! dropped connections, hostile bytes, multi-node clusters, data_dir restarts, compaction.
//! Every test here needs the in-process broker, hence the `fault_` prefix.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use kafka_persistence_testserver::{Fault, TestServer};
use kafka_persistence_wire::record::{EncodeOptions, Record};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use tokio::io::AsyncWriteExt;

async fn server() -> (TestServer, Raw, String) {
    let server = TestServer::start().await.unwrap();
    let raw = Raw::connect(&server.bootstrap_servers()).await;
    let topic = unique("f");
    server.create_topic(&topic, 1, &[]).await.unwrap();
    (server, raw, topic)
}

fn one() -> Bytes {
    batch(&records("v", 1), &EncodeOptions::default())
}

#[tokio::test]
async fn fault_injected_error_answers_without_applying() {
    let (server, mut raw, topic) = server().await;
    server.inject_error(0, 6, 2).await;
    assert_eq!(produce(&mut raw, 9, &topic, 0, one()).await.error_code, 6);
    assert_eq!(produce(&mut raw, 9, &topic, 0, one()).await.error_code, 6);
    let r = produce(&mut raw, 9, &topic, 0, one()).await;
    assert_eq!(
        (r.error_code, r.base_offset),
        (0, 0),
        "the errored requests were not applied"
    );
    assert_eq!(server.request_count(0).await, 3);
}

#[tokio::test]
async fn fault_drop_response_applies_then_closes() {
    let (server, mut raw, topic) = server().await;
    server
        .inject_fault(Fault::DropResponse {
            api_key: 0,
            count: 1,
        })
        .await;
    let r = {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        let mut p = PartitionProduceData::default();
        p.records = Some(one());
        let mut t = TopicProduceData::default();
        t.name = tn(&topic);
        t.partition_data.push(p);
        let mut req = ProduceRequest::default();
        req.acks = -1;
        req.topic_data.push(t);
        raw.send(ApiKey::Produce, 9, &req).await
    };
    let _ = r;
    assert!(
        raw.read_frame().await.is_none(),
        "no answer, connection closed"
    );
    assert_eq!(
        server
            .partition_info(&topic, 0)
            .await
            .unwrap()
            .high_watermark,
        1,
        "applied"
    );
    let mut raw = Raw::connect(&server.bootstrap_servers()).await;
    assert_eq!(produce(&mut raw, 9, &topic, 0, one()).await.base_offset, 1);
}

#[tokio::test]
async fn fault_close_before_handling_does_not_apply() {
    let (server, mut raw, topic) = server().await;
    server
        .inject_fault(Fault::CloseBeforeHandling {
            api_key: 0,
            count: 1,
        })
        .await;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let mut p = PartitionProduceData::default();
    p.records = Some(one());
    let mut t = TopicProduceData::default();
    t.name = tn(&topic);
    t.partition_data.push(p);
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.topic_data.push(t);
    raw.send(ApiKey::Produce, 9, &req).await;
    assert!(raw.read_frame().await.is_none());
    assert_eq!(
        server
            .partition_info(&topic, 0)
            .await
            .unwrap()
            .high_watermark,
        0,
        "not applied"
    );
}

#[tokio::test]
async fn fault_latency_delays_responses() {
    let (server, mut raw, topic) = server().await;
    server.set_latency(Duration::from_millis(100)).await;
    let start = Instant::now();
    assert_eq!(produce(&mut raw, 9, &topic, 0, one()).await.error_code, 0);
    assert!(start.elapsed() >= Duration::from_millis(90));
    server.set_latency(Duration::ZERO).await;
    let start = Instant::now();
    produce(&mut raw, 9, &topic, 0, one()).await;
    assert!(start.elapsed() < Duration::from_millis(90));
}

#[tokio::test]
async fn fault_garbage_bytes_close_the_connection_and_the_broker_survives() {
    let (server, mut raw, topic) = server().await;
    raw.stream
        .write_all(&[0, 0, 0, 8, 0xff, 0x7f, 0, 1, 2, 3, 4, 5])
        .await
        .unwrap();
    assert!(raw.closed().await, "unknown api key closes the connection");
    let mut raw = Raw::connect(&server.bootstrap_servers()).await;
    raw.stream
        .write_all(&[0x7f, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    assert!(raw.closed().await, "oversized frame closes the connection");
    let mut raw = Raw::connect(&server.bootstrap_servers()).await;
    // A Metadata v1 header followed by an array claiming 2^31-1 topics.
    raw.stream
        .write_all(&[
            0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff,
        ])
        .await
        .unwrap();
    assert!(raw.closed().await, "malformed body closes the connection");
    let mut raw = Raw::connect(&server.bootstrap_servers()).await;
    assert_eq!(produce(&mut raw, 9, &topic, 0, one()).await.error_code, 0);
}

#[tokio::test]
async fn fault_drop_connections_closes_clients() {
    let (server, mut raw, topic) = server().await;
    assert_eq!(produce(&mut raw, 9, &topic, 0, one()).await.error_code, 0);
    server.drop_connections().await;
    assert!(raw.closed().await);
    let mut raw = Raw::connect(&server.bootstrap_servers()).await;
    assert_eq!(produce(&mut raw, 9, &topic, 0, one()).await.error_code, 0);
}

fn metadata_all() -> MetadataRequest {
    let mut req = MetadataRequest::default();
    req.topics = None;
    req
}

#[tokio::test]
async fn fault_three_nodes_metadata_spreads_leaders_and_refuses_followers() {
    let server = TestServer::builder().nodes(3).start().await.unwrap();
    assert_eq!(server.node_ids(), vec![0, 1, 2]);
    let addrs: Vec<String> = server
        .bootstrap_servers()
        .split(',')
        .map(str::to_string)
        .collect();
    assert_eq!(addrs.len(), 3);
    let topic = unique("multi");
    server.create_topic(&topic, 6, &[]).await.unwrap();
    let mut raw = Raw::connect(&addrs[1]).await;
    let r: MetadataResponse = raw.call(ApiKey::Metadata, 12, &metadata_all()).await;
    assert_eq!(r.brokers.len(), 3);
    let t = r
        .topics
        .iter()
        .find(|t| t.name.as_ref().unwrap().0.to_string() == topic)
        .unwrap();
    let mut leaders: Vec<i32> = t.partitions.iter().map(|p| p.leader_id.0).collect();
    leaders.sort_unstable();
    leaders.dedup();
    assert_eq!(leaders, vec![0, 1, 2], "leaders spread over all nodes");
    for p in &t.partitions {
        let leader = p.leader_id.0;
        let follower = (leader + 1) % 3;
        let mut to_follower = Raw::connect(&addrs[follower as usize]).await;
        let r = produce(&mut to_follower, 11, &topic, p.partition_index, one()).await;
        assert_eq!(r.error_code, 6, "follower refuses");
        assert_eq!(r.current_leader.leader_id.0, leader, "KIP-951 hint");
        let mut to_leader = Raw::connect(&addrs[leader as usize]).await;
        assert_eq!(
            produce(&mut to_leader, 11, &topic, p.partition_index, one())
                .await
                .error_code,
            0
        );
    }
}

#[tokio::test]
async fn fault_move_leader_bumps_epoch_and_redirects() {
    let server = TestServer::builder().nodes(2).start().await.unwrap();
    let addrs: Vec<String> = server
        .bootstrap_servers()
        .split(',')
        .map(str::to_string)
        .collect();
    let topic = unique("move");
    server.create_topic(&topic, 1, &[]).await.unwrap();
    let old = server.leader_of(&topic, 0).await.unwrap();
    let new = 1 - old;
    let mut raw_old = Raw::connect(&addrs[old as usize]).await;
    assert_eq!(
        produce(&mut raw_old, 9, &topic, 0, one()).await.error_code,
        0
    );
    server.move_leader(&topic, 0, new).await.unwrap();
    assert_eq!(server.leader_of(&topic, 0).await, Some(new));
    assert_eq!(
        server.partition_info(&topic, 0).await.unwrap().leader_epoch,
        1
    );
    assert_eq!(
        produce(&mut raw_old, 9, &topic, 0, one()).await.error_code,
        6
    );
    let a = FetchArgs {
        version: 12,
        ..Default::default()
    };
    let f = fetch(&mut raw_old, &topic, 0, a).await;
    assert_eq!(f.error_code, 6);
    assert_eq!(f.current_leader.leader_id.0, new);
    let mut raw_new = Raw::connect(&addrs[new as usize]).await;
    let r = produce(&mut raw_new, 9, &topic, 0, one()).await;
    assert_eq!(
        (r.error_code, r.base_offset),
        (0, 1),
        "the log moved with the leadership"
    );
}

#[tokio::test]
async fn fault_move_leader_wakes_a_long_poll_on_the_old_leader() {
    let server = TestServer::builder().nodes(2).start().await.unwrap();
    let addrs: Vec<String> = server
        .bootstrap_servers()
        .split(',')
        .map(str::to_string)
        .collect();
    let topic = unique("movewake");
    server.create_topic(&topic, 1, &[]).await.unwrap();
    let old = server.leader_of(&topic, 0).await.unwrap();
    let mut raw = Raw::connect(&addrs[old as usize]).await;
    let t = topic.clone();
    let fetcher = tokio::spawn(async move {
        let a = FetchArgs {
            max_wait_ms: 20_000,
            ..Default::default()
        };
        let start = Instant::now();
        let f = fetch(&mut raw, &t, 0, a).await;
        (f.error_code, start.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.move_leader(&topic, 0, 1 - old).await.unwrap();
    let (code, took) = fetcher.await.unwrap();
    assert_eq!(code, 6);
    assert!(took < Duration::from_secs(5));
}

#[tokio::test]
async fn fault_stop_and_start_node_keeps_port_and_data() {
    let server = TestServer::builder().nodes(2).start().await.unwrap();
    let addrs: Vec<String> = server
        .bootstrap_servers()
        .split(',')
        .map(str::to_string)
        .collect();
    let topic = unique("stop");
    server.create_topic(&topic, 1, &[]).await.unwrap();
    let leader = server.leader_of(&topic, 0).await.unwrap();
    let other = 1 - leader;
    let mut raw = Raw::connect(&addrs[leader as usize]).await;
    assert_eq!(produce(&mut raw, 9, &topic, 0, one()).await.error_code, 0);
    server.stop_node(leader).await.unwrap();
    assert!(
        raw.closed().await,
        "connections of the stopped node are closed"
    );
    assert!(tokio::net::TcpStream::connect(&addrs[leader as usize])
        .await
        .is_err());
    let mut survivor = Raw::connect(&addrs[other as usize]).await;
    let mut req = MetadataRequest::default();
    let mut mt = MetadataRequestTopic::default();
    mt.name = Some(tn(&topic));
    req.topics = Some(vec![mt]);
    let r: MetadataResponse = survivor.call(ApiKey::Metadata, 12, &req).await;
    assert_eq!(r.brokers.len(), 1);
    assert_eq!(
        r.topics[0].partitions[0].error_code, 5,
        "LEADER_NOT_AVAILABLE"
    );
    server.start_node(leader).await.unwrap();
    let mut raw = Raw::connect(&addrs[leader as usize]).await;
    let r = produce(&mut raw, 9, &topic, 0, one()).await;
    assert_eq!((r.error_code, r.base_offset), (0, 1));
}

#[tokio::test]
async fn fault_restart_with_data_dir_keeps_topics_records_and_configs() {
    let dir = std::env::temp_dir().join(unique("kp-testserver-data"));
    let topic = unique("persist");
    {
        let server = TestServer::builder().data_dir(&dir).start().await.unwrap();
        server
            .create_topic(
                &topic,
                2,
                &[("cleanup.policy", "compact"), ("max.message.bytes", "5000")],
            )
            .await
            .unwrap();
        let mut raw = Raw::connect(&server.bootstrap_servers()).await;
        let keyed: Vec<Record> = (0..3)
            .map(|i| Record::new(format!("v{i}"), 1).with_key(format!("k{i}")))
            .collect();
        assert_eq!(
            produce(
                &mut raw,
                9,
                &topic,
                1,
                batch(&keyed, &EncodeOptions::default())
            )
            .await
            .error_code,
            0
        );
        assert_eq!(
            produce(
                &mut raw,
                9,
                &topic,
                1,
                batch(&keyed[..1], &EncodeOptions::default())
            )
            .await
            .error_code,
            0
        );
        server.set_log_start_offset(&topic, 1, 1).await.unwrap();
        server.shutdown().await;
    }
    let server = TestServer::builder().data_dir(&dir).start().await.unwrap();
    let info = server.partition_info(&topic, 1).await.unwrap();
    assert_eq!(
        (
            info.log_start_offset,
            info.high_watermark,
            info.record_batches
        ),
        (1, 4, 2)
    );
    let mut raw = Raw::connect(&server.bootstrap_servers()).await;
    let a = FetchArgs {
        offset: 1,
        ..Default::default()
    };
    let f = fetch(&mut raw, &topic, 1, a).await;
    let values: Vec<String> = decode_values(&f.records)
        .into_iter()
        .filter(|(o, _)| *o >= 1)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, vec!["v1", "v2", "v0"]);
    let big = vec![Record::new(vec![0u8; 6000], 1).with_key("k")];
    assert_eq!(
        produce(
            &mut raw,
            9,
            &topic,
            1,
            batch(&big, &EncodeOptions::default())
        )
        .await
        .error_code,
        10,
        "config survived"
    );
    let r = produce(
        &mut raw,
        9,
        &topic,
        0,
        batch(&records("x", 1), &EncodeOptions::default()),
    )
    .await;
    assert_eq!(r.error_code, 87, "still compacted: keyless records refused");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn fault_compaction_keeps_the_newest_record_per_key() {
    let server = TestServer::start().await.unwrap();
    let topic = unique("compact");
    server
        .create_topic(
            &topic,
            1,
            &[("cleanup.policy", "compact"), ("delete.retention.ms", "0")],
        )
        .await
        .unwrap();
    let mut raw = Raw::connect(&server.bootstrap_servers()).await;
    let rec = |k: &str, v: Option<&str>| {
        let mut r = Record::new(Bytes::new(), 1_700_000_000_000).with_key(k.to_string());
        r.value = v.map(|v| Bytes::from(v.to_string()));
        r
    };
    let batches = vec![
        vec![
            rec("a", Some("a1")),
            rec("b", Some("b1")),
            rec("c", Some("c1")),
        ], // 0..=2
        vec![rec("a", Some("a2")), rec("d", Some("d1"))], // 3..=4
        vec![rec("b", None)],                             // 5: tombstone
        vec![rec("c", Some("c2"))],                       // 6 (active tail)
    ];
    for b in &batches {
        assert_eq!(
            produce(&mut raw, 9, &topic, 0, batch(b, &EncodeOptions::default()))
                .await
                .error_code,
            0
        );
    }
    server.compact(&topic).await.unwrap();
    let info = server.partition_info(&topic, 0).await.unwrap();
    assert_eq!(info.high_watermark, 7, "offsets never change");
    let f = fetch(&mut raw, &topic, 0, FetchArgs::default()).await;
    let got = decode_values(&f.records);
    assert_eq!(
        got,
        vec![
            (3, "a2".to_string()),
            (4, "d1".to_string()),
            (6, "c2".to_string())
        ],
        "newest per key, tombstone of b expired (delete.retention.ms=0), offsets kept"
    );
    // Idempotent: compacting again changes nothing.
    server.compact(&topic).await.unwrap();
    let f2 = fetch(&mut raw, &topic, 0, FetchArgs::default()).await;
    assert_eq!(decode_values(&f2.records), got);
    // Fetching from a removed offset returns the next surviving batch.
    let a = FetchArgs {
        offset: 1,
        ..Default::default()
    };
    let f = fetch(&mut raw, &topic, 0, a).await;
    assert_eq!(decode_values(&f.records).first().unwrap().0, 3);
}

#[tokio::test]
async fn fault_compaction_keeps_fresh_tombstones() {
    let server = TestServer::start().await.unwrap();
    let topic = unique("tomb");
    server
        .create_topic(&topic, 1, &[("cleanup.policy", "compact")])
        .await
        .unwrap();
    let mut raw = Raw::connect(&server.bootstrap_servers()).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut tomb = Record::new(Bytes::new(), now).with_key("k");
    tomb.value = None;
    let live = Record::new("v", now).with_key("k");
    for b in [
        vec![live.clone()],
        vec![tomb],
        vec![Record::new("z", now).with_key("z")],
    ] {
        produce(&mut raw, 9, &topic, 0, batch(&b, &EncodeOptions::default())).await;
    }
    server.compact(&topic).await.unwrap();
    let f = fetch(&mut raw, &topic, 0, FetchArgs::default()).await;
    let offsets: Vec<i64> = decode_values(&f.records)
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(offsets, vec![1, 2], "old value gone, fresh tombstone kept");
}

#[tokio::test]
async fn fault_background_compaction_runs() {
    let server = TestServer::builder()
        .compaction_interval(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let topic = unique("bg");
    server
        .create_topic(&topic, 1, &[("cleanup.policy", "compact")])
        .await
        .unwrap();
    let mut raw = Raw::connect(&server.bootstrap_servers()).await;
    for i in 0..5 {
        let b = vec![Record::new(format!("v{i}"), 1).with_key("same")];
        produce(&mut raw, 9, &topic, 0, batch(&b, &EncodeOptions::default())).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while server
        .partition_info(&topic, 0)
        .await
        .unwrap()
        .record_batches
        > 1
    {
        assert!(
            Instant::now() < deadline,
            "background compaction did not run"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn fault_acks_zero_gets_no_answer_but_is_applied() {
    let (server, mut raw, topic) = server().await;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let mut p = PartitionProduceData::default();
    p.records = Some(one());
    let mut t = TopicProduceData::default();
    t.name = tn(&topic);
    t.partition_data.push(p);
    let mut req = ProduceRequest::default();
    req.acks = 0;
    req.topic_data.push(t);
    raw.send(ApiKey::Produce, 9, &req).await;
    // The next request's answer is the first frame we get.
    let corr = raw
        .send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    let r: ApiVersionsResponse = raw.recv(3, corr).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(
        server
            .partition_info(&topic, 0)
            .await
            .unwrap()
            .high_watermark,
        1
    );
}

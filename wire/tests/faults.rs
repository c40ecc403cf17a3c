//! Fault injection against the in-process test server (`fault_*`: skipped against an
//! external broker).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{now_ms, test_server, unique};
use kafka_persistence_testserver::Fault;
use kafka_persistence_wire::{
    Client, ClientConfig, Error, FetchRequest, NewTopic, ProducerConfig, Record,
};

const PRODUCE: i16 = 0;
const FETCH: i16 = 1;
const API_VERSIONS: i16 = 18;

async fn values(client: &Client, topic: &str, partition: i32) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let r = client
            .fetch(FetchRequest::new(topic, partition, offset))
            .await
            .unwrap();
        if r.records.is_empty() {
            return out;
        }
        offset = r.next_offset;
        out.extend(
            r.records
                .into_iter()
                .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap()),
        );
    }
}

fn assert_exactly_once(values: &[String], expected: usize) {
    let set: HashSet<&String> = values.iter().collect();
    assert_eq!(set.len(), values.len(), "duplicates in {values:?}");
    assert_eq!(values.len(), expected, "gap or duplicate: {values:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_dropped_produce_response_leaves_no_duplicate_and_no_gap() {
    let b = test_server(1).await;
    let client = b.client().await;
    let topic = unique("drop");
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig::default());
    producer
        .send(&topic, 0, vec![Record::new("warmup", now_ms())])
        .await
        .unwrap();
    b.server()
        .inject_fault(Fault::DropResponse {
            api_key: PRODUCE,
            count: 2,
        })
        .await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let p = producer.clone();
        let t = topic.clone();
        tasks.push(tokio::spawn(async move {
            p.send(
                &t,
                0,
                vec![
                    Record::new(format!("v{i}a"), now_ms()),
                    Record::new(format!("v{i}b"), now_ms()),
                ],
            )
            .await
        }));
    }
    let mut offsets = HashSet::new();
    for t in tasks {
        let m = t
            .await
            .unwrap()
            .expect("send survives the lost acknowledgement");
        assert!(offsets.insert(m.base_offset));
    }
    let vals = values(&client, &topic, 0).await;
    assert_exactly_once(&vals, 101);
    // Each send's two records are adjacent (one batch).
    for w in vals[1..].chunks(2) {
        assert_eq!(w[0].trim_end_matches('a'), w[1].trim_end_matches('b'));
    }
}

#[tokio::test]
async fn fault_close_before_handling_is_retried() {
    let b = test_server(1).await;
    let client = b.client().await;
    let topic = unique("close");
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig::default());
    b.server()
        .inject_fault(Fault::CloseBeforeHandling {
            api_key: PRODUCE,
            count: 1,
        })
        .await;
    let m = producer
        .send(&topic, 0, vec![Record::new("one", now_ms())])
        .await
        .unwrap();
    assert_eq!(m.base_offset, 0);
    b.server()
        .inject_fault(Fault::CloseBeforeHandling {
            api_key: FETCH,
            count: 1,
        })
        .await;
    assert_eq!(values(&client, &topic, 0).await, vec!["one".to_owned()]);
}

#[tokio::test]
async fn fault_not_leader_injection_is_followed_transparently() {
    let b = test_server(1).await;
    let client = b.client().await;
    let topic = unique("notleader");
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig::default());
    b.server().inject_error(PRODUCE, 6, 3).await; // NOT_LEADER_OR_FOLLOWER x3
    let m = producer
        .send(&topic, 0, vec![Record::new("a", now_ms())])
        .await
        .unwrap();
    assert_eq!(m.base_offset, 0);
    b.server().inject_error(FETCH, 6, 2).await;
    assert_eq!(values(&client, &topic, 0).await, vec!["a".to_owned()]);
    // Ambiguous broker errors are retried with the same sequence: still exactly once.
    b.server().inject_error(PRODUCE, 7, 1).await; // REQUEST_TIMED_OUT
    b.server().inject_error(PRODUCE, 20, 1).await; // NOT_ENOUGH_REPLICAS_AFTER_APPEND
    producer
        .send(&topic, 0, vec![Record::new("b", now_ms())])
        .await
        .unwrap();
    let vals = values(&client, &topic, 0).await;
    assert_eq!(vals.first().map(String::as_str), Some("a"));
    assert_eq!(vals.last().map(String::as_str), Some("b"));
}

#[tokio::test]
async fn fault_non_retriable_error_fails_the_send() {
    let b = test_server(1).await;
    let client = b.client().await;
    let topic = unique("fatal");
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig::default());
    b.server().inject_error(PRODUCE, 87, 1).await; // INVALID_RECORD
    let r = producer
        .send(&topic, 0, vec![Record::new("bad", now_ms())])
        .await;
    assert!(matches!(r, Err(Error::Broker { code: 87, .. })), "{r:?}");
    let m = producer
        .send(&topic, 0, vec![Record::new("good", now_ms())])
        .await
        .unwrap();
    assert_eq!(m.base_offset, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_leader_move_in_three_node_cluster() {
    let b = test_server(3).await;
    let client = b.client().await;
    let topic = unique("move");
    client
        .create_topics(vec![NewTopic::new(&topic, 3, 1)])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig::default());
    for p in 0..3 {
        producer
            .send(&topic, p, vec![Record::new(format!("p{p}-0"), now_ms())])
            .await
            .unwrap();
    }
    let server = b.server();
    let nodes = server.node_ids();
    for p in 0..3 {
        let leader = server.leader_of(&topic, p).await.unwrap();
        let next = nodes.iter().copied().find(|n| *n != leader).unwrap();
        server.move_leader(&topic, p, next).await.unwrap();
        assert_eq!(server.leader_of(&topic, p).await, Some(next));
    }
    for p in 0..3 {
        producer
            .send(&topic, p, vec![Record::new(format!("p{p}-1"), now_ms())])
            .await
            .unwrap();
    }
    for p in 0..3 {
        assert_eq!(
            values(&client, &topic, p).await,
            vec![format!("p{p}-0"), format!("p{p}-1")]
        );
    }
}

#[tokio::test]
async fn fault_three_node_cluster_with_a_node_down() {
    let b = test_server(3).await;
    let client = b.client().await;
    let topic = unique("down");
    client
        .create_topics(vec![NewTopic::new(&topic, 6, 1)])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig::default());
    for p in 0..6 {
        producer
            .send(&topic, p, vec![Record::new(format!("{p}"), now_ms())])
            .await
            .unwrap();
    }
    // Connections dropped under our feet: the next calls reconnect.
    b.server().drop_connections().await;
    for p in 0..6 {
        producer
            .send(&topic, p, vec![Record::new(format!("{p}-again"), now_ms())])
            .await
            .unwrap();
        assert_eq!(values(&client, &topic, p).await.len(), 2);
    }
}

#[tokio::test]
async fn fault_request_timeout_fails_within_delivery_timeout() {
    let b = test_server(1).await;
    let client = b.client().await;
    let topic = unique("slow");
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    let cfg = ClientConfig::new(&b.bootstrap)
        .with_request_timeout(Duration::from_millis(200))
        .with_delivery_timeout(Duration::from_millis(1500))
        .with_retry_backoff(Duration::from_millis(20), Duration::from_millis(100));
    let slow_client = Client::connect(cfg).await.unwrap();
    let producer = slow_client.producer(ProducerConfig::default());
    producer
        .send(&topic, 0, vec![Record::new("fast", now_ms())])
        .await
        .unwrap();
    b.server().set_latency(Duration::from_millis(600)).await;
    let start = Instant::now();
    let r = producer
        .send(&topic, 0, vec![Record::new("slow", now_ms())])
        .await;
    let took = start.elapsed();
    assert!(r.is_err(), "{r:?}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let r = slow_client.fetch(FetchRequest::new(&topic, 0, 0)).await;
    assert!(
        matches!(r, Err(Error::Timeout { .. } | Error::Io { .. })),
        "{r:?}"
    );
    // Once the broker is fast again, everything works (the timed-out write may or may not
    // have been stored, but never twice).
    b.server().set_latency(Duration::ZERO).await;
    producer
        .send(&topic, 0, vec![Record::new("after", now_ms())])
        .await
        .unwrap();
    let vals = values(&client, &topic, 0).await;
    assert!(vals.iter().filter(|v| *v == "slow").count() <= 1);
    assert_eq!(vals.last().map(String::as_str), Some("after"));
}

#[tokio::test]
async fn fault_api_versions_unsupported_version_falls_back() {
    let b = test_server(1).await;
    // The next ApiVersions request answers UNSUPPORTED_VERSION: the client reads the v0 body,
    // retries at the advertised version, and connects.
    b.server().inject_error(API_VERSIONS, 35, 1).await;
    let client = b.client().await;
    let topic = unique("apiv");
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    let m = client
        .producer(ProducerConfig::default())
        .send(&topic, 0, vec![Record::new("x", 1)])
        .await
        .unwrap();
    assert_eq!(m.base_offset, 0);
}

#[tokio::test]
async fn fault_idempotent_dedup_on_retried_batches() {
    let b = test_server(1).await;
    let client = b.client().await;
    let topic = unique("dedup");
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig::default());
    // Every produce of several rounds has its acknowledgement lost once.
    for round in 0..5 {
        b.server()
            .inject_fault(Fault::DropResponse {
                api_key: PRODUCE,
                count: 1,
            })
            .await;
        let m = producer
            .send(&topic, 0, vec![Record::new(format!("r{round}"), now_ms())])
            .await
            .unwrap();
        assert_eq!(m.base_offset, round);
    }
    let vals = values(&client, &topic, 0).await;
    assert_eq!(vals, (0..5).map(|r| format!("r{r}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn fault_unknown_producer_id_resets_and_continues() {
    let b = test_server(1).await;
    let client = b.client().await;
    let topic = unique("upid");
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig::default());
    producer
        .send(&topic, 0, vec![Record::new("1", now_ms())])
        .await
        .unwrap();
    b.server().inject_error(PRODUCE, 59, 1).await; // UNKNOWN_PRODUCER_ID
    producer
        .send(&topic, 0, vec![Record::new("2", now_ms())])
        .await
        .unwrap();
    producer
        .send(&topic, 0, vec![Record::new("3", now_ms())])
        .await
        .unwrap();
    assert_eq!(values(&client, &topic, 0).await, vec!["1", "2", "3"]);
}

#[tokio::test]
async fn fault_broker_down_fails_within_delivery_timeout_then_recovers() {
    let b = test_server(1).await;
    let topic = unique("down1");
    let cfg = ClientConfig::new(&b.bootstrap)
        .with_request_timeout(Duration::from_millis(300))
        .with_delivery_timeout(Duration::from_millis(1200))
        .with_connect_timeout(Duration::from_millis(200))
        .with_retry_backoff(Duration::from_millis(20), Duration::from_millis(100));
    let client = Client::connect(cfg).await.unwrap();
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig::default());
    producer
        .send(&topic, 0, vec![Record::new("before", now_ms())])
        .await
        .unwrap();
    let node = b.server().node_ids()[0];
    b.server().stop_node(node).await.unwrap();
    let start = Instant::now();
    let r = producer
        .send(&topic, 0, vec![Record::new("during", now_ms())])
        .await;
    let took = start.elapsed();
    assert!(r.as_ref().is_err_and(Error::is_retriable), "{r:?}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    b.server().start_node(node).await.unwrap();
    producer
        .send(&topic, 0, vec![Record::new("after", now_ms())])
        .await
        .unwrap();
    let vals = values(&client, &topic, 0).await;
    assert_eq!(vals.first().map(String::as_str), Some("before"));
    assert_eq!(vals.last().map(String::as_str), Some("after"));
    assert!(!vals.iter().any(|v| v == "during"));
}

/// Sends 20 one-record batches to partition 0 at once, the first Produce request answered
/// NOT_LEADER_OR_FOLLOWER; every send must succeed, stored exactly once in issue order.
async fn pipelined_sends_after_not_leader_keep_order(warmup: bool) {
    let b = test_server(1).await;
    let client = b.client().await;
    let topic = unique("firstbatch");
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    // A tiny batch size makes every send its own batch, so they would all be pipelined.
    let producer = client.producer(ProducerConfig::default().with_batch_size(1));
    let mut expected = Vec::new();
    // Take the producer id beforehand, so that nothing below awaits before every send has
    // been queued (this test runs on a current-thread runtime: deterministic pipelining).
    let other = unique("firstbatch-pid");
    client
        .create_topics(vec![NewTopic::new(&other, 1, 1)])
        .await
        .unwrap();
    producer
        .send(&other, 0, vec![Record::new("pid", now_ms())])
        .await
        .unwrap();
    if warmup {
        producer
            .send(&topic, 0, vec![Record::new("warmup", now_ms())])
            .await
            .unwrap();
        expected.push("warmup".to_owned());
    }
    let first = expected.len() as i64;
    b.server().inject_error(PRODUCE, 6, 1).await; // NOT_LEADER_OR_FOLLOWER x1
    let sends = (0..20).map(|i| {
        let p = producer.clone();
        let t = topic.clone();
        async move {
            p.send(&t, 0, vec![Record::new(format!("{i}"), now_ms())])
                .await
        }
    });
    let results = futures::future::join_all(sends).await;
    for (i, r) in results.iter().enumerate() {
        let m = r
            .as_ref()
            .unwrap_or_else(|e| panic!("send {i} failed: {e}"));
        assert_eq!(
            m.base_offset,
            first + i as i64,
            "send {i} stored out of order"
        );
    }
    expected.extend((0..20).map(|i| format!("{i}")));
    let vals = values(&client, &topic, 0).await;
    assert_exactly_once(&vals, expected.len());
    assert_eq!(vals, expected);
}

/// Kafka accepts any first sequence from a producer it has no state for on a partition, so a
/// pipelined second batch must not overtake a failed first one (seen once against Kafka 4.1
/// as OUT_OF_ORDER_SEQUENCE_NUMBER on a just-created topic).
#[tokio::test]
async fn fault_failed_first_batch_on_fresh_partition_keeps_order() {
    pipelined_sends_after_not_leader_keep_order(false).await;
}

/// Once the broker knows the producer, the batches pipelined behind a failed one answer
/// OUT_OF_ORDER_SEQUENCE_NUMBER: they are retried in order, not failed or re-sequenced.
#[tokio::test]
async fn fault_failed_batch_mid_stream_retries_pipelined_batches_in_order() {
    pipelined_sends_after_not_leader_keep_order(true).await;
}

//! Admin calls against a broker (in-process, or `KP_EXTERNAL_BOOTSTRAP`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{broker, now_ms, unique};
use kafka_persistence_wire::{Error, FetchRequest, NewTopic, OffsetSpec, ProducerConfig, Record};

#[tokio::test]
async fn create_topic_with_configs_and_describe() {
    let b = broker().await;
    let client = b.client().await;
    let topic = unique("cfg");
    let new = NewTopic::new(&topic, 3, 1)
        .with_config("cleanup.policy", "compact")
        .with_config("retention.ms", "123456");
    client.create_topics(vec![new.clone()]).await.unwrap();
    // Creating again is fine (idempotent setup).
    client.create_topics(vec![new]).await.unwrap();
    let md = client
        .topic_metadata(&topic)
        .await
        .unwrap()
        .expect("topic exists");
    assert_eq!(md.partitions.len(), 3);
    assert!(md.all_leaders_known());
    let cfg = client.describe_topic_config(&topic).await.unwrap();
    assert_eq!(
        cfg.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
    assert_eq!(cfg.get("retention.ms").map(String::as_str), Some("123456"));
    assert!(client.list_topics().await.unwrap().contains(&topic));
}

#[tokio::test]
async fn delete_topic_then_metadata_says_none() {
    let b = broker().await;
    let client = b.client().await;
    let topic = unique("del");
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    client
        .delete_topics(std::slice::from_ref(&topic))
        .await
        .unwrap();
    // Deletion may take a moment to propagate on a real cluster.
    let mut gone = false;
    for _ in 0..100 {
        if client.topic_metadata(&topic).await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone);
    // Deleting a missing topic is not an error.
    client.delete_topics(&[topic]).await.unwrap();
}

#[tokio::test]
async fn list_offsets_earliest_latest_and_timestamp() {
    let b = broker().await;
    let client = b.client().await;
    let topic = unique("offsets");
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    assert_eq!(
        client
            .list_offset(&topic, 0, OffsetSpec::Earliest)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        client
            .list_offset(&topic, 0, OffsetSpec::Latest)
            .await
            .unwrap(),
        0
    );
    let producer = client.producer(ProducerConfig::default());
    let t0 = now_ms() - 10_000;
    for i in 0..5 {
        producer
            .send(&topic, 0, vec![Record::new(format!("{i}"), t0 + i * 1000)])
            .await
            .unwrap();
    }
    assert_eq!(
        client
            .list_offset(&topic, 0, OffsetSpec::Latest)
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        client
            .list_offset(&topic, 0, OffsetSpec::Timestamp(t0 + 2500))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        client
            .list_offset(&topic, 0, OffsetSpec::Timestamp(t0 + 100_000))
            .await
            .unwrap(),
        -1
    );
    let r = client
        .list_offset(&unique("nope"), 0, OffsetSpec::Latest)
        .await;
    assert!(matches!(r, Err(Error::UnknownTopic { .. })), "{r:?}");
}

#[tokio::test]
async fn delete_records_moves_log_start() {
    let b = broker().await;
    let client = b.client().await;
    let topic = unique("delrec");
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig::default());
    for i in 0..10 {
        producer
            .send(&topic, 0, vec![Record::new(format!("{i}"), now_ms())])
            .await
            .unwrap();
    }
    let low = client.delete_records(&topic, 0, 4).await.unwrap();
    assert_eq!(low, 4);
    assert_eq!(
        client
            .list_offset(&topic, 0, OffsetSpec::Earliest)
            .await
            .unwrap(),
        4
    );
    let r = client.fetch(FetchRequest::new(&topic, 0, 4)).await.unwrap();
    assert_eq!(r.records.first().map(|r| r.offset), Some(4));
    assert_eq!(r.log_start_offset, 4);
    match client.fetch(FetchRequest::new(&topic, 0, 1)).await {
        Err(Error::OffsetOutOfRange {
            log_start_offset,
            high_watermark,
            ..
        }) => {
            assert_eq!((log_start_offset, high_watermark), (4, 10));
        }
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_to_nothing_fails_within_the_delivery_timeout() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let cfg = kafka_persistence_wire::ClientConfig::new(addr.to_string())
        .with_delivery_timeout(std::time::Duration::from_millis(500))
        .with_retry_backoff(
            std::time::Duration::from_millis(10),
            std::time::Duration::from_millis(50),
        );
    let start = std::time::Instant::now();
    let r = kafka_persistence_wire::Client::connect(cfg).await;
    assert!(r.is_err());
    assert!(
        start.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let bad = kafka_persistence_wire::ClientConfig::new("not an address");
    assert!(matches!(
        kafka_persistence_wire::Client::connect(bad).await,
        Err(Error::Config(_))
    ));
}

/// A metadata answer that says "no such topic", read by its caller only after the topic was
/// created and the creation's own metadata was cached, must not make the topic missing again:
/// the first sends to the new topic used to fail with "unknown topic or partition" (seen when
/// many journal writes looked up and created an event topic at once).
#[tokio::test]
async fn a_stale_metadata_answer_does_not_hide_a_created_topic() {
    let b = broker().await;
    let client = b.client().await;
    let topic = unique("stale-md");
    // Ask before the topic exists, and let the answer wait unread.
    let mut early = Box::pin(client.topic_metadata(&topic));
    assert!(
        futures::poll!(&mut early).is_pending(),
        "the request is in flight"
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    // Now the early caller reads its answer (from before the creation): it sees the newer
    // state, or at worst none, but it must not overwrite the newer state.
    let _ = early.await.unwrap();
    // The producer routes by the cached metadata.
    let producer = client.producer(ProducerConfig::default());
    producer
        .send(&topic, 0, vec![Record::new("x", now_ms())])
        .await
        .expect("the new topic accepts records");
}

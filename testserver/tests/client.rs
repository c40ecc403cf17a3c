//! Client-level tests: the workspace's `wire` client against the broker.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use kafka_persistence_testserver::{Fault, TestServer};
use kafka_persistence_wire::{
    Client, ClientConfig, Compression, FetchRequest, NewTopic, OffsetSpec, ProducerConfig, Record,
};

fn config(bootstrap: &str) -> ClientConfig {
    ClientConfig::new(bootstrap)
        .with_request_timeout(Duration::from_secs(10))
        .with_delivery_timeout(Duration::from_secs(30))
        .with_retry_backoff(Duration::from_millis(10), Duration::from_millis(200))
}

async fn values(client: &Client, topic: &str, partition: i32) -> Vec<String> {
    let r = client
        .fetch(FetchRequest::new(topic, partition, 0))
        .await
        .unwrap();
    r.records
        .into_iter()
        .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn client_round_trip_with_every_encodable_codec() {
    let b = broker().await;
    let client = Client::connect(config(&b.bootstrap)).await.unwrap();
    let topic = unique("cl");
    client
        .create_topics(vec![
            NewTopic::new(&topic, 1, 1).with_config("retention.ms", "60000")
        ])
        .await
        .unwrap();
    let cfg = client.describe_topic_config(&topic).await.unwrap();
    assert_eq!(cfg.get("retention.ms").map(String::as_str), Some("60000"));
    assert_eq!(
        cfg.get("cleanup.policy").map(String::as_str),
        Some("delete")
    );
    let mut expected = Vec::new();
    for (i, c) in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
    ]
    .into_iter()
    .enumerate()
    {
        let producer = client.producer(ProducerConfig::default().with_compression(c));
        let v = format!("v{i}");
        producer
            .send(&topic, 0, vec![Record::new(v.clone(), 1)])
            .await
            .unwrap();
        expected.push(v);
    }
    assert_eq!(values(&client, &topic, 0).await, expected);
    assert_eq!(
        client
            .list_offset(&topic, 0, OffsetSpec::Latest)
            .await
            .unwrap(),
        4
    );
    assert_eq!(client.delete_records(&topic, 0, 2).await.unwrap(), 2);
    assert_eq!(
        client
            .list_offset(&topic, 0, OffsetSpec::Earliest)
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn fault_client_survives_lost_acks_and_leader_moves_without_duplicates() {
    let server = TestServer::builder().nodes(3).start().await.unwrap();
    let client = Client::connect(config(&server.bootstrap_servers()))
        .await
        .unwrap();
    let topic = unique("clf");
    client
        .create_topics(vec![NewTopic::new(&topic, 2, 1)])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig::default());
    producer
        .send(&topic, 0, vec![Record::new("a", 1)])
        .await
        .unwrap();
    server
        .inject_fault(Fault::DropResponse {
            api_key: 0,
            count: 1,
        })
        .await;
    producer
        .send(&topic, 0, vec![Record::new("b", 1)])
        .await
        .unwrap();
    let leader = server.leader_of(&topic, 0).await.unwrap();
    server
        .move_leader(&topic, 0, (leader + 1) % 3)
        .await
        .unwrap();
    producer
        .send(&topic, 0, vec![Record::new("c", 1)])
        .await
        .unwrap();
    server.inject_error(0, 6, 2).await;
    producer
        .send(&topic, 0, vec![Record::new("d", 1)])
        .await
        .unwrap();
    assert_eq!(values(&client, &topic, 0).await, vec!["a", "b", "c", "d"]);
}

#[tokio::test]
async fn fault_client_long_poll_is_woken_by_another_client() {
    let server = TestServer::start().await.unwrap();
    let client = Client::connect(config(&server.bootstrap_servers()))
        .await
        .unwrap();
    let topic = unique("cllp");
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    let other = client.clone();
    let t = topic.clone();
    let waiter = tokio::spawn(async move {
        other
            .fetch(FetchRequest::new(&t, 0, 0).with_max_wait(Duration::from_secs(20)))
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let writer = Client::connect(config(&server.bootstrap_servers()))
        .await
        .unwrap();
    writer
        .producer(ProducerConfig::default())
        .send(&topic, 0, vec![Record::new("wake", 1)])
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.records.len(), 1);
    assert!(server.request_count(1).await >= 1);
}

//! Producing and fetching against a broker (in-process, or `KP_EXTERNAL_BOOTSTRAP`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{broker, now_ms, unique};
use kafka_persistence_wire::{Acks, Error, FetchRequest, Header, NewTopic, ProducerConfig, Record};

async fn fetch_all(
    client: &kafka_persistence_wire::Client,
    topic: &str,
    partition: i32,
    from: i64,
    to: i64,
) -> Vec<kafka_persistence_wire::ConsumedRecord> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < to {
        let r = client
            .fetch(FetchRequest::new(topic, partition, offset))
            .await
            .expect("fetch");
        assert!(r.next_offset > offset || r.records.is_empty());
        if r.records.is_empty() && r.next_offset == offset {
            break;
        }
        offset = r.next_offset;
        out.extend(r.records);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_records_round_trip_in_order() {
    let b = broker().await;
    let client = b.client().await;
    let topic = unique("100k");
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig::default());
    const N: usize = 100_000;
    let ts = now_ms();
    // Many sends in flight at once: they coalesce into batches behind the in-flight window.
    let mut tasks = Vec::new();
    for chunk in 0..100 {
        let producer = producer.clone();
        let topic = topic.clone();
        tasks.push(tokio::spawn(async move {
            let mut offsets = Vec::new();
            for i in 0..1000 {
                let n = chunk * 1000 + i;
                let rec = Record::new(format!("value-{n:06}"), ts).with_key(format!("k{n}"));
                let m = producer.send(&topic, 0, vec![rec]).await.expect("send");
                offsets.push((n, m.base_offset));
            }
            offsets
        }));
    }
    let mut by_offset = std::collections::HashMap::new();
    for t in tasks {
        for (n, off) in t.await.unwrap() {
            assert!(
                by_offset.insert(off, n).is_none(),
                "offset {off} reported twice"
            );
        }
    }
    producer.flush().await.unwrap();
    let records = fetch_all(&client, &topic, 0, 0, N as i64).await;
    assert_eq!(records.len(), N);
    let mut seen = HashSet::new();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.offset, i as i64, "contiguous offsets");
        let v = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
        assert!(seen.insert(v.clone()), "duplicate {v}");
        // The offset each send reported holds exactly that send's record.
        let n = by_offset[&r.offset];
        assert_eq!(v, format!("value-{n:06}"));
    }
    // Per sender task, its records appear in the order it sent them.
    let hw = client
        .list_offset(&topic, 0, kafka_persistence_wire::OffsetSpec::Latest)
        .await
        .unwrap();
    assert_eq!(hw, N as i64);
}

#[tokio::test]
async fn one_send_is_one_batch_and_offsets_point_at_first_record() {
    let b = broker().await;
    let client = b.client().await;
    let topic = unique("atomic");
    client
        .create_topics(vec![NewTopic::new(&topic, 2, 1)])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig::default().with_linger(Duration::from_millis(5)));
    let ts = now_ms();
    let (a, b2, c) = tokio::join!(
        producer.send(
            &topic,
            1,
            vec![Record::new("a1", ts), Record::new("a2", ts)]
        ),
        producer.send(&topic, 1, vec![Record::new("b1", ts)]),
        producer.send(
            &topic,
            1,
            vec![
                Record::new("c1", ts),
                Record::new("c2", ts),
                Record::new("c3", ts)
            ]
        ),
    );
    let (a, b2, c) = (a.unwrap(), b2.unwrap(), c.unwrap());
    let fetched = client.fetch(FetchRequest::new(&topic, 1, 0)).await.unwrap();
    let get = |off: i64| {
        fetched
            .records
            .iter()
            .find(|r| r.offset == off)
            .and_then(|r| r.value.clone())
    };
    assert_eq!(get(a.base_offset), Some(Bytes::from_static(b"a1")));
    assert_eq!(get(a.base_offset + 1), Some(Bytes::from_static(b"a2")));
    assert_eq!(get(b2.base_offset), Some(Bytes::from_static(b"b1")));
    assert_eq!(get(c.base_offset + 2), Some(Bytes::from_static(b"c3")));
    assert_eq!(fetched.high_watermark, 6);
    assert_eq!(fetched.next_offset, 6);
    // Fetching from the middle drops earlier records of the same batch.
    let mid = client
        .fetch(FetchRequest::new(&topic, 1, c.base_offset + 1))
        .await
        .unwrap();
    assert_eq!(
        mid.records.first().map(|r| r.offset),
        Some(c.base_offset + 1)
    );
}

#[tokio::test]
async fn headers_keys_and_nulls_round_trip() {
    let b = broker().await;
    let client = b.client().await;
    let topic = unique("headers");
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig::default());
    let rec = Record {
        key: Some(Bytes::from_static(b"key")),
        value: None,
        headers: vec![
            Header::new("h", "1"),
            Header::new("h", "2"),
            Header {
                key: "null".into(),
                value: None,
            },
        ],
        timestamp: 1_234_567,
    };
    let m = producer.send(&topic, 0, vec![rec.clone()]).await.unwrap();
    let r = client
        .fetch(FetchRequest::new(&topic, 0, m.base_offset))
        .await
        .unwrap();
    let got = &r.records[0];
    assert_eq!(got.key, rec.key);
    assert_eq!(got.value, None);
    assert_eq!(got.headers, rec.headers);
    assert_eq!(got.timestamp, 1_234_567);
}

#[tokio::test]
async fn fetch_out_of_range_reports_bounds_and_long_poll_waits() {
    let b = broker().await;
    let client = b.client().await;
    let topic = unique("range");
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig::default());
    producer
        .send(&topic, 0, vec![Record::new("x", now_ms())])
        .await
        .unwrap();
    match client.fetch(FetchRequest::new(&topic, 0, 50)).await {
        Err(Error::OffsetOutOfRange {
            offset,
            high_watermark,
            log_start_offset,
            ..
        }) => {
            assert_eq!(offset, 50);
            assert_eq!(high_watermark, 1);
            assert_eq!(log_start_offset, 0);
        }
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    // At the end: an empty answer at once with max_wait 0 ...
    let r = client.fetch(FetchRequest::new(&topic, 0, 1)).await.unwrap();
    assert!(r.records.is_empty());
    assert_eq!(r.next_offset, 1);
    // ... and a long poll that returns when a record arrives.
    let c2 = client.clone();
    let t2 = topic.clone();
    let poll = tokio::spawn(async move {
        let start = Instant::now();
        let r = c2
            .fetch(FetchRequest::new(&t2, 0, 1).with_max_wait(Duration::from_secs(5)))
            .await
            .unwrap();
        (r, start.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    producer
        .send(&topic, 0, vec![Record::new("y", now_ms())])
        .await
        .unwrap();
    let (r, waited) = poll.await.unwrap();
    assert_eq!(r.records.len(), 1);
    assert!(
        waited >= Duration::from_millis(150),
        "long poll returned after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(4),
        "long poll was not woken: {waited:?}"
    );
}

#[tokio::test]
async fn unknown_topic_fails_fast_and_is_not_created() {
    let b = broker().await;
    let client = b.client().await;
    let topic = unique("missing");
    let start = Instant::now();
    let r = client.fetch(FetchRequest::new(&topic, 0, 0)).await;
    assert!(matches!(r, Err(Error::UnknownTopic { .. })), "{r:?}");
    let producer = client.producer(ProducerConfig::default());
    let r = producer.send(&topic, 0, vec![Record::new("x", 1)]).await;
    assert!(matches!(r, Err(Error::UnknownTopic { .. })), "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(client.topic_metadata(&topic).await.unwrap(), None);
    assert!(!client.list_topics().await.unwrap().contains(&topic));
}

#[tokio::test]
async fn acks_leader_and_none_and_keyed_sends() {
    let b = broker().await;
    let client = b.client().await;
    let topic = unique("acks");
    client
        .create_topics(vec![NewTopic::new(&topic, 3, 1)])
        .await
        .unwrap();
    let leader = client.producer(ProducerConfig::default().with_acks(Acks::Leader));
    let m = leader
        .send(&topic, 2, vec![Record::new("l", 1)])
        .await
        .unwrap();
    assert_eq!(m.base_offset, 0);
    let none = client.producer(ProducerConfig::default().with_acks(Acks::None));
    let m = none
        .send(&topic, 2, vec![Record::new("n", 1)])
        .await
        .unwrap();
    assert_eq!(m.base_offset, -1);
    let keyed = client.producer(ProducerConfig::default());
    let key = b"persistence-id-42";
    let m = keyed
        .send_keyed(&topic, Record::new("k", 1).with_key(&key[..]))
        .await
        .unwrap();
    assert_eq!(
        m.partition,
        kafka_persistence_wire::murmur2_partition(key, 3)
    );
    // The acks=0 record arrives eventually.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = client.fetch(FetchRequest::new(&topic, 2, 0)).await.unwrap();
        if r.records.len() >= 2 {
            assert_eq!(r.records[1].value.as_deref(), Some(&b"n"[..]));
            break;
        }
        assert!(Instant::now() < deadline, "acks=0 record never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn message_too_large_is_reported() {
    let b = broker().await;
    let client = b.client().await;
    let topic = unique("large");
    client
        .create_topics(vec![
            NewTopic::new(&topic, 1, 1).with_config("max.message.bytes", "2000")
        ])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig::default());
    let big = vec![b'x'; 10_000];
    let r = producer.send(&topic, 0, vec![Record::new(big, 1)]).await;
    assert!(matches!(r, Err(Error::MessageTooLarge { .. })), "{r:?}");
    // The producer goes on working after the rejection (fresh sequence state).
    let m = producer
        .send(&topic, 0, vec![Record::new("small", 1)])
        .await
        .unwrap();
    assert_eq!(m.base_offset, 0);
    let r = client.fetch(FetchRequest::new(&topic, 0, 0)).await.unwrap();
    assert_eq!(r.records.len(), 1);
}

/// Sends that each fit the topic's `max.message.bytes` but were merged into one batch that
/// does not: the producer splits the batch and stores every send, in order, exactly once
/// (they used to fail together with MESSAGE_TOO_LARGE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_sends_too_large_together_are_split() {
    let b = broker().await;
    let client = b.client().await;
    let topic = unique("split");
    client
        .create_topics(vec![
            NewTopic::new(&topic, 1, 1).with_config("max.message.bytes", "20000")
        ])
        .await
        .unwrap();
    // A linger so that the sends below are merged into batches of about 1 MiB.
    let producer =
        client.producer(ProducerConfig::default().with_linger(Duration::from_millis(20)));
    let sends = (0..60u32).map(|i| {
        let mut value = vec![b'v'; 6_000];
        value[..4].copy_from_slice(&i.to_be_bytes());
        producer.send(&topic, 0, vec![Record::new(value, now_ms())])
    });
    let offsets: Vec<i64> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.expect("every send fits on its own").base_offset)
        .collect();
    assert_eq!(
        offsets,
        (0..60).collect::<Vec<i64>>(),
        "in call order, no gap"
    );
    let records = fetch_all(&client, &topic, 0, 0, 60).await;
    let ids: Vec<u32> = records
        .iter()
        .map(|r| {
            let v = r.value.as_ref().expect("value");
            u32::from_be_bytes([v[0], v[1], v[2], v[3]])
        })
        .collect();
    assert_eq!(ids, (0..60).collect::<Vec<u32>>(), "no duplicate, no loss");
    // Later sends are batched within the limit learnt.
    let more = (60..80u32)
        .map(|_| producer.send(&topic, 0, vec![Record::new(vec![b'w'; 6_000], now_ms())]));
    for r in futures::future::join_all(more).await {
        r.expect("later sends fit too");
    }
}

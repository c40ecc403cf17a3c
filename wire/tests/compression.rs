//! Compressed batches through a broker (in-process, or `KP_EXTERNAL_BOOTSTRAP`): what the
//! producer compresses, the broker accepts (Apache Kafka validates the records by decompressing
//! them) and the fetcher decodes back intact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{broker, now_ms, unique};
use kafka_persistence_wire::compression::can_encode;
use kafka_persistence_wire::{
    Client, Compression, ConsumedRecord, FetchRequest, Header, NewTopic, ProducerConfig, Record,
};

/// Fetches `topic`/`partition` from offset 0 up to `to`.
async fn fetch_until(client: &Client, topic: &str, partition: i32, to: i64) -> Vec<ConsumedRecord> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < to {
        let r = client
            .fetch(FetchRequest::new(topic, partition, offset).with_max_bytes(4 << 20))
            .await
            .expect("fetch");
        assert!(
            r.next_offset > offset,
            "no progress at offset {offset} (high watermark {})",
            r.high_watermark
        );
        offset = r.next_offset;
        out.extend(r.records);
    }
    out
}

fn json_like(i: usize) -> String {
    format!(
        r#"{{"id":{i},"type":"OrderPlaced","entity":"order-{}","amount":{}.{:02},"currency":"EUR"}}"#,
        i % 97,
        i * 37 % 10_000,
        i % 100
    )
}

/// `len` pseudo-random (incompressible) bytes, xorshift64.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Every record `sends` produces, in send order (one partition, one producer: log order).
fn assert_same(fetched: &[ConsumedRecord], sent: &[Record], what: &str) {
    assert_eq!(fetched.len(), sent.len(), "{what}: record count");
    for (i, (got, want)) in fetched.iter().zip(sent).enumerate() {
        assert_eq!(got.offset, i as i64, "{what}: offset");
        assert_eq!(got.key, want.key, "{what}: key of record {i}");
        assert_eq!(got.value, want.value, "{what}: value of record {i}");
        assert_eq!(got.headers, want.headers, "{what}: headers of record {i}");
        assert_eq!(
            got.timestamp, want.timestamp,
            "{what}: timestamp of record {i}"
        );
    }
}

#[cfg(feature = "zstd")]
#[tokio::test]
async fn zstd_records_round_trip_through_the_broker() {
    assert!(can_encode(Compression::Zstd));
    let b = broker().await;
    let client = b.client().await;
    let topic = unique("zstd");
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    let producer = client.producer(
        ProducerConfig::default()
            .with_compression(Compression::Zstd)
            .with_linger(Duration::from_millis(5)),
    );
    let ts = now_ms();
    let sends: Vec<Vec<Record>> = vec![
        // Many small compressible records in one batch.
        (0..500)
            .map(|i| Record::new(json_like(i), ts).with_key(format!("order-{}", i % 97)))
            .collect(),
        // One large compressible record: a frame of several 128 KiB blocks.
        vec![Record::new(json_like(7).repeat(4000), ts + 1)],
        // Incompressible data: stored blocks.
        vec![Record::new(noise(100_000), ts + 2).with_key(&b"noise"[..])],
        // Null value, duplicate and null headers, an empty value.
        vec![
            Record {
                key: Some(Bytes::from_static(b"tombstone")),
                value: None,
                headers: vec![
                    Header::new("h", "1"),
                    Header::new("h", "2"),
                    Header {
                        key: "null".into(),
                        value: None,
                    },
                ],
                timestamp: ts + 3,
            },
            Record::new(Bytes::new(), ts + 4),
        ],
    ];
    let mut sent = Vec::new();
    for records in &sends {
        let m = producer
            .send(&topic, 0, records.clone())
            .await
            .expect("send zstd");
        assert_eq!(m.base_offset, sent.len() as i64);
        sent.extend(records.iter().cloned());
    }
    producer.flush().await.unwrap();
    let fetched = fetch_until(&client, &topic, 0, sent.len() as i64).await;
    assert_same(&fetched, &sent, "zstd");
}

#[tokio::test]
async fn every_encodable_codec_round_trips_through_the_broker() {
    let codecs: Vec<Compression> = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .filter(|c| can_encode(*c))
    .collect();
    let b = broker().await;
    let client = b.client().await;
    let topic = unique("codecs");
    let partitions = i32::try_from(codecs.len()).unwrap();
    client
        .create_topics(vec![NewTopic::new(&topic, partitions, 1)])
        .await
        .unwrap();
    let ts = now_ms();
    // One partition per codec, so each partition's log holds one producer's batches.
    for (partition, codec) in (0..).zip(&codecs) {
        let producer = client.producer(ProducerConfig::default().with_compression(*codec));
        let mut sent = Vec::new();
        for chunk in 0..3 {
            let records: Vec<Record> = (0..100)
                .map(|i| {
                    Record::new(json_like(chunk * 100 + i), ts).with_header("codec", codec.name())
                })
                .collect();
            producer
                .send(&topic, partition, records.clone())
                .await
                .unwrap_or_else(|e| panic!("send {codec:?}: {e}"));
            sent.extend(records);
        }
        producer.flush().await.unwrap();
        let fetched = fetch_until(&client, &topic, partition, sent.len() as i64).await;
        assert_same(&fetched, &sent, codec.name());
    }
}

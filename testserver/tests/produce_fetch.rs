//! Raw-protocol tests of Produce and Fetch.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use kafka_persistence_wire::record::{EncodeOptions, Record};

#[tokio::test]
async fn produce_assigns_offsets_and_fetch_returns_them() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("pf");
    assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
    for version in [3i16, 7, 9, 11] {
        let r = produce(
            &mut raw,
            version,
            &topic,
            0,
            batch(&records("a", 3), &EncodeOptions::default()),
        )
        .await;
        assert_eq!(r.error_code, 0, "produce v{version}");
    }
    let r = produce(
        &mut raw,
        11,
        &topic,
        0,
        batch(&records("b", 2), &EncodeOptions::default()),
    )
    .await;
    assert_eq!(r.base_offset, 12);
    for version in [4i16, 7, 11, 12] {
        let a = FetchArgs {
            version,
            offset: 4,
            ..Default::default()
        };
        let p = fetch(&mut raw, &topic, 0, a).await;
        assert_eq!(p.error_code, 0);
        assert_eq!(p.high_watermark, 14);
        let values = decode_values(&p.records);
        // The whole batch containing offset 4 comes back (offsets 3..=5), then the rest.
        assert_eq!(values.first().unwrap().0, 3, "v{version}");
        assert_eq!(values.len(), 11);
        assert_eq!(values.last().unwrap(), &(13, "b-1".to_string()));
    }
}

#[tokio::test]
async fn fetch_at_high_watermark_is_empty_and_beyond_is_out_of_range() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("oor");
    assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
    produce(
        &mut raw,
        9,
        &topic,
        0,
        batch(&records("a", 2), &EncodeOptions::default()),
    )
    .await;
    let a = FetchArgs {
        offset: 2,
        ..Default::default()
    };
    let p = fetch(&mut raw, &topic, 0, a).await;
    assert_eq!(p.error_code, 0);
    assert!(decode_values(&p.records).is_empty());
    let a = FetchArgs {
        offset: 3,
        ..Default::default()
    };
    let p = fetch(&mut raw, &topic, 0, a).await;
    assert_eq!(p.error_code, 1, "OFFSET_OUT_OF_RANGE");
}

#[tokio::test]
async fn fetch_long_poll_is_woken_by_produce() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("lp");
    assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
    let addr = b.addr();
    let t2 = topic.clone();
    let producer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut raw = Raw::connect(&addr).await;
        produce(
            &mut raw,
            9,
            &t2,
            0,
            batch(&records("late", 1), &EncodeOptions::default()),
        )
        .await
    });
    let start = Instant::now();
    let a = FetchArgs {
        max_wait_ms: 10_000,
        ..Default::default()
    };
    let p = fetch(&mut raw, &topic, 0, a).await;
    let took = start.elapsed();
    assert_eq!(p.error_code, 0);
    assert_eq!(decode_values(&p.records), vec![(0, "late-0".to_string())]);
    assert!(
        took >= Duration::from_millis(150),
        "answered before the produce: {took:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "not woken by the produce: {took:?}"
    );
    assert_eq!(producer.await.unwrap().error_code, 0);
}

#[tokio::test]
async fn fetch_long_poll_times_out_empty() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("lpt");
    assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
    let start = Instant::now();
    let a = FetchArgs {
        max_wait_ms: 300,
        ..Default::default()
    };
    let p = fetch(&mut raw, &topic, 0, a).await;
    assert_eq!(p.error_code, 0);
    assert!(decode_values(&p.records).is_empty());
    assert!(start.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn fetch_returns_at_least_one_batch_above_max_bytes_and_truncates_after() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("big");
    assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
    let big = vec![Record::new(vec![7u8; 4000], 1)];
    for _ in 0..3 {
        let r = produce(
            &mut raw,
            9,
            &topic,
            0,
            batch(&big, &EncodeOptions::default()),
        )
        .await;
        assert_eq!(r.error_code, 0);
    }
    let a = FetchArgs {
        partition_max_bytes: 100,
        ..Default::default()
    };
    let p = fetch(&mut raw, &topic, 0, a).await;
    assert_eq!(p.error_code, 0);
    let bytes = p.records.clone().unwrap();
    assert!(
        bytes.len() > 4000 && bytes.len() < 8000,
        "exactly one batch: {}",
        bytes.len()
    );
    let a = FetchArgs {
        partition_max_bytes: 9000,
        ..Default::default()
    };
    let p = fetch(&mut raw, &topic, 0, a).await;
    let n = decode_values(&p.records).len();
    assert_eq!(n, 2, "two whole batches fit in 9000 bytes");
}

#[tokio::test]
async fn produce_to_unknown_topic_fails() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let r = produce(
        &mut raw,
        9,
        &unique("nope"),
        0,
        batch(&records("a", 1), &EncodeOptions::default()),
    )
    .await;
    assert_eq!(r.error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
}

#[tokio::test]
async fn produce_rejects_corrupt_and_oversized_batches() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("bad");
    assert_eq!(
        create_topic(&mut raw, &topic, 1, &[("max.message.bytes", "2000")]).await,
        0
    );
    let good = batch(&records("a", 2), &EncodeOptions::default());
    let mut corrupt = good.to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let r = produce(&mut raw, 9, &topic, 0, corrupt.into()).await;
    assert_eq!(r.error_code, 2, "CORRUPT_MESSAGE on CRC mismatch");
    let big = vec![Record::new(vec![1u8; 3000], 1)];
    let r = produce(
        &mut raw,
        9,
        &topic,
        0,
        batch(&big, &EncodeOptions::default()),
    )
    .await;
    assert_eq!(r.error_code, 10, "MESSAGE_TOO_LARGE");
    let mut two = good.to_vec();
    two.extend_from_slice(&good);
    let r = produce(&mut raw, 9, &topic, 0, two.into()).await;
    assert_ne!(r.error_code, 0, "two batches in one partition are refused");
    let r = produce(&mut raw, 9, &topic, 0, good).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.base_offset, 0, "refused batches took no offsets");
}

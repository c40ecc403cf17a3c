//! Idempotent produce: duplicate detection and sequence checks.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

async fn init_pid(raw: &mut Raw) -> (i64, i16) {
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = None;
    req.transaction_timeout_ms = 60_000;
    req.producer_id = ProducerId(-1);
    req.producer_epoch = -1;
    let r: InitProducerIdResponse = raw.call(ApiKey::InitProducerId, 4, &req).await;
    assert_eq!(r.error_code, 0);
    (r.producer_id.0, r.producer_epoch)
}

#[tokio::test]
async fn duplicate_batch_returns_original_offset_and_is_stored_once() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("dup");
    assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
    let (pid, epoch) = init_pid(&mut raw).await;
    let first = idempotent_batch(&records("a", 2), pid, epoch, 0);
    let second = idempotent_batch(&records("b", 3), pid, epoch, 2);
    let r1 = produce(&mut raw, 9, &topic, 0, first.clone()).await;
    assert_eq!((r1.error_code, r1.base_offset), (0, 0));
    let r2 = produce(&mut raw, 9, &topic, 0, second.clone()).await;
    assert_eq!((r2.error_code, r2.base_offset), (0, 2));
    // Both retried (the ack was "lost"): answered with the original offsets.
    let d1 = produce(&mut raw, 9, &topic, 0, first).await;
    assert_eq!((d1.error_code, d1.base_offset), (0, 0));
    let d2 = produce(&mut raw, 9, &topic, 0, second).await;
    assert_eq!((d2.error_code, d2.base_offset), (0, 2));
    let p = fetch(&mut raw, &topic, 0, FetchArgs::default()).await;
    assert_eq!(p.high_watermark, 5, "duplicates were not appended");
    assert_eq!(decode_values(&p.records).len(), 5);
}

#[tokio::test]
async fn sequence_gap_is_out_of_order() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("ooo");
    assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
    let (pid, epoch) = init_pid(&mut raw).await;
    let r = produce(
        &mut raw,
        9,
        &topic,
        0,
        idempotent_batch(&records("a", 1), pid, epoch, 0),
    )
    .await;
    assert_eq!(r.error_code, 0);
    let r = produce(
        &mut raw,
        9,
        &topic,
        0,
        idempotent_batch(&records("b", 1), pid, epoch, 2),
    )
    .await;
    assert_eq!(r.error_code, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    let r = produce(
        &mut raw,
        9,
        &topic,
        0,
        idempotent_batch(&records("b", 1), pid, epoch, 1),
    )
    .await;
    assert_eq!((r.error_code, r.base_offset), (0, 1));
}

#[tokio::test]
async fn new_epoch_must_start_at_zero_and_old_epoch_is_fenced() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("epoch");
    assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
    let (pid, epoch) = init_pid(&mut raw).await;
    let r = produce(
        &mut raw,
        9,
        &topic,
        0,
        idempotent_batch(&records("a", 1), pid, epoch, 0),
    )
    .await;
    assert_eq!(r.error_code, 0);
    let r = produce(
        &mut raw,
        9,
        &topic,
        0,
        idempotent_batch(&records("a", 1), pid, epoch + 1, 5),
    )
    .await;
    assert_eq!(r.error_code, 45, "a new epoch starting above 0");
    let r = produce(
        &mut raw,
        9,
        &topic,
        0,
        idempotent_batch(&records("a", 1), pid, epoch + 1, 0),
    )
    .await;
    assert_eq!(r.error_code, 0);
    let r = produce(
        &mut raw,
        9,
        &topic,
        0,
        idempotent_batch(&records("a", 1), pid, epoch, 1),
    )
    .await;
    assert_eq!(r.error_code, 47, "INVALID_PRODUCER_EPOCH for the old epoch");
}

#[tokio::test]
async fn only_the_last_five_batches_are_remembered() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("win");
    assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
    let (pid, epoch) = init_pid(&mut raw).await;
    let batches: Vec<_> = (0..7)
        .map(|i| idempotent_batch(&records("w", 1), pid, epoch, i))
        .collect();
    for (i, bt) in batches.iter().enumerate() {
        let r = produce(&mut raw, 9, &topic, 0, bt.clone()).await;
        assert_eq!((r.error_code, r.base_offset), (0, i as i64));
    }
    let r = produce(&mut raw, 9, &topic, 0, batches[2].clone()).await;
    assert_eq!((r.error_code, r.base_offset), (0, 2), "within the window");
    let r = produce(&mut raw, 9, &topic, 0, batches[0].clone()).await;
    assert_eq!(r.error_code, 45, "older than the window");
}

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

/// A broker restarted on its data directory rebuilds the idempotent producers' state from the
/// stored batches (as Kafka does from its log): a batch retried across the restart (its ack
/// was lost) is recognised instead of stored twice, a gap is still refused, and producer ids
/// of stored batches are not handed out again.
#[tokio::test]
async fn producer_state_survives_a_restart_on_the_data_directory() {
    use kafka_persistence_testserver::TestServer;
    let dir = std::env::temp_dir().join(unique("kp-testserver-pids"));
    let topic = unique("restart-dup");
    let (pid, epoch, second) = {
        let server = TestServer::builder().data_dir(&dir).start().await.unwrap();
        let mut raw = Raw::connect(&server.bootstrap_servers()).await;
        assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
        let (pid, epoch) = init_pid(&mut raw).await;
        let first = idempotent_batch(&records("a", 2), pid, epoch, 0);
        let second = idempotent_batch(&records("b", 3), pid, epoch, 2);
        assert_eq!(produce(&mut raw, 9, &topic, 0, first).await.error_code, 0);
        let r = produce(&mut raw, 9, &topic, 0, second.clone()).await;
        assert_eq!((r.error_code, r.base_offset), (0, 2));
        server.shutdown().await;
        (pid, epoch, second)
    };
    let server = TestServer::builder().data_dir(&dir).start().await.unwrap();
    let mut raw = Raw::connect(&server.bootstrap_servers()).await;
    // The retry of the last batch: answered with its original offset, not appended.
    let r = produce(&mut raw, 9, &topic, 0, second).await;
    assert_eq!((r.error_code, r.base_offset), (0, 2));
    // A gap (sequence 6 where 5 is next) is refused.
    let gap = idempotent_batch(&records("c", 1), pid, epoch, 6);
    assert_eq!(produce(&mut raw, 9, &topic, 0, gap).await.error_code, 45);
    // The next batch in sequence is appended.
    let next = idempotent_batch(&records("d", 1), pid, epoch, 5);
    let r = produce(&mut raw, 9, &topic, 0, next).await;
    assert_eq!((r.error_code, r.base_offset), (0, 5));
    let p = fetch(&mut raw, &topic, 0, FetchArgs::default()).await;
    assert_eq!(p.high_watermark, 6, "no duplicate across the restart");
    // A new producer gets an id the stored batches do not use.
    let (fresh, _) = init_pid(&mut raw).await;
    assert!(fresh > pid, "{fresh} vs {pid}");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

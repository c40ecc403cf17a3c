//! The producer's entry points: `enqueue` (order fixed at the call), linger, batch size,
//! buffer memory with `max.block.ms`, `flush`, `close`, and the partitioner.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{broker, now_ms, unique};
use kafka_persistence_wire::{
    murmur2_partition, Client, DeliveryFuture, Error, FetchRequest, NewTopic, Partitioner,
    ProducerConfig, Record,
};

async fn topic(client: &Client, partitions: i32) -> String {
    let t = unique("papi");
    client
        .create_topics(vec![NewTopic::new(&t, partitions, 1)])
        .await
        .unwrap();
    t
}

/// Whether `fut` is still pending after `d`.
async fn pending_after(fut: &mut DeliveryFuture, d: Duration) -> bool {
    tokio::time::timeout(d, fut).await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_fixes_the_record_order_at_the_call() {
    let b = broker().await;
    let client = b.client().await;
    let t = topic(&client, 1).await;
    let producer = client.producer(ProducerConfig::default());
    // The first calls find no producer id yet (they wait in the backlog), later ones may take
    // the fast path: the order is the call order either way. No future is polled before all
    // calls are made.
    let futs: Vec<DeliveryFuture> = (0..300)
        .map(|i| producer.enqueue(&t, 0, vec![Record::new(format!("v{i}"), now_ms())]))
        .collect();
    // `DeliveryFuture` is 'static: it can be awaited on another task.
    let handle = tokio::spawn(async move {
        let mut out = Vec::new();
        for f in futs {
            out.push(f.await.expect("delivered").base_offset);
        }
        out
    });
    let offsets = handle.await.unwrap();
    let want: Vec<i64> = (0..300).collect();
    assert_eq!(offsets, want);
    let r = client.fetch(FetchRequest::new(&t, 0, 0)).await.unwrap();
    let values: Vec<String> = r
        .records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(values[..3], ["v0", "v1", "v2"]);
    assert_eq!(values.len(), 300);
    assert_eq!(values[299], "v299");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linger_holds_a_batch_until_due_and_flush_sends_it() {
    let b = broker().await;
    let client = b.client().await;
    let t = topic(&client, 1).await;
    // Long linger: nothing leaves before flush.
    let producer = client.producer(ProducerConfig::default().with_linger(Duration::from_secs(60)));
    let mut a = producer.enqueue(&t, 0, vec![Record::new("a", now_ms())]);
    let b2 = producer.enqueue(&t, 0, vec![Record::new("b", now_ms())]);
    assert!(pending_after(&mut a, Duration::from_millis(300)).await);
    producer.flush().await.unwrap();
    let (a, b2) = (a.await.unwrap(), b2.await.unwrap());
    assert_eq!(b2.base_offset, a.base_offset + 1);
    // A short linger sends by itself.
    let producer =
        client.producer(ProducerConfig::default().with_linger(Duration::from_millis(50)));
    let m = tokio::time::timeout(
        Duration::from_secs(5),
        producer.enqueue(&t, 0, vec![Record::new("c", now_ms())]),
    )
    .await
    .expect("sent once the linger passed")
    .unwrap();
    assert_eq!(m.base_offset, b2.base_offset + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_is_sent_without_waiting_for_linger() {
    let b = broker().await;
    let client = b.client().await;
    let t = topic(&client, 1).await;
    let producer = client.producer(
        ProducerConfig::default()
            .with_linger(Duration::from_secs(60))
            .with_batch_size(100),
    );
    let big = Record::new(vec![7u8; 200], now_ms());
    let m = tokio::time::timeout(Duration::from_secs(5), producer.enqueue(&t, 0, vec![big]))
        .await
        .expect("a batch at batch.size is due at once")
        .unwrap();
    assert!(m.base_offset >= 0);
    // A small one lingers.
    let mut small = producer.enqueue(&t, 0, vec![Record::new("s", now_ms())]);
    assert!(pending_after(&mut small, Duration::from_millis(300)).await);
    producer.flush().await.unwrap();
    assert_eq!(small.await.unwrap().base_offset, m.base_offset + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_memory_makes_sends_wait_and_max_block_fails_them() {
    let b = broker().await;
    let client = b.client().await;
    let t = topic(&client, 1).await;
    let producer = client.producer(
        ProducerConfig::default()
            .with_linger(Duration::from_secs(60))
            .with_buffer_memory(300)
            .with_max_block(Duration::from_millis(200)),
    );
    let mut first = producer.enqueue(&t, 0, vec![Record::new(vec![1u8; 200], now_ms())]);
    // No room for a second 200-byte send while the first is buffered (lingering).
    let second = producer.enqueue(&t, 0, vec![Record::new(vec![2u8; 200], now_ms())]);
    match tokio::time::timeout(Duration::from_secs(5), second).await {
        Ok(Err(Error::Timeout { after, .. })) => assert_eq!(after, Duration::from_millis(200)),
        other => panic!("expected a max.block timeout, got {other:?}"),
    }
    assert!(pending_after(&mut first, Duration::from_millis(10)).await);
    producer.flush().await.unwrap();
    let first = first.await.unwrap();

    // With a longer max.block the waiting send goes once the buffer frees up, in order.
    let producer = client.producer(
        ProducerConfig::default()
            .with_linger(Duration::from_millis(200))
            .with_buffer_memory(300)
            .with_max_block(Duration::from_secs(10)),
    );
    let a = producer.enqueue(&t, 0, vec![Record::new(vec![3u8; 200], now_ms())]);
    let b2 = producer.enqueue(&t, 0, vec![Record::new(vec![4u8; 200], now_ms())]);
    let (a, b2) = (a.await.unwrap(), b2.await.unwrap());
    assert_eq!(a.base_offset, first.base_offset + 1);
    assert_eq!(b2.base_offset, a.base_offset + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_flushes_then_refuses_sends() {
    let b = broker().await;
    let client = b.client().await;
    let t = topic(&client, 1).await;
    let producer = client.producer(ProducerConfig::default().with_linger(Duration::from_secs(60)));
    let a = producer.enqueue(&t, 0, vec![Record::new("a", now_ms())]);
    let clone = producer.clone();
    tokio::time::timeout(Duration::from_secs(10), producer.close())
        .await
        .expect("close flushes")
        .unwrap();
    assert!(a.await.is_ok());
    assert!(clone.is_closed());
    assert!(matches!(
        clone.send(&t, 0, vec![Record::new("late", 1)]).await,
        Err(Error::Closed)
    ));
}

#[derive(Debug)]
struct Last;

impl Partitioner for Last {
    fn partition(&self, _topic: &str, _key: Option<&[u8]>, n: i32) -> i32 {
        n - 1
    }
}

#[derive(Debug)]
struct OutOfRange;

impl Partitioner for OutOfRange {
    fn partition(&self, _topic: &str, _key: Option<&[u8]>, n: i32) -> i32 {
        n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioner_default_is_murmur2_and_can_be_replaced() {
    let b = broker().await;
    let client = b.client().await;
    let t = topic(&client, 7).await;
    let default = client.producer(ProducerConfig::default());
    let m = default
        .send_keyed(&t, Record::new("v", now_ms()).with_key("abc"))
        .await
        .unwrap();
    assert_eq!(m.partition, murmur2_partition(b"abc", 7));
    let custom = client.producer(ProducerConfig::default().with_partitioner(Arc::new(Last)));
    let m = custom
        .send_keyed(&t, Record::new("v", now_ms()).with_key("abc"))
        .await
        .unwrap();
    assert_eq!(m.partition, 6);
    let bad = client.producer(ProducerConfig::default().with_partitioner(Arc::new(OutOfRange)));
    assert!(matches!(
        bad.send_keyed(&t, Record::new("v", now_ms())).await,
        Err(Error::Config(_))
    ));
}

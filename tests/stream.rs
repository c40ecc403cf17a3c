//! The stream API: plain and committable sources, the committer (by count and by interval),
//! the producing flow, and the draining control, against `TestServer` or
//! `KP_EXTERNAL_BOOTSTRAP`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::broker;
use futures::{StreamExt, TryStreamExt};
use kafka_persistence::stream::{
    commit_offsets, committable_source, plain_source, producer_flow, CommitterSettings,
    ProducerMessage, SourceSettings,
};
use kafka_persistence::wire::{
    Client, ClientConfig, Consumer, ConsumerConfig, NewTopic, OffsetReset, ProducerConfig, Record,
    TopicPartition,
};

fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "stream-{tag}-{nanos:x}-{}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn client(bootstrap: &str) -> Client {
    Client::connect(ClientConfig::new(bootstrap).with_request_timeout(Duration::from_secs(10)))
        .await
        .expect("connect")
}

async fn topic_with(client: &Client, n: usize) -> String {
    let t = unique("t");
    client
        .create_topics(vec![NewTopic::new(&t, 1, 1)])
        .await
        .unwrap();
    let p = client.producer(ProducerConfig::default());
    let futs: Vec<_> = (0..n)
        .map(|i| p.enqueue(&t, 0, vec![Record::new(format!("v{i}"), 1)]))
        .collect();
    for f in futs {
        f.await.unwrap();
    }
    t
}

fn consumer(client: &Client, group: &str, topic: &str) -> Consumer {
    let mut c = client
        .consumer(
            ConsumerConfig::new(group)
                .with_heartbeat_interval(Duration::from_millis(100))
                .with_session_timeout(Duration::from_secs(10))
                .with_auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap();
    c.subscribe(vec![topic.to_owned()], None).unwrap();
    c
}

async fn committed(client: &Client, group: &str, topic: &str) -> Option<i64> {
    let mut c = client.consumer(ConsumerConfig::new(group)).unwrap();
    let tp = TopicPartition::new(topic, 0);
    c.assign(vec![tp.clone()]).unwrap();
    c.committed(std::slice::from_ref(&tp))
        .await
        .unwrap()
        .remove(&tp)
        .flatten()
        .map(|o| o.offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_source_streams_records_in_order_and_stops() {
    let b = broker().await;
    let client = client(&b.bootstrap).await;
    let t = topic_with(&client, 50).await;
    let (stream, control) = plain_source(
        consumer(&client, &unique("g"), &t),
        SourceSettings::default(),
    );
    let values: Vec<String> = stream
        .take(50)
        .map_ok(|r| String::from_utf8(r.record.value.unwrap().to_vec()).unwrap())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(values[0], "v0");
    assert_eq!(values[49], "v49");
    tokio::time::timeout(Duration::from_secs(10), control.shutdown())
        .await
        .expect("shutdown")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committer_batches_by_count_and_by_interval() {
    let b = broker().await;
    let client = client(&b.bootstrap).await;
    let t = topic_with(&client, 25).await;
    let group = unique("g");
    let (stream, control) =
        committable_source(consumer(&client, &group, &t), SourceSettings::default());
    // By count: batches of 10; the stream is held open after 25 offsets.
    let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
    let offsets = stream.take(25).map(|m| m.unwrap().offset).chain(
        futures::stream::once(async move {
            let _ = gate_rx.await;
            None
        })
        .filter_map(|x| async move { x }),
    );
    let settings = CommitterSettings {
        max_batch: 10,
        max_interval: Duration::from_secs(600),
    };
    let committer = tokio::spawn(commit_offsets(offsets, settings));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while committed(&client, &group, &t).await != Some(20) {
        assert!(
            std::time::Instant::now() < deadline,
            "two full batches never committed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The last 5 wait for the end of the stream (the interval is long).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(committed(&client, &group, &t).await, Some(20));
    gate_tx.send(()).unwrap();
    let stats = committer.await.unwrap().unwrap();
    assert_eq!((stats.offsets, stats.commits), (25, 3));
    assert_eq!(committed(&client, &group, &t).await, Some(25));
    control.shutdown().await.unwrap();

    // By interval: a large batch size, a short interval.
    let t = topic_with(&client, 5).await;
    let group = unique("g");
    let (stream, control) =
        committable_source(consumer(&client, &group, &t), SourceSettings::default());
    let settings = CommitterSettings {
        max_batch: 1000,
        max_interval: Duration::from_millis(100),
    };
    let committer = tokio::spawn(commit_offsets(stream.map(|m| m.unwrap().offset), settings));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while committed(&client, &group, &t).await != Some(5) {
        assert!(
            std::time::Instant::now() < deadline,
            "the interval never committed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = control
        .drain_and_shutdown(async { committer.await.unwrap() })
        .await
        .unwrap();
    assert_eq!(stats.offsets, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_then_drain_commits_everything_once() {
    let b = broker().await;
    let client = client(&b.bootstrap).await;
    let input = topic_with(&client, 40).await;
    let output = unique("out");
    client
        .create_topics(vec![NewTopic::new(&output, 1, 1)])
        .await
        .unwrap();
    let group = unique("g");
    let (stream, control) =
        committable_source(consumer(&client, &group, &input), SourceSettings::default());
    let producer = client.producer(ProducerConfig::default());
    let out = output.clone();
    let messages = stream.map(move |m| {
        let m = m.unwrap();
        let value = m.record.record.value.clone().unwrap();
        let upper = String::from_utf8(value.to_vec()).unwrap().to_uppercase();
        ProducerMessage::single(out.clone(), 0, Record::new(upper, 1), m.offset)
    });
    let produced = producer_flow(producer, messages, 8).map(|r| r.unwrap().1);
    let pipeline = tokio::spawn(commit_offsets(produced, CommitterSettings::default()));
    // Wait until the output has everything, then drain.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while client
        .list_offset(&output, 0, kafka_persistence::wire::OffsetSpec::Latest)
        .await
        .unwrap()
        < 40
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the output never filled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = tokio::time::timeout(
        Duration::from_secs(20),
        control.drain_and_shutdown(async { pipeline.await.unwrap() }),
    )
    .await
    .expect("drained")
    .unwrap();
    assert_eq!(stats.offsets, 40);
    assert_eq!(committed(&client, &group, &input).await, Some(40));
    let r = client
        .fetch(kafka_persistence::wire::FetchRequest::new(&output, 0, 0))
        .await
        .unwrap();
    assert_eq!(r.records.len(), 40);
    assert_eq!(r.records[0].value.as_deref(), Some(&b"V0"[..]));
    // A new member of the group starts after everything: nothing is consumed twice.
    let (stream, control) =
        plain_source(consumer(&client, &group, &input), SourceSettings::default());
    let again = tokio::time::timeout(
        Duration::from_millis(1500),
        stream.take(1).collect::<Vec<_>>(),
    )
    .await;
    assert!(
        again.is_err(),
        "a committed record was delivered again: {again:?}"
    );
    control.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_stops_polling_while_the_downstream_does_not_pull() {
    let b = broker().await;
    let client = client(&b.bootstrap).await;
    let t = topic_with(&client, 30).await;
    let group = unique("g");
    let mut c = client
        .consumer(
            ConsumerConfig::new(&group)
                .with_heartbeat_interval(Duration::from_millis(100))
                .with_auto_offset_reset(OffsetReset::Earliest)
                .with_max_poll_records(10)
                // Commits the positions on close: shows how far the consumer got.
                .with_auto_commit(true, Duration::from_secs(3600)),
        )
        .unwrap();
    c.subscribe(vec![t.clone()], None).unwrap();
    let settings = SourceSettings {
        poll_timeout: Duration::from_millis(50),
        buffer_batches: 1,
    };
    let (mut stream, control) = plain_source(c, settings);
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.offset(), 0);
    // The stream holds the rest of batch 1, the channel batch 2; batch 3 must wait.
    tokio::time::sleep(Duration::from_millis(500)).await;
    control.shutdown().await.unwrap();
    assert_eq!(committed(&client, &group, &t).await, Some(20));
}

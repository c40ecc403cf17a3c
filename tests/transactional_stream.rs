//! The transactional consume-transform-produce stage: exactly once across a crash (the
//! crashed instance's open transaction is aborted by its successor with the same
//! transactional id, which resumes at the committed offsets), against `TestServer` or
//! `KP_EXTERNAL_BOOTSTRAP`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::broker;
use kafka_persistence::stream::{
    run_transactional, TransactionalControl, TransactionalOutput, TransactionalSettings,
};
use kafka_persistence::wire::{
    Client, ClientConfig, ConsumerConfig, IsolationLevel, NewTopic, OffsetReset, ProducerConfig,
    Record, TopicPartition,
};

fn unique(tag: &str) -> String {
    use std::sync::atomic::AtomicU32;
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("txn-{tag}-{nanos:x}-{}", N.fetch_add(1, Ordering::Relaxed))
}

async fn client(bootstrap: &str) -> Client {
    Client::connect(ClientConfig::new(bootstrap).with_request_timeout(Duration::from_secs(10)))
        .await
        .expect("connect")
}

fn consumer_config(group: &str) -> ConsumerConfig {
    ConsumerConfig::new(group)
        .with_isolation(IsolationLevel::ReadCommitted)
        .with_auto_offset_reset(OffsetReset::Earliest)
        .with_heartbeat_interval(Duration::from_millis(200))
        .with_session_timeout(Duration::from_secs(6))
        // The rebalance timeout: how long a join waits for the crashed member.
        .with_max_poll_interval(Duration::from_secs(8))
        .with_max_poll_records(10)
}

/// Reads every committed value of `topic` (2 partitions) until `n` arrived or 30 s passed.
async fn read_committed(client: &Client, topic: &str, n: usize) -> Vec<String> {
    let mut c = client
        .consumer(
            ConsumerConfig::default()
                .with_isolation(IsolationLevel::ReadCommitted)
                .with_auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap();
    c.assign(vec![
        TopicPartition::new(topic, 0),
        TopicPartition::new(topic, 1),
    ])
    .unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet = Instant::now();
    while Instant::now() < deadline
        && (out.len() < n || quiet.elapsed() < Duration::from_millis(1000))
    {
        let got = c.poll(Duration::from_millis(200)).await.unwrap();
        if !got.is_empty() {
            quiet = Instant::now();
        }
        out.extend(
            got.into_iter()
                .map(|r| String::from_utf8(r.record.value.unwrap().to_vec()).unwrap()),
        );
    }
    out
}

#[tokio::test]
async fn transactional_stage_is_exactly_once_across_a_crash() {
    const N: usize = 200;
    let b = broker().await;
    let client = client(&b.bootstrap).await;
    let input = unique("in");
    let output = unique("out");
    client
        .create_topics(vec![
            NewTopic::new(&input, 2, 1),
            NewTopic::new(&output, 2, 1),
        ])
        .await
        .unwrap();
    let plain = client.producer(ProducerConfig::default());
    let futs: Vec<_> = (0..N)
        .map(|i| {
            plain.enqueue(
                &input,
                (i % 2) as i32,
                vec![Record::new(format!("v{i}"), 1)],
            )
        })
        .collect();
    for f in futs {
        f.await.unwrap();
    }
    let group = unique("group");
    let tid = unique("tid");
    let settings = TransactionalSettings {
        commit_interval: Duration::from_millis(50),
        max_records_per_transaction: 20,
        poll_timeout: Duration::from_millis(50),
    };
    let transform = |out: String| {
        move |r: &kafka_persistence::wire::ConsumerRecord| {
            let v = String::from_utf8(r.record.value.clone().unwrap().to_vec()).unwrap();
            vec![TransactionalOutput::single(
                out.clone(),
                r.partition,
                Record::new(format!("t-{v}"), 1),
            )]
        }
    };

    // Instance 1 crashes after about half the input.
    let seen = Arc::new(AtomicUsize::new(0));
    let first = {
        let consumer = client.consumer(consumer_config(&group)).unwrap();
        let mut consumer = consumer;
        consumer.subscribe(vec![input.clone()], None).unwrap();
        let producer = client
            .transactional_producer(ProducerConfig::default().with_transactional_id(&tid))
            .await
            .unwrap();
        let seen = Arc::clone(&seen);
        let t = transform(output.clone());
        tokio::spawn(run_transactional(
            consumer,
            producer,
            settings.clone(),
            TransactionalControl::default(),
            move |r| {
                // The crash: a panic mid-transaction kills the stage's task, after sends of
                // the open transaction were enqueued, with no commit and no abort.
                assert!(seen.fetch_add(1, Ordering::SeqCst) < N / 2, "crash");
                t(r)
            },
        ))
    };
    let crashed = tokio::time::timeout(Duration::from_secs(60), first)
        .await
        .expect("instance 1 never got half way");
    assert!(crashed.unwrap_err().is_panic());
    let partial = read_committed(&client, &output, 0).await;
    assert!(
        partial.len() < N,
        "instance 1 committed at most what it finished"
    );

    // Instance 2: same transactional id and group.
    let mut consumer = client.consumer(consumer_config(&group)).unwrap();
    consumer.subscribe(vec![input.clone()], None).unwrap();
    let producer = client
        .transactional_producer(ProducerConfig::default().with_transactional_id(&tid))
        .await
        .unwrap();
    let control = TransactionalControl::default();
    let done = Arc::new(AtomicUsize::new(0));
    let second = {
        let done = Arc::clone(&done);
        let t = transform(output.clone());
        tokio::spawn(run_transactional(
            consumer,
            producer,
            settings,
            control.clone(),
            move |r| {
                done.fetch_add(1, Ordering::SeqCst);
                t(r)
            },
        ))
    };
    let out = read_committed(&client, &output, N).await;
    control.stop();
    let stats = tokio::time::timeout(Duration::from_secs(30), second)
        .await
        .expect("the stage stops when asked")
        .unwrap()
        .expect("the stage ran without error");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for v in &out {
        *counts.entry(v.clone()).or_default() += 1;
    }
    let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "outputs seen twice: {doubled:?}");
    let missing: Vec<String> = (0..N)
        .map(|i| format!("t-v{i}"))
        .filter(|v| !counts.contains_key(v))
        .collect();
    assert!(missing.is_empty(), "outputs missing: {missing:?}");
    assert_eq!(out.len(), N);
    assert!(stats.commits >= 1);
    assert_eq!(
        stats.records_committed + partial.len() as u64,
        N as u64,
        "instance 2 processed exactly what instance 1 had not committed"
    );
}

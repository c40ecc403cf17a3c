//! The stream API: plain and committable sources, per-partition sources, the committer (by count and by interval),
//! the producing flow, and the draining control, against `TestServer` or
//! `KP_EXTERNAL_BOOTSTRAP`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::broker;
use common::stream::{
    all_committed, client, committed_at, eventually, group_consumer, group_consumer_with,
    partitioned_topic, produce_each, unique,
};
use futures::{StreamExt, TryStreamExt};
use kafka_persistence::stream::{
    commit_offsets, committable_partitioned_source, committable_source, plain_partitioned_source,
    plain_source, producer_flow, CommitterSettings, Control, PartitionedSettings, ProducerMessage,
    SourceSettings,
};
use kafka_persistence::wire::{
    Client, Consumer, ConsumerConfig, GroupProtocol, NewTopic, OffsetReset, ProducerConfig, Record,
};

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
    let mut c = group_consumer(client, group);
    c.subscribe(vec![topic.to_owned()], None).unwrap();
    c
}

async fn committed(client: &Client, group: &str, topic: &str) -> Option<i64> {
    committed_at(client, group, topic, 0).await
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

/// What the members of a test saw.
#[derive(Debug, Default)]
struct Seen {
    /// (partition, offset, value) of every processed message.
    records: Vec<(i32, i64, String)>,
}

type Shared<T> = Arc<std::sync::Mutex<T>>;

/// A group member processing each assigned partition in its own task, committing through a
/// committer per sub-stream.
struct Member {
    control: Control,
    /// The sub-streams handed out, in order: partition and whether it completed.
    subs: Shared<Vec<(i32, bool)>>,
    driver: tokio::task::JoinHandle<Vec<tokio::task::JoinHandle<()>>>,
}

impl Member {
    fn start(
        client: &Client,
        protocol: GroupProtocol,
        group: &str,
        topic: &str,
        seen: &Shared<Seen>,
    ) -> Member {
        let (mut partitions, control) = committable_partitioned_source(
            group_consumer_with(client, group, protocol),
            vec![topic.to_owned()],
            PartitionedSettings::default(),
        )
        .unwrap();
        let subs: Shared<Vec<(i32, bool)>> = Default::default();
        let (subs2, seen) = (Arc::clone(&subs), Arc::clone(seen));
        let driver = tokio::spawn(async move {
            let mut tasks = Vec::new();
            while let Some(assigned) = partitions.next().await {
                let (tp, messages) = assigned.unwrap();
                let slot = {
                    let mut s = subs2.lock().unwrap();
                    s.push((tp.partition, false));
                    s.len() - 1
                };
                let (subs, seen) = (Arc::clone(&subs2), Arc::clone(&seen));
                tasks.push(tokio::spawn(async move {
                    let offsets = messages.map(move |m| {
                        let v = String::from_utf8(m.record.record.value.clone().unwrap().to_vec())
                            .unwrap();
                        seen.lock().unwrap().records.push((
                            m.record.partition,
                            m.record.offset(),
                            v,
                        ));
                        m.offset
                    });
                    let settings = CommitterSettings {
                        max_batch: 7,
                        max_interval: Duration::from_millis(20),
                    };
                    commit_offsets(offsets, settings).await.unwrap();
                    subs.lock().unwrap()[slot].1 = true;
                }));
            }
            tasks
        });
        Member {
            control,
            subs,
            driver,
        }
    }

    /// The partitions of the sub-streams still open.
    fn live(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self
            .subs
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, done)| !done)
            .map(|(p, _)| *p)
            .collect();
        v.sort_unstable();
        v
    }

    /// Drains: the sub-streams end, their committers commit the rest, the member leaves.
    async fn drain(self) {
        let driver = self.driver;
        tokio::time::timeout(
            Duration::from_secs(20),
            self.control.drain_and_shutdown(async move {
                for t in driver.await.unwrap() {
                    t.await.unwrap();
                }
                Ok(())
            }),
        )
        .await
        .expect("drained")
        .unwrap();
    }
}

/// Each (partition, offset) once, and the values are the ones produced.
fn assert_each_once(seen: &Shared<Seen>, expected: usize) {
    let seen = seen.lock().unwrap();
    let mut keys: Vec<(i32, i64)> = seen.records.iter().map(|(p, o, _)| (*p, *o)).collect();
    keys.sort_unstable();
    let n = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), n, "a record was processed twice");
    assert_eq!(n, expected);
    for (p, _, v) in &seen.records {
        assert!(v.contains(&format!("-{p}-")), "{v} on partition {p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_sources_of_two_members_process_every_record_once_across_rebalances() {
    two_partitioned_members(GroupProtocol::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_sources_of_two_consumer_protocol_members_process_every_record_once() {
    two_partitioned_members(GroupProtocol::Consumer).await;
}

/// Two members over six partitions: A alone, B joins, B leaves; every record is processed
/// once, and the sub-streams of moved partitions complete.
async fn two_partitioned_members(protocol: GroupProtocol) {
    let b = broker().await;
    let client = client(&b.bootstrap).await;
    let topic = partitioned_topic(&client, 6).await;
    let group = unique("g");
    let seen: Shared<Seen> = Default::default();

    // A alone: a sub-stream per partition.
    let a = Member::start(&client, protocol, &group, &topic, &seen);
    eventually("A holds all six partitions", || {
        a.live() == [0, 1, 2, 3, 4, 5]
    })
    .await;
    produce_each(&client, &topic, 6, 20, "one").await;
    eventually("A processed the first batch", || {
        seen.lock().unwrap().records.len() == 120
    })
    .await;
    all_committed(&client, &group, &topic, 6, 20).await;

    // B joins: the partitions it gets completed their sub-streams at A.
    let b2 = Member::start(&client, protocol, &group, &topic, &seen);
    eventually("the partitions are split", || {
        let (la, lb) = (a.live(), b2.live());
        !la.is_empty()
            && !lb.is_empty()
            && la.len() + lb.len() == 6
            && la.iter().all(|p| !lb.contains(p))
    })
    .await;
    let moved = b2.live();
    {
        let subs = a.subs.lock().unwrap();
        for p in &moved {
            assert!(
                subs.iter().any(|(q, done)| q == p && *done),
                "A's sub-stream of partition {p} did not complete: {subs:?}"
            );
            assert!(!subs.iter().any(|(q, done)| q == p && !done));
        }
    }
    produce_each(&client, &topic, 6, 20, "two").await;
    eventually("the second batch is processed", || {
        seen.lock().unwrap().records.len() == 240
    })
    .await;
    all_committed(&client, &group, &topic, 6, 40).await;

    // B leaves (draining): its partitions come back to A as new sub-streams.
    b2.drain().await;
    eventually("A holds all six again", || a.live() == [0, 1, 2, 3, 4, 5]).await;
    produce_each(&client, &topic, 6, 10, "three").await;
    eventually("the third batch is processed", || {
        seen.lock().unwrap().records.len() == 300
    })
    .await;
    a.drain().await;
    all_committed(&client, &group, &topic, 6, 50).await;
    assert_each_once(&seen, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_stream_not_polled_pauses_only_its_own_partition() {
    let b = broker().await;
    let client = client(&b.bootstrap).await;
    let topic = partitioned_topic(&client, 3).await;
    produce_each(&client, &topic, 3, 300, "r").await;
    let group = unique("g");
    let c = client
        .consumer(
            ConsumerConfig::new(&group)
                .with_heartbeat_interval(Duration::from_millis(100))
                .with_auto_offset_reset(OffsetReset::Earliest)
                .with_max_poll_records(10)
                // Commits the positions on close: shows how far the consumer got.
                .with_auto_commit(true, Duration::from_secs(3600)),
        )
        .unwrap();
    let settings = PartitionedSettings {
        poll_timeout: Duration::from_millis(50),
        buffer_records: 20,
    };
    let (mut partitions, control) =
        plain_partitioned_source(c, vec![topic.clone()], settings).unwrap();
    let mut held = None;
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (tp, records) = partitions.next().await.unwrap().unwrap();
        if tp.partition == 0 {
            // Held, never polled.
            held = Some(records);
        } else {
            readers.push(tokio::spawn(async move {
                records
                    .take(300)
                    .map(|r| r.offset())
                    .collect::<Vec<i64>>()
                    .await
            }));
        }
    }
    for r in readers {
        let offsets = tokio::time::timeout(Duration::from_secs(20), r)
            .await
            .expect("the other partitions went on")
            .unwrap();
        assert_eq!(offsets, (0..300).collect::<Vec<i64>>());
    }
    // Partition 0 was fetched only until its sub-stream's buffer was full (a poll returns at
    // most 10 records): the position the consumer commits on close shows how far it got.
    tokio::time::sleep(Duration::from_millis(300)).await;
    control.shutdown().await.unwrap();
    let p0 = committed_at(&client, &group, &topic, 0).await.unwrap();
    assert!((20..30).contains(&p0), "partition 0 was fetched to {p0}");
    // Stopped: the held sub-stream still delivers what it buffered, then ends.
    let buffered: Vec<i64> = held
        .expect("partition 0 was assigned")
        .map(|r| r.offset())
        .collect()
        .await;
    assert_eq!(buffered, (0..p0).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_partitions_resume_when_their_sub_stream_takes_records() {
    let b = broker().await;
    let client = client(&b.bootstrap).await;
    let topic = partitioned_topic(&client, 3).await;
    produce_each(&client, &topic, 3, 200, "r").await;
    let c = client
        .consumer(
            ConsumerConfig::new(unique("g"))
                .with_heartbeat_interval(Duration::from_millis(100))
                .with_auto_offset_reset(OffsetReset::Earliest)
                .with_max_poll_records(10),
        )
        .unwrap();
    // Every poll's batch fills a buffer of 5: each partition pauses after each batch.
    let settings = PartitionedSettings {
        poll_timeout: Duration::from_millis(20),
        buffer_records: 5,
    };
    let (partitions, control) = plain_partitioned_source(c, vec![topic.clone()], settings).unwrap();
    let readers: Vec<_> = partitions
        .take(3)
        .map(|a| {
            let (tp, records) = a.unwrap();
            tokio::spawn(async move {
                let delay = Duration::from_micros(200 * (tp.partition as u64 + 1));
                let offsets: Vec<i64> = records
                    .take(200)
                    .then(|r| async move {
                        tokio::time::sleep(delay).await;
                        r.offset()
                    })
                    .collect()
                    .await;
                (tp.partition, offsets)
            })
        })
        .collect()
        .await;
    for r in readers {
        let (p, offsets) = tokio::time::timeout(Duration::from_secs(30), r)
            .await
            .expect("every partition was resumed")
            .unwrap();
        assert_eq!(offsets, (0..200).collect::<Vec<i64>>(), "partition {p}");
    }
    control.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_sub_stream_pauses_its_partition() {
    let b = broker().await;
    let client = client(&b.bootstrap).await;
    let topic = partitioned_topic(&client, 2).await;
    produce_each(&client, &topic, 2, 300, "r").await;
    let group = unique("g");
    let c = client
        .consumer(
            ConsumerConfig::new(&group)
                .with_heartbeat_interval(Duration::from_millis(100))
                .with_auto_offset_reset(OffsetReset::Earliest)
                .with_max_poll_records(10)
                // Commits the positions on close: shows how far the consumer got.
                .with_auto_commit(true, Duration::from_secs(3600)),
        )
        .unwrap();
    let settings = PartitionedSettings {
        poll_timeout: Duration::from_millis(50),
        buffer_records: 20,
    };
    let (mut partitions, control) =
        plain_partitioned_source(c, vec![topic.clone()], settings).unwrap();
    let mut reader = None;
    for _ in 0..2 {
        let (tp, records) = partitions.next().await.unwrap().unwrap();
        if tp.partition == 1 {
            reader = Some(tokio::spawn(records.take(300).count()));
        }
        // Partition 0's sub-stream is dropped here.
    }
    let n = tokio::time::timeout(Duration::from_secs(20), reader.unwrap())
        .await
        .expect("partition 1 went on")
        .unwrap();
    assert_eq!(n, 300);
    tokio::time::sleep(Duration::from_millis(300)).await;
    control.shutdown().await.unwrap();
    let p0 = committed_at(&client, &group, &topic, 0).await.unwrap_or(0);
    assert!(p0 < 30, "partition 0 was fetched to {p0} without a reader");
}

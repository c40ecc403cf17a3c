//! Shared by the stream tests: unique names, a client, group members, committed offsets,
//! partitioned topics.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_persistence::wire::{
    Client, ClientConfig, Consumer, ConsumerConfig, GroupProtocol, NewTopic, OffsetReset,
    ProducerConfig, Record, TopicPartition,
};

/// A topic or group name no other test uses.
pub(crate) fn unique(tag: &str) -> String {
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

/// A client of `bootstrap` (10 s request timeout).
pub(crate) async fn client(bootstrap: &str) -> Client {
    Client::connect(ClientConfig::new(bootstrap).with_request_timeout(Duration::from_secs(10)))
        .await
        .expect("connect")
}

/// A member of `group`, not subscribed yet.
pub(crate) fn group_consumer(client: &Client, group: &str) -> Consumer {
    group_consumer_with(client, group, GroupProtocol::Classic)
}

/// A member of `group` speaking `protocol`, not subscribed yet.
pub(crate) fn group_consumer_with(
    client: &Client,
    group: &str,
    protocol: GroupProtocol,
) -> Consumer {
    client
        .consumer(
            ConsumerConfig::new(group)
                .with_group_protocol(protocol)
                .with_heartbeat_interval(Duration::from_millis(100))
                .with_session_timeout(Duration::from_secs(10))
                .with_auto_offset_reset(OffsetReset::Earliest),
        )
        .expect("stream test setup")
}

/// The offset `group` committed for `topic`/`partition`.
pub(crate) async fn committed_at(
    client: &Client,
    group: &str,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let mut c = client
        .consumer(ConsumerConfig::new(group))
        .expect("stream test setup");
    let tp = TopicPartition::new(topic, partition);
    c.assign(vec![tp.clone()]).expect("stream test setup");
    c.committed(std::slice::from_ref(&tp))
        .await
        .expect("stream test setup")
        .remove(&tp)
        .flatten()
        .map(|o| o.offset)
}

/// A topic with `partitions` partitions, empty.
pub(crate) async fn partitioned_topic(client: &Client, partitions: i32) -> String {
    let t = unique("pt");
    client
        .create_topics(vec![NewTopic::new(&t, partitions, 1)])
        .await
        .expect("stream test setup");
    t
}

/// Appends `per_partition` records `"{tag}-{p}-{i}"` to each of `partitions`.
pub(crate) async fn produce_each(
    client: &Client,
    topic: &str,
    partitions: i32,
    per_partition: usize,
    tag: &str,
) {
    let p = client.producer(ProducerConfig::default());
    let futs: Vec<_> = (0..partitions)
        .flat_map(|part| {
            (0..per_partition)
                .map(|i| {
                    p.enqueue(
                        topic,
                        part,
                        vec![Record::new(format!("{tag}-{part}-{i}"), 1)],
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    for f in futs {
        f.await.expect("stream test setup");
    }
}

/// Waits (up to 30 s) until `ok`.
pub(crate) async fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (up to 30 s) until `group` committed `to` on each of the `partitions`.
pub(crate) async fn all_committed(
    client: &Client,
    group: &str,
    topic: &str,
    partitions: i32,
    to: i64,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for p in 0..partitions {
        while committed_at(client, group, topic, p).await != Some(to) {
            assert!(
                std::time::Instant::now() < deadline,
                "partition {p} never committed {to}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

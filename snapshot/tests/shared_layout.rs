//! Layout v2 ("shared") beyond the SPEC cases: the topic check at connect, several store
//! instances on one topic, loads that fetch only what the index names, and the documented
//! record format read and written by hand. Tests named `fault_*` need the in-process
//! `TestServer` (its request counters); the others also run against `KP_EXTERNAL_BOOTSTRAP`.

mod common;

use bytes::Bytes;
use common::{broker, setup_five, test_server, unique_pid, unique_prefix, Layout};
use kafka_persistence_snapshot::{
    SnapshotError, SnapshotMetadata, SnapshotSelectionCriteria as C, SnapshotStore,
};
use kafka_persistence_wire::{
    murmur2_partition, Client, FetchRequest, NewTopic, ProducerConfig, Record,
};

/// Fetch's api key (for the testserver's request counters).
const FETCH: i16 = 1;

async fn client(bootstrap: &str) -> Client {
    common::client(bootstrap).await
}

fn topic_error(r: Result<SnapshotStore, SnapshotError>) -> (String, String) {
    match r {
        Err(SnapshotError::Topic { topic, reason }) => (topic, reason),
        other => panic!("expected a topic error, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_refuses_a_topic_with_the_wrong_partition_count() {
    let b = broker().await;
    let prefix = unique_prefix();
    let topic = format!("{prefix}v2.snapshots");
    client(&b.bootstrap)
        .await
        .create_topics(vec![
            NewTopic::new(&topic, 6, 1).with_config("cleanup.policy", "compact")
        ])
        .await
        .expect("create");
    let config = b.config().with_topic_prefix(&prefix);
    let (named, reason) = topic_error(SnapshotStore::connect(config.clone()).await);
    assert_eq!(named, topic);
    assert!(reason.contains("has 6 partitions"), "{reason}");
    assert!(reason.contains("expected 32"), "{reason}");
    assert!(reason.contains("partitions = 3"), "{reason}");
    let message = SnapshotStore::connect(config.clone().with_partitions(4))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    let message = message.err().unwrap_or_default();
    assert!(
        message.contains(&topic) && message.contains("expected 8"),
        "{message}"
    );
    // With the partition count it has, the topic is used.
    let store = SnapshotStore::connect(config.with_partitions(3))
        .await
        .expect("a fitting topic");
    let pid = unique_pid("fits");
    store
        .save(SnapshotMetadata::new(&pid, 1, 0), Bytes::from_static(b"x"))
        .await
        .expect("save");
    let at = store.placement(&pid);
    assert_eq!(at.topic, topic);
    assert_eq!(at.index_partition, murmur2_partition(pid.as_bytes(), 3));
    assert_eq!(at.chunk_partition, 3 + at.index_partition);
}

#[tokio::test]
async fn connect_refuses_a_topic_that_is_not_compacted() {
    let b = broker().await;
    let prefix = unique_prefix();
    let topic = format!("{prefix}v2.snapshots");
    client(&b.bootstrap)
        .await
        .create_topics(vec![
            NewTopic::new(&topic, 4, 1).with_config("cleanup.policy", "delete")
        ])
        .await
        .expect("create");
    let config = b.config().with_topic_prefix(&prefix).with_partitions(2);
    let (named, reason) = topic_error(SnapshotStore::connect(config).await);
    assert_eq!(named, topic);
    assert!(
        reason.contains("cleanup.policy is \"delete\", expected \"compact\""),
        "{reason}"
    );
}

#[tokio::test]
async fn connect_creates_the_topic_compacted_with_twice_the_partitions() {
    let b = broker().await;
    let prefix = unique_prefix();
    let config = b.config().with_topic_prefix(&prefix).with_partitions(5);
    let store = SnapshotStore::connect(config.clone())
        .await
        .expect("connect");
    let topic = format!("{prefix}v2.snapshots");
    assert_eq!(store.topic_for("any id"), topic);
    let c = client(&b.bootstrap).await;
    let md = c
        .topic_metadata(&topic)
        .await
        .expect("metadata")
        .expect("created at connect");
    assert_eq!(md.partitions.len(), 10);
    let configs = c.describe_topic_config(&topic).await.expect("configs");
    assert_eq!(
        configs.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
    // A second store connects to the existing topic.
    SnapshotStore::connect(config).await.expect("connect again");
}

#[tokio::test]
async fn a_second_instance_sees_the_first_ones_saves_and_deletions() {
    let b = broker().await;
    let config = b.isolated_config(Layout::Shared);
    let first = SnapshotStore::connect(config.clone())
        .await
        .expect("connect");
    let second = SnapshotStore::connect(config).await.expect("connect");
    let pid = unique_pid("two");
    // Both stores are connected (and restored) before anything is written.
    let md = first
        .save(
            SnapshotMetadata::new(&pid, 5, 0),
            Bytes::from_static(b"from first"),
        )
        .await
        .expect("save");
    let got = second.load(&pid, C::latest()).await.expect("load");
    assert_eq!(
        got.map(|s| (s.metadata, s.snapshot)),
        Some((md.clone(), Bytes::from_static(b"from first")))
    );
    // The second overwrites and adds a chunked one; the first sees both.
    let md5 = second
        .save(
            SnapshotMetadata::new(&pid, 5, 0),
            Bytes::from_static(b"from second"),
        )
        .await
        .expect("save");
    assert!(
        md5.timestamp > md.timestamp,
        "timestamps continue across instances"
    );
    let big = Bytes::from(vec![3u8; 3 << 20]);
    second
        .save(SnapshotMetadata::new(&pid, 9, 0), big.clone())
        .await
        .expect("save chunked");
    let got = first
        .load(&pid, C::latest())
        .await
        .expect("load")
        .expect("9");
    assert!(got.snapshot == big);
    let got = first
        .load(&pid, C::latest().with_max_sequence_nr(8))
        .await
        .expect("load");
    assert_eq!(
        got.map(|s| s.snapshot),
        Some(Bytes::from_static(b"from second"))
    );
    // Deletions by one are seen by the other.
    first
        .delete(&SnapshotMetadata::new(&pid, 9, 0))
        .await
        .expect("delete");
    let got = second.load(&pid, C::latest()).await.expect("load");
    assert_eq!(got.map(|s| s.metadata.sequence_nr), Some(5));
    second
        .delete_matching(&pid, C::latest())
        .await
        .expect("delete all");
    assert_eq!(first.load(&pid, C::latest()).await.expect("load"), None);
}

#[tokio::test]
async fn many_ids_share_a_partition_and_stay_independent() {
    let b = broker().await;
    // One index partition: every id shares it.
    let config = b.isolated_config(Layout::Shared).with_partitions(1);
    let store = SnapshotStore::connect(config.clone())
        .await
        .expect("connect");
    let pids: Vec<String> = (0..20).map(|i| unique_pid(&format!("many{i}"))).collect();
    for (i, pid) in pids.iter().enumerate() {
        setup_five(&store, pid).await;
        if i % 2 == 0 {
            store
                .delete(&SnapshotMetadata::new(pid, 15, 0))
                .await
                .expect("delete");
        }
    }
    let fresh = SnapshotStore::connect(config).await.expect("connect");
    for (i, pid) in pids.iter().enumerate() {
        for s in [&store, &fresh] {
            let got = s
                .load(pid, C::latest())
                .await
                .expect("load")
                .expect("a snapshot");
            let want = if i % 2 == 0 { 14 } else { 15 };
            assert_eq!(got.metadata.sequence_nr, want, "{pid}");
            assert_eq!(&got.metadata.persistence_id, pid);
        }
    }
}

#[tokio::test]
async fn fault_a_load_fetches_only_what_the_index_names() {
    let b = test_server().await;
    let config = b.config().with_partitions(2).with_max_message_bytes(20_000);
    let writer = SnapshotStore::connect(config.clone())
        .await
        .expect("connect");
    let pid = unique_pid("exact");
    writer
        .save(
            SnapshotMetadata::new(&pid, 1, 0),
            Bytes::from_static(b"small"),
        )
        .await
        .expect("save");
    let big = Bytes::from(vec![9u8; 50_000]);
    writer
        .save(SnapshotMetadata::new(&pid, 2, 0), big.clone())
        .await
        .expect("save chunked");
    // Many other ids' snapshots in the same partitions (and chunk partitions).
    for i in 0..100 {
        let other = format!("{pid}-other-{i}");
        writer
            .save(
                SnapshotMetadata::new(&other, 1, 0),
                Bytes::from(vec![1u8; 30_000]),
            )
            .await
            .expect("save other");
        writer
            .save(
                SnapshotMetadata::new(&other, 2, 0),
                Bytes::from_static(b"x"),
            )
            .await
            .expect("save other");
    }
    // Restore reads the 2 index partitions only (one fetch each, they hold about 20 kB);
    // the chunk partitions hold about 3 MB.
    let fetches = b.server().request_count(FETCH).await;
    let store = SnapshotStore::connect(config).await.expect("connect");
    let restore = b.server().request_count(FETCH).await - fetches;
    assert_eq!(restore, 2, "restore fetches");
    // An inline snapshot: one catch-up fetch (nothing new) and its index record.
    let fetches = b.server().request_count(FETCH).await;
    let got = store
        .load(&pid, C::latest().with_max_sequence_nr(1))
        .await
        .expect("load")
        .expect("1");
    assert_eq!(got.snapshot, Bytes::from_static(b"small"));
    assert_eq!(b.server().request_count(FETCH).await - fetches, 2);
    // A chunked one (3 consecutive chunks): the same two, plus one fetch for the chunks.
    let fetches = b.server().request_count(FETCH).await;
    let got = store
        .load(&pid, C::latest())
        .await
        .expect("load")
        .expect("2");
    assert!(got.snapshot == big);
    let n = b.server().request_count(FETCH).await - fetches;
    assert_eq!(n, 3, "fetches of a chunked load");
    // An id without snapshots: one fetch.
    let fetches = b.server().request_count(FETCH).await;
    assert_eq!(store.load("nobody", C::latest()).await.expect("load"), None);
    assert_eq!(b.server().request_count(FETCH).await - fetches, 1);
}

/// Protobuf varint.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// An index record value written by hand from the crate documentation's field list.
fn hand_written_value(pid: &str, seq: u64, ts: i64, payload: &[u8]) -> Bytes {
    let mut v = Vec::new();
    v.extend([0x08, 1]); // version = 1
    v.push(0x12); // persistence_id = 2
    varint(pid.len() as u64, &mut v);
    v.extend_from_slice(pid.as_bytes());
    v.push(0x18); // sequence_nr = 3
    varint(seq, &mut v);
    v.push(0x20); // timestamp = 4
    varint(ts as u64, &mut v);
    v.push(0x32); // inline_payload = 6
    varint(payload.len() as u64, &mut v);
    v.extend_from_slice(payload);
    v.into()
}

fn hand_written_key(pid: &str, seq: u64) -> Bytes {
    let mut k = vec![b'I'];
    k.extend_from_slice(pid.as_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k.into()
}

#[tokio::test]
async fn the_documented_format_is_what_the_store_reads_and_writes() {
    let b = broker().await;
    let prefix = unique_prefix();
    let config = b.config().with_topic_prefix(&prefix).with_partitions(4);
    let store = SnapshotStore::connect(config.clone())
        .await
        .expect("connect");
    let topic = format!("{prefix}v2.snapshots");
    // Written by "another language": partition murmur2(id) mod P, key 'I' + id + seq.
    let pid = format!("{}/ä b", unique_pid("hand"));
    let partition = murmur2_partition(pid.as_bytes(), 4);
    let producer = client(&b.bootstrap)
        .await
        .producer(ProducerConfig::default());
    producer
        .send(
            &topic,
            partition,
            vec![Record {
                key: Some(hand_written_key(&pid, 7)),
                value: Some(hand_written_value(&pid, 7, 1_700_000_000_000, b"by hand")),
                headers: Vec::new(),
                timestamp: 1,
            }],
        )
        .await
        .expect("raw write");
    let got = store
        .load(&pid, C::latest())
        .await
        .expect("load")
        .expect("the hand-written snapshot");
    assert_eq!(
        got.metadata,
        SnapshotMetadata::new(&pid, 7, 1_700_000_000_000)
    );
    assert_eq!(got.snapshot, Bytes::from_static(b"by hand"));
    // Written by the store: the same key and value bytes.
    store
        .save(
            SnapshotMetadata::new(&pid, 8, 1_700_000_000_001),
            Bytes::from_static(b"by store"),
        )
        .await
        .expect("save");
    let r = client(&b.bootstrap)
        .await
        .fetch(FetchRequest::new(&topic, partition, 1))
        .await
        .expect("fetch");
    let record = r.records.first().expect("the store's index record");
    assert_eq!(record.key, Some(hand_written_key(&pid, 8)));
    assert_eq!(
        record.value,
        Some(hand_written_value(&pid, 8, 1_700_000_000_001, b"by store"))
    );
    assert_eq!(store.index_key(&pid, 8), hand_written_key(&pid, 8));
}

#[tokio::test]
async fn fault_a_catch_up_below_the_log_start_continues_there() {
    let b = test_server().await;
    let config = b.config().with_partitions(1);
    let reader = SnapshotStore::connect(config.clone())
        .await
        .expect("connect");
    let writer = SnapshotStore::connect(config).await.expect("connect");
    let pid = unique_pid("retention");
    for seq in 1..=3 {
        writer
            .save(
                SnapshotMetadata::new(&pid, seq, 0),
                Bytes::from(format!("p{seq}")),
            )
            .await
            .expect("save");
    }
    // Retention removes the first two records before the reader catches up.
    let at = writer.placement(&pid);
    b.server()
        .set_log_start_offset(&at.topic, at.index_partition, 2)
        .await
        .expect("log start");
    let got = reader.load(&pid, C::latest()).await.expect("load");
    assert_eq!(got.map(|s| s.snapshot), Some(Bytes::from_static(b"p3")));
    assert_eq!(
        reader
            .load(&pid, C::latest().with_max_sequence_nr(2))
            .await
            .expect("load"),
        None
    );
}

#[tokio::test]
async fn fault_a_recreated_topic_is_indexed_from_its_start() {
    let b = test_server().await;
    let config = b.config().with_partitions(1);
    let old = SnapshotStore::connect(config.clone())
        .await
        .expect("connect");
    let pid = unique_pid("recreated");
    for seq in 1..=3 {
        old.save(
            SnapshotMetadata::new(&pid, seq, 0),
            Bytes::from(format!("old{seq}")),
        )
        .await
        .expect("save");
    }
    b.server()
        .delete_topic(&old.topic_for(&pid))
        .await
        .expect("delete topic");
    // A new store creates the topic again and saves one snapshot: the old store's position
    // (3) is past the new log end (1).
    let new = SnapshotStore::connect(config).await.expect("connect");
    new.save(
        SnapshotMetadata::new(&pid, 1, 0),
        Bytes::from_static(b"new1"),
    )
    .await
    .expect("save");
    let got = old.load(&pid, C::latest()).await.expect("load");
    assert_eq!(
        got.map(|s| (s.metadata.sequence_nr, s.snapshot)),
        Some((1, Bytes::from_static(b"new1")))
    );
}

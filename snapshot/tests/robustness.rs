//! Chunking limits, corrupt data, failed saves, timeouts and compaction. Tests named
//! `fault_*` need the in-process `TestServer` (its control API); the others also run against
//! `KP_EXTERNAL_BOOTSTRAP`. Each runs in both layouts (`<case>::shared`, `<case>::per_id`).

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{broker, capture_warnings, setup_five, test_server, unique_pid, Layout};
use kafka_persistence_snapshot::{
    SelectedSnapshot, SnapshotError, SnapshotMetadata, SnapshotSelectionCriteria as C,
    SnapshotStore,
};
use kafka_persistence_wire::{ProducerConfig, Record};

/// (sequence number, generation, chunk index) of a chunk key: the last 20 bytes in both
/// layouts (v2 keys start with `C` and the id).
fn chunk_key_parts(k: &[u8]) -> (u64, u64, u32) {
    let s = &k[k.len() - 20..];
    let n = |r: std::ops::Range<usize>| s[r].iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
    (n(0..8), n(8..16), n(16..20) as u32)
}

fn pattern(len: usize, salt: u8) -> Bytes {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8 ^ salt)
        .collect::<Vec<_>>()
        .into()
}

async fn write_raw(bootstrap: &str, topic: &str, partition: i32, key: Bytes, value: Option<Bytes>) {
    let client = common::client(bootstrap).await;
    let producer = client.producer(ProducerConfig::default());
    let record = Record {
        key: Some(key),
        value,
        headers: Vec::new(),
        timestamp: 1,
    };
    producer
        .send(topic, partition, vec![record])
        .await
        .expect("raw write");
}

async fn loads(store: &SnapshotStore, pid: &str, criteria: &[C]) -> Vec<Option<SelectedSnapshot>> {
    let mut out = Vec::new();
    for c in criteria {
        out.push(store.load(pid, *c).await.expect("load"));
    }
    out
}

async fn chunks_respect_a_small_topic_max_message_bytes(layout: Layout) {
    let b = broker().await;
    let config = b.isolated_config(layout).with_max_message_bytes(20_000);
    let store = SnapshotStore::connect(config.clone())
        .await
        .expect("connect");
    let pid = unique_pid("chunks");
    // Several sizes around the chunk boundary, each saved and loaded back.
    let sizes = [1_025, 18_975, 18_976, 18_977, 20_000, 100_003];
    for (i, size) in sizes.iter().enumerate() {
        let payload = pattern(*size, i as u8);
        let seq = i as u64 + 1;
        store
            .save(SnapshotMetadata::new(&pid, seq, 0), payload.clone())
            .await
            .unwrap_or_else(|e| panic!("save {size} bytes: {e}"));
        let got = store
            .load(&pid, C::latest())
            .await
            .expect("load")
            .expect("a snapshot");
        assert_eq!(got.metadata.sequence_nr, seq);
        assert!(got.snapshot == payload, "payload of {size} bytes differs");
    }
}

async fn a_corrupt_index_record_falls_back_with_a_warning(layout: Layout) {
    let b = broker().await;
    let store = b.store_in(layout).await;
    let pid = unique_pid("corrupt");
    let mds = setup_five(&store, &pid).await;
    let at = store.placement(&pid);
    write_raw(
        &b.bootstrap,
        &at.topic,
        at.index_partition,
        store.index_key(&pid, 15),
        Some(Bytes::from_static(b"\x0a\x05ab")),
    )
    .await;
    let (captured, guard) = capture_warnings();
    let got = store.load(&pid, C::latest()).await.expect("load");
    drop(guard);
    assert_eq!(got.map(|s| s.metadata), Some(mds[3].clone()));
    let log = captured.text();
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains("falling back"), "{log}");
    assert!(log.contains("sequence_nr=15"), "{log}");
    // A corrupt record can still be deleted by sequence number (timestamp 0 = any) and is
    // overwritten by a new save.
    store
        .delete(&SnapshotMetadata::new(&pid, 15, 0))
        .await
        .expect("delete");
    let md = store
        .save(
            SnapshotMetadata::new(&pid, 15, 0),
            Bytes::from_static(b"fresh"),
        )
        .await
        .expect("save");
    let got = store.load(&pid, C::latest()).await.expect("load");
    assert_eq!(
        got.map(|s| (s.metadata, s.snapshot)),
        Some((md, Bytes::from_static(b"fresh")))
    );
}

async fn fault_a_chunk_lost_to_compaction_falls_back_to_the_older_snapshot(layout: Layout) {
    let b = test_server().await;
    let config = b.config_in(layout).with_max_message_bytes(20_000);
    let store = SnapshotStore::connect(config.clone())
        .await
        .expect("connect");
    let pid = unique_pid("lost-chunk");
    let md1 = store
        .save(SnapshotMetadata::new(&pid, 1, 0), pattern(50_000, 1))
        .await
        .expect("save 1");
    store
        .save(SnapshotMetadata::new(&pid, 2, 0), pattern(50_000, 2))
        .await
        .expect("save 2");
    // Find chunk 1 of snapshot 2 by reading the data partition, tombstone it behind the
    // store's back and let compaction remove it.
    let at = store.placement(&pid);
    let topic = at.topic.clone();
    let client = common::client(&b.bootstrap).await;
    let fetched = client
        .fetch(
            kafka_persistence_wire::FetchRequest::new(&topic, at.chunk_partition, 0)
                .with_max_bytes(1 << 20),
        )
        .await
        .expect("fetch");
    let keys: Vec<Bytes> = fetched
        .records
        .iter()
        .filter_map(|r| r.key.clone())
        .collect();
    assert_eq!(keys.len(), 6, "3 chunks per snapshot");
    let victim = keys
        .iter()
        .find(|k| {
            let (seq, _, index) = chunk_key_parts(k);
            seq == 2 && index == 1
        })
        .expect("chunk 1 of snapshot 2")
        .clone();
    write_raw(&b.bootstrap, &topic, at.chunk_partition, victim, None).await;
    b.server().compact(&topic).await.expect("compact");
    let (captured, guard) = capture_warnings();
    let got = store.load(&pid, C::latest()).await.expect("load");
    drop(guard);
    assert_eq!(got.as_ref().map(|s| &s.metadata), Some(&md1));
    assert!(got.map(|s| s.snapshot) == Some(pattern(50_000, 1)));
    let log = captured.text();
    assert!(log.contains("falling back"), "{log}");
}

async fn fault_a_failed_chunked_save_is_never_loaded(layout: Layout) {
    let b = test_server().await;
    let config = b.config_in(layout).with_max_message_bytes(20_000);
    let store = SnapshotStore::connect(config.clone())
        .await
        .expect("connect");
    let pid = unique_pid("partial");
    let md = store
        .save(SnapshotMetadata::new(&pid, 7, 0), pattern(60_000, 1))
        .await
        .expect("save");
    // INVALID_RECORD (87, not retriable) for the next produce request: one chunk of the
    // overwrite fails.
    b.server().inject_error(0, 87, 1).await;
    let failed = store
        .save(SnapshotMetadata::new(&pid, 7, 0), pattern(60_000, 2))
        .await;
    assert!(failed.is_err(), "the save must report the failure");
    let got = store
        .load(&pid, C::latest())
        .await
        .expect("load")
        .expect("old snapshot");
    assert_eq!(got.metadata, md);
    assert!(
        got.snapshot == pattern(60_000, 1),
        "the old snapshot is intact"
    );
    // The next save works and wins.
    store
        .save(SnapshotMetadata::new(&pid, 7, 0), pattern(60_000, 3))
        .await
        .expect("save again");
    let got = store
        .load(&pid, C::latest())
        .await
        .expect("load")
        .expect("snapshot");
    assert!(got.snapshot == pattern(60_000, 3));
}

async fn fault_compaction_keeps_the_newest_snapshot_of_every_id(layout: Layout) {
    let b = test_server().await;
    let config = b.config_in(layout).with_max_message_bytes(20_000);
    let store = SnapshotStore::connect(config.clone())
        .await
        .expect("connect");
    let pids = [unique_pid("compact-a"), unique_pid("compact-b")];
    for pid in &pids {
        let mds = setup_five(&store, pid).await;
        // Overwrite inline with chunked and back, delete some, overwrite again.
        store
            .save(SnapshotMetadata::new(pid, 14, 0), pattern(45_000, 4))
            .await
            .expect("chunked overwrite");
        store
            .save(SnapshotMetadata::new(pid, 13, 0), pattern(45_000, 3))
            .await
            .expect("chunked overwrite");
        store
            .save(
                SnapshotMetadata::new(pid, 13, 0),
                Bytes::from_static(b"s-3-again"),
            )
            .await
            .expect("inline overwrite");
        store.delete(&mds[4]).await.expect("delete 15");
        store
            .delete_matching(pid, C::latest().with_max_sequence_nr(11))
            .await
            .expect("delete 11");
        store
            .save(
                SnapshotMetadata::new(pid, 12, 0),
                Bytes::from_static(b"s-2-again"),
            )
            .await
            .expect("overwrite 12");
    }
    let criteria: Vec<C> = (10..=16)
        .map(|s| C::latest().with_max_sequence_nr(s))
        .chain([C::latest()
            .with_min_sequence_nr(13)
            .with_max_sequence_nr(13)])
        .collect();
    let mut before = Vec::new();
    for pid in &pids {
        before.push(loads(&store, pid, &criteria).await);
    }
    // The partitions holding both ids' records (one topic per id in v1, shared ones in v2).
    let mut partitions = std::collections::BTreeSet::new();
    for pid in &pids {
        let at = store.placement(pid);
        partitions.insert((at.topic.clone(), at.index_partition));
        partitions.insert((at.topic, at.chunk_partition));
    }
    let batches = || async {
        let mut n = 0;
        for (topic, p) in &partitions {
            n += b
                .server()
                .partition_info(topic, *p)
                .await
                .expect("partition")
                .record_batches;
        }
        n
    };
    let batches_before = batches().await;
    // Sanity of "before": 14 chunked, 13 and 12 rewritten inline, 11 and 15 gone.
    let seqs: Vec<Option<u64>> = before[0]
        .iter()
        .map(|s| s.as_ref().map(|s| s.metadata.sequence_nr))
        .collect();
    assert_eq!(
        seqs,
        vec![
            None,
            None,
            Some(12),
            Some(13),
            Some(14),
            Some(14),
            Some(14),
            Some(13)
        ]
    );
    let topics: std::collections::BTreeSet<String> =
        partitions.iter().map(|(t, _)| t.clone()).collect();
    for topic in &topics {
        b.server().compact(topic).await.expect("compact");
    }
    assert!(
        batches().await < batches_before,
        "compaction removed superseded records"
    );
    for (i, pid) in pids.iter().enumerate() {
        // Several snapshots per id survive compaction: 12, 13 and 14 of each id.
        assert_eq!(loads(&store, pid, &criteria).await, before[i], "{pid}");
        // And from a fresh store (no caches).
        let fresh = SnapshotStore::connect(config.clone())
            .await
            .expect("connect");
        assert_eq!(loads(&fresh, pid, &criteria).await, before[i], "{pid}");
    }
}

async fn fault_every_call_is_bounded_by_the_timeout(layout: Layout) {
    let b = test_server().await;
    let store =
        SnapshotStore::connect(b.config_in(layout).with_timeout(Duration::from_millis(500)))
            .await
            .expect("connect");
    let pid = unique_pid("timeout");
    store
        .save(SnapshotMetadata::new(&pid, 1, 0), Bytes::from_static(b"x"))
        .await
        .expect("save");
    b.server().set_latency(Duration::from_secs(5)).await;
    let started = Instant::now();
    let r = store.load(&pid, C::latest()).await;
    assert!(
        matches!(
            r,
            Err(SnapshotError::Timeout {
                operation: "load",
                ..
            })
        ),
        "{r:?}"
    );
    let r = store
        .save(SnapshotMetadata::new(&pid, 2, 0), Bytes::from_static(b"y"))
        .await;
    assert!(matches!(r, Err(SnapshotError::Timeout { .. })), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    b.server().set_latency(Duration::ZERO).await;
}

async fn fault_chunks_of_replaced_and_deleted_snapshots_are_tombstoned(layout: Layout) {
    let b = test_server().await;
    let config = b.config_in(layout).with_max_message_bytes(20_000);
    let store = SnapshotStore::connect(config.clone())
        .await
        .expect("connect");
    let pid = unique_pid("gc");
    for salt in 1..=3 {
        store
            .save(SnapshotMetadata::new(&pid, 1, 0), pattern(50_000, salt))
            .await
            .expect("save 1");
    }
    store
        .save(SnapshotMetadata::new(&pid, 2, 0), pattern(50_000, 9))
        .await
        .expect("save 2");
    store
        .delete(&SnapshotMetadata::new(&pid, 2, 0))
        .await
        .expect("delete 2");
    // A second store (fresh caches) overwrites 1 once more: it learns the old manifest by a
    // scan and cleans it up too.
    let other = SnapshotStore::connect(config.clone())
        .await
        .expect("connect");
    other
        .save(SnapshotMetadata::new(&pid, 1, 0), pattern(50_000, 4))
        .await
        .expect("save 1 from another store");
    let at = store.placement(&pid);
    let topic = at.topic.clone();
    b.server().compact(&topic).await.expect("compact");
    let client = common::client(&b.bootstrap).await;
    let mut offset = 0;
    let mut live = Vec::new();
    loop {
        let r = client
            .fetch(
                kafka_persistence_wire::FetchRequest::new(&topic, at.chunk_partition, offset)
                    .with_max_bytes(1 << 20),
            )
            .await
            .expect("fetch");
        live.extend(
            r.records
                .iter()
                .filter(|r| r.value.is_some())
                .filter_map(|r| r.key.clone()),
        );
        if r.next_offset >= r.high_watermark || r.next_offset <= offset {
            break;
        }
        offset = r.next_offset;
    }
    assert_eq!(
        live.len(),
        3,
        "only the 3 chunks of the live snapshot remain"
    );
    let (_, generation, _) = chunk_key_parts(&live[0]);
    assert!(live.iter().all(|k| {
        let (seq, g, _) = chunk_key_parts(k);
        seq == 1 && g == generation
    }));
    let got = other
        .load(&pid, C::latest())
        .await
        .expect("load")
        .expect("snapshot 1");
    assert!(got.snapshot == pattern(50_000, 4));
}

in_both_layouts!(
    chunks_respect_a_small_topic_max_message_bytes,
    a_corrupt_index_record_falls_back_with_a_warning,
    fault_a_chunk_lost_to_compaction_falls_back_to_the_older_snapshot,
    fault_a_failed_chunked_save_is_never_loaded,
    fault_compaction_keeps_the_newest_snapshot_of_every_id,
    fault_every_call_is_bounded_by_the_timeout,
    fault_chunks_of_replaced_and_deleted_snapshots_are_tombstoned,
);

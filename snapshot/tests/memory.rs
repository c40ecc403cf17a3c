//! The memory of layout v2's in-memory index: 100,000 ids (one snapshot each, written by
//! hand in the documented format), restored by a fresh store at connect. Counts the heap
//! bytes that stay allocated after `connect`, minus those of a store on an empty topic.
//! Run with `--nocapture` to see the figure.

mod common;

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use bytes::Bytes;
use common::{broker, unique_prefix};
use kafka_persistence_snapshot::{SnapshotSelectionCriteria as C, SnapshotStore};
use kafka_persistence_wire::{murmur2_partition, ProducerConfig, Record};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const IDS: usize = 100_000;
const P: i32 = 16;

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Key `'I'` + id + sequence number; value: version 1, id, sequence number, timestamp,
/// inline payload (protobuf fields 1, 2, 3, 4, 6).
fn index_record(pid: &str, seq: u64, ts: i64, payload: &[u8]) -> Record {
    let mut k = vec![b'I'];
    k.extend_from_slice(pid.as_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    let mut v = vec![0x08, 1, 0x12];
    varint(pid.len() as u64, &mut v);
    v.extend_from_slice(pid.as_bytes());
    v.push(0x18);
    varint(seq, &mut v);
    v.push(0x20);
    varint(ts as u64, &mut v);
    v.push(0x32);
    varint(payload.len() as u64, &mut v);
    v.extend_from_slice(payload);
    Record {
        key: Some(k.into()),
        value: Some(v.into()),
        headers: Vec::new(),
        timestamp: ts,
    }
}

async fn live_after_connect(
    config: kafka_persistence_snapshot::SnapshotConfig,
) -> (SnapshotStore, isize) {
    let before = LIVE.load(Ordering::SeqCst);
    let store = SnapshotStore::connect(config).await.expect("connect");
    (store, LIVE.load(Ordering::SeqCst) - before)
}

#[tokio::test(flavor = "current_thread")]
async fn restoring_100k_ids_costs_little_memory_per_id() {
    let b = broker().await;
    let empty = b
        .config()
        .with_topic_prefix(unique_prefix())
        .with_partitions(P);
    let full = b
        .config()
        .with_topic_prefix(unique_prefix())
        .with_partitions(P);
    // Create the full topic, then fill it with one snapshot per id.
    drop(SnapshotStore::connect(full.clone()).await.expect("create"));
    let topic = format!("{}v2.snapshots", full.topic_prefix);
    let client = common::client(&b.bootstrap).await;
    let producer = client.producer(ProducerConfig::default());
    let ids: Vec<String> = (0..IDS).map(|i| format!("entity-{i:06}")).collect();
    let mut by_partition: Vec<Vec<Record>> = (0..P).map(|_| Vec::new()).collect();
    for (i, id) in ids.iter().enumerate() {
        let p = murmur2_partition(id.as_bytes(), P) as usize;
        by_partition[p].push(index_record(
            id,
            1 + (i as u64 % 7),
            1_700_000_000_000 + i as i64,
            b"state",
        ));
    }
    for (p, records) in by_partition.into_iter().enumerate() {
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let batch: Vec<Record> = records.by_ref().take(1_000).collect();
            producer
                .send(&topic, p as i32, batch)
                .await
                .expect("write index records");
        }
    }
    let (_empty_store, baseline) = live_after_connect(empty).await;
    let (store, restored) = live_after_connect(full).await;
    let per_id = (restored - baseline) as f64 / IDS as f64;
    println!(
        "layout v2 index: {restored} bytes after restoring {IDS} ids, {baseline} for an empty topic: {per_id:.1} bytes/id"
    );
    // Every id was restored and loads (spot checks across partitions).
    for i in (0..IDS).step_by(9_973) {
        let got = store
            .load(&ids[i], C::latest())
            .await
            .expect("load")
            .expect("a restored snapshot");
        assert_eq!(got.metadata.sequence_nr, 1 + (i as u64 % 7));
        assert_eq!(got.snapshot, Bytes::from_static(b"state"));
    }
    assert!(per_id < 200.0, "{per_id:.1} bytes per id");
}

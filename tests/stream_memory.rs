//! A slow reader of a source bounds the consumer side's memory: while a producer writes
//! 200 MB, a `plain_source` read slowly holds at most a few fetches' worth of records,
//! derived from its settings (`max.partition.fetch.bytes`, the producer's batch size, the
//! source's `buffer_batches`), not what the broker has.
//!
//! Measured, not timed: a counting global allocator tracks the bytes allocated by the threads
//! of the consumer's runtime (the consumer, its connections, the source task, the reader)
//! that are still live, and their peak. The broker and the producer run on a second runtime
//! whose allocations are not counted. Against `TestServer` or `KP_EXTERNAL_BOOTSTRAP`.
//!
//! `cargo test -p kafka-persistence --test stream_memory -- --nocapture` prints the figure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use kafka_persistence::stream::{plain_source, SourceSettings};
use kafka_persistence::wire::{
    Client, ClientConfig, ConsumerConfig, NewTopic, OffsetReset, ProducerConfig, Record,
};

/// Counts the live bytes allocated on threads marked by [`count_this_thread`].
struct Counting;

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Every allocation carries a header of `align.max(16)` bytes in front; its last word is the
/// counted size (0: not counted), so that a block freed on any thread is subtracted if and
/// only if it was added.
const HEADER: usize = 16;

fn outer(layout: Layout) -> Option<(Layout, usize)> {
    let offset = layout.align().max(HEADER);
    let size = layout.size().checked_add(offset)?;
    Some((Layout::from_size_align(size, offset).ok()?, offset))
}

// SAFETY: forwards to `System` with a larger layout of the same alignment or more, and hands
// out the part after the header, which is `layout`-sized and `layout`-aligned (the offset is
// a multiple of the alignment). `dealloc` recomputes the same outer layout from `layout`.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((outer, offset)) = outer(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `outer` has a non-zero size (at least the header).
        let base = unsafe { System.alloc(outer) };
        if base.is_null() {
            return base;
        }
        let counted = COUNTED.try_with(Cell::get).unwrap_or(false);
        let size = if counted { layout.size() } else { 0 };
        // SAFETY: `offset` (>= 16, a multiple of 8) is within the block; the word before
        // `ptr` is in the header and aligned.
        let ptr = unsafe { base.add(offset) };
        unsafe { ptr.cast::<usize>().sub(1).write(size) };
        if size > 0 {
            let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some((outer, offset)) = outer(layout) else {
            return;
        };
        // SAFETY: `ptr` came from `alloc` with this `layout`: its header is in front.
        let size = unsafe { ptr.cast::<usize>().sub(1).read() };
        if size > 0 {
            LIVE.fetch_sub(size, Ordering::Relaxed);
        }
        // SAFETY: the block `alloc` got from `System` with `outer`.
        unsafe { System.dealloc(ptr.sub(offset), outer) };
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn count_this_thread() {
    COUNTED.with(|c| c.set(true));
}

fn unique(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("mem-{tag}-{nanos:x}")
}

const PARTITIONS: i32 = 2;
const RECORD_BYTES: usize = 10 * 1024;
/// 200 MB in all.
const RECORDS: usize = 20_000;
const MAX_PARTITION_FETCH_BYTES: i32 = 256 * 1024;
const BATCH_BYTES: usize = 64 * 1024;
/// The consumer side's fixed state (client, metadata, connections, tasks) besides records.
const FIXED: usize = 4 * 1024 * 1024;

#[test]
fn a_slow_reader_bounds_the_sources_memory() {
    let broker_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let consumer_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(count_this_thread)
        .enable_all()
        .build()
        .unwrap();

    let b = broker_rt.block_on(common::broker());
    let bootstrap = b.bootstrap.clone();
    let topic = unique("t");
    let producer_client = broker_rt.block_on(async {
        let c = Client::connect(ClientConfig::new(&bootstrap))
            .await
            .unwrap();
        c.create_topics(vec![NewTopic::new(&topic, PARTITIONS, 1)])
            .await
            .unwrap();
        c
    });
    // The producer writes 200 MB, numbered records, while the reader below reads slowly.
    let producing = {
        let topic = topic.clone();
        broker_rt.spawn(async move {
            let p =
                producer_client.producer(ProducerConfig::default().with_batch_size(BATCH_BYTES));
            let mut sends = Vec::new();
            for i in 0..RECORDS {
                let mut v = vec![b'x'; RECORD_BYTES];
                v[..8].copy_from_slice(&(i as u64).to_be_bytes());
                sends.push(p.enqueue(
                    &topic,
                    (i % PARTITIONS as usize) as i32,
                    vec![Record::new(v, 1)],
                ));
                if sends.len() == 64 {
                    for s in sends.drain(..) {
                        s.await.unwrap();
                    }
                }
            }
            for s in sends {
                s.await.unwrap();
            }
        })
    };

    let settings = SourceSettings::default();
    let buffer_batches = settings.buffer_batches;
    let baseline = LIVE.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    let reading = consumer_rt.spawn(async move {
        let client = Client::connect(ClientConfig::new(&bootstrap))
            .await
            .unwrap();
        let mut consumer = client
            .consumer(
                ConsumerConfig::new(unique("g"))
                    .with_auto_offset_reset(OffsetReset::Earliest)
                    .with_max_partition_fetch_bytes(MAX_PARTITION_FETCH_BYTES),
            )
            .unwrap();
        consumer.subscribe(vec![topic], None).unwrap();
        let (mut stream, control) = plain_source(consumer, settings);
        let mut next = [0u64; PARTITIONS as usize];
        for n in 0..RECORDS {
            let r = tokio::time::timeout(Duration::from_secs(60), stream.next())
                .await
                .expect("a record within 60 s")
                .expect("the stream goes on")
                .unwrap();
            let value = r.record.value.unwrap();
            assert_eq!(value.len(), RECORD_BYTES);
            let id = u64::from_be_bytes(value[..8].try_into().unwrap());
            let p = r.partition as usize;
            assert_eq!(id, next[p] * PARTITIONS as u64 + p as u64, "in order, once");
            next[p] += 1;
            // The slow reader: 5 ms per 10 records (at most 20 MB/s).
            if n % 10 == 9 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        drop(stream);
        control.shutdown().await.unwrap();
    });
    broker_rt.block_on(async {
        producing.await.unwrap();
        reading.await.unwrap();
    });
    let peak = PEAK.load(Ordering::Relaxed) - baseline;

    // Per partition at most one fetch: `max.partition.fetch.bytes`, or one batch more than
    // that (a first batch larger than the limit comes whole). Such a round's records can be
    // at once: in the consumer's buffer or fetch, in the source's channel (buffer_batches
    // batches), in the batch being handed over, and in the stream's own buffer.
    let per_round = PARTITIONS as usize * (MAX_PARTITION_FETCH_BYTES as usize + BATCH_BYTES);
    let bound = (buffer_batches + 3) * per_round + FIXED;
    let produced = RECORDS * RECORD_BYTES;
    println!(
        "stream memory: {RECORDS} records, {produced} bytes produced; consumer side peak live \
         {peak} bytes (bound {bound})"
    );
    // The counting sees the consumer side at all: at least one record was live on it.
    assert!(peak >= RECORD_BYTES, "only {peak} bytes counted");
    assert!(
        peak < bound,
        "the consumer side peaked at {peak} bytes, over its bound of {bound} ({produced} produced)"
    );
    // The in-process server shuts down on its runtime.
    broker_rt.block_on(async move { drop(b) });
}

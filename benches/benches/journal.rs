//! Criterion benches of the journal on the embedded testserver, in the shape of SPEC.md P1-P3
//! (Akka's `JournalPerfSpec`). Event-topic publication is off (`EmptyEventTopicMapper`) so
//! the journal itself is measured. The `kafka-persistence bench` CLI runs P1-P4 end to end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::TryStreamExt;
use kafka_persistence::journal::{
    AtomicWrite, EmptyEventTopicMapper, Journal, JournalConfig, PersistentRepr,
};
use kafka_persistence::testserver::TestServer;

const EVENTS: u64 = 10_000;
const PER_CALL: u64 = 100;

fn payload() -> bytes::Bytes {
    bytes::Bytes::from(vec![b'x'; 100])
}

fn writes(pid: &str, from: u64, n: u64) -> Vec<AtomicWrite> {
    let p = payload();
    (from..from + n)
        .map(|s| AtomicWrite::new(vec![PersistentRepr::new(pid, s, p.clone())]))
        .collect()
}

fn journal_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (_server, journal) = rt.block_on(async {
        let server = TestServer::start().await.expect("test server");
        let config = JournalConfig::new(server.bootstrap_servers())
            .with_timeout(Duration::from_secs(60))
            .with_event_topic_mapper(EmptyEventTopicMapper);
        let journal = Journal::connect(config).await.expect("journal");
        (server, journal)
    });
    let mut group = c.benchmark_group("journal");
    group.sample_size(10);

    // P1: one id, 10,000 events per iteration, written without waiting for each: 100 calls
    // of 100 atomic writes, all in flight at once (pipelined through the producer).
    let p1_next = AtomicU64::new(1);
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("p1_pipelined_10k_events_one_id", |b| {
        b.to_async(&rt).iter(|| {
            let start = p1_next.fetch_add(EVENTS, Ordering::Relaxed);
            let journal = journal.clone();
            async move {
                let calls = (0..EVENTS / PER_CALL).map(|k| {
                    let journal = journal.clone();
                    let w = writes("bench-p1", start + k * PER_CALL, PER_CALL);
                    async move { journal.write(w).await }
                });
                for r in futures::future::join_all(calls).await {
                    let r = r.expect("write");
                    assert!(r.iter().all(|r| r.is_ok()));
                }
            }
        })
    });

    // P2: one write awaited at a time: the round-trip latency of a single-event write.
    let p2_next = AtomicU64::new(1);
    group.throughput(Throughput::Elements(1));
    group.bench_function("p2_awaited_single_write", |b| {
        b.to_async(&rt).iter(|| {
            let s = p2_next.fetch_add(1, Ordering::Relaxed);
            let journal = journal.clone();
            async move {
                let r = journal
                    .write(writes("bench-p2", s, 1))
                    .await
                    .expect("write");
                assert!(r[0].is_ok());
            }
        })
    });

    // P3: recovery: replay 10,000 events of one id.
    rt.block_on(async {
        for k in 0..EVENTS / 1_000 {
            let r = journal
                .write(writes("bench-p3", 1 + k * 1_000, 1_000))
                .await
                .expect("p3 setup");
            assert!(r.iter().all(|r| r.is_ok()));
        }
    });
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("p3_replay_10k_events", |b| {
        b.to_async(&rt).iter(|| {
            let journal = journal.clone();
            async move {
                let events: Vec<PersistentRepr> = journal
                    .replay("bench-p3", 1, u64::MAX, u64::MAX)
                    .try_collect()
                    .await
                    .expect("replay");
                assert_eq!(events.len() as u64, EVENTS);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, journal_benches);
criterion_main!(benches);

//! Criterion benches of the snapshot store on the embedded testserver: save and load of
//! 1 KiB (inline in the index record), 1 MiB (2 chunks at the default 1 MiB message limit)
//! and 16 MiB (17 chunks) snapshots. Throughput is reported in bytes per second.
//!
//! Saves overwrite one sequence number per size (the "keep the latest snapshot" pattern), so
//! the index partition stays small; the testserver compacts in the background.

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_persistence::snapshot::{
    SnapshotConfig, SnapshotMetadata, SnapshotSelectionCriteria, SnapshotStore,
};
use kafka_persistence::testserver::TestServer;

const SIZES: [(&str, usize); 3] = [
    ("1KiB", 1024),
    ("1MiB", 1024 * 1024),
    ("16MiB", 16 * 1024 * 1024),
];

fn payload(len: usize) -> Bytes {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect::<Vec<_>>()
        .into()
}

fn snapshot_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (_server, store) = rt.block_on(async {
        let server = TestServer::builder()
            .compaction_interval(Duration::from_secs(1))
            .start()
            .await
            .expect("test server");
        let config =
            SnapshotConfig::new(server.bootstrap_servers()).with_timeout(Duration::from_secs(120));
        let store = SnapshotStore::connect(config)
            .await
            .expect("snapshot store");
        (server, store)
    });

    let mut group = c.benchmark_group("snapshot");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for (name, len) in SIZES {
        let pid = format!("bench-snapshot-{name}");
        let data = payload(len);
        // One snapshot to load, saved before timing.
        rt.block_on(store.save(SnapshotMetadata::new(&pid, 1, 0), data.clone()))
            .expect("initial save");
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("save", name), &data, |b, data| {
            b.to_async(&rt).iter(|| {
                let store = store.clone();
                let md = SnapshotMetadata::new(pid.clone(), 1, 0);
                let data = data.clone();
                async move { store.save(md, data).await.expect("save") }
            });
        });
        group.bench_with_input(BenchmarkId::new("load", name), &len, |b, &len| {
            b.to_async(&rt).iter(|| {
                let store = store.clone();
                let pid = pid.clone();
                async move {
                    let s = store
                        .load(&pid, SnapshotSelectionCriteria::latest())
                        .await
                        .expect("load")
                        .expect("a snapshot");
                    assert_eq!(s.snapshot.len(), len);
                    s
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, snapshot_benches);
criterion_main!(benches);

//! SPEC.md S1-S13 against `TestServer` (or `KP_EXTERNAL_BOOTSTRAP`), plus chunking and
//! persistence checks, each in both layouts (`<case>::shared`, `<case>::per_id`).

#[macro_use]
mod common;

use bytes::Bytes;
use common::{broker, setup_five, unique_pid, Layout};
use kafka_persistence_snapshot::{
    SelectedSnapshot, SnapshotMetadata, SnapshotSelectionCriteria as C, SnapshotStore,
};

async fn load(store: &SnapshotStore, pid: &str, c: C) -> Option<SelectedSnapshot> {
    store.load(pid, c).await.expect("load")
}

fn seq_and_payload(s: &Option<SelectedSnapshot>) -> Option<(u64, Bytes)> {
    s.as_ref()
        .map(|s| (s.metadata.sequence_nr, s.snapshot.clone()))
}

fn expect(seq: u64, payload: &str) -> Option<(u64, Bytes)> {
    Some((seq, Bytes::from(payload.to_owned())))
}

/// The high watermarks of the id's index and chunk partitions; `None` if its topic does not
/// exist.
async fn written(bootstrap: &str, store: &SnapshotStore, pid: &str) -> Option<(i64, i64)> {
    let client = common::client(bootstrap).await;
    let at = store.placement(pid);
    client.topic_metadata(&at.topic).await.expect("metadata")?;
    let mut hw = Vec::new();
    for p in [at.index_partition, at.chunk_partition] {
        let r = client
            .fetch(kafka_persistence_wire::FetchRequest::new(&at.topic, p, 0))
            .await
            .expect("fetch");
        hw.push(r.high_watermark);
    }
    Some((hw[0], hw[1]))
}

async fn s1_no_snapshots_loads_none_and_creates_nothing(layout: Layout) {
    let b = broker().await;
    // A topic of its own: on a shared broker nobody else writes to its partitions.
    let store = SnapshotStore::connect(b.isolated_config(layout))
        .await
        .expect("connect");
    let pid = unique_pid("s1");
    let before = written(&b.bootstrap, &store, &pid).await;
    assert_eq!(load(&store, &pid, C::latest()).await, None);
    store
        .delete_matching(&pid, C::latest())
        .await
        .expect("delete of nothing");
    store
        .delete(&SnapshotMetadata::new(&pid, 3, 0))
        .await
        .expect("delete of nothing");
    assert_eq!(
        load(&store, &pid, C::latest().with_max_sequence_nr(3)).await,
        None
    );
    let after = written(&b.bootstrap, &store, &pid).await;
    match layout {
        // Neither a load nor a delete created the id's topic.
        Layout::PerId => assert_eq!((before, after), (None, None)),
        // The shared topic exists from `connect` on; nothing was written to it.
        _ => {
            assert_eq!(before, Some((0, 0)));
            assert_eq!(after, before);
        }
    }
}

async fn s2_bounds_below_every_snapshot_load_none(layout: Layout) {
    let b = broker().await;
    let store = b.store_in(layout).await;
    let pid = unique_pid("s2");
    setup_five(&store, &pid).await;
    assert_eq!(
        load(&store, &pid, C::latest().with_max_timestamp(100)).await,
        None
    );
    assert_eq!(
        load(&store, &pid, C::latest().with_max_sequence_nr(7)).await,
        None
    );
    assert_eq!(load(&store, &pid, C::none()).await, None);
}

async fn s3_latest_is_the_youngest_with_its_exact_metadata(layout: Layout) {
    let b = broker().await;
    let store = b.store_in(layout).await;
    let pid = unique_pid("s3");
    let mds = setup_five(&store, &pid).await;
    let got = load(&store, &pid, C::latest()).await.expect("a snapshot");
    assert_eq!(got.metadata, mds[4]);
    assert_eq!(got.snapshot, Bytes::from_static(b"s-5"));
    assert_ne!(got.metadata.timestamp, 0);
    // "Youngest" = highest sequence number, whatever the timestamps: save 9 after 15.
    let md9 = store
        .save(
            SnapshotMetadata::new(&pid, 9, 0),
            Bytes::from_static(b"s-9"),
        )
        .await
        .expect("save");
    assert!(md9.timestamp > mds[4].timestamp);
    let got = load(&store, &pid, C::latest()).await;
    assert_eq!(seq_and_payload(&got), expect(15, "s-5"));
}

async fn s4_s5_max_sequence_nr_and_max_timestamp(layout: Layout) {
    let b = broker().await;
    let store = b.store_in(layout).await;
    let pid = unique_pid("s4");
    let mds = setup_five(&store, &pid).await;
    let got = load(&store, &pid, C::latest().with_max_sequence_nr(13)).await;
    assert_eq!(seq_and_payload(&got), expect(13, "s-3"));
    let c = C::latest()
        .with_max_sequence_nr(13)
        .with_max_timestamp(mds[2].timestamp);
    let got = load(&store, &pid, c).await;
    assert_eq!(got.as_ref().map(|s| &s.metadata), Some(&mds[2]));
    // A timestamp bound alone selects the youngest snapshot at or before it.
    let c = C::latest().with_max_timestamp(mds[1].timestamp);
    assert_eq!(
        seq_and_payload(&load(&store, &pid, c).await),
        expect(12, "s-2")
    );
}

async fn s6_delete_by_metadata(layout: Layout) {
    let b = broker().await;
    let store = b.store_in(layout).await;
    let pid = unique_pid("s6");
    let mds = setup_five(&store, &pid).await;
    // A non-zero timestamp that does not match deletes nothing.
    let mut wrong = mds[2].clone();
    wrong.timestamp += 1_000;
    store.delete(&wrong).await.expect("delete");
    let c13 = C::latest().with_max_sequence_nr(13);
    assert_eq!(
        seq_and_payload(&load(&store, &pid, c13).await),
        expect(13, "s-3")
    );
    // Timestamp 0 = any.
    store
        .delete(&SnapshotMetadata::new(&pid, 13, 0))
        .await
        .expect("delete");
    assert_eq!(
        seq_and_payload(&load(&store, &pid, c13).await),
        expect(12, "s-2")
    );
    // The exact timestamp deletes.
    store.delete(&mds[1]).await.expect("delete");
    assert_eq!(
        seq_and_payload(&load(&store, &pid, c13).await),
        expect(11, "s-1")
    );
    // Others untouched.
    assert_eq!(
        seq_and_payload(&load(&store, &pid, C::latest()).await),
        expect(15, "s-5")
    );
}

async fn s7_s8_delete_matching_with_max_bounds(layout: Layout) {
    let b = broker().await;
    let store = b.store_in(layout).await;
    let pid = unique_pid("s7");
    let mds = setup_five(&store, &pid).await;
    let c13 = C::latest()
        .with_max_sequence_nr(13)
        .with_max_timestamp(mds[2].timestamp);
    store.delete_matching(&pid, c13).await.expect("delete");
    assert_eq!(load(&store, &pid, c13).await, None);
    let c14 = C::latest()
        .with_max_sequence_nr(14)
        .with_max_timestamp(mds[3].timestamp);
    assert_eq!(
        seq_and_payload(&load(&store, &pid, c14).await),
        expect(14, "s-4")
    );
    // S8: a timestamp bound just below 14's keeps 14.
    let below = C::latest()
        .with_max_sequence_nr(14)
        .with_max_timestamp(mds[3].timestamp - 1);
    store.delete_matching(&pid, below).await.expect("delete");
    assert_eq!(
        seq_and_payload(&load(&store, &pid, c14).await),
        expect(14, "s-4")
    );
    assert_eq!(
        seq_and_payload(&load(&store, &pid, C::latest()).await),
        expect(15, "s-5")
    );
}

async fn s9_saving_again_overwrites(layout: Layout) {
    let b = broker().await;
    let store = b.store_in(layout).await;
    let pid = unique_pid("s9");
    setup_five(&store, &pid).await;
    let md = store
        .save(
            SnapshotMetadata::new(&pid, 15, 0),
            Bytes::from_static(b"s-5-modified"),
        )
        .await
        .expect("save");
    let got = load(&store, &pid, C::latest().with_max_sequence_nr(15)).await;
    assert_eq!(seq_and_payload(&got), expect(15, "s-5-modified"));
    assert_eq!(got.map(|s| s.metadata), Some(md));
}

async fn s10_large_snapshots_round_trip(layout: Layout) {
    let b = broker().await;
    let store = b.store_in(layout).await;
    let pid = unique_pid("s10");
    let small: Bytes = (0..10_000u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let big: Bytes = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect::<Vec<_>>()
        .into();
    store
        .save(SnapshotMetadata::new(&pid, 1, 0), small.clone())
        .await
        .expect("save 10,000 bytes");
    store
        .save(SnapshotMetadata::new(&pid, 2, 0), big.clone())
        .await
        .expect("save 5 MiB");
    let got = load(&store, &pid, C::latest()).await.expect("5 MiB");
    assert_eq!(got.metadata.sequence_nr, 2);
    assert_eq!(got.snapshot.len(), big.len());
    assert!(got.snapshot == big, "5 MiB payload differs");
    let got = load(&store, &pid, C::latest().with_max_sequence_nr(1))
        .await
        .expect("10,000 bytes");
    assert_eq!(got.snapshot, small);
    // Overwriting a chunked snapshot with another chunked one, then with an inline one.
    let big2: Bytes = big.iter().map(|b| b ^ 0x5a).collect::<Vec<_>>().into();
    store
        .save(SnapshotMetadata::new(&pid, 2, 0), big2.clone())
        .await
        .expect("overwrite 5 MiB");
    let got = load(&store, &pid, C::latest()).await.expect("overwritten");
    assert!(got.snapshot == big2, "overwritten 5 MiB payload differs");
    store
        .save(
            SnapshotMetadata::new(&pid, 2, 0),
            Bytes::from_static(b"tiny"),
        )
        .await
        .expect("overwrite small");
    let got = load(&store, &pid, C::latest()).await;
    assert_eq!(seq_and_payload(&got), expect(2, "tiny"));
    // Empty payloads are payloads too.
    store
        .save(SnapshotMetadata::new(&pid, 3, 0), Bytes::new())
        .await
        .expect("save empty");
    assert_eq!(
        seq_and_payload(&load(&store, &pid, C::latest()).await),
        expect(3, "")
    );
}

async fn s11_metadata_bytes_round_trip(layout: Layout) {
    let b = broker().await;
    let store = b.store_in(layout).await;
    let pid = unique_pid("s11");
    let with = SnapshotMetadata::new(&pid, 1, 0).with_metadata(Bytes::from_static(b"\x00meta\xff"));
    let empty = SnapshotMetadata::new(&pid, 2, 0).with_metadata(Bytes::new());
    let none = SnapshotMetadata::new(&pid, 3, 0);
    let mut stored = Vec::new();
    for md in [with, empty, none] {
        stored.push(
            store
                .save(md, Bytes::from_static(b"x"))
                .await
                .expect("save"),
        );
    }
    assert_eq!(
        stored[0].metadata,
        Some(Bytes::from_static(b"\x00meta\xff"))
    );
    for md in &stored {
        let got = load(
            &store,
            &pid,
            C::latest().with_max_sequence_nr(md.sequence_nr),
        )
        .await
        .expect("load");
        assert_eq!(&got.metadata, md);
    }
    // Also with a chunked payload.
    let big = Bytes::from(vec![7u8; 2 * 1024 * 1024]);
    let md = store
        .save(
            SnapshotMetadata::new(&pid, 4, 0).with_metadata(Bytes::from_static(b"m4")),
            big,
        )
        .await
        .expect("save");
    assert_eq!(
        load(&store, &pid, C::latest()).await.map(|s| s.metadata),
        Some(md)
    );
}

async fn s12_min_bounds_for_loads_and_deletions(layout: Layout) {
    let b = broker().await;
    let store = b.store_in(layout).await;
    let pid = unique_pid("s12");
    let mds = setup_five(&store, &pid).await;
    let c = C::latest()
        .with_min_sequence_nr(13)
        .with_max_sequence_nr(15);
    assert_eq!(
        seq_and_payload(&load(&store, &pid, c).await),
        expect(15, "s-5")
    );
    assert_eq!(
        load(&store, &pid, C::latest().with_min_sequence_nr(16)).await,
        None
    );
    store
        .delete_matching(
            &pid,
            C::latest()
                .with_min_sequence_nr(12)
                .with_max_sequence_nr(13),
        )
        .await
        .expect("delete");
    let remaining = |upto: u64| C::latest().with_max_sequence_nr(upto);
    assert_eq!(
        seq_and_payload(&load(&store, &pid, remaining(13)).await),
        expect(11, "s-1")
    );
    assert_eq!(
        seq_and_payload(&load(&store, &pid, remaining(14)).await),
        expect(14, "s-4")
    );
    // min_timestamp bounds loads...
    let after14 = C::latest()
        .with_min_timestamp(mds[3].timestamp)
        .with_max_sequence_nr(14);
    assert_eq!(
        seq_and_payload(&load(&store, &pid, after14).await),
        expect(14, "s-4")
    );
    let after15 = C::latest().with_min_timestamp(mds[4].timestamp + 1);
    assert_eq!(load(&store, &pid, after15).await, None);
    // ... and deletions: everything from ts(14) on goes, 11 stays.
    store
        .delete_matching(&pid, C::latest().with_min_timestamp(mds[3].timestamp))
        .await
        .expect("delete");
    assert_eq!(
        seq_and_payload(&load(&store, &pid, C::latest()).await),
        expect(11, "s-1")
    );
}

async fn s13_saves_and_deletions_survive_a_new_store(layout: Layout) {
    let b = broker().await;
    let pid = unique_pid("s13");
    let mds = {
        let store = b.store_in(layout).await;
        let mds = setup_five(&store, &pid).await;
        store.delete(&mds[4]).await.expect("delete 15");
        store
            .delete_matching(&pid, C::latest().with_max_sequence_nr(12))
            .await
            .expect("delete <= 12");
        mds
    };
    let store = b.store_in(layout).await;
    let got = load(&store, &pid, C::latest()).await;
    assert_eq!(got.as_ref().map(|s| &s.metadata), Some(&mds[3]));
    assert_eq!(
        load(&store, &pid, C::latest().with_max_sequence_nr(12)).await,
        None
    );
    assert_eq!(
        seq_and_payload(&load(&store, &pid, C::latest().with_max_sequence_nr(13)).await),
        expect(13, "s-3")
    );
    // The new store's timestamps continue above the stored ones.
    let md = store
        .save(
            SnapshotMetadata::new(&pid, 16, 0),
            Bytes::from_static(b"s-6"),
        )
        .await
        .expect("save");
    assert!(md.timestamp > mds[3].timestamp);
}

async fn explicit_timestamps_are_kept_and_sequence_nr_zero_is_refused(layout: Layout) {
    let b = broker().await;
    let store = b.store_in(layout).await;
    let pid = unique_pid("explicit");
    let md = store
        .save(
            SnapshotMetadata::new(&pid, 5, 1_234),
            Bytes::from_static(b"p"),
        )
        .await
        .expect("save");
    assert_eq!(md.timestamp, 1_234);
    assert_eq!(
        load(&store, &pid, C::latest()).await.map(|s| s.metadata),
        Some(md)
    );
    let err = store
        .save(SnapshotMetadata::new(&pid, 0, 0), Bytes::from_static(b"p"))
        .await;
    assert!(matches!(
        err,
        Err(kafka_persistence_snapshot::SnapshotError::InvalidArgument(
            _
        ))
    ));
}

async fn ids_that_collide_in_naive_encodings_are_independent(layout: Layout) {
    let b = broker().await;
    let store = b.store_in(layout).await;
    let base = unique_pid("x5");
    let ids: Vec<String> = ["a/b", "a:b", "a_b", "a.b", "ä", "a b"]
        .iter()
        .map(|s| format!("{base}{s}"))
        .chain(std::iter::once(format!("{base}{}", "z".repeat(300))))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        store
            .save(
                SnapshotMetadata::new(id, 1, 0),
                Bytes::from(format!("p{i}")),
            )
            .await
            .expect("save");
    }
    for (i, id) in ids.iter().enumerate() {
        let got = load(&store, id, C::latest()).await.expect("load");
        assert_eq!(got.snapshot, Bytes::from(format!("p{i}")));
        assert_eq!(&got.metadata.persistence_id, id);
    }
}

in_both_layouts!(
    s1_no_snapshots_loads_none_and_creates_nothing,
    s2_bounds_below_every_snapshot_load_none,
    s3_latest_is_the_youngest_with_its_exact_metadata,
    s4_s5_max_sequence_nr_and_max_timestamp,
    s6_delete_by_metadata,
    s7_s8_delete_matching_with_max_bounds,
    s9_saving_again_overwrites,
    s10_large_snapshots_round_trip,
    s11_metadata_bytes_round_trip,
    s12_min_bounds_for_loads_and_deletions,
    s13_saves_and_deletions_survive_a_new_store,
    explicit_timestamps_are_kept_and_sequence_nr_zero_is_refused,
    ids_that_collide_in_naive_encodings_are_independent,
);

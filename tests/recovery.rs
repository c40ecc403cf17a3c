//! SPEC.md S14 (orphan snapshots) and S15 (a snapshot that fails to decode) through the
//! facade's `recovery::recover`, against `TestServer` or `KP_EXTERNAL_BOOTSTRAP`.

mod common;

use common::{broker, unique_pid};

use bytes::Bytes;
use kafka_persistence::journal::{journal_topic_name, AtomicWrite, Journal, PersistentRepr};
use kafka_persistence::recovery::{recover, recover_with};
use kafka_persistence::snapshot::{
    snapshot_topic_name, SnapshotMetadata, SnapshotSelectionCriteria, SnapshotStore,
};
use kafka_persistence::wire::{Client, ClientConfig, ProducerConfig, Record};

async fn write_events(journal: &Journal, pid: &str, seqs: std::ops::RangeInclusive<u64>) {
    let writes = seqs
        .map(|s| AtomicWrite::new(vec![PersistentRepr::new(pid, s, format!("e-{s}"))]))
        .collect();
    let results = journal.write(writes).await.expect("write");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
}

async fn save(store: &SnapshotStore, pid: &str, seq: u64) -> SnapshotMetadata {
    store
        .save(SnapshotMetadata::new(pid, seq, 0), format!("snap-{seq}"))
        .await
        .expect("save")
}

fn event_seqs(events: &[PersistentRepr]) -> Vec<u64> {
    events.iter().map(|e| e.sequence_nr).collect()
}

#[tokio::test]
async fn s14_orphan_snapshots_are_ignored() {
    let b = broker().await;
    let (journal, store) = (b.journal().await, b.store().await);
    let pid = unique_pid("s14");
    write_events(&journal, &pid, 1..=3).await;
    let md2 = save(&store, &pid, 2).await;
    save(&store, &pid, 4).await; // orphan: exactly highest + 1
    let r = recover(&journal, &store, &pid).await.expect("recover");
    assert_eq!(r.highest_sequence_nr, 3);
    assert_eq!(r.snapshot.as_ref().map(|s| &s.metadata), Some(&md2));
    assert_eq!(
        r.snapshot.map(|s| s.snapshot),
        Some(Bytes::from_static(b"snap-2"))
    );
    assert_eq!(event_seqs(&r.events), vec![3]);
    assert_eq!(r.events[0].payload, Bytes::from_static(b"e-3"));
    // Further orphans far above the journal change nothing.
    save(&store, &pid, 7).await;
    let r = recover(&journal, &store, &pid).await.expect("recover");
    assert_eq!(r.snapshot.map(|s| s.metadata.sequence_nr), Some(2));
    assert_eq!(event_seqs(&r.events), vec![3]);
}

#[tokio::test]
async fn s14_only_orphans_means_a_full_replay() {
    let b = broker().await;
    let (journal, store) = (b.journal().await, b.store().await);
    let pid = unique_pid("s14-only");
    write_events(&journal, &pid, 1..=3).await;
    save(&store, &pid, 4).await;
    let r = recover(&journal, &store, &pid).await.expect("recover");
    assert_eq!(r.snapshot, None);
    assert_eq!(event_seqs(&r.events), vec![1, 2, 3]);
    // A snapshot without any journal at all is an orphan too.
    let lonely = unique_pid("s14-lonely");
    save(&store, &lonely, 1).await;
    let r = recover(&journal, &store, &lonely).await.expect("recover");
    assert_eq!(
        (r.snapshot, r.events.len(), r.highest_sequence_nr),
        (None, 0, 0)
    );
}

#[tokio::test]
async fn recovery_at_the_snapshot_replays_nothing_and_criteria_apply() {
    let b = broker().await;
    let (journal, store) = (b.journal().await, b.store().await);
    let pid = unique_pid("rec");
    write_events(&journal, &pid, 1..=5).await;
    save(&store, &pid, 2).await;
    save(&store, &pid, 5).await;
    let r = recover(&journal, &store, &pid).await.expect("recover");
    assert_eq!(r.snapshot.map(|s| s.metadata.sequence_nr), Some(5));
    assert!(r.events.is_empty());
    assert_eq!(r.highest_sequence_nr, 5);
    let c = SnapshotSelectionCriteria::latest().with_max_sequence_nr(4);
    let r = recover_with(&journal, &store, &pid, c)
        .await
        .expect("recover");
    assert_eq!(r.snapshot.map(|s| s.metadata.sequence_nr), Some(2));
    assert_eq!(event_seqs(&r.events), vec![3, 4, 5]);
    let r = recover_with(&journal, &store, &pid, SnapshotSelectionCriteria::none())
        .await
        .expect("recover");
    assert_eq!(r.snapshot, None);
    assert_eq!(event_seqs(&r.events), vec![1, 2, 3, 4, 5]);
    // Events deleted below the snapshot do not matter.
    journal.delete_messages_to(&pid, 2).await.expect("delete");
    let r = recover(&journal, &store, &pid).await.expect("recover");
    assert_eq!(r.snapshot.map(|s| s.metadata.sequence_nr), Some(5));
}

#[tokio::test]
async fn s15_a_snapshot_that_fails_to_decode_falls_back_to_the_next_older_one() {
    let b = broker().await;
    let (journal, store) = (b.journal().await, b.store().await);
    let pid = unique_pid("s15");
    write_events(&journal, &pid, 1..=6).await;
    let md2 = save(&store, &pid, 2).await;
    save(&store, &pid, 4).await;
    // Overwrite snapshot 4's index record (partition 0, key = 8-byte big-endian sequence
    // number) with a value that is not a snapshot record.
    let client = Client::connect(ClientConfig::new(&b.bootstrap))
        .await
        .expect("client");
    let producer = client.producer(ProducerConfig::default());
    let corrupt = Record {
        key: Some(store.index_key(&pid, 4)),
        value: Some(Bytes::from_static(b"\xffnot a snapshot\x00\x01")),
        headers: Vec::new(),
        timestamp: 1,
    };
    producer
        .send(
            &store.topic_for(&pid),
            store.placement(&pid).index_partition,
            vec![corrupt],
        )
        .await
        .expect("write corrupt value");
    let r = recover(&journal, &store, &pid).await.expect("recover");
    assert_eq!(r.snapshot.as_ref().map(|s| &s.metadata), Some(&md2));
    assert_eq!(event_seqs(&r.events), vec![3, 4, 5, 6]);
    // A good snapshot saved above it wins again.
    save(&store, &pid, 5).await;
    let r = recover(&journal, &store, &pid).await.expect("recover");
    assert_eq!(r.snapshot.map(|s| s.metadata.sequence_nr), Some(5));
    assert_eq!(event_seqs(&r.events), vec![6]);
}

#[tokio::test]
async fn journal_and_snapshot_topic_names_use_the_same_encoding() {
    let ids = [
        "a/b",
        "a:b",
        "a_b",
        "a.b",
        "ä",
        "a b",
        "Cart-1",
        "",
        "_h0",
        "emoji-🦀",
    ];
    let long = "q".repeat(300);
    for id in ids.iter().copied().chain(std::iter::once(long.as_str())) {
        assert_eq!(
            journal_topic_name("p-", id),
            snapshot_topic_name("p-", id),
            "{id:?}"
        );
    }
}

//! Pipelined writes issued by a brand-new journal (whose producer has no producer id yet), for
//! an id whose topic does not exist yet, in the shape of the `bench` P1: many `write` calls for
//! one id in flight at once. Two bugs made a later call overtake an earlier one here:
//! - the first sends of a fresh producer were appended in wake-up order (the producer now
//!   appends waiting sends in call order);
//! - the calls waited for the topic's creation before queueing for the id, and tokio's
//!   cooperative budget let some of them see the creation later than others (each call now
//!   takes its place in line before it awaits anything). Fewer than about 25 calls in one
//!   task poll did not exhaust the budget, so this test issues 256.

mod common;

use std::sync::Arc;

use common::{broker, journal, seqs, unique};
use futures::StreamExt;
use kafka_persistence_journal::{AtomicWrite, PersistentRepr};

/// Calls in flight at once, and events per call.
const CALLS: u64 = 256;
const EVENTS: u64 = 10;

layout_tests! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_journal_pipelines_its_first_writes_in_order() {
    let b = broker().await;
    for round in 0..8 {
        // A new journal each round: its producer starts without a producer id.
        let journal = Arc::new(journal(&b).await);
        let pid = unique(&format!("pipelined-{round}"));
        let calls = (0..CALLS).map(|call| {
            let writes = (call * EVENTS + 1..=call * EVENTS + EVENTS)
                .map(|seq| AtomicWrite::new(vec![PersistentRepr::new(pid.clone(), seq, "x")]))
                .collect::<Vec<_>>();
            let journal = Arc::clone(&journal);
            async move { journal.write(writes).await }
        });
        let mut results = futures::stream::iter(calls).buffered(CALLS as usize);
        while let Some(r) = results.next().await {
            let inner = r.unwrap_or_else(|e| panic!("round {round}: write failed: {e}"));
            assert!(inner.iter().all(|r| r.is_ok()), "round {round}: {inner:?}");
        }
        let replayed = seqs(journal.replay(&pid, 1, u64::MAX, u64::MAX)).await;
        assert_eq!(
            replayed,
            (1..=CALLS * EVENTS).collect::<Vec<u64>>(),
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// Reads and deletions issued after a write (polled after it) wait for it, also for a brand-new
/// id whose topic the write is still creating: they used to look for the topic first, find
/// none and answer "nothing there".
async fn reads_and_deletions_issued_after_a_first_write_see_it() {
    let b = broker().await;
    for round in 0..5 {
        let journal = journal(&b).await;
        let pid = unique(&format!("after-first-write-{round}"));
        let writes = (1..=3)
            .map(|seq| AtomicWrite::new(vec![PersistentRepr::new(pid.clone(), seq, "x")]))
            .collect::<Vec<_>>();
        // `join!` polls its futures in order: the write first.
        let (written, highest) =
            futures::join!(journal.write(writes), journal.highest_sequence_nr(&pid));
        assert!(written.expect("write").iter().all(|r| r.is_ok()));
        assert_eq!(highest.expect("highest"), 3, "round {round}");

        let pid = unique(&format!("replay-after-first-write-{round}"));
        let writes = vec![AtomicWrite::new(vec![PersistentRepr::new(
            pid.clone(),
            1,
            "x",
        )])];
        let (written, replayed) = futures::join!(
            journal.write(writes),
            seqs(journal.replay(&pid, 1, u64::MAX, u64::MAX))
        );
        assert!(written.expect("write").iter().all(|r| r.is_ok()));
        assert_eq!(replayed, vec![1], "round {round}");

        let pid = unique(&format!("delete-after-first-write-{round}"));
        let writes = (1..=3)
            .map(|seq| AtomicWrite::new(vec![PersistentRepr::new(pid.clone(), seq, "x")]))
            .collect::<Vec<_>>();
        let (written, deleted) =
            futures::join!(journal.write(writes), journal.delete_messages_to(&pid, 2));
        assert!(written.expect("write").iter().all(|r| r.is_ok()));
        deleted.expect("delete");
        let replayed = seqs(journal.replay(&pid, 1, u64::MAX, u64::MAX)).await;
        assert_eq!(replayed, vec![3], "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// Pipelined writes to an id whose topic has a small `max.message.bytes`: each write fits,
/// and the producer must not merge them into a record batch the broker refuses.
async fn pipelined_writes_respect_a_small_max_message_bytes() {
    let b = broker().await;
    let journal = Arc::new(
        kafka_persistence_journal::Journal::connect(
            common::config(&b.bootstrap())
                .with_max_message_bytes(20_000)
                // layout v2: topics of its own, created with the small limit
                .with_topic_prefix(unique("small-max")),
        )
        .await
        .expect("journal connects"),
    );
    let pid = unique("small-max");
    let payload = bytes::Bytes::from(vec![b'p'; 6_000]);
    // The topic exists before the pipelined writes start.
    let first = journal
        .write(vec![AtomicWrite::new(vec![PersistentRepr::new(
            pid.clone(),
            1,
            payload.clone(),
        )])])
        .await
        .expect("first write");
    assert!(first.iter().all(|r| r.is_ok()));
    let calls = (2..=60u64).map(|seq| {
        let journal = Arc::clone(&journal);
        let w = vec![AtomicWrite::new(vec![PersistentRepr::new(
            pid.clone(),
            seq,
            payload.clone(),
        )])];
        async move { journal.write(w).await }
    });
    let mut results = futures::stream::iter(calls).buffered(32);
    while let Some(r) = results.next().await {
        let inner = r.unwrap_or_else(|e| panic!("write failed: {e}"));
        assert!(inner.iter().all(|r| r.is_ok()), "{inner:?}");
    }
    let replayed = seqs(journal.replay(&pid, 1, u64::MAX, u64::MAX)).await;
    assert_eq!(replayed, (1..=60).collect::<Vec<u64>>());
}
}

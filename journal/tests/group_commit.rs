//! Layout v2's group commit: concurrent `write` calls are written in rounds (one pass, one
//! send per partition, one publish for the whole round). What a round must not change: the
//! order of each id's calls, and that a call fails only through its own ids.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use futures::future::join_all;
use kafka_persistence_journal::{AtomicWrite, Journal, JournalConfig, Layout};
use kafka_persistence_testserver::TestServer;
use kafka_persistence_wire::{Client, ClientConfig, OffsetSpec};

/// Fetch, and a code the client does not retry.
const FETCH: i16 = 1;
const UNKNOWN_SERVER_ERROR: i16 = -1;

fn v2(server: &TestServer) -> JournalConfig {
    config(&server.bootstrap_servers())
        .with_layout(Layout::Shared)
        .with_topic_prefix(unique("gc"))
        .with_partitions(4)
        .with_index_flush_interval(Duration::from_secs(3600))
}

fn one(pid: &str, seq: u64) -> Vec<AtomicWrite> {
    vec![event(pid, seq, "w").into()]
}

/// Calls issued at once (`join_all` polls them in order before any round runs) that share
/// ids with earlier calls: a round may hold each id once, so the later calls go to later
/// rounds, and every id's calls still apply in call order.
#[tokio::test]
async fn calls_sharing_ids_in_one_burst_apply_in_call_order() {
    let server = embedded().await;
    let j = Journal::connect(v2(&server)).await.unwrap();
    let (a, b, c) = (unique("gc-a"), unique("gc-b"), unique("gc-c"));
    let mut calls = Vec::new();
    for seq in 1..=30u64 {
        // a alone, then b alone, then a call with both, then c: a and b are each written
        // twice per step, by consecutive calls.
        calls.push(one(&a, 2 * seq - 1));
        calls.push(one(&b, 2 * seq - 1));
        let mut both = one(&a, 2 * seq);
        both.extend(one(&b, 2 * seq));
        calls.push(both);
        calls.push(one(&c, seq));
    }
    let results = tokio::time::timeout(
        Duration::from_secs(30),
        join_all(calls.into_iter().map(|w| j.write(w))),
    )
    .await
    .expect("no round waits for another forever");
    for (k, r) in results.into_iter().enumerate() {
        let inner = r.unwrap_or_else(|e| panic!("call {k}: {e}"));
        assert!(inner.iter().all(Result::is_ok), "call {k}: {inner:?}");
    }
    assert_eq!(
        seqs(j.replay(&a, 1, M, M)).await,
        (1..=60).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(j.replay(&b, 1, M, M)).await,
        (1..=60).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(j.replay(&c, 1, M, M)).await,
        (1..=30).collect::<Vec<_>>()
    );
    // A new instance reads the same from the log.
    let fresh = Journal::connect(j.config().clone()).await.unwrap();
    assert_eq!(fresh.highest_sequence_nr(&a).await.unwrap(), 60);
    assert_eq!(
        seqs(fresh.replay(&b, 1, M, M)).await,
        (1..=60).collect::<Vec<_>>()
    );
}

/// A call whose id cannot be read (its partition's fetch fails) fails alone: the calls of
/// its round for other ids are written, and the failed id can be written afterwards.
#[tokio::test]
async fn a_failing_call_does_not_fail_the_other_calls_of_its_round() {
    let server = embedded().await;
    let j = Journal::connect(v2(&server)).await.unwrap();
    let (x, y, z) = (unique("gc-x"), unique("gc-y"), unique("gc-z"));
    assert!(j.write(one(&x, 1)).await.unwrap()[0].is_ok());
    // x's next write skips a sequence number: before refusing it the journal reads x's
    // partition (another instance may have written x), and that read fails. y and z are new:
    // their writes need no read.
    server.inject_error(FETCH, UNKNOWN_SERVER_ERROR, 1).await;
    let results = join_all([
        j.write(one(&y, 1)),
        j.write(one(&x, 3)),
        j.write(one(&z, 1)),
    ])
    .await;
    let mut results = results.into_iter();
    let (ry, rx, rz) = (
        results.next().unwrap(),
        results.next().unwrap(),
        results.next().unwrap(),
    );
    assert!(rx.is_err(), "x's read failed: {rx:?}");
    assert!(ry.unwrap()[0].is_ok());
    assert!(rz.unwrap()[0].is_ok());
    assert!(j.write(one(&x, 2)).await.unwrap()[0].is_ok());
    assert_eq!(seqs(j.replay(&x, 1, M, M)).await, vec![1, 2]);
    assert_eq!(seqs(j.replay(&y, 1, M, M)).await, vec![1]);
    assert_eq!(seqs(j.replay(&z, 1, M, M)).await, vec![1]);
}

/// Many single-event calls of distinct ids at once, as entities write: every one is stored
/// and published once, in rounds.
#[tokio::test]
async fn a_burst_of_calls_of_distinct_ids_is_stored_and_published_once() {
    let server = embedded().await;
    let j = Journal::connect(v2(&server)).await.unwrap();
    let ids: Vec<String> = (0..500).map(|i| unique(&format!("gc-burst-{i}"))).collect();
    let results = join_all(ids.iter().map(|id| j.write(one(id, 1)))).await;
    for r in results {
        assert!(r.unwrap()[0].is_ok());
    }
    for id in &ids {
        assert_eq!(j.highest_sequence_nr(id).await.unwrap(), 1, "{id}");
    }
    let events = Client::connect(ClientConfig::new(server.bootstrap_servers()))
        .await
        .unwrap();
    let mut published = 0usize;
    let topic = "events";
    let partitions = events
        .topic_metadata(topic)
        .await
        .unwrap()
        .expect("the default event topic exists")
        .partitions
        .len();
    for p in 0..i32::try_from(partitions).unwrap() {
        let end = events
            .list_offset(topic, p, OffsetSpec::Latest)
            .await
            .unwrap();
        let start = events
            .list_offset(topic, p, OffsetSpec::Earliest)
            .await
            .unwrap();
        published += usize::try_from(end - start).unwrap();
    }
    assert_eq!(published, ids.len(), "each event published exactly once");
}

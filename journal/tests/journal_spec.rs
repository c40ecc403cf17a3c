//! SPEC.md J1-J19 against the embedded TestServer (or `KP_EXTERNAL_BOOTSTRAP`).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::TryStreamExt;
use kafka_persistence_journal::{
    AtomicWrite, Journal, JournalConfig, Layout, PersistentRepr, WriteError,
};

async fn fixture() -> (Broker, Journal, String) {
    let broker = broker().await;
    let journal = journal(&broker).await;
    let pid = unique("j");
    setup(&journal, &pid).await;
    (broker, journal, pid)
}

layout_tests! {
#[tokio::test]
async fn j1_replay_all_and_highest() {
    let (_b, j, pid) = fixture().await;
    assert_eq!(seqs(j.replay(&pid, 1, M, M)).await, vec![1, 2, 3, 4, 5]);
    assert_eq!(j.highest_sequence_nr(&pid).await.unwrap(), 5);
}

#[tokio::test]
async fn j2_to_j10_replay_ranges() {
    let (_b, j, pid) = fixture().await;
    let cases: &[(u64, u64, u64, &[u64])] = &[
        (3, M, M, &[3, 4, 5]),       // J2
        (1, 3, M, &[1, 2, 3]),       // J3
        (1, M, 3, &[1, 2, 3]),       // J4
        (2, 3, M, &[2, 3]),          // J5
        (2, 5, 2, &[2, 3]),          // J6
        (2, 2, M, &[2]),             // J7
        (2, 4, 1, &[2]),             // J8
        (2, 4, 0, &[]),              // J9
        (3, 2, M, &[]),              // J10
        (0, M, M, &[1, 2, 3, 4, 5]), // from 0
        (6, M, M, &[]),              // beyond the end
    ];
    for &(from, to, max, expected) in cases {
        assert_eq!(
            seqs(j.replay(&pid, from, to, max)).await,
            expected.to_vec(),
            "replay({from}, {to}, {max})"
        );
    }
}

#[tokio::test]
async fn j11_unknown_id_replays_nothing_and_creates_nothing() {
    let broker = broker().await;
    let j = journal(&broker).await;
    let pid = unique("never");
    assert_eq!(seqs(j.replay(&pid, 0, M, M)).await, Vec::<u64>::new());
    assert_eq!(j.highest_sequence_nr(&pid).await.unwrap(), 0);
    j.delete_messages_to(&pid, M).await.unwrap();
    assert_eq!(
        seqs(j.current_events_by_persistence_id(&pid, 0, M)).await,
        Vec::<u64>::new()
    );
    let ids: Vec<String> = j.current_persistence_ids().try_collect().await.unwrap();
    assert!(!ids.contains(&pid), "reading made {pid} known");
    if layout() == Layout::PerId {
        let topic = j.topic_of(&pid);
        assert!(j.client().topic_metadata(&topic).await.unwrap().is_none());
        assert!(!j.client().list_topics().await.unwrap().contains(&topic));
    }
}

#[tokio::test]
async fn j12_j13_delete_to_3() {
    let (_b, j, pid) = fixture().await;
    j.delete_messages_to(&pid, 3).await.unwrap();
    assert_eq!(seqs(j.replay(&pid, 1, M, M)).await, vec![4, 5]);
    assert_eq!(j.highest_sequence_nr(&pid).await.unwrap(), 5);
}

#[tokio::test]
async fn j14_delete_everything_keeps_highest_and_writing_continues() {
    let (_b, j, pid) = fixture().await;
    j.delete_messages_to(&pid, M).await.unwrap();
    assert_eq!(seqs(j.replay(&pid, 0, M, M)).await, Vec::<u64>::new());
    assert_eq!(j.highest_sequence_nr(&pid).await.unwrap(), 5);
    let r = j
        .write(vec![AtomicWrite::new(vec![event(&pid, 6, "w")])])
        .await
        .unwrap();
    assert_eq!(r, vec![Ok(())]);
    assert_eq!(seqs(j.replay(&pid, 0, M, M)).await, vec![6]);
    assert_eq!(j.highest_sequence_nr(&pid).await.unwrap(), 6);
    // the same after a restart
    let j2 = Journal::connect(j.config().clone()).await.unwrap();
    assert_eq!(seqs(j2.replay(&pid, 0, M, M)).await, vec![6]);
    assert_eq!(j2.highest_sequence_nr(&pid).await.unwrap(), 6);
}

#[tokio::test]
async fn j15_ranges_after_delete_to_3() {
    let (_b, j, pid) = fixture().await;
    j.delete_messages_to(&pid, 3).await.unwrap();
    assert_eq!(seqs(j.replay(&pid, 3, M, M)).await, vec![4, 5]);
    assert_eq!(seqs(j.replay(&pid, 1, 2, M)).await, Vec::<u64>::new());
    assert_eq!(seqs(j.replay(&pid, 1, 3, M)).await, Vec::<u64>::new());
    assert_eq!(seqs(j.replay(&pid, 4, M, M)).await, vec![4, 5]);
    assert_eq!(seqs(j.replay(&pid, 1, 4, M)).await, vec![4]);
    // deleting less than before changes nothing
    j.delete_messages_to(&pid, 1).await.unwrap();
    assert_eq!(seqs(j.replay(&pid, 1, M, M)).await, vec![4, 5]);
}

#[tokio::test]
async fn j16_events_round_trip_exactly() {
    let broker = broker().await;
    let j = journal(&broker).await;
    let pid = unique("rt");
    let a = PersistentRepr::new(&pid, 1, vec![0u8, 1, 2, 255])
        .with_manifest("com.example.Added")
        .with_writer_uuid("writer-1")
        .with_timestamp(1_700_000_000_123)
        .with_metadata(bytes::Bytes::new())
        .with_tags(["t1", "t2"]);
    let b = PersistentRepr::new(&pid, 2, bytes::Bytes::new());
    let c = PersistentRepr::new(&pid, 3, "x")
        .with_metadata(&b"meta"[..])
        .with_timestamp(-1);
    let r = j
        .write(vec![
            AtomicWrite::new(vec![a.clone(), b.clone()]),
            c.clone().into(),
        ])
        .await
        .unwrap();
    assert_eq!(r, vec![Ok(()), Ok(())]);
    let back: Vec<PersistentRepr> = j.replay(&pid, 1, M, M).try_collect().await.unwrap();
    assert_eq!(back, vec![a.clone(), b.clone(), c.clone()]);
    assert_eq!(back[0].metadata, Some(bytes::Bytes::new()));
    assert_eq!(back[1].metadata, None);
    let j2 = Journal::connect(j.config().clone()).await.unwrap();
    let back: Vec<PersistentRepr> = j2.replay(&pid, 1, M, M).try_collect().await.unwrap();
    assert_eq!(back, vec![a, b, c]);
}

#[tokio::test]
async fn j17_oversized_write_is_rejected_with_a_gap() {
    let broker = broker().await;
    let config = config(&broker.bootstrap()).with_max_message_bytes(16 * 1024);
    let j = Journal::connect(config.clone()).await.unwrap();
    let pid = unique("big");
    setup(&j, &pid).await;
    let big = PersistentRepr::new(&pid, 7, vec![7u8; 64 * 1024]);
    let r = j
        .write(vec![
            event(&pid, 6, "w").into(),
            big.into(),
            event(&pid, 8, "w").into(),
        ])
        .await
        .unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(r[0], Ok(()));
    assert!(
        matches!(r[1], Err(WriteError::Rejected { from: 7, to: 7, .. })),
        "{:?}",
        r[1]
    );
    assert_eq!(r[2], Ok(()));
    assert_eq!(
        seqs(j.replay(&pid, 1, M, M)).await,
        vec![1, 2, 3, 4, 5, 6, 8]
    );
    assert_eq!(j.highest_sequence_nr(&pid).await.unwrap(), 8);
    let j2 = Journal::connect(config).await.unwrap();
    assert_eq!(seqs(j2.replay(&pid, 6, M, M)).await, vec![6, 8]);
    assert_eq!(j2.highest_sequence_nr(&pid).await.unwrap(), 8);
    assert_eq!(
        j2.write(vec![event(&pid, 9, "w2").into()]).await.unwrap(),
        vec![Ok(())]
    );
    assert_eq!(seqs(j2.replay(&pid, 6, M, M)).await, vec![6, 8, 9]);
}

#[tokio::test]
async fn j18_unreachable_broker_fails_within_timeout() {
    // A closed port: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let timeout = Duration::from_millis(800);
    let started = Instant::now();
    let r = Journal::connect(JournalConfig::new(format!("127.0.0.1:{port}")).with_timeout(timeout).with_layout(layout()))
        .await;
    assert!(r.is_err());
    assert!(
        started.elapsed() < timeout + Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn fault_j18_write_to_stopped_broker_fails_within_timeout() {
    let server = embedded().await;
    let timeout = Duration::from_millis(1500);
    let j = Journal::connect(JournalConfig::new(server.bootstrap_servers()).with_timeout(timeout).with_layout(layout()))
        .await
        .unwrap();
    let pid = unique("down");
    setup(&j, &pid).await;
    for node in server.node_ids() {
        server.stop_node(node).await.unwrap();
    }
    let started = Instant::now();
    let r = j.write(vec![event(&pid, 6, "w").into()]).await;
    assert!(r.is_err(), "{r:?}");
    assert!(
        started.elapsed() < timeout + Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert!(j.highest_sequence_nr(&pid).await.is_err());
    assert!(started.elapsed() < timeout + Duration::from_secs(1));
}

#[tokio::test]
async fn j19_restart_keeps_everything() {
    let (_b, j, pid) = fixture().await;
    j.delete_messages_to(&pid, 3).await.unwrap();
    drop(j);
    let broker2 = &_b;
    let j2 = journal(broker2).await;
    assert_eq!(j2.highest_sequence_nr(&pid).await.unwrap(), 5);
    assert_eq!(seqs(j2.replay(&pid, 1, M, M)).await, vec![4, 5]);
    assert_eq!(seqs(j2.replay(&pid, 2, 4, M)).await, vec![4]);
    // a fresh journal reads before it writes: its first write continues the log
    let j3 = journal(broker2).await;
    assert_eq!(
        j3.write(vec![event(&pid, 6, "w3").into()]).await.unwrap(),
        vec![Ok(())]
    );
    j3.delete_messages_to(&pid, M).await.unwrap();
    let j4 = journal(broker2).await;
    assert_eq!(seqs(j4.replay(&pid, 0, M, M)).await, Vec::<u64>::new());
    assert_eq!(j4.highest_sequence_nr(&pid).await.unwrap(), 6);
}

#[tokio::test]
async fn invalid_atomic_writes_are_refused_individually() {
    let broker = broker().await;
    let j = journal(&broker).await;
    let pid = unique("inv");
    let other = unique("other");
    let r = j
        .write(vec![
            AtomicWrite::new(vec![]),
            AtomicWrite::new(vec![event(&pid, 1, "w"), event(&pid, 3, "w")]),
            AtomicWrite::new(vec![event(&pid, 1, "w"), event(&other, 2, "w")]),
            event(&pid, 1, "w").into(),
        ])
        .await
        .unwrap();
    assert!(matches!(r[0], Err(WriteError::Invalid(_))));
    assert!(matches!(r[1], Err(WriteError::Invalid(_))));
    assert!(matches!(r[2], Err(WriteError::Invalid(_))));
    assert_eq!(r[3], Ok(()));
    assert_eq!(seqs(j.replay(&pid, 1, M, M)).await, vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pipelined_writes_for_one_id() {
    let broker = broker().await;
    let j = journal(&broker).await;
    let pid = unique("pipe");
    // The first write creates the topic and reads the (empty) log.
    assert_eq!(
        j.write(vec![event(&pid, 1, "w").into()]).await.unwrap(),
        vec![Ok(())]
    );
    // Then 199 writes in flight at once, issued in sequence order.
    let writes = (2..=200u64).map(|s| {
        let j = j.clone();
        let e = event(&pid, s, "w");
        async move { j.write(vec![e.into()]).await }
    });
    for r in futures::future::join_all(writes).await {
        assert_eq!(r.unwrap(), vec![Ok(())]);
    }
    assert_eq!(
        seqs(j.replay(&pid, 1, M, M)).await,
        (1..=200).collect::<Vec<_>>()
    );
    assert_eq!(j.highest_sequence_nr(&pid).await.unwrap(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_writes_of_many_ids_share_topic_creation() {
    let broker = broker().await;
    let j = journal(&broker).await;
    let tag = unique("first");
    // Several concurrent calls for each new id (only the first of each can win the
    // sequence check, the others are fenced), many ids at once.
    let calls = (0..30).flat_map(|i| {
        let pid = format!("{tag}-{i}");
        (0..3).map(move |_| (pid.clone(), 1u64))
    });
    let futs = calls.map(|(pid, s)| {
        let j = j.clone();
        async move { (pid.clone(), j.write(vec![event(&pid, s, "w").into()]).await) }
    });
    let mut ok: std::collections::HashMap<String, usize> = Default::default();
    for (pid, r) in futures::future::join_all(futs).await {
        let r = r.expect("no outer error");
        if r[0].is_ok() {
            *ok.entry(pid).or_default() += 1;
        } else {
            assert!(matches!(r[0], Err(WriteError::Fenced { .. })), "{r:?}");
        }
    }
    assert_eq!(ok.len(), 30);
    assert!(ok.values().all(|n| *n == 1), "{ok:?}");
    for i in 0..30 {
        let pid = format!("{tag}-{i}");
        assert_eq!(seqs(j.replay(&pid, 1, M, M)).await, vec![1]);
    }
}
}

//! SPEC.md X1-X9: beyond the anchors. `fault_` tests need the embedded TestServer.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures::{StreamExt, TryStreamExt};
use kafka_persistence_journal::{
    AtomicWrite, EmptyEventTopicMapper, Event, Journal, JournalError, Layout, PersistentRepr,
    WriteError,
};
use kafka_persistence_testserver::Fault;
use kafka_persistence_wire::{Client, FetchRequest};

const PRODUCE: i16 = 0;
const FETCH: i16 = 1;

fn three(pid: &str, from: u64) -> AtomicWrite {
    AtomicWrite::new((from..from + 3).map(|s| event(pid, s, "w")).collect())
}

/// Every record of `topic` as (key, value).
async fn read_topic(client: &Client, topic: &str) -> Vec<(String, Event)> {
    let meta = client
        .topic_metadata(topic)
        .await
        .unwrap()
        .expect("topic exists");
    let mut out = Vec::new();
    for p in &meta.partitions {
        let mut offset = 0;
        loop {
            let mut req = FetchRequest::new(topic, p.partition, offset);
            req.max_bytes = 8 * 1024 * 1024;
            let resp = client.fetch(req).await.unwrap();
            if resp.records.is_empty() {
                break;
            }
            for r in resp.records {
                offset = r.offset + 1;
                let key = String::from_utf8(r.key.unwrap_or_default().to_vec()).unwrap();
                out.push((key, Event::decode(&r.value.unwrap_or_default()).unwrap()));
            }
            if offset >= resp.high_watermark {
                break;
            }
        }
    }
    out
}

#[tokio::test]
async fn fault_delete_frees_space_only_below_fully_deleted_records() {
    set_layout(kafka_persistence_journal::Layout::PerId);
    let server = embedded().await;
    let j = Journal::connect(config(&server.bootstrap_servers()))
        .await
        .unwrap();
    let pid = unique("free");
    setup(&j, &pid).await;
    let topic = j.topic_of(&pid);
    j.delete_messages_to(&pid, 3).await.unwrap();
    // events 1..=3 were at offsets 0..=2; 4 and 5 stay, then the marker
    let info = server.partition_info(&topic, 0).await.unwrap();
    assert_eq!((info.log_start_offset, info.high_watermark), (3, 6));
    j.delete_messages_to(&pid, M).await.unwrap();
    let info = server.partition_info(&topic, 0).await.unwrap();
    assert_eq!((info.log_start_offset, info.high_watermark), (6, 7));
    let j2 = Journal::connect(config(&server.bootstrap_servers()))
        .await
        .unwrap();
    assert_eq!(seqs(j2.replay(&pid, 0, M, M)).await, Vec::<u64>::new());
    assert_eq!(j2.highest_sequence_nr(&pid).await.unwrap(), 5);
    assert_eq!(
        j2.write(vec![event(&pid, 6, "w").into()]).await.unwrap(),
        vec![Ok(())]
    );
    assert_eq!(seqs(j.replay(&pid, 0, M, M)).await, vec![6]);
}

layout_tests! {
#[tokio::test]
async fn fault_x1_interrupted_atomic_write_is_all_or_nothing() {
    let server = embedded().await;
    let j = Journal::connect(config(&server.bootstrap_servers()))
        .await
        .unwrap();
    let pid = unique("x1");
    setup(&j, &pid).await;
    // Connection closed before the broker handles the produce: retried, stored whole.
    server
        .inject_fault(Fault::CloseBeforeHandling {
            api_key: PRODUCE,
            count: 1,
        })
        .await;
    let r = j.write(vec![three(&pid, 6)]).await;
    let stored = seqs(j.replay(&pid, 6, M, M)).await;
    match r {
        Ok(results) => {
            assert_eq!(results, vec![Ok(())]);
            assert_eq!(stored, vec![6, 7, 8]);
        }
        Err(_) => assert!(stored.is_empty() || stored == vec![6, 7, 8], "{stored:?}"),
    }
    // A non-retriable error (CORRUPT_MESSAGE) for the produce: nothing stored, outer Err.
    let pid2 = unique("x1b");
    setup(&j, &pid2).await;
    server.inject_error(PRODUCE, 2, 1).await;
    let r = j.write(vec![three(&pid2, 6)]).await;
    let stored = seqs(j.replay(&pid2, 6, M, M)).await;
    match r {
        Ok(results) => {
            assert_eq!(results, vec![Ok(())]);
            assert_eq!(stored, vec![6, 7, 8]);
        }
        Err(_) => assert!(stored.is_empty() || stored == vec![6, 7, 8], "{stored:?}"),
    }
    // Whatever happened, a new journal sees the same and can go on.
    let j2 = Journal::connect(config(&server.bootstrap_servers()))
        .await
        .unwrap();
    let h = j2.highest_sequence_nr(&pid2).await.unwrap();
    assert!(h == 5 || h == 8, "{h}");
    assert_eq!(
        j2.write(vec![event(&pid2, h + 1, "w2").into()])
            .await
            .unwrap(),
        vec![Ok(())]
    );
}

#[tokio::test]
async fn fault_x2_lost_ack_does_not_duplicate() {
    let server = embedded().await;
    let j = Journal::connect(config(&server.bootstrap_servers()))
        .await
        .unwrap();
    let pid = unique("x2");
    setup(&j, &pid).await;
    server
        .inject_fault(Fault::DropResponse {
            api_key: PRODUCE,
            count: 1,
        })
        .await;
    let r = j.write(vec![three(&pid, 6)]).await.unwrap();
    assert_eq!(r, vec![Ok(())]);
    assert_eq!(
        seqs(j.replay(&pid, 1, M, M)).await,
        (1..=8).collect::<Vec<_>>()
    );
    let topic = j.topic_of(&pid);
    let info = server
        .partition_info(&topic, j.partition_of(&pid))
        .await
        .unwrap();
    assert_eq!(
        info.high_watermark, 8,
        "each sequence number stored exactly once"
    );
    server.drop_connections().await;
    assert_eq!(
        j.write(vec![event(&pid, 9, "w").into()]).await.unwrap(),
        vec![Ok(())]
    );
    let j2 = Journal::connect(config(&server.bootstrap_servers()))
        .await
        .unwrap();
    assert_eq!(
        seqs(j2.replay(&pid, 1, M, M)).await,
        (1..=9).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn fault_x3_replay_stops_early() {
    let server = embedded().await;
    // The fetch counts below are the broker's: no background index flush (layout v2 reads
    // every partition's tail before it writes) may fall into them.
    let mut cfg =
        config(&server.bootstrap_servers()).with_event_topic_mapper(EmptyEventTopicMapper);
    cfg.index_flush_interval_ms = 3_600_000;
    let j = Journal::connect(cfg).await.unwrap();
    let pid = unique("x3");
    for chunk in 0..10u64 {
        let writes: Vec<AtomicWrite> = (1..=10_000u64)
            .map(|s| PersistentRepr::new(&pid, chunk * 10_000 + s, "e").into())
            .collect();
        let r = j.write(writes).await.unwrap();
        assert!(r.iter().all(|r| r.is_ok()));
    }
    assert_eq!(j.highest_sequence_nr(&pid).await.unwrap(), 100_000);
    let before = server.request_count(FETCH).await;
    assert_eq!(seqs(j.replay(&pid, 1, 1, 1)).await, vec![1]);
    let fetches = server.request_count(FETCH).await - before;
    assert!(fetches <= 2, "replay(1,1,1) used {fetches} fetches");
    // in the middle: starts near the sequence number, not at offset 0
    let before = server.request_count(FETCH).await;
    assert_eq!(
        seqs(j.replay(&pid, 77_777, M, 2)).await,
        vec![77_777, 77_778]
    );
    let fetches = server.request_count(FETCH).await - before;
    assert!(fetches <= 2, "replay(77777, M, 2) used {fetches} fetches");
    // a full replay never waits out a poll timeout
    let started = Instant::now();
    assert_eq!(
        seqs(j.replay(&pid, 99_999, M, M)).await,
        vec![99_999, 100_000]
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn fault_x4_retention_loss_is_an_error() {
    let server = embedded().await;
    let j = Journal::connect(config(&server.bootstrap_servers()))
        .await
        .unwrap();
    let pid = unique("x4");
    setup(&j, &pid).await;
    let topic = j.topic_of(&pid);
    server
        .set_log_start_offset(&topic, j.partition_of(&pid), 2)
        .await
        .unwrap();
    let j2 = Journal::connect(config(&server.bootstrap_servers()))
        .await
        .unwrap();
    for journal in [&j, &j2] {
        let r: Result<Vec<PersistentRepr>, JournalError> =
            journal.replay(&pid, 1, M, M).try_collect().await;
        match r {
            Err(JournalError::EventsLost { from, to, .. }) => assert_eq!((from, to), (1, 2)),
            other => panic!("expected EventsLost, got {other:?}"),
        }
    }
    // events still there replay; deleting the lost ones makes the log whole again
    assert_eq!(seqs(j2.replay(&pid, 3, M, M)).await, vec![3, 4, 5]);
    j2.delete_messages_to(&pid, 2).await.unwrap();
    assert_eq!(seqs(j2.replay(&pid, 1, M, M)).await, vec![3, 4, 5]);
}

#[tokio::test]
async fn x5_topic_names_are_independent() {
    let broker = broker().await;
    let j = journal(&broker).await;
    let tag = unique("x5");
    let ids: Vec<String> = ["a/b", "a:b", "a_b", "a.b", "ä", "with spaces here"]
        .iter()
        .map(|s| format!("{s}-{tag}"))
        .chain([
            format!("{}{tag}", "x".repeat(300)),
            format!("{}{tag}", "x".repeat(301)),
        ])
        .collect();
    for (k, id) in ids.iter().enumerate() {
        let writes: Vec<AtomicWrite> = (1..=k as u64 + 1)
            .map(|s| event(id, s, "w").into())
            .collect();
        assert!(
            j.write(writes).await.unwrap().iter().all(|r| r.is_ok()),
            "{id}"
        );
    }
    let j2 = journal(&broker).await;
    for (k, id) in ids.iter().enumerate() {
        assert_eq!(
            seqs(j2.replay(id, 1, M, M)).await,
            (1..=k as u64 + 1).collect::<Vec<_>>(),
            "{id}"
        );
        assert_eq!(j2.highest_sequence_nr(id).await.unwrap(), k as u64 + 1);
        if layout() == Layout::PerId {
            let t = j2.topic_of(id);
            assert!(t.len() <= 249 && !t.contains('.'), "{t}");
        }
    }
    let listed: Vec<String> = j2.current_persistence_ids().try_collect().await.unwrap();
    for id in &ids {
        assert!(listed.contains(id), "{id} not listed");
    }
}

#[tokio::test]
async fn x6_fencing() {
    let broker = broker().await;
    let j = journal(&broker).await;
    let pid = unique("x6");
    setup(&j, &pid).await;
    for seq in [1u64, 5, 7] {
        let r = j
            .write(vec![event(&pid, seq, "late").into()])
            .await
            .unwrap();
        assert!(
            matches!(r[0], Err(WriteError::Fenced { .. })),
            "{seq}: {r:?}"
        );
    }
    assert_eq!(seqs(j.replay(&pid, 1, M, M)).await, vec![1, 2, 3, 4, 5]);

    // Two incarnations: both know highest 5; B writes 6 first, A's 6 loses in the log.
    let b = journal(&broker).await;
    assert_eq!(b.highest_sequence_nr(&pid).await.unwrap(), 5);
    assert_eq!(
        b.write(vec![event(&pid, 6, "B").into()]).await.unwrap(),
        vec![Ok(())]
    );
    let r = j
        .write(vec![AtomicWrite::new(vec![
            event(&pid, 6, "A"),
            event(&pid, 7, "A"),
        ])])
        .await
        .unwrap();
    assert!(matches!(r[0], Err(WriteError::Fenced { .. })), "{r:?}");
    let c = journal(&broker).await;
    let events: Vec<PersistentRepr> = c.replay(&pid, 1, M, M).try_collect().await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.sequence_nr).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(events[5].writer_uuid, "B");
    assert_eq!(c.highest_sequence_nr(&pid).await.unwrap(), 6);
    // A learned the truth: its next attempt after 6 is refused without sending, B goes on.
    assert_eq!(
        b.write(vec![event(&pid, 7, "B").into()]).await.unwrap(),
        vec![Ok(())]
    );
    assert_eq!(seqs(c.replay(&pid, 6, M, M)).await, vec![6, 7]);
}

#[tokio::test]
async fn x6_rejected_numbers_count_as_highest() {
    let broker = broker().await;
    let cfg = config(&broker.bootstrap()).with_max_message_bytes(16 * 1024);
    let j = Journal::connect(cfg.clone()).await.unwrap();
    let pid = unique("x6r");
    setup(&j, &pid).await;
    let r = j
        .write(vec![PersistentRepr::new(&pid, 6, vec![0u8; 40_000]).into()])
        .await
        .unwrap();
    assert!(matches!(r[0], Err(WriteError::Rejected { .. })));
    assert_eq!(j.highest_sequence_nr(&pid).await.unwrap(), 6);
    assert_eq!(
        j.write(vec![event(&pid, 7, "w").into()]).await.unwrap(),
        vec![Ok(())]
    );
    let j2 = Journal::connect(cfg).await.unwrap();
    assert_eq!(j2.highest_sequence_nr(&pid).await.unwrap(), 7);
    assert_eq!(seqs(j2.replay(&pid, 1, M, M)).await, vec![1, 2, 3, 4, 5, 7]);
}

#[tokio::test]
async fn x7_queries() {
    let broker = broker().await;
    let j = journal(&broker).await;
    let pid = unique("x7");
    // live query started before the id exists: it waits without creating anything
    let mut live = j.events_by_persistence_id(&pid, 2, M);
    setup(&j, &pid).await;
    assert_eq!(
        seqs(j.current_events_by_persistence_id(&pid, 1, M)).await,
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        seqs(j.current_events_by_persistence_id(&pid, 2, 3)).await,
        vec![2, 3]
    );
    let mut got = Vec::new();
    for _ in 0..4 {
        let e = tokio::time::timeout(Duration::from_secs(10), live.next())
            .await
            .unwrap();
        got.push(e.unwrap().unwrap().sequence_nr);
    }
    assert_eq!(got, vec![2, 3, 4, 5]);
    let j2 = j.clone();
    let pid2 = pid.clone();
    let writer = tokio::spawn(async move {
        for s in 6..=8u64 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(
                j2.write(vec![event(&pid2, s, "w").into()]).await.unwrap(),
                vec![Ok(())]
            );
        }
    });
    for s in 6..=8u64 {
        let e = tokio::time::timeout(Duration::from_secs(10), live.next())
            .await
            .unwrap();
        assert_eq!(e.unwrap().unwrap().sequence_nr, s);
    }
    writer.await.unwrap();
    // nothing more arrives, and the stream does not end
    assert!(
        tokio::time::timeout(Duration::from_millis(500), live.next())
            .await
            .is_err()
    );
    // a bounded live query completes at `to`
    assert_eq!(
        seqs(j.events_by_persistence_id(&pid, 7, 8)).await,
        vec![7, 8]
    );
    let ids: Vec<String> = j.current_persistence_ids().try_collect().await.unwrap();
    assert!(ids.contains(&pid));
}

#[tokio::test]
async fn x8_event_topics() {
    let broker = broker().await;
    let j = journal(&broker).await;
    let pid = unique("x8");
    setup(&j, &pid).await;
    let mine: Vec<Event> = read_topic(j.client(), "events")
        .await
        .into_iter()
        .filter(|(k, _)| *k == pid)
        .map(|(_, e)| e)
        .collect();
    assert_eq!(
        mine.iter().map(|e| e.sequence_nr).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert!(mine.iter().all(|e| e.persistence_id == pid));
    assert_eq!(&mine[3].payload[..], b"a-4");

    // custom mapper: a -> two topics, b -> one, others -> none
    let tag = unique("t");
    let (a, b, c) = (format!("a-{tag}"), format!("b-{tag}"), format!("c-{tag}"));
    let (ta1, ta2, tb) = (
        format!("ta1-{tag}"),
        format!("ta2-{tag}"),
        format!("tb-{tag}"),
    );
    let routes: Arc<HashMap<String, Vec<String>>> = Arc::new(HashMap::from([
        (a.clone(), vec![ta1.clone(), ta2.clone()]),
        (b.clone(), vec![tb.clone()]),
    ]));
    let mapper =
        move |e: &PersistentRepr| routes.get(&e.persistence_id).cloned().unwrap_or_default();
    let jc = Journal::connect(config(&broker.bootstrap()).with_event_topic_mapper(mapper))
        .await
        .unwrap();
    for id in [&a, &b, &c] {
        let r = jc
            .write(vec![event(id, 1, "w").into(), event(id, 2, "w").into()])
            .await
            .unwrap();
        assert_eq!(r, vec![Ok(()), Ok(())]);
    }
    for (topic, id) in [(&ta1, &a), (&ta2, &a), (&tb, &b)] {
        let got = read_topic(jc.client(), topic).await;
        assert_eq!(got.len(), 2, "{topic}");
        assert!(got.iter().all(|(k, e)| k == id && e.persistence_id == *id));
        assert_eq!(
            got.iter().map(|(_, e)| e.sequence_nr).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    // empty mapper: nothing published
    let je = Journal::connect(
        config(&broker.bootstrap()).with_event_topic_mapper(EmptyEventTopicMapper),
    )
    .await
    .unwrap();
    let quiet = unique("quiet");
    setup(&je, &quiet).await;
    assert!(!read_topic(je.client(), "events")
        .await
        .iter()
        .any(|(k, _)| *k == quiet));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x9_many_ids_at_once() {
    let broker = broker().await;
    // Apache Kafka creates 200 topics slowly on a loaded machine: a generous bound.
    let j = Journal::connect(config(&broker.bootstrap()).with_timeout(Duration::from_secs(120)))
        .await
        .unwrap();
    let tag = unique("x9");
    let tasks = (0..200).map(|i| {
        let j = j.clone();
        let pid = format!("{tag}-{i}");
        tokio::spawn(async move {
            for s in 1..=10u64 {
                let r = j.write(vec![event(&pid, s, "w").into()]).await.unwrap();
                assert_eq!(r, vec![Ok(())], "{pid} {s}");
            }
            pid
        })
    });
    let pids: Vec<String> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    for pid in pids {
        assert_eq!(
            seqs(j.replay(&pid, 1, M, M)).await,
            (1..=10).collect::<Vec<_>>(),
            "{pid}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x6_racing_writers_exactly_one_wins() {
    let broker = broker().await;
    let a = journal(&broker).await;
    let b = journal(&broker).await;
    let pid = unique("race");
    setup(&a, &pid).await;
    let mut expected = vec![1, 2, 3, 4, 5];
    for round in 0..20u64 {
        let h = a.highest_sequence_nr(&pid).await.unwrap();
        assert_eq!(b.highest_sequence_nr(&pid).await.unwrap(), h);
        let wa = AtomicWrite::new(vec![event(&pid, h + 1, "A"), event(&pid, h + 2, "A")]);
        let wb = AtomicWrite::new(vec![event(&pid, h + 1, "B")]);
        let (ra, rb) = tokio::join!(a.write(vec![wa]), b.write(vec![wb]));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let won: Vec<bool> = [&ra[0], &rb[0]].iter().map(|r| r.is_ok()).collect();
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "round {round}: {ra:?} {rb:?}"
        );
        for r in [&ra[0], &rb[0]] {
            assert!(
                matches!(r, Ok(()) | Err(WriteError::Fenced { .. })),
                "{r:?}"
            );
        }
        if won[0] {
            expected.extend([h + 1, h + 2]);
        } else {
            expected.push(h + 1);
        }
        let fresh = journal(&broker).await;
        let events: Vec<PersistentRepr> = fresh.replay(&pid, 1, M, M).try_collect().await.unwrap();
        assert_eq!(
            events.iter().map(|e| e.sequence_nr).collect::<Vec<_>>(),
            expected
        );
        let last = events.last().unwrap();
        assert_eq!(last.writer_uuid, if won[0] { "A" } else { "B" });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x10_two_instances_race_on_one_id() {
    let broker = broker().await;
    let j1 = journal(&broker).await;
    let j2 = journal(&broker).await;
    let pid = unique("x10");
    // Neighbours in the same partition (layout v2) write meanwhile.
    let neighbours: Vec<String> = (0..)
        .map(|i| format!("{pid}-n{i}"))
        .filter(|n| j1.partition_of(n) == j1.partition_of(&pid))
        .take(3)
        .collect();
    let noise = {
        let j = j1.clone();
        let neighbours = neighbours.clone();
        tokio::spawn(async move {
            for s in 1..=40u64 {
                for n in &neighbours {
                    let r = j.write(vec![event(n, s, "n").into()]).await.unwrap();
                    assert_eq!(r, vec![Ok(())]);
                }
            }
        })
    };
    let a = tokio::spawn(race(j1.clone(), pid.clone(), "one", 40));
    let b = tokio::spawn(race(j2.clone(), pid.clone(), "two", 40));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    noise.await.unwrap();
    let mut won: Vec<(u64, String)> = a.into_iter().chain(b).collect();
    won.sort();
    let n = won.len() as u64;
    assert!(n >= 40, "at least one writer progresses every round: {n}");
    assert_eq!(won.iter().map(|(s, _)| *s).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>(), "one winner per sequence number");
    let j3 = journal(&broker).await;
    for j in [&j1, &j2, &j3] {
        let events: Vec<PersistentRepr> = j.replay(&pid, 1, M, M).try_collect().await.unwrap();
        let got: Vec<(u64, String)> = events
            .iter()
            .map(|e| (e.sequence_nr, String::from_utf8_lossy(&e.payload).into_owned()))
            .collect();
        assert_eq!(got, won, "replays show exactly the winners");
        for nb in &neighbours {
            assert_eq!(seqs(j.replay(nb, 1, M, M)).await, (1..=40).collect::<Vec<_>>());
        }
    }
}
}

#[tokio::test]
async fn shared_restore_from_the_index_after_flush() {
    set_layout(Layout::Shared);
    let broker = broker().await;
    let j = journal(&broker).await;
    let tag = unique("restore");
    let writes: Vec<AtomicWrite> = (0..500)
        .map(|i| event(&format!("{tag}-{i}"), 1, "w").into())
        .collect();
    assert!(j.write(writes).await.unwrap().iter().all(|r| r.is_ok()));
    j.flush_index().await.unwrap();
    let j2 = journal(&broker).await;
    for i in 0..500 {
        assert_eq!(
            j2.highest_sequence_nr(&format!("{tag}-{i}")).await.unwrap(),
            1,
            "{i}"
        );
    }
}

/// X10: two instances race on one id while other ids write to the same partition; one
/// winner per sequence number, losers are fenced and never replayed.
async fn race(j: Journal, pid: String, me: &'static str, rounds: usize) -> Vec<(u64, String)> {
    let mut won = Vec::new();
    for k in 0..rounds {
        let h = j.highest_sequence_nr(&pid).await.unwrap();
        let payload = format!("{me}-{k}");
        let e = PersistentRepr::new(&pid, h + 1, payload.clone()).with_writer_uuid(me);
        match j.write(vec![e.into()]).await.unwrap().pop().unwrap() {
            Ok(()) => won.push((h + 1, payload)),
            Err(WriteError::Fenced { .. }) => {}
            Err(other) => panic!("{me}: {other:?}"),
        }
    }
    won
}

//! Layout v2 beyond the SPEC cases: topic checks at connect, restoring and repairing the
//! index, the partition stream, and a restart in the middle of pipelined writes.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use futures::{StreamExt, TryStreamExt};
use kafka_persistence_journal::{
    AtomicWrite, Journal, JournalConfig, JournalError, Layout, PartitionEvent, PersistentRepr,
    WriteError,
};
use kafka_persistence_testserver::TestServer;

/// A v2 configuration with topics of its own, on the embedded server.
fn own_topics(server: &TestServer) -> JournalConfig {
    config(&server.bootstrap_servers())
        .with_layout(Layout::Shared)
        .with_topic_prefix(unique("v2t"))
        .with_partitions(4)
        // The tests decide when the index is written.
        .with_index_flush_interval(Duration::from_secs(3600))
}

async fn write_ids(j: &Journal, ids: &[String], seq: u64) {
    let writes: Vec<AtomicWrite> = ids.iter().map(|id| event(id, seq, "w").into()).collect();
    let r = j.write(writes).await.unwrap();
    assert!(r.iter().all(|r| r.is_ok()), "{r:?}");
}

async fn assert_all_at(j: &Journal, ids: &[String], highest: u64) {
    for id in ids {
        assert_eq!(j.highest_sequence_nr(id).await.unwrap(), highest, "{id}");
        assert_eq!(
            seqs(j.replay(id, 1, M, M)).await,
            (1..=highest).collect::<Vec<_>>(),
            "{id}"
        );
    }
}

fn ids(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-{i}")).collect()
}

#[tokio::test]
async fn connect_refuses_topics_that_do_not_fit() {
    let server = embedded().await;
    let cfg = own_topics(&server);
    server
        .create_topic(&cfg.shared_journal_topic(), 3, &[])
        .await
        .unwrap();
    match Journal::connect(cfg.clone()).await {
        Err(JournalError::Config(m)) => {
            assert!(
                m.contains(&cfg.shared_journal_topic()) && m.contains("3 partitions"),
                "{m}"
            )
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
    let cfg = own_topics(&server);
    server
        .create_topic(
            &cfg.shared_index_topic(),
            4,
            &[("cleanup.policy", "delete")],
        )
        .await
        .unwrap();
    match Journal::connect(cfg.clone()).await {
        Err(JournalError::Config(m)) => {
            assert!(
                m.contains(&cfg.shared_index_topic()) && m.contains("cleanup.policy"),
                "{m}"
            )
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
    // Topics that fit are accepted as they are.
    let cfg = own_topics(&server);
    Journal::connect(cfg.clone()).await.unwrap();
    Journal::connect(cfg).await.unwrap();
}

#[tokio::test]
async fn a_new_instance_restores_from_the_index_and_the_journal_tail() {
    let server = embedded().await;
    let cfg = own_topics(&server);
    let j = Journal::connect(cfg.clone()).await.unwrap();
    let indexed = ids(&unique("indexed"), 300);
    write_ids(&j, &indexed, 1).await;
    j.flush_index().await.unwrap();
    // Written after the checkpoint: only the journal's tail knows them.
    let tail = ids(&unique("tail"), 50);
    write_ids(&j, &tail, 1).await;
    write_ids(&j, &indexed[..10], 2).await;
    let j2 = Journal::connect(cfg).await.unwrap();
    assert_all_at(&j2, &indexed[..10], 2).await;
    assert_all_at(&j2, &indexed[10..], 1).await;
    assert_all_at(&j2, &tail, 1).await;
}

#[tokio::test]
async fn a_truncated_index_is_repaired_from_the_journal() {
    let server = embedded().await;
    let cfg = own_topics(&server);
    let j = Journal::connect(cfg.clone()).await.unwrap();
    let all = ids(&unique("trunc"), 200);
    write_ids(&j, &all, 1).await;
    j.flush_index().await.unwrap();
    write_ids(&j, &all, 2).await;
    j.flush_index().await.unwrap();
    // Every index record removed (as by a misconfigured retention or DeleteRecords).
    for p in 0..4 {
        let info = server
            .partition_info(&cfg.shared_index_topic(), p)
            .await
            .unwrap();
        server
            .set_log_start_offset(&cfg.shared_index_topic(), p, info.high_watermark)
            .await
            .unwrap();
    }
    let j2 = Journal::connect(cfg.clone()).await.unwrap();
    assert_all_at(&j2, &all, 2).await;
    // Half of the index gone: the older checkpoints that survive still lead to everything.
    let j3 = Journal::connect(cfg).await.unwrap();
    assert_all_at(&j3, &all, 2).await;
}

#[tokio::test]
async fn an_index_behind_the_journal_by_ten_thousand_records_is_caught_up() {
    let server = embedded().await;
    let cfg = own_topics(&server);
    let j = Journal::connect(cfg.clone()).await.unwrap();
    let all = ids(&unique("lag"), 100);
    write_ids(&j, &all, 1).await;
    j.flush_index().await.unwrap();
    for seq in 2..=101 {
        write_ids(&j, &all, seq).await;
    }
    let j2 = Journal::connect(cfg).await.unwrap();
    for id in &all {
        assert_eq!(j2.highest_sequence_nr(id).await.unwrap(), 101, "{id}");
    }
    assert_all_at(&j2, &all[..5], 101).await;
}

#[tokio::test]
async fn a_stale_head_written_after_a_newer_one_does_not_hide_events() {
    let server = embedded().await;
    let cfg = own_topics(&server);
    let j = Journal::connect(cfg.clone()).await.unwrap();
    let pid = unique("stale");
    write_ids(&j, std::slice::from_ref(&pid), 1).await;
    j.flush_index().await.unwrap();
    write_ids(&j, std::slice::from_ref(&pid), 2).await;
    j.flush_index().await.unwrap();
    // Another instance's late, older head record for the id lands after the checkpoint.
    let partition = j.partition_of(&pid);
    let index = cfg.shared_index_topic();
    let resp = j
        .client()
        .fetch(kafka_persistence_wire::FetchRequest::new(
            index.as_str(),
            partition,
            0,
        ))
        .await
        .unwrap();
    let mut key = vec![0x01u8];
    key.extend_from_slice(pid.as_bytes());
    let first_head = resp
        .records
        .iter()
        .find(|r| r.key.as_deref() == Some(&key[..]))
        .unwrap();
    let stale = kafka_persistence_wire::Record::new(first_head.value.clone().unwrap(), 0)
        .with_key(bytes::Bytes::from(key));
    j.client()
        .producer(Default::default())
        .send(&index, partition, vec![stale])
        .await
        .unwrap();
    let j2 = Journal::connect(cfg).await.unwrap();
    assert_all_at(&j2, &[pid], 2).await;
}

#[tokio::test]
async fn events_by_partition_streams_accepted_events_in_log_order() {
    let server = embedded().await;
    let cfg = own_topics(&server).with_partitions(1);
    let j = Journal::connect(cfg.clone()).await.unwrap();
    let a = unique("pa");
    let b = unique("pb");
    write_ids(&j, &[a.clone(), b.clone()], 1).await;
    // A fenced write (never stored as accepted) and a deletion.
    let r = j.write(vec![event(&a, 5, "w").into()]).await.unwrap();
    assert!(matches!(r[0], Err(WriteError::Fenced { .. })), "{r:?}");
    write_ids(&j, std::slice::from_ref(&b), 2).await;
    j.delete_messages_to(&b, 1).await.unwrap();
    let got: Vec<PartitionEvent> = j
        .events_by_partition(0, 0, false)
        .try_collect()
        .await
        .unwrap();
    let summary: Vec<(String, u64)> = got
        .iter()
        .map(|e| (e.event.persistence_id.clone(), e.event.sequence_nr))
        .collect();
    assert_eq!(summary, vec![(a.clone(), 1), (b.clone(), 2)]);
    assert!(got.windows(2).all(|w| w[0].offset < w[1].offset));
    // From an offset: only what follows; live: new events as they are written.
    let from = got[1].offset + 1;
    let mut live = j.events_by_partition(0, from, true);
    write_ids(&j, std::slice::from_ref(&a), 2).await;
    let next = tokio::time::timeout(Duration::from_secs(10), live.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (next.event.persistence_id.as_str(), next.event.sequence_nr),
        (a.as_str(), 2)
    );
    assert!(next.offset >= from);
    // A partition that does not exist is an error, not an empty stream.
    let r: Result<Vec<PartitionEvent>, _> = j.events_by_partition(7, 0, false).try_collect().await;
    assert!(matches!(r, Err(JournalError::Config(_))), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_an_instance_restarted_mid_write_recovers_every_id_exactly() {
    let server = embedded().await;
    let cfg = own_topics(&server);
    let j = Journal::connect(cfg.clone()).await.unwrap();
    let all = ids(&unique("restart"), 50);
    let writer = {
        let j = j.clone();
        let all = all.clone();
        tokio::spawn(async move {
            for seq in 1..=1_000u64 {
                let writes: Vec<AtomicWrite> = all
                    .iter()
                    .map(|id| AtomicWrite::new(vec![PersistentRepr::new(id.clone(), seq, "e")]))
                    .collect();
                if j.write(writes).await.is_err() {
                    return;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    writer.abort();
    let _ = writer.await;
    drop(j);
    let j2 = Journal::connect(cfg).await.unwrap();
    let mut total = 0;
    for id in &all {
        let h = j2.highest_sequence_nr(id).await.unwrap();
        let s = seqs(j2.replay(id, 1, M, M)).await;
        assert_eq!(
            s,
            (1..=h).collect::<Vec<_>>(),
            "{id}: contiguous, no duplicates"
        );
        total += h;
        // and it can go on
        let r = j2.write(vec![event(id, h + 1, "w2").into()]).await.unwrap();
        assert_eq!(r, vec![Ok(())], "{id}");
    }
    assert!(total > 0, "something was written before the restart");
}

/// Leaders of the shared partitions move, and a node stops and starts again, while many ids
/// are written with many calls in flight: every acknowledged write replays exactly once, and
/// what failed (outcome unknown) is either wholly there or wholly absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_leader_moves_and_a_stopped_node_lose_and_duplicate_nothing() {
    let server = TestServer::builder().nodes(3).start().await.unwrap();
    let cfg = config(&server.bootstrap_servers())
        .with_layout(Layout::Shared)
        .with_topic_prefix(unique("moves"))
        .with_partitions(4)
        .with_replication_factor(3);
    let j = Journal::connect(cfg.clone()).await.unwrap();
    let all = ids(&unique("m"), 200);
    let topic = cfg.shared_journal_topic();
    let writer = {
        let j = j.clone();
        let all = all.clone();
        tokio::spawn(async move {
            // Per id: how far its acknowledged writes got, and whether a write failed.
            let mut acked = vec![0u64; all.len()];
            for seq in 1..=30u64 {
                let calls = all.chunks(20).enumerate().map(|(c, chunk)| {
                    let j = j.clone();
                    let writes: Vec<AtomicWrite> = chunk
                        .iter()
                        .map(|id| AtomicWrite::new(vec![PersistentRepr::new(id.clone(), seq, "e")]))
                        .collect();
                    async move { (c, j.write(writes).await) }
                });
                let results = futures::future::join_all(calls).await;
                let mut failed = false;
                for (c, r) in results {
                    if let Ok(rs) = r {
                        for (k, r) in rs.iter().enumerate() {
                            if r.is_ok() {
                                acked[c * 20 + k] = seq;
                            }
                        }
                    } else {
                        failed = true;
                    }
                }
                if failed {
                    // Outcome unknown for some ids: stop writing (an entity would restart).
                    return acked;
                }
            }
            acked
        })
    };
    let nodes = server.node_ids();
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        for p in 0..4 {
            let to = nodes[(round + p as usize) % nodes.len()];
            let _ = server.move_leader(&topic, p, to).await;
        }
    }
    // A node stops (its partitions' leadership moves away) and comes back.
    server.stop_node(nodes[2]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.start_node(nodes[2]).await.unwrap();
    let acked = writer.await.unwrap();
    let j2 = Journal::connect(cfg).await.unwrap();
    for (i, id) in all.iter().enumerate() {
        let s = seqs(j2.replay(id, 1, M, M)).await;
        let h = s.len() as u64;
        assert_eq!(
            s,
            (1..=h).collect::<Vec<_>>(),
            "{id}: each sequence number once"
        );
        assert!(
            h >= acked[i],
            "{id}: acknowledged up to {} but replays {h}",
            acked[i]
        );
        assert!(
            h <= acked[i] + 1,
            "{id}: at most the one write with an unknown outcome more"
        );
    }
    assert!(acked.iter().any(|&a| a > 0), "writes went through");
}

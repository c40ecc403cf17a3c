//! Entities as handles: start on first use, one request at a time per id in arrival order,
//! ids in parallel, passivation (idle and least recently used) with recovery, and a journal
//! failure or a fencing refusal stopping the entity with an error to every waiting ask.

mod common;

use common::account::{Account, AccountCommand, Balance};
use common::{broker, unique_pid};

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use kafka_persistence::entities::{Entities, EntitiesConfig};
use kafka_persistence::entity::{EntityError, Handled};
use kafka_persistence::journal::{AtomicWrite, Journal, PersistentRepr};
use kafka_persistence::snapshot_policy::SnapshotPolicy;

fn config() -> EntitiesConfig {
    EntitiesConfig::default().with_ask_timeout(Duration::from_secs(30))
}

async fn amounts(journal: &Journal, pid: &str) -> Vec<(u64, String)> {
    journal
        .replay(pid, 1, u64::MAX, u64::MAX)
        .map_ok(|e| {
            (
                e.sequence_nr,
                String::from_utf8_lossy(&e.payload).into_owned(),
            )
        })
        .try_collect()
        .await
        .expect("replay")
}

/// Polls `done` every 20 ms for up to 10 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not within 10 s: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_ask_starts_the_entity_and_cloned_handles_work_from_other_tasks() {
    let broker = broker().await;
    let (journal, store) = broker.parts().await;
    let accounts = Entities::new(
        Arc::clone(&journal),
        store,
        Account::new(SnapshotPolicy::on_demand()),
        config(),
    );
    let pid = unique_pid("handles");
    let handle = accounts.entity(pid.clone());
    assert!(
        !accounts.is_running(&pid),
        "nothing starts before the first ask"
    );
    assert_eq!(
        handle
            .ask(AccountCommand::Deposit(100))
            .await
            .expect("deposit"),
        Handled::Persisted { sequence_nr: 1 }
    );
    assert!(accounts.is_running(&pid));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let h = handle.clone();
            tokio::spawn(async move { h.ask(AccountCommand::Deposit(10)).await })
        })
        .collect();
    for t in tasks {
        assert!(matches!(
            t.await.expect("join"),
            Ok(Handled::Persisted { .. })
        ));
    }
    assert_eq!(
        handle
            .ask(AccountCommand::Withdraw(1_000))
            .await
            .expect("ask"),
        Handled::Refused("balance 140 < 1000".to_string())
    );
    assert_eq!(
        handle
            .ask(AccountCommand::Transfer { fee: 1, amount: 39 })
            .await
            .expect("transfer"),
        Handled::Persisted { sequence_nr: 7 }
    );
    assert_eq!(
        handle.state(|b: &Balance| b.balance).await.expect("state"),
        100
    );
    assert_eq!(accounts.stats().recoveries, 1);
    assert_eq!(amounts(&journal, &pid).await.len(), 7);
}

#[tokio::test]
async fn requests_to_one_id_are_applied_one_at_a_time_in_arrival_order() {
    let broker = broker().await;
    let (journal, store) = broker.parts().await;
    let accounts = Entities::new(
        Arc::clone(&journal),
        store,
        Account::new(SnapshotPolicy::on_demand()),
        config().with_mailbox_capacity(8),
    );
    let pid = unique_pid("order");
    let handle = accounts.entity(pid.clone());
    // 50 asks issued in order without awaiting each (more than the mailbox holds, so some
    // senders wait for room), answered in order.
    let asks = (1..=50u64).map(|n| handle.ask(AccountCommand::Deposit(n)));
    let replies = futures::future::join_all(asks).await;
    let seqs: Vec<u64> = replies
        .into_iter()
        .map(|r| match r {
            Ok(Handled::Persisted { sequence_nr }) => sequence_nr,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    let stored = amounts(&journal, &pid).await;
    let expected: Vec<(u64, String)> = (1..=50u64)
        .map(|n| (n, format!(r#"{{"Deposited":{{"amount":{n}}}}}"#)))
        .collect();
    assert_eq!(stored, expected);
    let history = handle
        .state(|b: &Balance| b.history.clone())
        .await
        .expect("state");
    assert_eq!(history, (1..=50i64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_ids_run_in_parallel_each_with_its_own_state() {
    let broker = broker().await;
    let (journal, store) = broker.parts().await;
    let accounts = Entities::new(
        Arc::clone(&journal),
        store,
        Account::new(SnapshotPolicy::on_demand()),
        config(),
    );
    let pids: Vec<String> = (0..20).map(|i| unique_pid(&format!("par{i}"))).collect();
    let work = pids.iter().enumerate().map(|(i, pid)| {
        let handle = accounts.entity(pid.clone());
        async move {
            for _ in 0..5 {
                handle
                    .ask(AccountCommand::Deposit(i as u64 + 1))
                    .await
                    .expect("deposit");
            }
            handle.state(|b: &Balance| b.balance).await.expect("state")
        }
    });
    let balances = futures::future::join_all(work).await;
    let expected: Vec<u64> = (0..20u64).map(|i| 5 * (i + 1)).collect();
    assert_eq!(balances, expected);
    assert_eq!(accounts.running(), 20);
    for pid in &pids {
        assert_eq!(journal.highest_sequence_nr(pid).await.expect("highest"), 5);
    }
}

#[tokio::test]
async fn an_idle_entity_passivates_and_the_next_ask_recovers_it_from_snapshot_and_events() {
    let broker = broker().await;
    let (journal, store) = broker.parts().await;
    let accounts = Entities::new(
        Arc::clone(&journal),
        store,
        Account::new(SnapshotPolicy::every(3)),
        config().with_idle_timeout(Some(Duration::from_millis(200))),
    );
    let pid = unique_pid("idle");
    let handle = accounts.entity(pid.clone());
    for n in 1..=5 {
        handle
            .ask(AccountCommand::Deposit(n))
            .await
            .expect("deposit");
    }
    eventually("passivated", || !accounts.is_running(&pid)).await;
    assert_eq!(accounts.stats().passivated, 1);
    assert_eq!(accounts.running(), 0);
    // Only the snapshot at 3 still knows events 1..=3: recovery must use it, then 4 and 5.
    journal.delete_messages_to(&pid, 3).await.expect("delete");
    assert_eq!(
        handle.state(|b: &Balance| b.clone()).await.expect("state"),
        Balance {
            balance: 15,
            history: vec![1, 2, 3, 4, 5]
        }
    );
    assert_eq!(accounts.stats().recoveries, 2);
    assert_eq!(
        handle
            .ask(AccountCommand::Deposit(6))
            .await
            .expect("deposit"),
        Handled::Persisted { sequence_nr: 6 }
    );
}

#[tokio::test]
async fn at_most_max_entities_in_memory_the_least_recently_used_stops_first() {
    let broker = broker().await;
    let (journal, store) = broker.parts().await;
    let accounts = Entities::new(
        journal,
        store,
        Account::new(SnapshotPolicy::on_demand()),
        config().with_max_entities(3).with_idle_timeout(None),
    );
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|t| accounts.entity(unique_pid(t)));
    for (h, n) in [(&a, 1), (&b, 2), (&c, 3)] {
        h.ask(AccountCommand::Deposit(n)).await.expect("deposit");
    }
    // `a` is used again: `b` is now the least recently used.
    a.ask(AccountCommand::Deposit(10)).await.expect("deposit");
    d.ask(AccountCommand::Deposit(4)).await.expect("deposit");
    assert_eq!(accounts.running(), 3);
    assert!(!accounts.is_running(b.persistence_id()));
    for h in [&a, &c, &d] {
        assert!(accounts.is_running(h.persistence_id()));
    }
    assert_eq!(accounts.stats().evicted, 1);
    // `b` recovers on its next ask (and `c`, now the least recently used, makes room).
    assert_eq!(b.state(|s: &Balance| s.balance).await.expect("state"), 2);
    assert!(!accounts.is_running(c.persistence_id()));
    assert_eq!(accounts.running(), 3);
    assert_eq!(accounts.stats().evicted, 2);
    assert_eq!(accounts.stats().recoveries, 5);
    assert_eq!(a.state(|s: &Balance| s.balance).await.expect("state"), 11);
}

#[tokio::test]
async fn fencing_stops_the_entity_with_an_error_to_every_waiting_ask_and_the_next_ask_recovers() {
    let broker = broker().await;
    let (journal, store) = broker.parts().await;
    let accounts = Entities::new(
        Arc::clone(&journal),
        store,
        Account::new(SnapshotPolicy::on_demand()),
        config(),
    );
    let pid = unique_pid("fenced");
    let handle = accounts.entity(pid.clone());
    handle
        .ask(AccountCommand::Deposit(1))
        .await
        .expect("deposit");
    // Another writer takes sequence number 2.
    let other = PersistentRepr::new(pid.clone(), 2, r#"{"Deposited":{"amount":100}}"#)
        .with_manifest("AccountEvent@1");
    assert_eq!(
        journal
            .write(vec![AtomicWrite::new(vec![other])])
            .await
            .expect("write"),
        vec![Ok(())]
    );
    // Five asks queued together: the first is fenced, the other four were waiting.
    let asks = (0..5).map(|_| handle.ask(AccountCommand::Deposit(5)));
    let replies = futures::future::join_all(asks).await;
    assert!(
        matches!(replies[0], Err(EntityError::Fenced(_))),
        "{:?}",
        replies[0]
    );
    for r in &replies[1..] {
        match r {
            Err(EntityError::Stopped { reason, .. }) => {
                assert!(reason.contains("fenced"), "{reason}")
            }
            other => panic!("a waiting ask must get Stopped, got {other:?}"),
        }
    }
    assert_eq!(accounts.stats().failed, 1);
    // The next ask recovers afresh and sees the other writer's event.
    assert_eq!(
        handle
            .ask(AccountCommand::Deposit(5))
            .await
            .expect("deposit"),
        Handled::Persisted { sequence_nr: 3 }
    );
    assert_eq!(
        handle.state(|b: &Balance| b.balance).await.expect("state"),
        106
    );
    assert_eq!(accounts.stats().recoveries, 2);
}

#[tokio::test]
async fn a_journal_failure_stops_the_entity_and_the_next_ask_recovers_afresh() {
    let broker = broker().await;
    let Some(server) = broker.server() else {
        return; // needs latency injection
    };
    let journal = Arc::new(
        Journal::connect(
            kafka_persistence::journal::JournalConfig::new(&broker.bootstrap)
                .with_timeout(Duration::from_millis(500)),
        )
        .await
        .expect("journal"),
    );
    let accounts = Entities::new(
        Arc::clone(&journal),
        Arc::new(broker.store().await),
        Account::new(SnapshotPolicy::on_demand()),
        config(),
    );
    let pid = unique_pid("journal-fails");
    let handle = accounts.entity(pid.clone());
    handle
        .ask(AccountCommand::Deposit(1))
        .await
        .expect("deposit");
    server.set_latency(Duration::from_millis(1_500)).await;
    let asks = (0..3).map(|_| handle.ask(AccountCommand::Deposit(2)));
    let replies = futures::future::join_all(asks).await;
    server.set_latency(Duration::ZERO).await;
    assert!(
        matches!(replies[0], Err(EntityError::Journal(_))),
        "{:?}",
        replies[0]
    );
    for r in &replies[1..] {
        assert!(
            matches!(r, Err(EntityError::Stopped { .. })),
            "a waiting ask must get Stopped, got {r:?}"
        );
    }
    assert!(!accounts.is_running(&pid) || accounts.stats().recoveries == 2);
    // The outcome of the timed-out write is unknown; the new incarnation recovers whatever
    // the journal holds and goes on from there.
    let mut reply = handle.ask(AccountCommand::Deposit(4)).await;
    for _ in 0..20 {
        if reply.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        reply = handle.ask(AccountCommand::Deposit(4)).await;
    }
    let Ok(Handled::Persisted { sequence_nr }) = reply else {
        panic!("the entity did not recover: {reply:?}");
    };
    assert!(sequence_nr == 2 || sequence_nr == 3, "{sequence_nr}");
    let stored = amounts(&journal, &pid).await;
    assert_eq!(stored.len() as u64, sequence_nr);
    let balance = handle.state(|b: &Balance| b.balance).await.expect("state");
    assert_eq!(balance, if sequence_nr == 3 { 7 } else { 5 });
    assert!(accounts.stats().failed >= 1);
}

#[tokio::test]
async fn an_ask_without_a_reply_in_time_times_out() {
    let broker = broker().await;
    let Some(server) = broker.server() else {
        return; // needs latency injection
    };
    let (journal, store) = broker.parts().await;
    let accounts = Entities::new(
        journal,
        store,
        Account::new(SnapshotPolicy::on_demand()),
        config().with_ask_timeout(Duration::from_millis(200)),
    );
    server.set_latency(Duration::from_millis(1_000)).await;
    let reply = accounts
        .ask(&unique_pid("slow"), AccountCommand::Deposit(1))
        .await;
    server.set_latency(Duration::ZERO).await;
    assert!(
        matches!(reply, Err(EntityError::Timeout { after, .. }) if after == Duration::from_millis(200)),
        "{reply:?}"
    );
}

#[tokio::test]
async fn shutdown_ends_every_entity_and_later_asks_are_refused() {
    let broker = broker().await;
    let (journal, store) = broker.parts().await;
    let accounts = Entities::new(
        Arc::clone(&journal),
        store,
        Account::new(SnapshotPolicy::on_demand()),
        config(),
    );
    let pid = unique_pid("shutdown");
    let handle = accounts.entity(pid.clone());
    // Queued before the shutdown: still applied.
    let queued = (1..=3).map(|n| handle.ask(AccountCommand::Deposit(n)));
    let (replies, ()) = tokio::join!(futures::future::join_all(queued), async {
        tokio::task::yield_now().await;
        accounts.shutdown().await
    });
    assert!(replies.iter().all(|r| r.is_ok()), "{replies:?}");
    assert_eq!(accounts.running(), 0);
    assert!(matches!(
        handle.ask(AccountCommand::Deposit(1)).await,
        Err(EntityError::ShutDown)
    ));
    assert_eq!(journal.highest_sequence_nr(&pid).await.expect("highest"), 3);
}

/// The process's resident memory in bytes (Linux; 0 elsewhere), for the report below.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// 10,000 entities asked in parallel with at most 1,000 in memory: passivation keeps the
/// number running bounded, every entity ends at its own state (recovered when it was
/// stopped), and the memory is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_entities_in_parallel_with_passivation_bounding_memory() {
    use futures::StreamExt;
    let broker = broker().await;
    // Against an external broker (CI step b), a tenth of it keeps the run short.
    let (n, max) = if broker.server().is_some() {
        (10_000, 1_000)
    } else {
        (1_000, 100)
    };
    let (journal, store) = broker.parts().await;
    let accounts = Entities::new(
        journal,
        store,
        Account::new(SnapshotPolicy::on_demand()),
        config().with_max_entities(max),
    );
    let tag = unique_pid("many");
    let handles: Vec<_> = (0..n)
        .map(|i| accounts.entity(format!("{tag}-{i}")))
        .collect();
    let before = rss_bytes();
    let max_running = std::sync::atomic::AtomicUsize::new(0);
    for round in 1..=2u64 {
        let asks = handles.iter().map(|h| {
            let accounts = &accounts;
            let max_running = &max_running;
            async move {
                h.ask(AccountCommand::Deposit(round))
                    .await
                    .expect("deposit");
                max_running.fetch_max(accounts.running(), std::sync::atomic::Ordering::Relaxed);
            }
        });
        futures::stream::iter(asks)
            .buffer_unordered(500)
            .collect::<Vec<()>>()
            .await;
    }
    let after = rss_bytes();
    let peak = max_running.load(std::sync::atomic::Ordering::Relaxed);
    assert!(peak <= max, "at most {max} entities in memory, saw {peak}");
    assert!(
        accounts.stats().evicted as usize >= n - max,
        "{:?}",
        accounts.stats()
    );
    // Every entity has both deposits: the second ask of most of them recovered the first.
    for h in handles.iter().step_by(97) {
        assert_eq!(h.state(|b: &Balance| b.balance).await.expect("state"), 3);
    }
    eprintln!(
        "{n} entities, at most {peak} in memory: resident memory grew by {:.1} MiB",
        after.saturating_sub(before) as f64 / (1024.0 * 1024.0)
    );
}

/// A command whose event the journal rejects (too large for the topic) leaves a gap: the
/// entity goes on, and a recovery skips the gap.
#[tokio::test]
async fn a_rejected_event_leaves_a_gap_the_entity_goes_on_and_recovers_over() {
    let broker = broker().await;
    let (journal, store) = broker.parts().await;
    let pid = unique_pid("gap");
    let accounts = Entities::new(
        Arc::clone(&journal),
        Arc::clone(&store),
        Account::new(SnapshotPolicy::on_demand()),
        config(),
    );
    let handle = accounts.entity(pid.clone());
    handle
        .ask(AccountCommand::Deposit(1))
        .await
        .expect("deposit");
    // A write of 2 MiB (above the broker's default 1 MiB message size) for the same id, as a
    // foreign writer would do it: rejected with a gap marker at 2.
    let big = PersistentRepr::new(pid.clone(), 2, vec![b'x'; 2 * 1024 * 1024]);
    let r = journal
        .write(vec![AtomicWrite::new(vec![big])])
        .await
        .expect("write");
    assert!(
        matches!(
            r[0],
            Err(kafka_persistence::journal::WriteError::Rejected { .. })
        ),
        "{r:?}"
    );
    accounts.shutdown().await;
    let again = Entities::new(
        Arc::clone(&journal),
        store,
        Account::new(SnapshotPolicy::on_demand()),
        config(),
    );
    let handle = again.entity(pid.clone());
    let Ok(Handled::Persisted { sequence_nr }) = handle.ask(AccountCommand::Deposit(5)).await
    else {
        panic!("the entity did not go on after the gap");
    };
    assert_eq!(sequence_nr, 3, "the gap at 2 is accounted for");
    assert_eq!(
        handle.state(|b: &Balance| b.balance).await.expect("state"),
        6
    );
    assert_eq!(amounts(&journal, &pid).await.len(), 2);
}

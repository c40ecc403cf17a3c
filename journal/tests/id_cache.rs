//! The journal's per-id state is bounded (`max_cached_ids`): forgotten ids are read from
//! their logs again, so nothing about them changes but the cost of their next use.

mod common;

use common::{broker, config, seqs, unique};
use kafka_persistence_journal::{AtomicWrite, Journal, JournalError, PersistentRepr, WriteError};

fn one(pid: &str, seq: u64) -> Vec<AtomicWrite> {
    vec![AtomicWrite::new(vec![PersistentRepr::new(pid, seq, "x")])]
}

layout_tests! {
#[tokio::test]
async fn forgotten_ids_keep_their_history_fencing_and_deletions() {
    let b = broker().await;
    let journal = Journal::connect(config(&b.bootstrap()).with_max_cached_ids(3))
        .await
        .expect("journal connects");
    let ids: Vec<String> = (0..12).map(|i| unique(&format!("cache-{i}"))).collect();
    for (i, pid) in ids.iter().enumerate() {
        for seq in 1..=3 {
            let r = journal.write(one(pid, seq)).await.expect("write");
            assert!(r.iter().all(Result::is_ok), "{pid}: {r:?}");
        }
        if i % 2 == 0 {
            journal.delete_messages_to(pid, 2).await.expect("delete");
        }
    }
    // Every id but the last few was forgotten meanwhile; each still knows its history.
    for (i, pid) in ids.iter().enumerate() {
        assert_eq!(journal.highest_sequence_nr(pid).await.expect("highest"), 3);
        // A write that does not follow the highest is still refused...
        let r = journal.write(one(pid, 3)).await.expect("write");
        assert!(
            matches!(r[0], Err(WriteError::Fenced { .. })),
            "{pid}: {r:?}"
        );
        // ...and the right next one is accepted.
        let r = journal.write(one(pid, 4)).await.expect("write");
        assert!(r.iter().all(Result::is_ok), "{pid}: {r:?}");
        let expected: Vec<u64> = if i % 2 == 0 {
            vec![3, 4]
        } else {
            vec![1, 2, 3, 4]
        };
        assert_eq!(
            seqs(journal.replay(pid, 1, u64::MAX, u64::MAX)).await,
            expected,
            "{pid}"
        );
    }
}

#[tokio::test]
async fn a_zero_id_cache_is_a_configuration_error() {
    let b = broker().await;
    let r = Journal::connect(config(&b.bootstrap()).with_max_cached_ids(0)).await;
    assert!(matches!(r, Err(JournalError::Config(_))), "{r:?}");
}
}

//! Pipelined writes issued by a brand-new journal (whose producer has no producer id yet), in
//! the shape of the `bench` P1: many `write` calls for one id in flight at once. The first
//! sends of a fresh producer used to be appended in wake-up order instead of call order, so
//! the journal found its records at unexpected offsets and failed the write as unknown.

mod common;

use std::sync::Arc;

use common::{broker, journal, seqs, unique};
use futures::StreamExt;
use kafka_persistence_journal::{AtomicWrite, PersistentRepr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_journal_pipelines_its_first_writes_in_order() {
    let b = broker().await;
    for round in 0..5 {
        // A new journal each round: its producer starts without a producer id.
        let journal = Arc::new(journal(&b).await);
        let pid = unique(&format!("pipelined-{round}"));
        let calls = (0..20u64).map(|call| {
            let writes = (call * 100 + 1..=call * 100 + 100)
                .map(|seq| AtomicWrite::new(vec![PersistentRepr::new(pid.clone(), seq, "x")]))
                .collect::<Vec<_>>();
            let journal = Arc::clone(&journal);
            async move { journal.write(writes).await }
        });
        let mut results = futures::stream::iter(calls).buffered(64);
        while let Some(r) = results.next().await {
            let inner = r.unwrap_or_else(|e| panic!("round {round}: write failed: {e}"));
            assert!(inner.iter().all(|r| r.is_ok()), "round {round}: {inner:?}");
        }
        let replayed = seqs(journal.replay(&pid, 1, u64::MAX, u64::MAX)).await;
        assert_eq!(replayed, (1..=2000).collect::<Vec<u64>>(), "round {round}");
    }
}

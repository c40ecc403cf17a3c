//! The snapshot policy: every N events and on demand; keeping only the youngest snapshots;
//! deleting the events the oldest kept snapshot covers. Each option deletes exactly what it
//! says, and recovery still reaches the full state afterwards.

mod common;

use common::account::{Account, AccountCommand, Balance};
use common::{broker, unique_pid, Broker};

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use kafka_persistence::entities::{Entities, EntitiesConfig};
use kafka_persistence::entity::{Behavior, CodecError, EntityError, Handled};
use kafka_persistence::journal::Journal;
use kafka_persistence::snapshot::{SnapshotSelectionCriteria, SnapshotStore};
use kafka_persistence::snapshot_policy::SnapshotPolicy;

/// Every snapshot of `pid`, youngest first.
async fn snapshot_seqs(store: &SnapshotStore, pid: &str) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut criteria = SnapshotSelectionCriteria::latest();
    while let Some(s) = store.load(pid, criteria).await.expect("load") {
        let seq = s.metadata.sequence_nr;
        seqs.push(seq);
        if seq <= 1 {
            break;
        }
        criteria = criteria.with_max_sequence_nr(seq - 1);
    }
    seqs.reverse();
    seqs
}

async fn event_seqs(journal: &Journal, pid: &str) -> Vec<u64> {
    journal
        .replay(pid, 1, u64::MAX, u64::MAX)
        .map_ok(|e| e.sequence_nr)
        .try_collect()
        .await
        .expect("replay")
}

struct Outcome {
    snapshots: Vec<u64>,
    deleted_to: u64,
    events: Vec<u64>,
}

/// Deposits 1..=10 under `policy` (with on-demand snapshots after the deposits listed in
/// `on_demand`), then checks that a fresh runtime recovers the full state.
async fn run(broker: &Broker, policy: SnapshotPolicy, on_demand: &[u64]) -> Outcome {
    let (journal, store) = broker.parts().await;
    let pid = unique_pid("policy");
    let accounts = Entities::new(
        Arc::clone(&journal),
        Arc::clone(&store),
        Account::new(policy),
        EntitiesConfig::default().with_ask_timeout(Duration::from_secs(30)),
    );
    let handle = accounts.entity(pid.clone());
    for n in 1..=10u64 {
        handle
            .ask(AccountCommand::Deposit(n))
            .await
            .expect("deposit");
        if on_demand.contains(&n) {
            let saved = handle.snapshot().await.expect("snapshot on demand");
            assert_eq!(saved.sequence_nr, n);
        }
    }
    accounts.shutdown().await;
    let outcome = Outcome {
        snapshots: snapshot_seqs(&store, &pid).await,
        deleted_to: journal.deleted_to(&pid).await.expect("deleted_to"),
        events: event_seqs(&journal, &pid).await,
    };
    // Nothing recovery needs is gone: a new process recovers all ten deposits.
    let (journal2, store2) = broker.parts().await;
    let again = Entities::new(
        journal2,
        store2,
        Account::new(policy),
        EntitiesConfig::default(),
    );
    let state = again
        .entity(pid)
        .state(|b: &Balance| b.clone())
        .await
        .expect("recover");
    assert_eq!(state.balance, 55);
    outcome
}

#[tokio::test]
async fn every_n_events_keeps_every_snapshot_and_every_event() {
    let broker = broker().await;
    let o = run(&broker, SnapshotPolicy::every(3), &[]).await;
    assert_eq!(o.snapshots, vec![3, 6, 9]);
    assert_eq!(o.deleted_to, 0);
    assert_eq!(o.events, (1..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn keep_one_deletes_the_older_snapshots_only() {
    let broker = broker().await;
    let o = run(&broker, SnapshotPolicy::every(3).keep_snapshots(1), &[]).await;
    assert_eq!(o.snapshots, vec![9]);
    assert_eq!(o.deleted_to, 0);
    assert_eq!(o.events, (1..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn keep_two_and_delete_events_deletes_up_to_the_older_kept_snapshot() {
    let broker = broker().await;
    let policy = SnapshotPolicy::every(3)
        .keep_snapshots(2)
        .delete_events(true);
    let o = run(&broker, policy, &[]).await;
    assert_eq!(o.snapshots, vec![6, 9]);
    assert_eq!(o.deleted_to, 6);
    assert_eq!(o.events, vec![7, 8, 9, 10]);
}

#[tokio::test]
async fn delete_events_alone_keeps_the_snapshots_and_deletes_to_the_latest() {
    let broker = broker().await;
    let o = run(&broker, SnapshotPolicy::every(3).delete_events(true), &[]).await;
    assert_eq!(o.snapshots, vec![3, 6, 9]);
    assert_eq!(o.deleted_to, 9);
    assert_eq!(o.events, vec![10]);
}

#[tokio::test]
async fn on_demand_snapshots_follow_the_same_deletion_rules() {
    let broker = broker().await;
    let o = run(&broker, SnapshotPolicy::on_demand(), &[4, 7]).await;
    assert_eq!(o.snapshots, vec![4, 7]);
    assert_eq!(o.deleted_to, 0);
    let policy = SnapshotPolicy::on_demand()
        .keep_snapshots(1)
        .delete_events(true);
    let o = run(&broker, policy, &[4, 7]).await;
    assert_eq!(o.snapshots, vec![7]);
    assert_eq!(o.deleted_to, 7);
    assert_eq!(o.events, vec![8, 9, 10]);
}

/// The account, except that its state cannot be encoded: every snapshot fails.
struct Unsnapshottable(Account);

impl Behavior for Unsnapshottable {
    type State = Balance;
    type Command = AccountCommand;
    type Event = common::account::AccountEvent;
    type Rejection = String;

    fn handle(&self, s: &Balance, c: AccountCommand) -> Result<Vec<Self::Event>, String> {
        self.0.handle(s, c)
    }
    fn apply(&self, s: &mut Balance, e: &Self::Event) {
        self.0.apply(s, e)
    }
    fn encode_event(&self, e: &Self::Event) -> Result<(String, bytes::Bytes), CodecError> {
        self.0.encode_event(e)
    }
    fn decode_event(&self, m: &str, p: &bytes::Bytes) -> Result<Self::Event, CodecError> {
        self.0.decode_event(m, p)
    }
    fn encode_state(&self, _: &Balance) -> Result<bytes::Bytes, CodecError> {
        Err(CodecError::new("this state has no encoding"))
    }
    fn decode_state(&self, s: &bytes::Bytes) -> Result<Balance, CodecError> {
        self.0.decode_state(s)
    }
    fn snapshot_policy(&self) -> SnapshotPolicy {
        SnapshotPolicy::every(2)
    }
}

#[tokio::test]
async fn a_failed_automatic_snapshot_does_not_fail_the_command_but_one_on_demand_does() {
    let broker = broker().await;
    let (journal, store) = broker.parts().await;
    let pid = unique_pid("no-snapshot");
    let accounts = Entities::new(
        Arc::clone(&journal),
        Arc::clone(&store),
        Unsnapshottable(Account::new(SnapshotPolicy::on_demand())),
        EntitiesConfig::default(),
    );
    let handle = accounts.entity(pid.clone());
    for n in 1..=3u64 {
        assert_eq!(
            handle
                .ask(AccountCommand::Deposit(n))
                .await
                .expect("deposit"),
            Handled::Persisted { sequence_nr: n }
        );
    }
    assert!(matches!(
        handle.snapshot().await,
        Err(EntityError::Encode(_))
    ));
    assert!(snapshot_seqs(&store, &pid).await.is_empty());
    assert_eq!(event_seqs(&journal, &pid).await, vec![1, 2, 3]);
    assert_eq!(accounts.stats().failed, 0, "the entity kept running");
}

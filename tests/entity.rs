//! The entity runtime: commands persist events atomically, recovery rebuilds the state from
//! the latest snapshot and the events after it, a second incarnation fences the first.

mod common;

use common::{broker, unique_pid};

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use kafka_persistence::entity::{Behavior, CodecError, Entity, EntityError, Handled};
use kafka_persistence::journal::PersistentRepr;
use kafka_persistence::snapshot::SnapshotSelectionCriteria;

/// A bank account: deposits and withdrawals; an overdraft is refused.
#[derive(Debug, Clone, Copy)]
struct Account {
    snapshot_every: Option<u64>,
}

#[derive(Debug, PartialEq)]
enum Command {
    Deposit(u64),
    Withdraw(u64),
    /// Two events in one command: must be stored atomically.
    Transfer {
        fee: u64,
        amount: u64,
    },
}

impl Behavior for Account {
    type State = u64;
    type Command = Command;
    type Event = i64;
    type Rejection = String;

    fn handle(&self, balance: &u64, command: Command) -> Result<Vec<i64>, String> {
        match command {
            Command::Deposit(n) => Ok(vec![n as i64]),
            Command::Withdraw(n) if n > *balance => Err(format!("balance {balance} < {n}")),
            Command::Withdraw(n) => Ok(vec![-(n as i64)]),
            Command::Transfer { fee, amount } if fee + amount > *balance => Err("overdraft".into()),
            Command::Transfer { fee, amount } => Ok(vec![-(fee as i64), -(amount as i64)]),
        }
    }

    fn apply(&self, balance: &mut u64, event: &i64) {
        *balance = balance.saturating_add_signed(*event);
    }

    fn encode_event(&self, event: &i64) -> Result<(String, Bytes), CodecError> {
        Ok(("amount".to_string(), Bytes::from(event.to_string())))
    }

    fn decode_event(&self, manifest: &str, payload: &Bytes) -> Result<i64, CodecError> {
        if manifest != "amount" {
            return Err(CodecError::new(format!("unknown manifest {manifest:?}")));
        }
        std::str::from_utf8(payload)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| CodecError::new("not an amount"))
    }

    fn encode_state(&self, balance: &u64) -> Result<Bytes, CodecError> {
        Ok(Bytes::from(format!("balance={balance}")))
    }

    fn decode_state(&self, snapshot: &Bytes) -> Result<u64, CodecError> {
        std::str::from_utf8(snapshot)
            .ok()
            .and_then(|s| s.strip_prefix("balance="))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| CodecError::new("not a balance snapshot"))
    }

    fn snapshot_every(&self) -> Option<u64> {
        self.snapshot_every
    }
}

#[tokio::test]
async fn commands_persist_events_and_recovery_rebuilds_state() {
    let broker = broker().await;
    let (journal, store) = broker.parts().await;
    let pid = unique_pid("account");
    let account = Account {
        snapshot_every: None,
    };
    let mut entity = Entity::recover(
        Arc::clone(&journal),
        Arc::clone(&store),
        pid.clone(),
        account,
    )
    .await
    .expect("recover new entity");
    assert_eq!(*entity.state(), 0);
    assert_eq!(entity.last_sequence_nr(), 0);

    assert_eq!(
        entity.handle(Command::Deposit(100)).await.expect("deposit"),
        Handled::Persisted { sequence_nr: 1 }
    );
    assert_eq!(
        entity
            .handle(Command::Withdraw(500))
            .await
            .expect("withdraw"),
        Handled::Refused("balance 100 < 500".to_string())
    );
    assert_eq!(
        entity
            .handle(Command::Transfer { fee: 1, amount: 29 })
            .await
            .expect("transfer"),
        Handled::Persisted { sequence_nr: 3 }
    );
    assert_eq!(*entity.state(), 70);

    // The transfer's two events were one atomic write; the journal holds exactly 1..=3.
    let events: Vec<PersistentRepr> = journal
        .replay(&pid, 1, u64::MAX, u64::MAX)
        .try_collect()
        .await
        .expect("replay");
    let seqs: Vec<u64> = events.iter().map(|e| e.sequence_nr).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert!(events
        .iter()
        .all(|e| e.manifest == "amount" && e.writer_uuid.len() == 32));

    // A new process (new journal and store) recovers the same state.
    let (journal2, store2) = broker.parts().await;
    let recovered = Entity::recover(journal2, store2, pid.clone(), account)
        .await
        .expect("recover again");
    assert_eq!(*recovered.state(), 70);
    assert_eq!(recovered.last_sequence_nr(), 3);
}

#[tokio::test]
async fn snapshots_are_taken_every_n_events_and_used_on_recovery() {
    let broker = broker().await;
    let (journal, store) = broker.parts().await;
    let pid = unique_pid("snap");
    let account = Account {
        snapshot_every: Some(3),
    };
    let mut entity = Entity::recover(
        Arc::clone(&journal),
        Arc::clone(&store),
        pid.clone(),
        account,
    )
    .await
    .expect("recover");
    for n in 1..=7u64 {
        entity.handle(Command::Deposit(n)).await.expect("deposit");
    }
    assert_eq!(*entity.state(), 28);
    let latest = store
        .load(&pid, SnapshotSelectionCriteria::latest())
        .await
        .expect("load")
        .expect("a snapshot after 6 events");
    assert_eq!(latest.metadata.sequence_nr, 6);
    assert_eq!(latest.snapshot, Bytes::from("balance=21"));

    // Delete the events the snapshot covers: recovery must still reach 28 from the snapshot.
    journal.delete_messages_to(&pid, 6).await.expect("delete");
    let recovered = Entity::recover(journal, store, pid, account)
        .await
        .expect("recover from snapshot");
    assert_eq!(*recovered.state(), 28);
    assert_eq!(recovered.last_sequence_nr(), 7);
}

#[tokio::test]
async fn a_second_incarnation_fences_the_first() {
    let broker = broker().await;
    let (journal, store) = broker.parts().await;
    let pid = unique_pid("fence");
    let account = Account {
        snapshot_every: None,
    };
    let mut first = Entity::recover(
        Arc::clone(&journal),
        Arc::clone(&store),
        pid.clone(),
        account,
    )
    .await
    .expect("first");
    first.handle(Command::Deposit(10)).await.expect("deposit");
    let mut second = Entity::recover(
        Arc::clone(&journal),
        Arc::clone(&store),
        pid.clone(),
        account,
    )
    .await
    .expect("second");
    second
        .handle(Command::Deposit(5))
        .await
        .expect("second writes 2");
    match first.handle(Command::Deposit(1)).await {
        Err(EntityError::Fenced(_)) => {}
        other => panic!("the first incarnation must be fenced, got {other:?}"),
    }
    let recovered = Entity::recover(journal, store, pid, account)
        .await
        .expect("recover");
    assert_eq!(*recovered.state(), 15);
    assert_eq!(recovered.last_sequence_nr(), 2);
}

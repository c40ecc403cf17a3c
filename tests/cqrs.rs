//! The cqrs-es adapter (feature `cqrs-es`): cqrs-es' own `TestFramework` for the aggregate,
//! and a `CqrsFramework` end to end on the test broker with a query processor: loading from
//! the latest snapshot and the events after it, commits as one atomic write, a concurrent
//! commit as cqrs-es' optimistic-lock error, snapshots without applying events twice.
#![cfg(feature = "cqrs-es")]

mod common;

use common::{broker, unique_pid};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cqrs_es::event_sink::EventSink;
use cqrs_es::test::TestFramework;
use cqrs_es::{
    Aggregate, AggregateContext, AggregateError, CqrsFramework, DomainEvent, EventEnvelope,
    EventStore, Query,
};
use futures::TryStreamExt;
use kafka_persistence::cqrs::KafkaEventStore;
use kafka_persistence::snapshot::SnapshotSelectionCriteria;

#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct BankAccount {
    opened: bool,
    balance: u64,
    /// Every event applied, counted: an event applied twice shows here.
    applied: u64,
}

#[derive(Debug)]
enum BankCommand {
    Open,
    Deposit(u64),
    Withdraw(u64),
    /// Three events in one command.
    DepositThrice(u64),
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum BankEvent {
    Opened,
    Deposited { amount: u64 },
    Withdrawn { amount: u64 },
}

impl DomainEvent for BankEvent {
    fn event_type(&self) -> String {
        match self {
            BankEvent::Opened => "Opened",
            BankEvent::Deposited { .. } => "Deposited",
            BankEvent::Withdrawn { .. } => "Withdrawn",
        }
        .to_string()
    }
    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

#[derive(Debug, PartialEq)]
struct BankError(String);

impl std::fmt::Display for BankError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BankError {}

impl Aggregate for BankAccount {
    const TYPE: &'static str = "account";
    type Command = BankCommand;
    type Event = BankEvent;
    type Error = BankError;
    type Services = ();

    async fn handle(
        &mut self,
        command: BankCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), BankError> {
        match command {
            BankCommand::Open if self.opened => return Err(BankError("already open".into())),
            BankCommand::Open => sink.write(BankEvent::Opened, self).await,
            _ if !self.opened => return Err(BankError("not open".into())),
            BankCommand::Deposit(amount) => sink.write(BankEvent::Deposited { amount }, self).await,
            BankCommand::Withdraw(amount) if amount > self.balance => {
                return Err(BankError("insufficient funds".into()))
            }
            BankCommand::Withdraw(amount) => {
                sink.write(BankEvent::Withdrawn { amount }, self).await
            }
            BankCommand::DepositThrice(amount) => {
                for _ in 0..3 {
                    sink.write(BankEvent::Deposited { amount }, self).await;
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: BankEvent) {
        self.applied += 1;
        match event {
            BankEvent::Opened => self.opened = true,
            BankEvent::Deposited { amount } => self.balance += amount,
            BankEvent::Withdrawn { amount } => self.balance -= amount,
        }
    }
}

#[test]
fn the_aggregate_under_cqrs_es_test_framework() {
    TestFramework::<BankAccount>::with(())
        .given_no_previous_events()
        .when(BankCommand::Open)
        .then_expect_events(vec![BankEvent::Opened]);
    TestFramework::<BankAccount>::with(())
        .given(vec![BankEvent::Opened, BankEvent::Deposited { amount: 10 }])
        .when(BankCommand::Withdraw(20))
        .then_expect_error_message("insufficient funds");
    TestFramework::<BankAccount>::with(())
        .given(vec![BankEvent::Opened])
        .when(BankCommand::DepositThrice(2))
        .then_expect_events(vec![BankEvent::Deposited { amount: 2 }; 3]);
}

/// A query processor recording what it was dispatched.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(String, usize, BankEvent)>>>);

#[async_trait::async_trait]
impl Query<BankAccount> for Recorder {
    async fn dispatch(&self, aggregate_id: &str, events: &[EventEnvelope<BankAccount>]) {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for e in events {
            seen.push((aggregate_id.to_string(), e.sequence, e.payload.clone()));
        }
    }
}

#[tokio::test]
async fn cqrs_framework_end_to_end_with_snapshots_and_a_query_processor() {
    let broker = broker().await;
    let (journal, store) = broker.parts().await;
    let recorder = Recorder::default();
    let cqrs = CqrsFramework::new(
        KafkaEventStore::<BankAccount>::new(Arc::clone(&journal), Arc::clone(&store))
            .with_snapshots(3),
        vec![Box::new(recorder.clone())],
        (),
    );
    let id = unique_pid("acct");
    cqrs.execute(&id, BankCommand::Open).await.expect("open");
    cqrs.execute(&id, BankCommand::Deposit(10))
        .await
        .expect("deposit");
    let metadata = HashMap::from([("user".to_string(), "ann".to_string())]);
    cqrs.execute_with_metadata(&id, BankCommand::DepositThrice(5), metadata)
        .await
        .expect("deposit thrice");
    match cqrs.execute(&id, BankCommand::Withdraw(1_000)).await {
        Err(AggregateError::UserError(BankError(m))) => assert_eq!(m, "insufficient funds"),
        other => panic!("expected the user error, got {other:?}"),
    }
    cqrs.execute(&id, BankCommand::Withdraw(4))
        .await
        .expect("withdraw");

    // The query processor saw every committed event once, in order.
    let seen = recorder.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let seqs: Vec<usize> = seen.iter().map(|(_, s, _)| *s).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    assert!(seen.iter().all(|(a, _, _)| a == &id));
    assert_eq!(seen[5].2, BankEvent::Withdrawn { amount: 4 });

    // Stored as the journal's events of "account|<id>", metadata included.
    let pid = KafkaEventStore::<BankAccount>::persistence_id(&id);
    let events: Vec<_> = journal
        .replay(&pid, 1, u64::MAX, u64::MAX)
        .try_collect()
        .await
        .expect("replay");
    assert_eq!(events.len(), 6);
    assert_eq!(events[2].manifest, "Deposited@1.0");
    assert_eq!(
        events[2].metadata.as_deref(),
        Some(&br#"{"user":"ann"}"#[..])
    );

    // Snapshots: the commit of 3..=5 crossed 3 (saved at 5), the one of 6 crossed 6. Each is
    // the aggregate as it was at its sequence number: nothing applied twice.
    let snapshot = store
        .load(
            &pid,
            SnapshotSelectionCriteria::latest().with_max_sequence_nr(5),
        )
        .await
        .expect("load")
        .expect("snapshot at 5");
    assert_eq!(snapshot.metadata.sequence_nr, 5);
    let at5: BankAccount = serde_json::from_slice(&snapshot.snapshot).expect("snapshot json");
    assert_eq!(
        at5,
        BankAccount {
            opened: true,
            balance: 25,
            applied: 5
        }
    );

    // A fresh store instance loads from the snapshot at 6: with the events deleted, only the
    // snapshot can give this state.
    journal.delete_messages_to(&pid, 6).await.expect("delete");
    let (journal2, store2) = broker.parts().await;
    let fresh = KafkaEventStore::<BankAccount>::new(journal2, store2).with_snapshots(3);
    let mut context = fresh.load_aggregate(&id).await.expect("load");
    assert_eq!(
        context.aggregate().clone(),
        BankAccount {
            opened: true,
            balance: 21,
            applied: 6
        }
    );
    assert_eq!(context.current_sequence, 6);
    assert!(fresh.load_events(&id).await.expect("events").is_empty());
}

#[tokio::test]
async fn a_concurrent_commit_is_the_optimistic_lock_error_and_stores_nothing() {
    let broker = broker().await;
    let (journal, store) = broker.parts().await;
    let events = KafkaEventStore::<BankAccount>::new(Arc::clone(&journal), Arc::clone(&store));
    let id = unique_pid("race");
    let cqrs = CqrsFramework::new(
        KafkaEventStore::<BankAccount>::new(Arc::clone(&journal), Arc::clone(&store)),
        vec![],
        (),
    );
    cqrs.execute(&id, BankCommand::Open).await.expect("open");
    // Two loads of the same version; both commit.
    let first = events.load_aggregate(&id).await.expect("load 1");
    let second = events.load_aggregate(&id).await.expect("load 2");
    assert_eq!(first.current_sequence, 1);
    let stored = events
        .commit(
            vec![BankEvent::Deposited { amount: 1 }],
            first,
            HashMap::new(),
        )
        .await
        .expect("first commit");
    assert_eq!(stored[0].sequence, 2);
    let refused = events
        .commit(
            vec![
                BankEvent::Deposited { amount: 7 },
                BankEvent::Deposited { amount: 7 },
            ],
            second,
            HashMap::new(),
        )
        .await;
    assert!(
        matches!(refused, Err(AggregateError::AggregateConflict)),
        "{refused:?}"
    );
    // Neither of the refused commit's two events is stored; a reload goes on from 2.
    let all = events.load_events(&id).await.expect("events");
    let payloads: Vec<BankEvent> = all.into_iter().map(|e| e.payload).collect();
    assert_eq!(
        payloads,
        vec![BankEvent::Opened, BankEvent::Deposited { amount: 1 }]
    );
    cqrs.execute(&id, BankCommand::Deposit(2))
        .await
        .expect("deposit after reload");
    let mut context = events.load_aggregate(&id).await.expect("load");
    assert_eq!(context.aggregate().balance, 3);
    assert_eq!(context.current_sequence, 3);
}

//! The cqrs-es adapter: a `CqrsFramework` whose event store is the Kafka journal and snapshot
//! store, with a query processor updating a read model. Runs on the embedded test broker:
//!
//! ```sh
//! cargo run --example cqrs_bank --features cqrs-es
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, CqrsFramework, DomainEvent, EventEnvelope, Query};
use kafka_persistence::cqrs::KafkaEventStore;
use kafka_persistence::journal::{Journal, JournalConfig};
use kafka_persistence::snapshot::{SnapshotConfig, SnapshotStore};
use kafka_persistence::testserver::TestServer;

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct BankAccount {
    balance: u64,
}

#[derive(Debug)]
enum BankCommand {
    Deposit(u64),
    Withdraw(u64),
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum BankEvent {
    Deposited { amount: u64 },
    Withdrawn { amount: u64 },
}

impl DomainEvent for BankEvent {
    fn event_type(&self) -> String {
        match self {
            BankEvent::Deposited { .. } => "Deposited".into(),
            BankEvent::Withdrawn { .. } => "Withdrawn".into(),
        }
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

#[derive(Debug)]
struct BankError(String);

impl std::fmt::Display for BankError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BankError {}

impl Aggregate for BankAccount {
    const TYPE: &'static str = "bank-account";
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
            BankCommand::Deposit(amount) => sink.write(BankEvent::Deposited { amount }, self).await,
            BankCommand::Withdraw(amount) if amount > self.balance => {
                return Err(BankError(format!("insufficient funds: {}", self.balance)))
            }
            BankCommand::Withdraw(amount) => {
                sink.write(BankEvent::Withdrawn { amount }, self).await
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: BankEvent) {
        match event {
            BankEvent::Deposited { amount } => self.balance += amount,
            BankEvent::Withdrawn { amount } => self.balance -= amount,
        }
    }
}

/// A read model: the balance of every account, kept by a query processor.
#[derive(Clone, Default)]
struct Balances(Arc<Mutex<HashMap<String, i64>>>);

#[async_trait::async_trait]
impl Query<BankAccount> for Balances {
    async fn dispatch(&self, aggregate_id: &str, events: &[EventEnvelope<BankAccount>]) {
        let mut balances = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let balance = balances.entry(aggregate_id.to_string()).or_default();
        for e in events {
            match e.payload {
                BankEvent::Deposited { amount } => *balance += amount as i64,
                BankEvent::Withdrawn { amount } => *balance -= amount as i64,
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let server = TestServer::start().await?;
    let bootstrap = server.bootstrap_servers();
    let journal = Arc::new(Journal::connect(JournalConfig::new(&bootstrap)).await?);
    let store = Arc::new(SnapshotStore::connect(SnapshotConfig::new(&bootstrap)).await?);
    let balances = Balances::default();
    let cqrs = CqrsFramework::new(
        KafkaEventStore::<BankAccount>::new(journal, store).with_snapshots(10),
        vec![Box::new(balances.clone())],
        (),
    );
    for _ in 0..25 {
        cqrs.execute("alice", BankCommand::Deposit(4)).await?;
    }
    if let Err(e) = cqrs.execute("alice", BankCommand::Withdraw(1_000)).await {
        println!("refused: {e}");
    }
    cqrs.execute("alice", BankCommand::Withdraw(30)).await?;
    let read_model = balances.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    println!("read model: {read_model:?}");
    Ok(())
}

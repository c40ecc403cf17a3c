//! A bank account as an entity behind handles: snapshots every 5 events (keeping two and
//! deleting the events they cover), passivation after 200 ms idle, at most 2 accounts in
//! memory, and recovery on the next request. Runs on the embedded test broker:
//!
//! ```sh
//! cargo run --example bank_account
//! ```

use std::sync::Arc;
use std::time::Duration;

use kafka_persistence::entities::{Entities, EntitiesConfig};
use kafka_persistence::entity::Handled;
use kafka_persistence::journal::{Journal, JournalConfig};
use kafka_persistence::snapshot::{SnapshotConfig, SnapshotStore};
use kafka_persistence::testserver::TestServer;

#[path = "shared/bank.rs"]
mod bank;
use bank::{Account, AccountCommand, BankAccount};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let server = TestServer::start().await?; // or your cluster's bootstrap servers
    let bootstrap = server.bootstrap_servers();
    let journal = Arc::new(Journal::connect(JournalConfig::new(&bootstrap)).await?);
    let store = Arc::new(SnapshotStore::connect(SnapshotConfig::new(&bootstrap)).await?);
    let accounts = Entities::new(
        Arc::clone(&journal),
        store,
        BankAccount::new(),
        EntitiesConfig::default()
            .with_idle_timeout(Some(Duration::from_millis(200)))
            .with_max_entities(2),
    );

    let alice = accounts.entity("account-alice");
    for _ in 0..12 {
        alice.ask(AccountCommand::Deposit(10)).await?;
    }
    match alice.ask(AccountCommand::Withdraw(1_000)).await? {
        Handled::Refused(why) => println!("alice: refused: {why}"),
        Handled::Persisted { sequence_nr } => println!("alice: withdrew at {sequence_nr}"),
    }
    println!(
        "alice: balance {}, events deleted up to {} (covered by the older kept snapshot)",
        alice.state(|a: &Account| a.balance).await?,
        journal.deleted_to("account-alice").await?
    );

    // Two more accounts: at most two in memory, so alice (least recently used) stops.
    for name in ["account-bob", "account-carol"] {
        accounts.ask(name, AccountCommand::Deposit(5)).await?;
    }
    println!(
        "in memory: {} (alice: {})",
        accounts.running(),
        accounts.is_running("account-alice")
    );

    // Idle passivation, then recovery from the latest snapshot and the events after it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("after 500 ms idle, in memory: {}", accounts.running());
    alice.ask(AccountCommand::Withdraw(20)).await?;
    println!(
        "alice recovered: balance {}",
        alice.state(|a: &Account| a.balance).await?
    );
    println!("{:?}", accounts.stats());
    accounts.shutdown().await;
    Ok(())
}

//! An external consumer of the `events` topic: every event the journal stores is also
//! published there (key = persistence id, value = the `Event` protobuf, wire-compatible with
//! the Scala plugin's `EventFormat`), so any Kafka client in any language can build read
//! models from it. This one uses the crate's own client and `journal::Event::decode`:
//!
//! ```sh
//! cargo run --example events_consumer
//! ```

use kafka_persistence::journal::{AtomicWrite, Event, Journal, JournalConfig, PersistentRepr};
use kafka_persistence::testserver::TestServer;
use kafka_persistence::wire::{Client, ClientConfig, FetchRequest, OffsetSpec};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let server = TestServer::start().await?;
    let bootstrap = server.bootstrap_servers();
    let journal = Journal::connect(JournalConfig::new(&bootstrap)).await?;
    for (pid, seq, what) in [
        ("cart-1", 1, "added apple"),
        ("cart-2", 1, "added pear"),
        ("cart-1", 2, "checked out"),
    ] {
        let repr = PersistentRepr::new(pid, seq, what).with_manifest("CartEvent@1");
        journal.write(vec![AtomicWrite::new(vec![repr])]).await?;
    }

    // The consumer: another process, knowing only the topic name.
    let client = Client::connect(ClientConfig::new(bootstrap)).await?;
    let topic = client
        .topic_metadata("events")
        .await?
        .ok_or("no `events` topic yet")?;
    let mut seen = 0;
    for partition in &topic.partitions {
        let mut offset = client
            .list_offset("events", partition.partition, OffsetSpec::Earliest)
            .await?;
        let end = client
            .list_offset("events", partition.partition, OffsetSpec::Latest)
            .await?;
        while offset < end {
            let response = client
                .fetch(FetchRequest::new("events", partition.partition, offset))
                .await?;
            for record in &response.records {
                let Some(value) = &record.value else { continue };
                let event = Event::decode(value)?;
                println!(
                    "partition {} offset {}: {} #{} {}",
                    partition.partition,
                    record.offset,
                    event.persistence_id,
                    event.sequence_nr,
                    String::from_utf8_lossy(&event.payload)
                );
                seen += 1;
            }
            offset = offset.max(response.next_offset);
        }
    }
    println!("{seen} events");
    Ok(())
}

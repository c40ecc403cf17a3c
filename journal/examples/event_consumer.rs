//! An external consumer of the journal's event topic.
//!
//! `cargo run -p kafka-persistence-journal --example event_consumer [BOOTSTRAP [TOPIC]]`
//!
//! Without arguments it starts an embedded test server and writes a few events first. It reads
//! every partition of the topic (default `events`) from the beginning, decodes each value with
//! [`Event::decode`] (the Scala plugin's `EventFormat`) and prints it.

use std::error::Error;

use kafka_persistence_journal::{AtomicWrite, Event, Journal, JournalConfig, PersistentRepr};
use kafka_persistence_testserver::TestServer;
use kafka_persistence_wire::{Client, ClientConfig, FetchRequest};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let mut _server = None;
    let bootstrap = match args.next() {
        Some(b) => b,
        None => {
            let server = TestServer::start().await?;
            let bootstrap = server.bootstrap_servers();
            let journal = Journal::connect(JournalConfig::new(&bootstrap)).await?;
            let writes = (1..=3)
                .map(|s| {
                    AtomicWrite::new(vec![PersistentRepr::new("cart-1", s, format!("item-{s}"))
                        .with_manifest("ItemAdded")])
                })
                .collect();
            journal.write(writes).await?;
            _server = Some(server);
            bootstrap
        }
    };
    let topic = args.next().unwrap_or_else(|| "events".to_string());
    let client = Client::connect(ClientConfig::new(bootstrap)).await?;
    let Some(meta) = client.topic_metadata(&topic).await? else {
        println!("topic {topic} does not exist");
        return Ok(());
    };
    for p in &meta.partitions {
        let mut offset = 0;
        loop {
            let resp = client
                .fetch(FetchRequest::new(topic.as_str(), p.partition, offset))
                .await?;
            if resp.records.is_empty() {
                break;
            }
            for r in resp.records {
                offset = r.offset + 1;
                match r.value.as_deref().map(Event::decode) {
                    Some(Ok(e)) => println!(
                        "{topic}/{} @{}: {} #{} manifest={:?} payload={:?}",
                        p.partition,
                        r.offset,
                        e.persistence_id,
                        e.sequence_nr,
                        e.manifest.as_deref().map(String::from_utf8_lossy),
                        String::from_utf8_lossy(&e.payload)
                    ),
                    Some(Err(err)) => {
                        println!("{topic}/{} @{}: undecodable: {err}", p.partition, r.offset)
                    }
                    None => println!("{topic}/{} @{}: tombstone", p.partition, r.offset),
                }
            }
            if offset >= resp.high_watermark {
                break;
            }
        }
    }
    Ok(())
}

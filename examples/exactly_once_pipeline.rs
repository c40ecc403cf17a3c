//! An exactly-once pipeline: `orders` → uppercase → `shipments`, with the transactional
//! consume-transform-produce stage. Every commit interval, the outputs and the consumed
//! offsets commit in one transaction, so a `read_committed` reader of `shipments` sees each
//! order exactly once even across crashes (a restarted instance with the same
//! `transactional.id` aborts what the crashed one left open and resumes at the committed
//! offsets). Runs against an in-process broker:
//!
//! ```sh
//! cargo run --example exactly_once_pipeline
//! ```

use std::time::Duration;

use kafka_persistence::stream::{
    run_transactional, TransactionalControl, TransactionalOutput, TransactionalSettings,
};
use kafka_persistence::testserver::TestServer;
use kafka_persistence::wire::{
    Client, ClientConfig, ConsumerConfig, IsolationLevel, NewTopic, OffsetReset, ProducerConfig,
    Record, TopicPartition,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn run() -> Result<(), BoxError> {
    let server = TestServer::start().await?;
    let client = Client::connect(ClientConfig::new(server.bootstrap_servers())).await?;
    client
        .create_topics(vec![
            NewTopic::new("orders", 1, 1),
            NewTopic::new("shipments", 1, 1),
        ])
        .await?;
    let orders = client.producer(ProducerConfig::default());
    for o in ["apple", "pear", "plum"] {
        orders.send("orders", 0, vec![Record::new(o, 0)]).await?;
    }

    // The stage: a read_committed group consumer and a transactional producer.
    let mut consumer = client.consumer(
        ConsumerConfig::new("shipping")
            .with_isolation(IsolationLevel::ReadCommitted)
            .with_auto_offset_reset(OffsetReset::Earliest),
    )?;
    consumer.subscribe(vec!["orders".to_owned()], None)?;
    let producer = client
        .transactional_producer(ProducerConfig::default().with_transactional_id("shipping-0"))
        .await?;
    let control = TransactionalControl::default();
    let stage = tokio::spawn(run_transactional(
        consumer,
        producer,
        TransactionalSettings {
            commit_interval: Duration::from_millis(100),
            ..TransactionalSettings::default()
        },
        control.clone(),
        |r| {
            let order = String::from_utf8_lossy(r.record.value.as_deref().unwrap_or_default());
            vec![TransactionalOutput::single(
                "shipments",
                0,
                Record::new(order.to_uppercase(), 0),
            )]
        },
    ));

    // A read_committed reader of the output.
    let mut reader = client.consumer(
        ConsumerConfig::default()
            .with_isolation(IsolationLevel::ReadCommitted)
            .with_auto_offset_reset(OffsetReset::Earliest),
    )?;
    reader.assign(vec![TopicPartition::new("shipments", 0)])?;
    let mut shipped = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while shipped.len() < 3 && std::time::Instant::now() < deadline {
        for r in reader.poll(Duration::from_millis(200)).await? {
            shipped.push(
                String::from_utf8_lossy(r.record.value.as_deref().unwrap_or_default()).into_owned(),
            );
        }
    }
    control.stop();
    let stats = stage.await??;
    println!(
        "shipped {shipped:?}; {} records in {} transactions",
        stats.records_committed, stats.commits
    );
    assert_eq!(shipped, ["APPLE", "PEAR", "PLUM"]);
    server.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    run().await
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_example_runs() {
        if let Err(e) = super::run().await {
            panic!("the example failed: {e}");
        }
    }
}

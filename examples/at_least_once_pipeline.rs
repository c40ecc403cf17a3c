//! An at-least-once pipeline: `orders` → uppercase → `labels`, with a committable source, the
//! producing flow and the committer. An order's offset is committed only after its label is
//! acknowledged, so a crash loses nothing (what was not committed is consumed again, and its
//! label may then be written twice). The draining shutdown stops polling, lets the orders in
//! flight through, commits their offsets and leaves the group. Runs against an in-process
//! broker and checks its own result:
//!
//! ```sh
//! cargo run --example at_least_once_pipeline
//! ```

use std::time::Duration;

use futures::StreamExt;
use kafka_persistence::stream::{
    commit_offsets, committable_source, producer_flow, CommitterSettings, ProducerMessage,
    SourceSettings,
};
use kafka_persistence::testserver::TestServer;
use kafka_persistence::wire::{
    Client, ClientConfig, ConsumerConfig, Error, FetchRequest, NewTopic, OffsetReset, OffsetSpec,
    ProducerConfig, Record, TopicPartition,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const ORDERS: [&str; 4] = ["apple", "pear", "plum", "fig"];

async fn run() -> Result<(), BoxError> {
    let server = TestServer::start().await?;
    let client = Client::connect(ClientConfig::new(server.bootstrap_servers())).await?;
    client
        .create_topics(vec![
            NewTopic::new("orders", 1, 1),
            NewTopic::new("labels", 1, 1),
        ])
        .await?;
    let producer = client.producer(ProducerConfig::default());
    for o in ORDERS {
        producer.send("orders", 0, vec![Record::new(o, 0)]).await?;
    }

    // committable_source -> transform -> producer_flow -> commit_offsets.
    let mut consumer = client
        .consumer(ConsumerConfig::new("labelling").with_auto_offset_reset(OffsetReset::Earliest))?;
    consumer.subscribe(vec!["orders".to_owned()], None)?;
    let (orders, control) = committable_source(consumer, SourceSettings::default());
    let labels = orders.filter_map(|m| async move {
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                eprintln!("the source failed: {e}");
                return None;
            }
        };
        let order = String::from_utf8_lossy(m.record.record.value.as_deref().unwrap_or_default());
        let label = Record::new(order.to_uppercase(), 0);
        Some(ProducerMessage::single("labels", 0, label, m.offset))
    });
    let acknowledged = producer_flow(producer, labels, 16).filter_map(|r| async move {
        match r {
            Ok((_metadata, offset)) => Some(offset),
            Err(e) => {
                // Not committed: consumed again by the next instance.
                eprintln!("a label was not written: {e}");
                None
            }
        }
    });
    let pipeline = tokio::spawn(commit_offsets(acknowledged, CommitterSettings::default()));

    // Once every label is written, drain: the committer commits the last offsets.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while client.list_offset("labels", 0, OffsetSpec::Latest).await? < ORDERS.len() as i64 {
        if std::time::Instant::now() > deadline {
            return Err("the labels never arrived".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = control
        .drain_and_shutdown(async { pipeline.await.unwrap_or(Err(Error::Closed)) })
        .await?;
    println!("{} offsets in {} commits", stats.offsets, stats.commits);

    let labels: Vec<String> = client
        .fetch(FetchRequest::new("labels", 0, 0))
        .await?
        .records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    println!("labels: {labels:?}");
    assert_eq!(labels, ["APPLE", "PEAR", "PLUM", "FIG"]);
    let mut check = client.consumer(ConsumerConfig::new("labelling"))?;
    let tp = TopicPartition::new("orders", 0);
    check.assign(vec![tp.clone()])?;
    let committed = check.committed(std::slice::from_ref(&tp)).await?;
    let committed = committed.get(&tp).cloned().flatten().map(|o| o.offset);
    assert_eq!(
        committed,
        Some(ORDERS.len() as i64),
        "every order is committed"
    );
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

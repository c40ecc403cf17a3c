//! A persistent stateful stage: word counts over the `words` topic, event-sourced per input
//! partition through the journal and the snapshot store, with each new count sent to
//! `counts`. The first instance handles some words and stops; a second instance (a restart,
//! or another process) recovers the counts from the snapshot and the events after it and
//! goes on, so every word is counted exactly once. Runs against an in-process broker and
//! checks its own result:
//!
//! ```sh
//! cargo run --example persistent_stage
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_persistence::codec::JsonCodec;
use kafka_persistence::entity::{Behavior, CodecError};
use kafka_persistence::journal::{Journal, JournalConfig};
use kafka_persistence::snapshot::{SnapshotConfig, SnapshotStore};
use kafka_persistence::snapshot_policy::SnapshotPolicy;
use kafka_persistence::stream::{
    recover_stage_state, PersistentStage, PersistentStageControl, ProducerMessage,
};
use kafka_persistence::testserver::TestServer;
use kafka_persistence::wire::{
    Client, ClientConfig, ConsumerConfig, ConsumerRecord, NewTopic, OffsetReset, ProducerConfig,
    Record, TopicPartition,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One word counted.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Counted {
    word: String,
    count: u64,
}

/// The word counts of one input partition.
struct WordCount {
    events: JsonCodec<Counted>,
    state: JsonCodec<BTreeMap<String, u64>>,
}

impl Behavior for WordCount {
    type State = BTreeMap<String, u64>;
    type Command = ConsumerRecord;
    type Event = Counted;
    type Rejection = String;

    fn handle(&self, counts: &Self::State, r: ConsumerRecord) -> Result<Vec<Counted>, String> {
        let word = String::from_utf8(r.record.value.as_deref().unwrap_or_default().to_vec())
            .map_err(|_| format!("offset {}: not UTF-8", r.offset()))?;
        let count = counts.get(&word).copied().unwrap_or(0) + 1;
        Ok(vec![Counted { word, count }])
    }
    fn apply(&self, counts: &mut Self::State, e: &Counted) {
        counts.insert(e.word.clone(), e.count);
    }
    fn encode_event(&self, e: &Counted) -> Result<(String, Bytes), CodecError> {
        self.events.encode(e)
    }
    fn decode_event(&self, manifest: &str, payload: &Bytes) -> Result<Counted, CodecError> {
        self.events.decode(manifest, payload)
    }
    fn encode_state(&self, s: &Self::State) -> Result<Bytes, CodecError> {
        self.state.encode_state(s)
    }
    fn decode_state(&self, payload: &Bytes) -> Result<Self::State, CodecError> {
        self.state.decode_state(payload)
    }
    fn snapshot_policy(&self) -> SnapshotPolicy {
        SnapshotPolicy::every(3)
    }
}

fn word_count() -> WordCount {
    WordCount {
        events: JsonCodec::new("Counted", 1),
        state: JsonCodec::new("WordCounts", 1),
    }
}

/// Runs an instance of the stage until the group committed `offset` on `words`/0.
async fn run_until(
    client: &Client,
    journal: &Arc<Journal>,
    store: &Arc<SnapshotStore>,
    offset: i64,
) -> Result<(), BoxError> {
    let consumer = client.consumer(
        ConsumerConfig::new("word-count").with_auto_offset_reset(OffsetReset::Earliest),
    )?;
    let stage = PersistentStage::new(
        "word-count",
        Arc::clone(journal),
        Arc::clone(store),
        word_count(),
    )
    .with_outputs(client.producer(ProducerConfig::default()), |e: &Counted| {
        let line = format!("{}={}", e.word, e.count);
        vec![ProducerMessage::single(
            "counts",
            0,
            Record::new(line, 0),
            (),
        )]
    });
    let control = PersistentStageControl::default();
    let running = tokio::spawn(stage.run(consumer, vec!["words".to_owned()], control.clone()));
    let mut check = client.consumer(ConsumerConfig::new("word-count"))?;
    let tp = TopicPartition::new("words", 0);
    check.assign(vec![tp.clone()])?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let committed = check.committed(std::slice::from_ref(&tp)).await?;
        if committed.get(&tp).cloned().flatten().map(|o| o.offset) == Some(offset) {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("the stage never committed {offset}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    control.stop();
    let stats = running.await??;
    println!(
        "instance: {} words applied, {} skipped, {} recovered from a snapshot, {} snapshots",
        stats.records_applied,
        stats.records_skipped,
        stats.recoveries_from_snapshot,
        stats.snapshots
    );
    Ok(())
}

async fn send_words(client: &Client, words: &[&str]) -> Result<(), BoxError> {
    let producer = client.producer(ProducerConfig::default());
    for w in words {
        producer
            .send("words", 0, vec![Record::new(w.to_string(), 0)])
            .await?;
    }
    Ok(())
}

async fn run() -> Result<(), BoxError> {
    let server = TestServer::start().await?;
    let bootstrap = server.bootstrap_servers();
    let client = Client::connect(ClientConfig::new(&bootstrap)).await?;
    client
        .create_topics(vec![
            NewTopic::new("words", 1, 1),
            NewTopic::new("counts", 1, 1),
        ])
        .await?;
    let journal = Arc::new(Journal::connect(JournalConfig::new(&bootstrap)).await?);
    let store = Arc::new(SnapshotStore::connect(SnapshotConfig::new(&bootstrap)).await?);

    send_words(&client, &["apple", "pear", "apple", "plum"]).await?;
    run_until(&client, &journal, &store, 4).await?;
    // A second instance recovers the counts and goes on.
    send_words(&client, &["apple", "plum"]).await?;
    run_until(&client, &journal, &store, 6).await?;

    let (counts, next) = recover_stage_state(
        journal,
        store,
        "word-count",
        &TopicPartition::new("words", 0),
        word_count(),
    )
    .await?;
    println!("counts {counts:?} after input offset {next}");
    let expected: BTreeMap<String, u64> = [
        ("apple".to_owned(), 3),
        ("pear".to_owned(), 1),
        ("plum".to_owned(), 2),
    ]
    .into();
    assert_eq!(counts, expected);
    assert_eq!(next, 6);
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

//! The transactional consume-transform-produce stage (Alpakka's `Transactional.source` +
//! `Transactional.sink`): exactly once from input topics to output topics.
//!
//! One task owns the `read_committed` consumer and the transactional producer. It polls,
//! hands each record to the transform, sends what the transform returns in the open
//! transaction, and every `commit_interval` (or `max_records_per_transaction`) sends the
//! next offsets of what it consumed with the group's generation and member id
//! (`send_offsets_to_transaction`, KIP-447) and commits. Output and offsets therefore become
//! visible together or not at all:
//! - a crash leaves an open transaction that the next instance with the same
//!   `transactional.id` aborts (or the coordinator on its timeout); that instance resumes at
//!   the last committed offsets, so nothing is lost or doubled for `read_committed` readers;
//! - a rebalance that moves a partition makes the old owner's offsets fail the generation
//!   check: its transaction aborts, it rewinds to the committed offsets, and the new owner
//!   continues from the last commit;
//! - a fenced producer ([`Error::ProducerFenced`](crate::wire::Error)) ends the stage with
//!   that error: a newer instance took over.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::wire::{
    Consumer, ConsumerGroupMetadata, ConsumerRecord, Error, Record, TopicPartition,
    TransactionalProducer,
};

/// How the stage batches transactions.
#[derive(Debug, Clone)]
pub struct TransactionalSettings {
    /// Commit at least this often while records flow (default 100 ms, Alpakka's default).
    pub commit_interval: Duration,
    /// Commit after this many consumed records even within the interval (default 10,000).
    pub max_records_per_transaction: usize,
    /// One consumer poll waits at most this long (default 100 ms).
    pub poll_timeout: Duration,
}

impl Default for TransactionalSettings {
    fn default() -> Self {
        TransactionalSettings {
            commit_interval: Duration::from_millis(100),
            max_records_per_transaction: 10_000,
            poll_timeout: Duration::from_millis(100),
        }
    }
}

/// One output of the transform: `records` to `topic`/`partition` as one batch.
#[derive(Debug, Clone)]
pub struct TransactionalOutput {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The records (one batch).
    pub records: Vec<Record>,
}

impl TransactionalOutput {
    /// One record to `topic`/`partition`.
    pub fn single(topic: impl Into<String>, partition: i32, record: Record) -> Self {
        TransactionalOutput {
            topic: topic.into(),
            partition,
            records: vec![record],
        }
    }
}

/// What the stage did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionalStats {
    /// Input records whose outputs and offsets were committed.
    pub records_committed: u64,
    /// Transactions committed.
    pub commits: u64,
    /// Transactions aborted (and their input consumed again).
    pub aborts: u64,
}

/// Stops the stage: it commits the open transaction and returns.
#[derive(Debug, Clone, Default)]
pub struct TransactionalControl {
    stop: Arc<AtomicBool>,
}

impl TransactionalControl {
    /// Asks the stage to commit what it has and stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Runs the stage until stopped (then commits and returns its stats) or until an error it
/// cannot recover from (fencing, a failed abort). `transform` maps one consumed record to
/// its outputs (none to drop it). The consumer should use `isolation.level=read_committed`
/// when its input is itself transactional.
pub async fn run_transactional<F>(
    mut consumer: Consumer,
    producer: TransactionalProducer,
    settings: TransactionalSettings,
    control: TransactionalControl,
    mut transform: F,
) -> Result<TransactionalStats, Error>
where
    F: FnMut(&ConsumerRecord) -> Vec<TransactionalOutput>,
{
    let mut stats = TransactionalStats::default();
    // Next offsets consumed in the open transaction.
    let mut pending: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    let mut in_txn = 0u64;
    let mut started = Instant::now();
    let mut open = false;
    loop {
        let stopping = control.stop.load(Ordering::Acquire);
        let due = open
            && (stopping
                || started.elapsed() >= settings.commit_interval
                || in_txn as usize >= settings.max_records_per_transaction);
        if due {
            match commit(&mut consumer, &producer, &pending).await {
                Ok(()) => {
                    stats.commits += 1;
                    stats.records_committed += in_txn;
                }
                Err(e @ Error::ProducerFenced { .. }) => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "transaction failed: aborting and rewinding");
                    abort_and_rewind(&mut consumer, &producer, &pending).await?;
                    stats.aborts += 1;
                }
            }
            pending.clear();
            in_txn = 0;
            open = false;
        }
        if stopping {
            return Ok(stats);
        }
        let records = consumer.poll(settings.poll_timeout).await?;
        if records.is_empty() {
            continue;
        }
        if !open {
            producer.begin_transaction().await?;
            open = true;
            started = Instant::now();
        }
        let mut outputs = Vec::with_capacity(records.len());
        for r in &records {
            outputs.extend(
                transform(r)
                    .into_iter()
                    .map(|o| (o.topic, o.partition, o.records)),
            );
            in_txn += 1;
        }
        // Only the last (highest) offset per partition matters; a poll holds runs of
        // records per partition, so insert once per run.
        let mut last: Option<&ConsumerRecord> = None;
        for r in &records {
            if let Some(l) = last {
                if l.partition != r.partition || l.topic != r.topic {
                    pending.insert(l.topic_partition(), l.offset() + 1);
                }
            }
            last = Some(r);
        }
        if let Some(l) = last {
            pending.insert(l.topic_partition(), l.offset() + 1);
        }
        // One call per poll: the outcomes count at commit (which fails if a send failed).
        producer.enqueue_all(outputs).await?;
    }
}

/// Adds the offsets with the group's metadata and commits (which flushes the sends first and
/// fails if one of them failed).
async fn commit(
    consumer: &mut Consumer,
    producer: &TransactionalProducer,
    pending: &BTreeMap<TopicPartition, i64>,
) -> Result<(), Error> {
    let group = ConsumerGroupMetadata::of(consumer)
        .ok_or_else(|| Error::Config("the transactional stage needs a group.id".to_owned()))?;
    let offsets: Vec<(TopicPartition, i64)> =
        pending.iter().map(|(tp, o)| (tp.clone(), *o)).collect();
    producer
        .send_offsets_to_transaction(&offsets, &group)
        .await?;
    producer.commit_transaction().await
}

/// Aborts the open transaction and moves the consumer back to the committed offsets of the
/// partitions it consumed in it (still assigned ones; others have a new owner).
async fn abort_and_rewind(
    consumer: &mut Consumer,
    producer: &TransactionalProducer,
    pending: &BTreeMap<TopicPartition, i64>,
) -> Result<(), Error> {
    producer.abort_transaction().await?;
    let assigned = consumer.assignment();
    let parts: Vec<TopicPartition> = pending
        .keys()
        .filter(|tp| assigned.contains(tp))
        .cloned()
        .collect();
    if parts.is_empty() {
        return Ok(());
    }
    let committed = consumer.committed(&parts).await?;
    for tp in parts {
        match committed.get(&tp).and_then(|c| c.as_ref()) {
            Some(c) => consumer.seek(&tp, c.offset)?,
            None => {
                consumer
                    .seek_to_beginning(std::slice::from_ref(&tp))
                    .await?
            }
        }
    }
    Ok(())
}

//! Workload `transactional`: the consume-transform-produce of `at-least-once`, exactly once:
//! the outputs and the consumed offsets (`send_offsets_to_transaction` with the group's
//! metadata) are committed in one transaction every [`COMMIT_INTERVAL`] (100 ms), the
//! consumer reads `read_committed`.
//!
//! The clock starts when the first input record arrives and stops when the last transaction
//! is committed. Checked after each run: the output, read `read_committed`, holds every input
//! id exactly once, transformed, and the group committed the end of every input partition.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_persistence::stream::{
    run_transactional, TransactionalControl, TransactionalOutput, TransactionalSettings,
};
use kafka_persistence_wire::{
    Client, ConsumerConfig, IsolationLevel, OffsetReset, ProducerConfig, Record,
};

use crate::common::{
    check_committed, check_output, fresh_topic, now_ms, output_topic, rate, rdkafka_config,
    rdkafka_group_config, transform, BoxError, Input, COMMIT_INTERVAL, LINGER,
};

/// How long a run may take before it is reported as failed.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// Ours: `stream::run_transactional`, committing by the interval only.
pub(crate) async fn run_wire(input: &Input) -> Result<f64, BoxError> {
    let client = Client::connect(input.sec.wire(&input.bootstrap, "bench-wire")).await?;
    let output = output_topic(&client, input, "wire-txn-out").await?;
    let group = fresh_topic("wire-txn-group");
    let mut consumer = client.consumer(
        ConsumerConfig::new(group.clone())
            .with_auto_offset_reset(OffsetReset::Earliest)
            .with_isolation(IsolationLevel::ReadCommitted),
    )?;
    consumer.subscribe(vec![input.topic.clone()], None)?;
    let producer = client
        .transactional_producer(
            ProducerConfig::default()
                .with_transactional_id(fresh_topic("wire-txn-id"))
                .with_linger(LINGER),
        )
        .await?;
    let settings = TransactionalSettings {
        commit_interval: COMMIT_INTERVAL,
        max_records_per_transaction: usize::MAX,
        ..TransactionalSettings::default()
    };
    let control = TransactionalControl::default();
    let n = input.records;
    let ts = now_ms();
    let mut start = None;
    let mut consumed = 0usize;
    let stage = run_transactional(consumer, producer.clone(), settings, control.clone(), |r| {
        start.get_or_insert_with(Instant::now);
        consumed += 1;
        if consumed == n {
            control.stop();
        }
        let value = transform(r.record.value.as_deref().unwrap_or_default());
        vec![TransactionalOutput::single(
            output.clone(),
            r.partition,
            Record::new(Bytes::from(value), ts),
        )]
    });
    let stats = tokio::time::timeout(RUN_TIMEOUT, stage)
        .await
        .map_err(|_| "wire: the transactional stage timed out")??;
    let elapsed = start.map(|s| s.elapsed()).unwrap_or_default();
    producer.close().await?;
    if stats.records_committed != n as u64 {
        return Err(format!(
            "wire: {} of {n} records committed ({} commits, {} aborts)",
            stats.records_committed, stats.commits, stats.aborts
        )
        .into());
    }
    check_output(&client, input, &output).await?;
    check_committed(&client, input, &group).await?;
    let _ = client.delete_topics(&[output]).await;
    Ok(rate(n, elapsed))
}

/// rdkafka: a `BaseConsumer` (`read_committed`) and a transactional `ThreadedProducer` in a
/// blocking thread: `begin_transaction` at the first record, `send_offsets_to_transaction`
/// and `commit_transaction` every [`COMMIT_INTERVAL`].
pub(crate) async fn run_rdkafka(input: &Input, admin: &Client) -> Result<f64, BoxError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use rdkafka::{Message, Offset, TopicPartitionList};

    let output = output_topic(admin, input, "rdkafka-txn-out").await?;
    let group = fresh_topic("rdkafka-txn-group");
    let consumer: BaseConsumer = rdkafka_group_config(input, &group)
        .set("isolation.level", "read_committed")
        .create()?;
    consumer.subscribe(&[&input.topic])?;
    let producer: ThreadedProducer<DefaultProducerContext> =
        rdkafka_config(&input.bootstrap, &input.sec)
            .set("transactional.id", fresh_topic("rdkafka-txn-id"))
            .set("queue.buffering.max.messages", "1000000")
            .create()?;
    let timeout = Duration::from_secs(30);
    let n = input.records;
    let topic = input.topic.clone();
    let out = output.clone();
    let elapsed = tokio::task::spawn_blocking(move || -> Result<Duration, BoxError> {
        producer.init_transactions(timeout)?;
        let ts = now_ms();
        let mut consumed = 0usize;
        let mut pending: BTreeMap<i32, i64> = BTreeMap::new();
        let mut open: Option<Instant> = None;
        let mut start = None;
        let deadline = Instant::now() + RUN_TIMEOUT;
        loop {
            if let Some(began) = open {
                if consumed == n || began.elapsed() >= COMMIT_INTERVAL {
                    let mut tpl = TopicPartitionList::new();
                    for (p, o) in &pending {
                        tpl.add_partition_offset(&topic, *p, Offset::Offset(o + 1))?;
                    }
                    let meta = consumer
                        .group_metadata()
                        .ok_or("rdkafka: no group metadata")?;
                    producer.send_offsets_to_transaction(&tpl, &meta, timeout)?;
                    producer.commit_transaction(timeout)?;
                    pending.clear();
                    open = None;
                }
            }
            if consumed == n && open.is_none() {
                break;
            }
            if Instant::now() > deadline {
                return Err(
                    format!("rdkafka: {consumed} of {n} records in {RUN_TIMEOUT:?}").into(),
                );
            }
            let wait = open.map_or(COMMIT_INTERVAL, |b| {
                COMMIT_INTERVAL.saturating_sub(b.elapsed())
            });
            match consumer.poll(wait) {
                Some(Ok(m)) => {
                    start.get_or_insert_with(Instant::now);
                    if open.is_none() {
                        producer.begin_transaction()?;
                        open = Some(Instant::now());
                    }
                    let value = transform(m.payload().unwrap_or_default());
                    let mut record = BaseRecord::<(), [u8]>::to(&out)
                        .payload(&value[..])
                        .partition(m.partition())
                        .timestamp(ts);
                    loop {
                        match producer.send(record) {
                            Ok(()) => break,
                            Err((
                                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                                r,
                            )) => {
                                record = r;
                                std::thread::sleep(Duration::from_millis(1));
                            }
                            Err((e, _)) => return Err(e.into()),
                        }
                    }
                    pending.insert(m.partition(), m.offset());
                    consumed += 1;
                }
                Some(Err(e)) => return Err(e.into()),
                None => {}
            }
        }
        let elapsed = start.map(|s: Instant| s.elapsed()).unwrap_or_default();
        consumer.unsubscribe();
        Ok(elapsed)
    })
    .await??;
    check_output(admin, input, &output).await?;
    check_committed(admin, input, &group).await?;
    let _ = admin.delete_topics(&[output]).await;
    Ok(rate(n, elapsed))
}

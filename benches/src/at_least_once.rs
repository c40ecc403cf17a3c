//! Workload `at-least-once`: consume-transform-produce. One member of a fresh group consumes
//! the input topic, transforms each record ([`transform`]), produces it to the same partition
//! of a fresh output topic (acks=all, idempotent) and commits the offsets of what was
//! delivered every [`COMMIT_INTERVAL`], and once more at the end.
//!
//! The clock starts when the first input record arrives and stops when the last offsets are
//! committed. Checked after each run: the output holds every input id exactly once,
//! transformed, and the group committed the end of every input partition.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use kafka_persistence::stream::{
    commit_offsets, committable_source, producer_flow, CommitterSettings, ProducerMessage,
    SourceSettings,
};
use kafka_persistence_wire::sync::lock;
use kafka_persistence_wire::{
    Acks, Client, ConsumerConfig, Error, OffsetReset, ProducerConfig, Record,
};

use crate::common::{
    check_committed, check_output, fresh_topic, now_ms, output_topic, rate, rdkafka_config,
    rdkafka_group_config, transform, BoxError, Input, COMMIT_INTERVAL, LINGER,
};

/// Sends awaiting their acknowledgement at once, for both clients.
const MAX_IN_FLIGHT: usize = 10_000;
/// How long a run may take before it is reported as failed.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// Ours: `committable_source` -> `producer_flow` -> `commit_offsets` (by interval only).
pub(crate) async fn run_wire(input: &Input) -> Result<f64, BoxError> {
    let client = Client::connect(input.sec.wire(&input.bootstrap, "bench-wire")).await?;
    let output = output_topic(&client, input, "wire-alo-out").await?;
    let group = fresh_topic("wire-alo-group");
    let mut consumer = client.consumer(
        ConsumerConfig::new(group.clone()).with_auto_offset_reset(OffsetReset::Earliest),
    )?;
    consumer.subscribe(vec![input.topic.clone()], None)?;
    let producer = client.producer(
        ProducerConfig::default()
            .with_acks(Acks::All)
            .with_idempotence(true)
            .with_linger(LINGER),
    );
    let (source, control) = committable_source(consumer, SourceSettings::default());

    let start: Arc<Mutex<Option<Instant>>> = Arc::default();
    let failure: Arc<Mutex<Option<Error>>> = Arc::default();
    let ts = now_ms();
    let messages = {
        let (start, failure, output) = (Arc::clone(&start), Arc::clone(&failure), output.clone());
        source.take(input.records).scan((), move |(), m| {
            let item = match m {
                Ok(m) => {
                    lock(&start).get_or_insert_with(Instant::now);
                    let value = transform(m.record.record.value.as_deref().unwrap_or_default());
                    let record = Record::new(Bytes::from(value), ts);
                    Some(ProducerMessage::single(
                        output.clone(),
                        m.record.partition,
                        record,
                        m.offset,
                    ))
                }
                Err(e) => {
                    lock(&failure).get_or_insert(e);
                    None
                }
            };
            futures::future::ready(item)
        })
    };
    let offsets = {
        let failure = Arc::clone(&failure);
        producer_flow(producer.clone(), messages, MAX_IN_FLIGHT).scan((), move |(), r| {
            futures::future::ready(match r {
                Ok((_, offset)) => Some(offset),
                Err(e) => {
                    lock(&failure).get_or_insert(e);
                    None
                }
            })
        })
    };
    let committer = CommitterSettings {
        max_batch: usize::MAX,
        max_interval: COMMIT_INTERVAL,
    };
    let stats = tokio::time::timeout(RUN_TIMEOUT, commit_offsets(offsets, committer))
        .await
        .map_err(|_| "wire: the pipeline timed out")??;
    let elapsed = lock(&start).map(|s| s.elapsed()).unwrap_or_default();
    control.shutdown().await?;
    if let Some(e) = lock(&failure).take() {
        return Err(e.into());
    }
    if stats.offsets != input.records as u64 {
        return Err(format!(
            "wire: {} of {} offsets committed",
            stats.offsets, input.records
        )
        .into());
    }
    check_output(&client, input, &output).await?;
    check_committed(&client, input, &group).await?;
    let _ = client.delete_topics(&[output]).await;
    Ok(rate(input.records, elapsed))
}

/// rdkafka: a `StreamConsumer` with a `group.id`, a `FutureProducer` (acks=all, idempotent),
/// deliveries awaited in input order, offsets of delivered records committed
/// (`CommitMode::Async`) every [`COMMIT_INTERVAL`] and synchronously at the end.
pub(crate) async fn run_rdkafka(input: &Input, admin: &Client) -> Result<f64, BoxError> {
    use futures::stream::FuturesOrdered;
    use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::{Message, Offset, TopicPartitionList};

    let output = output_topic(admin, input, "rdkafka-alo-out").await?;
    let group = fresh_topic("rdkafka-alo-group");
    let consumer: StreamConsumer = rdkafka_group_config(input, &group).create()?;
    consumer.subscribe(&[&input.topic])?;
    let producer: FutureProducer = rdkafka_config(&input.bootstrap, &input.sec)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;

    let n = input.records;
    let ts = now_ms();
    let mut consumed = 0usize;
    let mut delivered = 0usize;
    let mut inflight = FuturesOrdered::new();
    let mut done: BTreeMap<i32, i64> = BTreeMap::new();
    let mut dirty = false;
    let mut start = None;
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut tick = tokio::time::interval(COMMIT_INTERVAL);
    let commit = |done: &BTreeMap<i32, i64>, mode| -> Result<(), BoxError> {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in done {
            tpl.add_partition_offset(&input.topic, *p, Offset::Offset(o + 1))?;
        }
        consumer.commit(&tpl, mode)?;
        Ok(())
    };
    while delivered < n {
        if Instant::now() > deadline {
            return Err(format!("rdkafka: {delivered} of {n} records in {RUN_TIMEOUT:?}").into());
        }
        tokio::select! {
            biased;
            Some((r, p, o)) = inflight.next(), if !inflight.is_empty() => {
                match r {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => return Err(BoxError::from(e)),
                    Err(_) => return Err("rdkafka: delivery canceled".into()),
                }
                done.insert(p, o);
                dirty = true;
                delivered += 1;
            }
            _ = tick.tick() => {
                if dirty {
                    commit(&done, CommitMode::Async)?;
                    dirty = false;
                }
            }
            m = consumer.recv(), if consumed < n && inflight.len() < MAX_IN_FLIGHT => {
                let m = m?;
                start.get_or_insert_with(Instant::now);
                let value = transform(m.payload().unwrap_or_default());
                let (p, o) = (m.partition(), m.offset());
                let record = FutureRecord::<(), [u8]>::to(&output)
                    .payload(&value[..])
                    .partition(p)
                    .timestamp(ts);
                let delivery = producer
                    .send_result(record)
                    .map_err(|(e, _)| BoxError::from(e))?;
                inflight.push_back(async move { (delivery.await, p, o) });
                consumed += 1;
            }
        }
    }
    commit(&done, CommitMode::Sync)?;
    let elapsed = start.map(|s: Instant| s.elapsed()).unwrap_or_default();
    drop(consumer);
    check_output(admin, input, &output).await?;
    check_committed(admin, input, &group).await?;
    let _ = admin.delete_topics(&[output]).await;
    Ok(rate(n, elapsed))
}

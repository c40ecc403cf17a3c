//! Workload `group-consume`: one member of a fresh consumer group reads the N records of a
//! multi-partition input topic (subscribed, assignment from the group), records per second.
//!
//! The clock starts when the first record arrives (after the group join, whose length
//! depends on the broker's rebalance delay, not on the client) and stops at the Nth. Every
//! record id must arrive exactly once.

use std::time::{Duration, Instant};

use kafka_persistence_wire::{Client, ConsumerConfig, OffsetReset};

use crate::common::{fresh_topic, rate, rdkafka_group_config, record_id, BoxError, Input, Seen};

/// How long a run may take before it is reported as failed.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// Ours: a [`kafka_persistence_wire::Consumer`] with a `group.id`, polled in a loop.
pub(crate) async fn run_wire(input: &Input) -> Result<f64, BoxError> {
    let client = Client::connect(input.sec.wire(&input.bootstrap, "bench-wire")).await?;
    let mut consumer = client.consumer(
        ConsumerConfig::new(fresh_topic("wire-group"))
            .with_auto_offset_reset(OffsetReset::Earliest),
    )?;
    consumer.subscribe(vec![input.topic.clone()], None)?;
    let mut seen = Seen::new(input.records);
    let mut start = None;
    let deadline = Instant::now() + RUN_TIMEOUT;
    while seen.count() < input.records {
        if Instant::now() > deadline {
            return Err(format!("wire: {} of {} records", seen.count(), input.records).into());
        }
        let records = consumer.poll(Duration::from_millis(100)).await?;
        if !records.is_empty() {
            start.get_or_insert_with(Instant::now);
        }
        for r in &records {
            let id = record_id(r.record.value.as_deref().unwrap_or_default())
                .ok_or("wire: a record without an id")?;
            seen.mark(id)?;
        }
    }
    let elapsed = start.map(|s| s.elapsed()).unwrap_or_default();
    consumer.close().await?;
    seen.complete()?;
    Ok(rate(input.records, elapsed))
}

/// rdkafka: a `BaseConsumer` with a `group.id`, subscribed, polled in a blocking thread.
pub(crate) async fn run_rdkafka(input: &Input) -> Result<f64, BoxError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;

    let consumer: BaseConsumer =
        rdkafka_group_config(input, &fresh_topic("rdkafka-group")).create()?;
    consumer.subscribe(&[&input.topic])?;
    let n = input.records;
    tokio::task::spawn_blocking(move || -> Result<f64, BoxError> {
        let mut seen = Seen::new(n);
        let mut start = None;
        let deadline = Instant::now() + RUN_TIMEOUT;
        while seen.count() < n {
            if Instant::now() > deadline {
                return Err(format!("rdkafka: {} of {n} records", seen.count()).into());
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    start.get_or_insert_with(Instant::now);
                    let id = record_id(m.payload().unwrap_or_default())
                        .ok_or("rdkafka: a record without an id")?;
                    seen.mark(id)?;
                }
                Some(Err(e)) => return Err(e.into()),
                None => {}
            }
        }
        let elapsed = start.map(|s| s.elapsed()).unwrap_or_default();
        consumer.unsubscribe();
        seen.complete()?;
        Ok(rate(n, elapsed))
    })
    .await?
}

//! Producing from a stream: each message is appended to its partition's queue in stream
//! order ([`Producer::enqueue`]), at most `max_in_flight` await their acknowledgement at
//! once, and results come out in input order with the message's passthrough.

use futures::{Stream, StreamExt, TryStreamExt};

use crate::wire::{Error, Producer, Record, RecordMetadata};

/// A send of `records` (one batch: stored whole or not at all) with a value to pass through.
#[derive(Debug, Clone)]
pub struct ProducerMessage<P> {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The records.
    pub records: Vec<Record>,
    /// Handed back with the result (for example the consumed message's offset).
    pub passthrough: P,
}

impl<P> ProducerMessage<P> {
    /// One record to `topic`/`partition`.
    pub fn single(
        topic: impl Into<String>,
        partition: i32,
        record: Record,
        passthrough: P,
    ) -> Self {
        ProducerMessage {
            topic: topic.into(),
            partition,
            records: vec![record],
            passthrough,
        }
    }
}

/// The producing flow: results in input order.
pub fn producer_flow<S, P>(
    producer: Producer,
    messages: S,
    max_in_flight: usize,
) -> impl Stream<Item = Result<(RecordMetadata, P), Error>>
where
    S: Stream<Item = ProducerMessage<P>>,
{
    messages
        .map(move |m| {
            // Enqueued now, in stream order; the future only reports the outcome.
            let delivery = producer.enqueue(&m.topic, m.partition, m.records);
            let passthrough = m.passthrough;
            async move { delivery.await.map(|md| (md, passthrough)) }
        })
        .buffered(max_in_flight.max(1))
}

/// The producing sink: sends every message, fails on the first send that fails. Returns the
/// number of messages sent.
pub async fn produce_all<S, P>(
    producer: Producer,
    messages: S,
    max_in_flight: usize,
) -> Result<u64, Error>
where
    S: Stream<Item = ProducerMessage<P>>,
{
    producer_flow(producer, messages, max_in_flight)
        .try_fold(0u64, |n, _| async move { Ok(n + 1) })
        .await
}

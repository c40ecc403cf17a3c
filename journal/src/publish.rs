//! Event topics: publishing written events to the topics an [`EventTopicMapper`] names, as
//! the protobuf `Event` of the Scala plugins. The same for both layouts.
//!
//! Group commit, as for the journal's own writes: the publishes of concurrent calls are
//! gathered into rounds, one set of sends per round. A call's publish joins the open round;
//! the round's task, spawned by its first call, runs once the tasks that are ready have run,
//! and publishes the events of all its calls in their order (each id's events stay in the
//! order of its writes), so each event topic-partition gets one batch per round, not one per
//! call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::join_all;
use kafka_persistence_wire::record::Record;
use kafka_persistence_wire::{self as wire, Client, NewTopic, Producer};

use crate::config::JournalConfig;
use crate::error::JournalError;
use crate::event_topic::{Event, EventTopicMapper};
use crate::format::{record_size_bound, BATCH_OVERHEAD};
use crate::repr::PersistentRepr;

/// The largest event-topic batch the journal builds (below the broker's 1 MiB default).
const EVENT_BATCH_BYTES: usize = 512 * 1024;

/// One event topic-partition's records of a publish, as batches below `EVENT_BATCH_BYTES`.
struct Slot {
    topic: String,
    partition: i32,
    batches: Vec<Vec<Record>>,
    /// The bound of the last batch's encoded size.
    used: usize,
}

impl Slot {
    fn push(&mut self, record: Record, size: usize) {
        if self.used + size > EVENT_BATCH_BYTES
            && self.batches.last().is_some_and(|b| !b.is_empty())
        {
            self.batches.push(Vec::new());
            self.used = BATCH_OVERHEAD;
        }
        self.used += size;
        if let Some(b) = self.batches.last_mut() {
            b.push(record);
        }
    }
}

/// Publishes accepted events to the mapper's topics (created on first use). Cheap to clone.
#[derive(Clone)]
pub(crate) struct Publisher {
    inner: Arc<Inner>,
}

/// A call's events waiting for their round, with the call's answer.
type Call = (
    Vec<PersistentRepr>,
    tokio::sync::oneshot::Sender<Result<(), JournalError>>,
);

/// The calls not yet taken by a round, and whether a round task is spawned to take them.
#[derive(Default)]
struct Pending {
    calls: Vec<Call>,
    scheduled: bool,
}

struct Inner {
    pending: Mutex<Pending>,
    client: Client,
    producer: Producer,
    mapper: Arc<dyn EventTopicMapper>,
    serializer_id: Option<i32>,
    event_topic_partitions: i32,
    replication_factor: i16,
    known_event_topics: Mutex<HashMap<String, i32>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    pub(crate) fn new(client: Client, producer: Producer, config: &JournalConfig) -> Self {
        let inner = Inner {
            pending: Mutex::default(),
            client,
            producer,
            mapper: config.mapper(),
            serializer_id: config.event_serializer_id,
            event_topic_partitions: config.event_topic_partitions,
            replication_factor: config.replication_factor,
            known_event_topics: Mutex::new(HashMap::new()),
        };
        Publisher {
            inner: Arc::new(inner),
        }
    }

    /// Publishes written events (see [`Inner::publish_now`]) in the open round (see the
    /// module documentation); returns once the round is published.
    pub(crate) async fn publish(&self, events: Vec<PersistentRepr>) -> Result<(), JournalError> {
        if events.is_empty() {
            return Ok(());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawn = {
            let mut pending = self.inner.lock_pending();
            pending.calls.push((events, tx));
            !std::mem::replace(&mut pending.scheduled, true)
        };
        if spawn {
            tokio::spawn(Arc::clone(&self.inner).round());
        }
        // The round answers every call; a dropped answer means the runtime shuts down.
        rx.await
            .unwrap_or(Err(JournalError::Kafka(wire::Error::Closed)))
    }
}

impl Inner {
    fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        // A vector and a flag, updated without panicking code in between.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A round's task: publishes every pending call's events at once.
    async fn round(self: Arc<Self>) {
        let calls = {
            let mut pending = self.lock_pending();
            pending.scheduled = false;
            std::mem::take(&mut pending.calls)
        };
        let mut events = Vec::with_capacity(calls.iter().map(|(e, _)| e.len()).sum());
        // Per call: its answer and where its events start.
        let mut answers = Vec::with_capacity(calls.len());
        for (mut e, tx) in calls {
            answers.push((events.len(), tx));
            events.append(&mut e);
        }
        match self.publish_now(&events).await {
            Ok(()) => {
                for (_, tx) in answers {
                    // The caller may have given up (timeout, cancellation).
                    let _ = tx.send(Ok(()));
                }
            }
            Err(e) => {
                // The first call gets the error itself, the others a description of it.
                let mut answers = answers.into_iter();
                let first = answers.next();
                for (start, tx) in answers {
                    let pid = events.get(start).map_or("", |r| r.persistence_id.as_str());
                    let _ = tx.send(Err(e.for_another_call(pid)));
                }
                if let Some((_, tx)) = first {
                    let _ = tx.send(Err(e));
                }
            }
        }
    }

    /// Publishes written events to the mapper's topics, acks=all, before the write returns.
    ///
    /// Records are keyed by persistence id and partitioned with the Java client's murmur2
    /// partitioner (as `send_keyed` would), but sent as one batch per topic-partition (split
    /// by size), so a large write costs a few produce requests, not one per event.
    async fn publish_now(&self, events: &[PersistentRepr]) -> Result<(), JournalError> {
        // One slot per event topic-partition, in order of first use (a write names a few, so
        // a linear search beats hashing); each slot's batches keep the order of each id's
        // events and stay below EVENT_BATCH_BYTES.
        let mut slots: Vec<Slot> = Vec::new();
        for e in events {
            let topics = self.mapper.topics_for(e);
            if topics.is_empty() {
                continue;
            }
            let value = Event::encode_repr(e, self.serializer_id);
            let key = bytes::Bytes::copy_from_slice(e.persistence_id.as_bytes());
            let timestamp = if e.timestamp > 0 {
                e.timestamp
            } else {
                crate::now_ms()
            };
            let size = record_size_bound(key.len(), value.len());
            for topic in topics {
                let n = self.event_topic_partitions(&topic).await?;
                let partition = wire::murmur2_partition(&key, n);
                let record = Record::new(value.clone(), timestamp).with_key(key.clone());
                let slot = match slots
                    .iter_mut()
                    .position(|s| s.partition == partition && s.topic == topic)
                {
                    Some(i) => &mut slots[i],
                    None => {
                        slots.push(Slot {
                            topic,
                            partition,
                            batches: vec![Vec::new()],
                            used: BATCH_OVERHEAD,
                        });
                        let last = slots.len() - 1;
                        &mut slots[last]
                    }
                };
                slot.push(record, size);
            }
        }
        let sends = slots.iter_mut().flat_map(|s| {
            let (topic, partition) = (s.topic.as_str(), s.partition);
            std::mem::take(&mut s.batches)
                .into_iter()
                .filter(|b| !b.is_empty())
                .map(move |batch| self.producer.send(topic, partition, batch))
        });
        for r in join_all(sends).await {
            r?;
        }
        Ok(())
    }

    /// The partition count of event topic `topic`, creating it on first use.
    async fn event_topic_partitions(&self, topic: &str) -> Result<i32, JournalError> {
        if let Some(n) = self
            .known_event_topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
        {
            return Ok(*n);
        }
        if self.client.topic_metadata(topic).await?.is_none() {
            tracing::debug!(topic, reason = "first use", "creating an event topic");
            self.client
                .create_topics(vec![NewTopic::new(
                    topic,
                    self.event_topic_partitions.max(1),
                    self.replication_factor,
                )])
                .await?;
        }
        let Some(meta) = self.client.topic_metadata(topic).await? else {
            return Err(JournalError::TopicCreation(format!(
                "event topic {topic} does not exist after creating it"
            )));
        };
        let n = i32::try_from(meta.partitions.len())
            .unwrap_or(i32::MAX)
            .max(1);
        self.known_event_topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_string(), n);
        Ok(n)
    }
}

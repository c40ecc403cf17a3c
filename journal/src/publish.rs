//! Event topics: publishing written events to the topics an [`EventTopicMapper`] names, as
//! the protobuf `Event` of the Scala plugins. The same for both layouts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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

/// Publishes accepted events to the mapper's topics (created on first use).
pub(crate) struct Publisher {
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
        Publisher {
            client,
            producer,
            mapper: config.mapper(),
            serializer_id: config.event_serializer_id,
            event_topic_partitions: config.event_topic_partitions,
            replication_factor: config.replication_factor,
            known_event_topics: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes written events to the mapper's topics, acks=all, before the write returns.
    ///
    /// Records are keyed by persistence id and partitioned with the Java client's murmur2
    /// partitioner (as `send_keyed` would), but sent as one batch per topic-partition (split
    /// by size), so a large write costs a few produce requests, not one per event.
    pub(crate) async fn publish(&self, events: Vec<PersistentRepr>) -> Result<(), JournalError> {
        let mut routed: Vec<(String, Record)> = Vec::new();
        for e in &events {
            let topics = self.mapper.topics_for(e);
            if topics.is_empty() {
                continue;
            }
            let value = Event::from_repr(e, self.serializer_id).encode_to_bytes();
            let key = bytes::Bytes::copy_from_slice(e.persistence_id.as_bytes());
            let timestamp = if e.timestamp > 0 {
                e.timestamp
            } else {
                crate::now_ms()
            };
            for topic in topics {
                let record = Record::new(value.clone(), timestamp).with_key(key.clone());
                routed.push((topic, record));
            }
        }
        if routed.is_empty() {
            return Ok(());
        }
        let partitions = self.event_topic_partitions(&routed).await?;
        // Group per topic-partition, keeping the order of each id's events.
        let mut order: Vec<(String, i32)> = Vec::new();
        let mut groups: HashMap<(String, i32), Vec<Vec<Record>>> = HashMap::new();
        let mut sizes: HashMap<(String, i32), usize> = HashMap::new();
        for (topic, record) in routed {
            let n = partitions.get(&topic).copied().unwrap_or(1).max(1);
            let key = record.key.clone().unwrap_or_default();
            let partition = wire::murmur2_partition(&key, n);
            let size = record_size_bound(key.len(), record.value.as_ref().map_or(0, |v| v.len()));
            let slot = (topic, partition);
            let batches = groups.entry(slot.clone()).or_insert_with(|| {
                order.push(slot.clone());
                vec![Vec::new()]
            });
            let used = sizes.entry(slot).or_insert(BATCH_OVERHEAD);
            if *used + size > EVENT_BATCH_BYTES && batches.last().is_some_and(|b| !b.is_empty()) {
                batches.push(Vec::new());
                *used = BATCH_OVERHEAD;
            }
            *used += size;
            if let Some(b) = batches.last_mut() {
                b.push(record);
            }
        }
        let mut sends = Vec::new();
        for slot in order {
            for batch in groups.remove(&slot).unwrap_or_default() {
                if batch.is_empty() {
                    continue;
                }
                let (topic, partition) = slot.clone();
                sends.push(async move { self.producer.send(&topic, partition, batch).await });
            }
        }
        for r in join_all(sends).await {
            r?;
        }
        Ok(())
    }

    /// The partition counts of the event topics in `routed`, creating missing topics.
    async fn event_topic_partitions(
        &self,
        routed: &[(String, Record)],
    ) -> Result<HashMap<String, i32>, JournalError> {
        let mut names: Vec<&str> = routed.iter().map(|(t, _)| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut out = HashMap::new();
        let mut unknown = Vec::new();
        {
            let known = self
                .known_event_topics
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for n in names {
                match known.get(n) {
                    Some(p) => {
                        out.insert(n.to_string(), *p);
                    }
                    None => unknown.push(n.to_string()),
                }
            }
        }
        if unknown.is_empty() {
            return Ok(out);
        }
        let mut create = Vec::new();
        for t in &unknown {
            if self.client.topic_metadata(t).await?.is_none() {
                create.push(NewTopic::new(
                    t.as_str(),
                    self.event_topic_partitions.max(1),
                    self.replication_factor,
                ));
            }
        }
        if !create.is_empty() {
            tracing::debug!(
                topics = create.len(),
                reason = "first use",
                "creating event topics"
            );
            self.client.create_topics(create).await?;
        }
        for t in unknown {
            let Some(meta) = self.client.topic_metadata(&t).await? else {
                return Err(JournalError::TopicCreation(format!(
                    "event topic {t} does not exist after creating it"
                )));
            };
            let n = i32::try_from(meta.partitions.len())
                .unwrap_or(i32::MAX)
                .max(1);
            self.known_event_topics
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(t.clone(), n);
            out.insert(t, n);
        }
        Ok(out)
    }
}

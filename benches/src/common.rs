//! What every workload shares: the connection settings, topic names, payloads, the input
//! topics of the group workloads and the checks of their results.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use kafka_persistence_wire::{
    Client, ClientConfig, FetchRequest, IsolationLevel, NewTopic, OffsetSpec, ProducerConfig,
    Record, SecurityProtocol, TopicPartition,
};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Payload size of every record.
pub(crate) const VALUE_SIZE: usize = 100;

/// How often the pipelines commit (offsets, or the transaction), for every client.
pub(crate) const COMMIT_INTERVAL: Duration = Duration::from_millis(100);

/// `linger.ms` of our producers in the pipelines: librdkafka's default (rdkafka runs with
/// its defaults), so that both batch alike.
pub(crate) const LINGER: Duration = Duration::from_millis(5);

/// How long a result check waits for the output before it reports what is missing.
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

static TOPIC_SEQ: AtomicU64 = AtomicU64::new(0);

/// A topic name no other run uses.
pub(crate) fn fresh_topic(client: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "bench-{client}-{}-{nanos}-{}",
        std::process::id(),
        TOPIC_SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// The payload of the produce/fetch workload.
pub(crate) fn value() -> Vec<u8> {
    (0..VALUE_SIZE).map(|i| b'a' + (i % 26) as u8).collect()
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Records per second.
pub(crate) fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// How the clients connect: plaintext, or TLS trusting this CA (PEM text).
#[derive(Debug, Clone, Default)]
pub(crate) struct Security {
    pub(crate) ca_pem: Option<String>,
}

impl Security {
    /// Our client's configuration for `bootstrap`.
    pub(crate) fn wire(&self, bootstrap: &str, client_id: &str) -> ClientConfig {
        let c = ClientConfig::new(bootstrap).with_client_id(client_id);
        match &self.ca_pem {
            Some(pem) => c
                .with_security_protocol(SecurityProtocol::Ssl)
                .with_ssl_ca_pem(pem.clone()),
            None => c,
        }
    }

    /// rdkafka's settings for the same.
    pub(crate) fn rdkafka(&self, c: &mut rdkafka::config::ClientConfig) {
        if let Some(pem) = &self.ca_pem {
            c.set("security.protocol", "ssl")
                .set("ssl.ca.pem", pem.clone())
                .set("ssl.endpoint.identification.algorithm", "https");
        }
    }
}

/// rdkafka's settings shared by every workload: the broker, our client id and the security.
pub(crate) fn rdkafka_config(bootstrap: &str, sec: &Security) -> rdkafka::config::ClientConfig {
    let mut c = rdkafka::config::ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", "bench-rdkafka");
    sec.rdkafka(&mut c);
    c
}

/// rdkafka's settings for a member of `group` reading the input from its start, with manual
/// commits.
pub(crate) fn rdkafka_group_config(input: &Input, group: &str) -> rdkafka::config::ClientConfig {
    let mut c = rdkafka_config(&input.bootstrap, &input.sec);
    c.set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    c
}

/// What a group workload runs against: its broker, security and the input topic.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    pub(crate) bootstrap: String,
    pub(crate) sec: Security,
    pub(crate) topic: String,
    pub(crate) partitions: i32,
    pub(crate) records: usize,
}

/// The input record number `id`: its id (8 bytes, big endian), then lowercase letters up to
/// [`VALUE_SIZE`] bytes.
pub(crate) fn input_value(id: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(VALUE_SIZE);
    v.extend_from_slice(&id.to_be_bytes());
    v.extend((8..VALUE_SIZE).map(|i| b'a' + (i % 26) as u8));
    v
}

/// The pipelines' transform: the id stays, the letters become uppercase.
pub(crate) fn transform(input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for b in out.iter_mut().skip(8) {
        b.make_ascii_uppercase();
    }
    out
}

/// The id of a record written by [`input_value`] (or transformed by [`transform`]).
pub(crate) fn record_id(value: &[u8]) -> Option<u64> {
    let head: [u8; 8] = value.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(head))
}

/// One flag per record id: each id must be seen exactly once.
#[derive(Debug)]
pub(crate) struct Seen {
    flags: Vec<bool>,
    count: usize,
}

impl Seen {
    pub(crate) fn new(n: usize) -> Self {
        Seen {
            flags: vec![false; n],
            count: 0,
        }
    }

    /// Marks `id`; an id out of range or seen before is an error.
    pub(crate) fn mark(&mut self, id: u64) -> Result<(), BoxError> {
        let slot = usize::try_from(id)
            .ok()
            .and_then(|i| self.flags.get_mut(i))
            .ok_or_else(|| format!("record id {id} out of range"))?;
        if *slot {
            return Err(format!("record id {id} arrived twice").into());
        }
        *slot = true;
        self.count += 1;
        Ok(())
    }

    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Fails unless every id was seen.
    pub(crate) fn complete(&self) -> Result<(), BoxError> {
        if self.count == self.flags.len() {
            return Ok(());
        }
        let first = self.flags.iter().position(|f| !f).unwrap_or_default();
        Err(format!(
            "{} of {} records arrived (first missing id {first})",
            self.count,
            self.flags.len()
        )
        .into())
    }
}

/// Creates a fresh topic of `partitions` partitions and writes `n` records of
/// [`input_value`] to it, record `i` to partition `i % partitions` (not timed).
pub(crate) async fn prepare_input(
    admin: &Client,
    bootstrap: &str,
    sec: &Security,
    tag: &str,
    partitions: i32,
    n: usize,
) -> Result<Input, BoxError> {
    const CHUNK: usize = 1_000;
    let topic = fresh_topic(tag);
    admin
        .create_topics(vec![NewTopic::new(topic.clone(), partitions, 1)])
        .await?;
    let client = Client::connect(sec.wire(bootstrap, "bench-input")).await?;
    let producer = client.producer(ProducerConfig::default());
    let ts = now_ms();
    let parts = usize::try_from(partitions)?;
    // Per partition, chunks of consecutive ids of that partition.
    let chunks = (0..parts).flat_map(|p| {
        let ids: Vec<u64> = (p..n).step_by(parts).map(|i| i as u64).collect();
        ids.chunks(CHUNK)
            .map(|c| (p as i32, c.to_vec()))
            .collect::<Vec<_>>()
    });
    let sends = chunks.map(|(p, ids)| {
        let records: Vec<Record> = ids
            .iter()
            .map(|&id| Record::new(Bytes::from(input_value(id)), ts))
            .collect();
        producer.enqueue(&topic, p, records)
    });
    let mut sends = futures::stream::iter(sends).buffer_unordered(64);
    while let Some(r) = sends.next().await {
        r?;
    }
    drop(sends);
    producer.flush().await?;
    Ok(Input {
        bootstrap: bootstrap.to_owned(),
        sec: sec.clone(),
        topic,
        partitions,
        records: n,
    })
}

/// A fresh output topic with as many partitions as `input`'s.
pub(crate) async fn output_topic(
    client: &Client,
    input: &Input,
    tag: &str,
) -> Result<String, BoxError> {
    let topic = fresh_topic(tag);
    client
        .create_topics(vec![NewTopic::new(topic.clone(), input.partitions, 1)])
        .await?;
    Ok(topic)
}

/// The end offsets of `topic`'s partitions.
pub(crate) async fn end_offsets(
    client: &Client,
    topic: &str,
    partitions: i32,
) -> Result<Vec<i64>, BoxError> {
    let mut out = Vec::new();
    for p in 0..partitions {
        out.push(client.list_offset(topic, p, OffsetSpec::Latest).await?);
    }
    Ok(out)
}

/// Checks a pipeline's output: `output` (read `read_committed` to its end) holds every input
/// id exactly once, transformed, on the partition its input came from.
pub(crate) async fn check_output(
    client: &Client,
    input: &Input,
    output: &str,
) -> Result<(), BoxError> {
    let ends = end_offsets(client, output, input.partitions).await?;
    let mut seen = Seen::new(input.records);
    let deadline = Instant::now() + CHECK_TIMEOUT;
    for (p, end) in (0..input.partitions).zip(ends) {
        let mut offset = 0i64;
        while offset < end {
            if Instant::now() > deadline {
                return Err(
                    format!("output check: partition {p} read to {offset} of {end}").into(),
                );
            }
            let resp = client
                .fetch(
                    FetchRequest::new(output.to_owned(), p, offset)
                        .with_isolation(IsolationLevel::ReadCommitted),
                )
                .await?;
            for r in &resp.records {
                let v = r.value.as_deref().unwrap_or_default();
                let id = record_id(v).ok_or("output record without an id")?;
                if id % input.partitions as u64 != p as u64 {
                    return Err(format!("record id {id} on partition {p}").into());
                }
                if *v != transform(&input_value(id)) {
                    return Err(format!("record id {id} not transformed").into());
                }
                seen.mark(id)?;
            }
            offset = resp.next_offset.max(offset);
        }
    }
    seen.complete()
}

/// Checks that `group` committed the end of every input partition.
pub(crate) async fn check_committed(
    client: &Client,
    input: &Input,
    group: &str,
) -> Result<(), BoxError> {
    let ends = end_offsets(client, &input.topic, input.partitions).await?;
    let parts: Vec<TopicPartition> = (0..input.partitions)
        .map(|p| TopicPartition::new(input.topic.clone(), p))
        .collect();
    let mut c = client.consumer(kafka_persistence_wire::ConsumerConfig::new(group))?;
    c.assign(parts.clone())?;
    let committed = c.committed(&parts).await?;
    for (tp, end) in parts.iter().zip(ends) {
        let at = committed.get(tp).and_then(|c| c.as_ref()).map(|c| c.offset);
        if at != Some(end) {
            return Err(format!("group {group} committed {at:?} on {tp}, the end is {end}").into());
        }
    }
    Ok(())
}

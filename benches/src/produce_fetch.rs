//! Workload `produce-fetch`: each client produces N records of 100 bytes with acks=all to a
//! fresh single-partition topic (idempotent where the client supports it: wire and rdkafka;
//! rskafka has no idempotent producer), then fetches them back from offset 0.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kafka_persistence_wire::{Acks, Client, FetchRequest, NewTopic, ProducerConfig, Record};

use crate::common::{
    fresh_topic, now_ms, rate, rdkafka_config, value, BoxError, Security, VALUE_SIZE,
};

/// Records per `send` call for the clients with a batch API (wire, rskafka).
const CHUNK: usize = 1_000;
/// Concurrent sends in flight for the clients with a batch API.
const IN_FLIGHT: usize = 8;
/// Maximum bytes per partition per fetch, for every client (Kafka's default, 1 MiB).
const FETCH_MAX_BYTES: i32 = 1024 * 1024;

/// One run's throughput in records per second.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunResult {
    pub(crate) produce: f64,
    pub(crate) fetch: f64,
}

// -------------------------------------------------------------------------------------------
// wire
// -------------------------------------------------------------------------------------------

pub(crate) async fn run_wire(
    admin: &Client,
    bootstrap: &str,
    sec: &Security,
    n: usize,
) -> Result<RunResult, BoxError> {
    let topic = fresh_topic("wire");
    admin
        .create_topics(vec![NewTopic::new(topic.clone(), 1, 1)])
        .await?;
    let client = Client::connect(sec.wire(bootstrap, "bench-wire")).await?;
    let producer = client.producer(
        ProducerConfig::default()
            .with_acks(Acks::All)
            .with_idempotence(true),
    );
    let payload = bytes::Bytes::from(value());
    let ts = now_ms();

    let start = Instant::now();
    let chunks = (0..n).step_by(CHUNK).map(|first| {
        let len = CHUNK.min(n - first);
        let records: Vec<Record> = (0..len).map(|_| Record::new(payload.clone(), ts)).collect();
        let producer = producer.clone();
        let topic = topic.clone();
        async move { producer.send(&topic, 0, records).await }
    });
    futures::stream::iter(chunks)
        .buffer_unordered(IN_FLIGHT)
        .try_for_each(|_| async { Ok(()) })
        .await?;
    producer.flush().await?;
    let produce = rate(n, start.elapsed());

    let start = Instant::now();
    let mut offset = 0i64;
    let mut got = 0usize;
    while got < n {
        let resp = client
            .fetch(FetchRequest::new(topic.clone(), 0, offset).with_max_bytes(FETCH_MAX_BYTES))
            .await?;
        got += resp.records.len();
        if resp.next_offset <= offset && resp.records.is_empty() && offset >= resp.high_watermark {
            return Err(format!("wire: fetched {got} of {n} records, log ends at {offset}").into());
        }
        offset = resp.next_offset;
    }
    let fetch = rate(got, start.elapsed());
    if got != n {
        return Err(format!("wire: fetched {got} records, produced {n}").into());
    }
    let _ = admin.delete_topics(&[topic]).await;
    Ok(RunResult { produce, fetch })
}

// -------------------------------------------------------------------------------------------
// rskafka
// -------------------------------------------------------------------------------------------

pub(crate) async fn run_rskafka(
    admin: &Client,
    bootstrap: &str,
    sec: &Security,
    n: usize,
) -> Result<RunResult, BoxError> {
    use rskafka::client::partition::{Compression, UnknownTopicHandling};
    use rskafka::client::ClientBuilder;

    if sec.ca_pem.is_some() {
        return Err("rskafka is built without its TLS feature here".into());
    }

    let topic = fresh_topic("rskafka");
    admin
        .create_topics(vec![NewTopic::new(topic.clone(), 1, 1)])
        .await?;
    let client = ClientBuilder::new(vec![bootstrap.to_owned()])
        .build()
        .await?;
    let pc = client
        .partition_client(topic.clone(), 0, UnknownTopicHandling::Retry)
        .await?;
    let payload = value();
    let ts = chrono::Utc::now();

    let start = Instant::now();
    let chunks = (0..n).step_by(CHUNK).map(|first| {
        let len = CHUNK.min(n - first);
        let records: Vec<rskafka::record::Record> = (0..len)
            .map(|_| rskafka::record::Record {
                key: None,
                value: Some(payload.clone()),
                headers: Default::default(),
                timestamp: ts,
            })
            .collect();
        let pc = &pc;
        async move { pc.produce(records, Compression::NoCompression).await }
    });
    futures::stream::iter(chunks)
        .buffer_unordered(IN_FLIGHT)
        .try_for_each(|_| async { Ok(()) })
        .await?;
    let produce = rate(n, start.elapsed());

    let start = Instant::now();
    let mut offset = 0i64;
    let mut got = 0usize;
    while got < n {
        let (records, high_watermark) = pc.fetch_records(offset, 1..FETCH_MAX_BYTES, 0).await?;
        match records.last() {
            Some(last) => {
                offset = last.offset + 1;
                got += records.len();
            }
            None if offset >= high_watermark => {
                return Err(
                    format!("rskafka: fetched {got} of {n} records, log ends at {offset}").into(),
                )
            }
            None => {}
        }
    }
    let fetch = rate(got, start.elapsed());
    let _ = admin.delete_topics(&[topic]).await;
    Ok(RunResult { produce, fetch })
}

// -------------------------------------------------------------------------------------------
// rdkafka
// -------------------------------------------------------------------------------------------

pub(crate) async fn run_rdkafka(
    admin: &Client,
    bootstrap: &str,
    sec: &Security,
    n: usize,
) -> Result<RunResult, BoxError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
    use rdkafka::{Message, Offset, TopicPartitionList};

    let topic = fresh_topic("rdkafka");
    admin
        .create_topics(vec![NewTopic::new(topic.clone(), 1, 1)])
        .await?;
    let producer: FutureProducer = rdkafka_config(bootstrap, sec)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()?;
    // Connect and learn the topic before the clock starts, as the other clients do.
    producer
        .client()
        .fetch_metadata(Some(&topic), Duration::from_secs(30))?;
    let payload = value();
    let ts = now_ms();

    let start = Instant::now();
    let mut deliveries = Vec::with_capacity(n);
    for _ in 0..n {
        let mut record = FutureRecord::<(), [u8]>::to(&topic)
            .payload(&payload[..])
            .partition(0)
            .timestamp(ts);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                    tokio::task::yield_now().await;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    for d in deliveries {
        match d.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(e.into()),
            Err(_) => return Err("rdkafka: delivery canceled".into()),
        }
    }
    let produce = rate(n, start.elapsed());
    drop(producer);

    let consumer: BaseConsumer = rdkafka_config(bootstrap, sec)
        .set("group.id", format!("{topic}-group"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("max.partition.fetch.bytes", FETCH_MAX_BYTES.to_string())
        .create()?;
    consumer
        .client()
        .fetch_metadata(Some(&topic), Duration::from_secs(30))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let fetch = tokio::task::spawn_blocking(move || -> Result<f64, BoxError> {
        let start = Instant::now();
        let mut got = 0usize;
        let deadline = start + Duration::from_secs(600);
        while got < n {
            if Instant::now() > deadline {
                return Err(format!("rdkafka: fetched {got} of {n} records in 600 s").into());
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    if m.payload().map(<[u8]>::len) != Some(VALUE_SIZE) {
                        return Err("rdkafka: unexpected payload".into());
                    }
                    got += 1;
                }
                Some(Err(e)) => return Err(e.into()),
                None => {}
            }
        }
        Ok(rate(got, start.elapsed()))
    })
    .await??;
    let _ = admin.delete_topics(&[topic]).await;
    Ok(RunResult { produce, fetch })
}

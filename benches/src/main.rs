//! `compare`: produce and fetch throughput of our client (`wire`) against `rskafka` and
//! `rdkafka` on the same broker.
//!
//! ```text
//! cargo run --release -p kafka-persistence-benches --bin compare -- \
//!     --broker testserver|kafka [--bootstrap host:port] [--records N] [--runs R] \
//!     [--tls] [--ssl-ca-location ca.pem]
//! ```
//!
//! Each client produces N records of 100 bytes to a fresh single-partition topic with
//! acks=all (idempotent where the client supports it: wire and rdkafka; rskafka has no
//! idempotent producer), then fetches them back from offset 0. Every figure is the median of
//! `--runs` runs (at least 3). Output, exactly:
//!
//! ```text
//! produce 100B acks=all: wire=<n> rskafka=<n> rdkafka=<n> rec/s
//! fetch 100B: wire=<n> rskafka=<n> rdkafka=<n> rec/s
//! ```
//!
//! A client that fails prints `n/a` and its error goes to stderr.
//!
//! `--tls` runs everything over TLS (`security.protocol=SSL`, the broker's certificate
//! checked against a private CA, hostname verification on): the embedded testserver then
//! serves TLS with a certificate from a CA made here by rcgen; with `--broker kafka` give the
//! CA's PEM file as `--ssl-ca-location`. The output lines then read `produce 100B acks=all
//! TLS:` and `fetch 100B TLS:`. rskafka is built without TLS support here and prints `n/a`.
//! Compare with a plaintext run of the same command without `--tls`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use kafka_persistence_testserver::{CertificateAuthority, TestServer};
use kafka_persistence_wire::{
    Acks, Client, ClientConfig, FetchRequest, NewTopic, ProducerConfig, Record, SecurityProtocol,
};

/// Payload size of every record.
const VALUE_SIZE: usize = 100;
/// Records per `send` call for the clients with a batch API (wire, rskafka).
const CHUNK: usize = 1_000;
/// Concurrent sends in flight for the clients with a batch API.
const IN_FLIGHT: usize = 8;
/// Maximum bytes per partition per fetch, for every client (Kafka's default, 1 MiB).
const FETCH_MAX_BYTES: i32 = 1024 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BrokerKind {
    /// An embedded TestServer, started by this process.
    Testserver,
    /// An external Kafka at `--bootstrap`.
    Kafka,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Wire,
    Rskafka,
    Rdkafka,
}

#[derive(Debug, Parser)]
#[command(about = "Produce/fetch throughput: wire vs rskafka vs rdkafka")]
struct Args {
    /// Which broker to use.
    #[arg(long, value_enum, default_value = "testserver")]
    broker: BrokerKind,
    /// Bootstrap servers for `--broker kafka`.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Records per run and client.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Runs per client (the median is reported; at least 3).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Run over TLS (see the module docs).
    #[arg(long)]
    tls: bool,
    /// The CA certificate (PEM file) of `--broker kafka`'s TLS listener (implies `--tls`).
    #[arg(long)]
    ssl_ca_location: Option<std::path::PathBuf>,
    /// Clients to measure (default: all three).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = vec![Which::Wire, Which::Rskafka, Which::Rdkafka])]
    clients: Vec<Which>,
}

static TOPIC_SEQ: AtomicU64 = AtomicU64::new(0);

fn fresh_topic(client: &str) -> String {
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

fn value() -> Vec<u8> {
    (0..VALUE_SIZE).map(|i| b'a' + (i % 26) as u8).collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// How the clients connect: plaintext, or TLS trusting this CA (PEM text).
#[derive(Debug, Clone, Default)]
struct Security {
    ca_pem: Option<String>,
}

impl Security {
    /// Our client's configuration for `bootstrap`.
    fn wire(&self, bootstrap: &str, client_id: &str) -> ClientConfig {
        let c = ClientConfig::new(bootstrap).with_client_id(client_id);
        match &self.ca_pem {
            Some(pem) => c
                .with_security_protocol(SecurityProtocol::Ssl)
                .with_ssl_ca_pem(pem.clone()),
            None => c,
        }
    }

    /// rdkafka's settings for the same.
    fn rdkafka(&self, c: &mut rdkafka::config::ClientConfig) {
        if let Some(pem) = &self.ca_pem {
            c.set("security.protocol", "ssl")
                .set("ssl.ca.pem", pem.clone())
                .set("ssl.endpoint.identification.algorithm", "https");
        }
    }
}

/// One run's throughput in records per second.
#[derive(Debug, Clone, Copy)]
struct RunResult {
    produce: f64,
    fetch: f64,
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

// -------------------------------------------------------------------------------------------
// wire
// -------------------------------------------------------------------------------------------

async fn run_wire(
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

async fn run_rskafka(
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

async fn run_rdkafka(
    admin: &Client,
    bootstrap: &str,
    sec: &Security,
    n: usize,
) -> Result<RunResult, BoxError> {
    use rdkafka::config::ClientConfig as RdConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
    use rdkafka::{Message, Offset, TopicPartitionList};

    let topic = fresh_topic("rdkafka");
    admin
        .create_topics(vec![NewTopic::new(topic.clone(), 1, 1)])
        .await?;
    let mut config = RdConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "bench-rdkafka")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "1048576");
    sec.rdkafka(&mut config);
    let producer: FutureProducer = config.create()?;
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

    let mut config = RdConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "bench-rdkafka")
        .set("group.id", format!("{topic}-group"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("max.partition.fetch.bytes", FETCH_MAX_BYTES.to_string());
    sec.rdkafka(&mut config);
    let consumer: BaseConsumer = config.create()?;
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

// -------------------------------------------------------------------------------------------

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

fn fmt(v: Option<f64>) -> String {
    match v {
        Some(x) => format!("{}", x.round() as u64),
        None => "n/a".to_owned(),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    if args.runs < 3 {
        return Err("--runs must be at least 3 (the median of 3 or more runs is reported)".into());
    }
    if args.records == 0 {
        return Err("--records must be positive".into());
    }
    let tls = args.tls || args.ssl_ca_location.is_some();
    // Keep the server alive for the whole bench.
    let (_server, bootstrap, sec) = match args.broker {
        BrokerKind::Testserver => {
            let mut builder = TestServer::builder();
            let mut sec = Security::default();
            if tls {
                let ca = CertificateAuthority::new("bench CA")?;
                let cert = ca.issue_server(&["127.0.0.1", "localhost"])?;
                builder = builder.tls(&cert.cert_pem, &cert.key_pem);
                sec.ca_pem = Some(ca.cert_pem().to_owned());
            }
            let server = builder.start().await?;
            let b = server.bootstrap_servers();
            (Some(server), b, sec)
        }
        BrokerKind::Kafka => {
            let ca_pem = match (&args.ssl_ca_location, tls) {
                (Some(path), _) => Some(std::fs::read_to_string(path)?),
                (None, true) => return Err("--broker kafka --tls needs --ssl-ca-location".into()),
                (None, false) => None,
            };
            (None, args.bootstrap.clone(), Security { ca_pem })
        }
    };
    let admin = Client::connect(sec.wire(&bootstrap, "bench-admin")).await?;

    let mut produce = [Vec::new(), Vec::new(), Vec::new()];
    let mut fetch = [Vec::new(), Vec::new(), Vec::new()];
    for run in 0..args.runs {
        // Interleave the clients so that drift in the machine's load hits all of them alike.
        for (i, which) in [Which::Wire, Which::Rskafka, Which::Rdkafka]
            .into_iter()
            .enumerate()
        {
            if !args.clients.contains(&which) {
                continue;
            }
            let result = match which {
                Which::Wire => run_wire(&admin, &bootstrap, &sec, args.records).await,
                Which::Rskafka => run_rskafka(&admin, &bootstrap, &sec, args.records).await,
                Which::Rdkafka => run_rdkafka(&admin, &bootstrap, &sec, args.records).await,
            };
            match result {
                Ok(r) => {
                    eprintln!(
                        "run {} {which:?}: produce {:.0} rec/s, fetch {:.0} rec/s",
                        run + 1,
                        r.produce,
                        r.fetch
                    );
                    produce[i].push(r.produce);
                    fetch[i].push(r.fetch);
                }
                Err(e) => eprintln!("run {} {which:?} failed: {e}", run + 1),
            }
        }
    }
    let [pw, pr, pd] = produce.map(median);
    let [fw, fr, fd] = fetch.map(median);
    let over = if tls { " TLS" } else { "" };
    println!(
        "produce 100B acks=all{over}: wire={} rskafka={} rdkafka={} rec/s",
        fmt(pw),
        fmt(pr),
        fmt(pd)
    );
    println!(
        "fetch 100B{over}: wire={} rskafka={} rdkafka={} rec/s",
        fmt(fw),
        fmt(fr),
        fmt(fd)
    );
    Ok(())
}

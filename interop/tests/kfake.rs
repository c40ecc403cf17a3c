//! Our client (`wire`) against a second foreign broker: franz-go's kfake (Go), started from
//! `interop/peers/kfake` (built by `.ci/test-all` into `.ci/cache/kfake/kfakepeer`, or
//! `KP_KFAKE`). Admin (CreateTopics, Metadata, ListOffsets, DeleteTopics), the idempotent
//! producer with keys and headers, keyed placement, and fetch.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kafka_persistence_wire::{
    Client, ClientConfig, ConsumedRecord, FetchRequest, Header, NewTopic, OffsetSpec,
    ProducerConfig, Record,
};

use common::{fail, repo_root, unique, TestResult};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The kfake process; killed on drop (it also exits when its stdin closes).
struct Kfake {
    child: Child,
    bootstrap: String,
}

impl Drop for Kfake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_kfake() -> Result<Kfake, BoxError> {
    let bin = std::env::var_os("KP_KFAKE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".ci/cache/kfake/kfakepeer"));
    let mut child = Command::new(&bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            fail(format!(
                "cannot start kfake {}: {e} (run .ci/test-all, or go build in interop/peers/kfake)",
                bin.display()
            ))
        })?;
    let stdout = child.stdout.take().ok_or_else(|| fail("no kfake stdout"))?;
    let line = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        }),
    )
    .await;
    let kfake = |bootstrap: String, child: Child| Kfake { child, bootstrap };
    match line {
        Ok(Ok(Ok(line))) => match line.trim().strip_prefix("LISTEN ") {
            Some(addrs) if !addrs.is_empty() => Ok(kfake(addrs.to_string(), child)),
            _ => {
                drop(kfake(String::new(), child));
                Err(fail(format!("kfake printed '{line}' instead of LISTEN")))
            }
        },
        _ => {
            drop(kfake(String::new(), child));
            Err(fail("kfake did not print its address within 30 s"))
        }
    }
}

fn record(i: usize) -> Record {
    let mut r = Record::new(format!("value-{i}"), 1_700_000_000_000 + i as i64)
        .with_key(format!("key-{i}"))
        .with_header("dup", "a")
        .with_header("dup", "b");
    r.headers.push(Header {
        key: "null".to_string(),
        value: None,
    });
    r
}

fn matches(r: &ConsumedRecord, offset: i64, i: usize) -> bool {
    let want = record(i);
    r.offset == offset
        && r.key == want.key
        && r.value == want.value
        && r.headers == want.headers
        && r.timestamp == want.timestamp
}

async fn fetch_all(
    client: &Client,
    topic: &str,
    partition: i32,
) -> Result<Vec<ConsumedRecord>, BoxError> {
    let mut out = Vec::new();
    let mut offset = 0;
    for _ in 0..50 {
        let resp = client
            .fetch(FetchRequest::new(topic, partition, offset))
            .await?;
        out.extend(resp.records);
        offset = resp.next_offset.max(offset);
        if offset >= resp.high_watermark {
            return Ok(out);
        }
    }
    Err(fail(format!(
        "fetching {topic}-{partition} did not reach the high watermark"
    )))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs peers: run .ci/test-all"]
async fn kfake_serves_our_admin_producer_and_fetch() -> TestResult {
    let kfake = start_kfake().await?;
    let client = Client::connect(
        ClientConfig::new(&kfake.bootstrap)
            .with_client_id("interop-kfake")
            .with_request_timeout(Duration::from_secs(10))
            .with_delivery_timeout(Duration::from_secs(30)),
    )
    .await?;
    let topic = unique("kfake");
    client
        .create_topics(vec![NewTopic::new(&topic, 2, 1)])
        .await?;
    let md = client
        .topic_metadata(&topic)
        .await?
        .ok_or_else(|| fail("created topic missing from metadata"))?;
    if md.partitions.len() != 2 {
        return Err(fail(format!("want 2 partitions: {md:?}")));
    }

    // One atomic send of three records to partition 0: one batch, offsets 0..3.
    let producer = client.producer(ProducerConfig::default());
    let first = producer
        .send(&topic, 0, (0..3).map(record).collect())
        .await?;
    if first.base_offset != 0 || first.partition != 0 {
        return Err(fail(format!("first send landed at {first:?}")));
    }
    // Keyed sends: Apache Kafka's Java client (Utils.murmur2, checked with kafka-clients
    // 4.1) puts key-3 and key-4 on partition 1, key-5 and key-6 on partition 0 of a
    // 2-partition topic.
    let want_partition = |i: usize| if i == 3 || i == 4 { 1 } else { 0 };
    let mut keyed = Vec::new();
    for i in 3..7 {
        let md = producer.send_keyed(&topic, record(i)).await?;
        if md.partition != want_partition(i) {
            return Err(fail(format!("key-{i} went to partition {}", md.partition)));
        }
        keyed.push((i, md));
    }
    producer.flush().await?;

    let p0: Vec<usize> = vec![0, 1, 2, 5, 6];
    let p1: Vec<usize> = vec![3, 4];
    for (partition, keys) in [(0, &p0), (1, &p1)] {
        let earliest = client
            .list_offset(&topic, partition, OffsetSpec::Earliest)
            .await?;
        let latest = client
            .list_offset(&topic, partition, OffsetSpec::Latest)
            .await?;
        if (earliest, latest) != (0, keys.len() as i64) {
            return Err(fail(format!(
                "partition {partition}: earliest {earliest}, latest {latest}, want 0, {}",
                keys.len()
            )));
        }
        let records = fetch_all(&client, &topic, partition).await?;
        let ok = records.len() == keys.len()
            && records
                .iter()
                .zip(keys.iter())
                .enumerate()
                .all(|(off, (r, &i))| matches(r, off as i64, i));
        if !ok {
            return Err(fail(format!(
                "partition {partition}: want keys {keys:?}, got {records:?}"
            )));
        }
    }
    for (i, md) in &keyed {
        let pos = if md.partition == 0 { &p0 } else { &p1 };
        let want = pos.iter().position(|k| k == i).map(|p| p as i64);
        if Some(md.base_offset) != want {
            return Err(fail(format!(
                "key-{i}: offset {} != {want:?}",
                md.base_offset
            )));
        }
    }
    let timestamp = client
        .list_offset(&topic, 0, OffsetSpec::Timestamp(1_700_000_000_001))
        .await?;
    if timestamp != 1 {
        return Err(fail(format!(
            "offset for timestamp ..001 is {timestamp}, want 1"
        )));
    }

    client.delete_topics(std::slice::from_ref(&topic)).await?;
    let mut gone = false;
    for _ in 0..50 {
        if client.topic_metadata(&topic).await?.is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !gone {
        return Err(fail("deleted topic still in metadata"));
    }
    Ok(())
}

//! Our client (`wire`) against a 3-node Apache Kafka cluster (KRaft) across a real leader
//! change: the test kills the process of the partition leader while the idempotent producer
//! is sending, and every send must still succeed, exactly once and in order.
//!
//! Needs a cluster started by `.ci/kafka/kafka-cluster start 3 DIR` (`.ci/test-all` step c):
//! - `KP_KAFKA_CLUSTER_BOOTSTRAP`: "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3"
//! - `KP_KAFKA_CLUSTER_NODES`: "1:P1:PIDFILE1,2:P2:PIDFILE2,3:P3:PIDFILE3" (node id, broker
//!   port, file holding the pid of that node's JVM)

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_persistence_wire::{
    Client, ClientConfig, ConsumedRecord, FetchRequest, NewTopic, ProducerConfig, Record,
};

use common::{fail, unique, TestResult};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One node of the external cluster.
#[derive(Debug, Clone)]
struct Node {
    id: i32,
    pid_file: PathBuf,
}

fn cluster_env() -> Result<(String, HashMap<i32, Node>), BoxError> {
    let bootstrap = std::env::var("KP_KAFKA_CLUSTER_BOOTSTRAP").map_err(|_| {
        fail("KP_KAFKA_CLUSTER_BOOTSTRAP is not set: run .ci/test-all (step c), see interop/README.md")
    })?;
    let nodes_var = std::env::var("KP_KAFKA_CLUSTER_NODES")
        .map_err(|_| fail("KP_KAFKA_CLUSTER_NODES is not set: run .ci/test-all (step c)"))?;
    let mut nodes = HashMap::new();
    for entry in nodes_var.split(',').filter(|e| !e.is_empty()) {
        let mut parts = entry.splitn(3, ':');
        let (Some(id), Some(_port), Some(pid_file)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(fail(format!("bad KP_KAFKA_CLUSTER_NODES entry '{entry}'")));
        };
        let id: i32 = id
            .parse()
            .map_err(|e| fail(format!("bad node id in '{entry}': {e}")))?;
        nodes.insert(
            id,
            Node {
                id,
                pid_file: PathBuf::from(pid_file),
            },
        );
    }
    if nodes.len() < 3 {
        return Err(fail(format!(
            "need 3 nodes in KP_KAFKA_CLUSTER_NODES, got '{nodes_var}'"
        )));
    }
    Ok((bootstrap, nodes))
}

/// Kills a node's JVM (SIGKILL: a crash, no controlled shutdown).
fn kill_node(node: &Node) -> TestResult {
    let pid = std::fs::read_to_string(&node.pid_file)?.trim().to_string();
    if pid.is_empty() || !pid.chars().all(|c| c.is_ascii_digit()) {
        return Err(fail(format!(
            "bad pid '{pid}' in {}",
            node.pid_file.display()
        )));
    }
    let status = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()?;
    if !status.success() {
        return Err(fail(format!("kill -9 {pid} (node {}) failed", node.id)));
    }
    Ok(())
}

async fn leader_of(client: &Client, topic: &str) -> Result<(i32, i32), BoxError> {
    let md = client
        .topic_metadata(topic)
        .await?
        .ok_or_else(|| fail(format!("topic {topic} not in metadata")))?;
    let p = md
        .partitions
        .iter()
        .find(|p| p.partition == 0)
        .ok_or_else(|| fail(format!("{topic} has no partition 0")))?;
    Ok((p.leader, p.leader_epoch))
}

fn record(i: usize) -> Record {
    Record::new(format!("value-{i}"), 1_700_000_000_000 + i as i64)
        .with_key(format!("key-{i}"))
        .with_header("seq", i.to_string())
}

async fn read_all(client: &Client, topic: &str) -> Result<Vec<ConsumedRecord>, BoxError> {
    let mut out = Vec::new();
    let mut offset = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let resp = client
            .fetch(FetchRequest::new(topic, 0, offset).with_max_wait(Duration::from_millis(200)))
            .await?;
        out.extend(resp.records);
        offset = resp.next_offset.max(offset);
        if offset >= resp.high_watermark {
            return Ok(out);
        }
        if Instant::now() > deadline {
            return Err(fail(format!(
                "reading {topic}: stuck at offset {offset}, high watermark {}",
                resp.high_watermark
            )));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs peers: run .ci/test-all"]
async fn apache_kafka_cluster_idempotent_producer_survives_killed_leader() -> TestResult {
    const TOTAL: usize = 40;
    const BEFORE_KILL: usize = 10;

    let (bootstrap, nodes) = cluster_env()?;
    let client = Client::connect(
        ClientConfig::new(&bootstrap)
            .with_client_id("interop-cluster")
            .with_request_timeout(Duration::from_secs(10))
            .with_delivery_timeout(Duration::from_secs(120))
            .with_retry_backoff(Duration::from_millis(100), Duration::from_secs(1)),
    )
    .await?;
    let topic = unique("cluster-leader-change");
    client
        .create_topics(vec![
            NewTopic::new(&topic, 1, 3).with_config("min.insync.replicas", "2")
        ])
        .await?;
    let (old_leader, old_epoch) = leader_of(&client, &topic).await?;
    let victim = nodes
        .get(&old_leader)
        .cloned()
        .ok_or_else(|| fail(format!("leader {old_leader} is not one of {nodes:?}")))?;

    // The producer sends one record per call, each awaited, while the leader is killed.
    let producer = client.producer(ProducerConfig::default());
    let acked = Arc::new(AtomicUsize::new(0));
    let sender = {
        let producer = producer.clone();
        let topic = topic.clone();
        let acked = Arc::clone(&acked);
        tokio::spawn(async move {
            let mut offsets = Vec::with_capacity(TOTAL);
            for i in 0..TOTAL {
                let md = producer.send(&topic, 0, vec![record(i)]).await?;
                offsets.push(md.base_offset);
                acked.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<_, kafka_persistence_wire::Error>(offsets)
        })
    };
    let wait_start = Instant::now();
    while acked.load(Ordering::SeqCst) < BEFORE_KILL {
        if wait_start.elapsed() > Duration::from_secs(60) || sender.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    kill_node(&victim)?;
    let killed_at = Instant::now();
    let offsets = sender
        .await
        .map_err(|e| fail(format!("sender task: {e}")))?
        .map_err(|e| fail(format!("a send failed across the leader change: {e}")))?;
    eprintln!(
        "leader {old_leader} killed after {} acks; all {TOTAL} sends done {:?} later",
        BEFORE_KILL,
        killed_at.elapsed()
    );

    // Each send got its own offset, in order, without gaps: nothing duplicated.
    let want: Vec<i64> = (0..TOTAL as i64).collect();
    if offsets != want {
        return Err(fail(format!("offsets of the sends: {offsets:?}")));
    }
    let (new_leader, new_epoch) = leader_of(&client, &topic).await?;
    if new_leader == old_leader || new_leader < 0 || new_epoch <= old_epoch {
        return Err(fail(format!(
            "leadership did not move: leader {old_leader}@{old_epoch} -> {new_leader}@{new_epoch}"
        )));
    }

    // Read back from the new leader: every record exactly once, in order, intact.
    let records = read_all(&client, &topic).await?;
    if records.len() != TOTAL {
        return Err(fail(format!(
            "read {} records, want {TOTAL}: {records:?}",
            records.len()
        )));
    }
    for (i, r) in records.iter().enumerate() {
        let ok = r.offset == i as i64
            && r.key == Some(Bytes::from(format!("key-{i}")))
            && r.value == Some(Bytes::from(format!("value-{i}")))
            && r.timestamp == 1_700_000_000_000 + i as i64
            && r.headers.len() == 1
            && r.headers[0].key == "seq"
            && r.headers[0].value == Some(Bytes::from(i.to_string()));
        if !ok {
            return Err(fail(format!("record {i} differs: {r:?}")));
        }
    }
    Ok(())
}

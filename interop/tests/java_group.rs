//! Our group consumers and Apache Kafka's Java consumers (kafka-clients 4.x,
//! `peers/java/GroupMember.java`) in one group: every record is consumed exactly once
//! across the rebalances of members of either kind joining and leaving, with both
//! protocols (classic: JoinGroup/SyncGroup; consumer: KIP-848), on the testserver or on the
//! broker `KP_PEERS_BOOTSTRAP` names (`.ci/test-all` steps b and d).
//!
//! The run: a Rust member alone consumes part of a first batch; a Java member joins; a
//! second Rust member joins; a second batch; the first Rust member leaves; a third batch; the
//! Java member leaves; a fourth batch; the last Rust member consumes the rest. Every member
//! commits after each poll and when partitions are revoked. The Java member's records come
//! from its output, ours from the pollers.
//!
//! Needs javac and the kafka-clients jars: run `.ci/test-all`, or see interop/README.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{fail, java_classpath, run_peer, unique, TestResult};
use futures::future::BoxFuture;
use kafka_persistence_testserver::TestServer;
use kafka_persistence_wire::{
    Client, ClientConfig, Consumer, ConsumerConfig, GroupProtocol, NewTopic, OffsetReset,
    ProducerConfig, RebalanceContext, RebalanceListener, Record, TopicPartition,
};

const PARTITIONS: i32 = 6;
const PER_BATCH: usize = 20; // per partition

/// Commits what is revoked.
struct CommitOnRevoke;

impl RebalanceListener for CommitOnRevoke {
    fn on_partitions_revoked<'a>(
        &'a mut self,
        ctx: &'a mut RebalanceContext<'_>,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = ctx.commit_positions(partitions).await;
        })
    }
}

type Seen = Arc<Mutex<Vec<(i32, i64)>>>;

/// A Rust member polling on its own task.
struct Member {
    stop: Arc<AtomicBool>,
    assigned: Arc<AtomicUsize>,
    handle: tokio::task::JoinHandle<()>,
}

fn spawn_member(mut c: Consumer, seen: Seen) -> Member {
    let stop = Arc::new(AtomicBool::new(false));
    let assigned = Arc::new(AtomicUsize::new(0));
    let (s, a) = (Arc::clone(&stop), Arc::clone(&assigned));
    let handle = tokio::spawn(async move {
        while !s.load(Ordering::Acquire) {
            let recs = c.poll(Duration::from_millis(200)).await.expect("poll");
            if !recs.is_empty() {
                seen.lock()
                    .unwrap()
                    .extend(recs.iter().map(|r| (r.partition, r.offset())));
                // A commit refused mid-rebalance is made again by the revocation.
                let _ = c.commit_positions().await;
            }
            a.store(c.assignment().len(), Ordering::Release);
        }
        c.close().await.expect("close");
    });
    Member {
        stop,
        assigned,
        handle,
    }
}

impl Member {
    async fn leave(self) {
        self.stop.store(true, Ordering::Release);
        self.handle.await.expect("member task");
    }
}

async fn wait_for(what: &str, secs: u64, cond: impl Fn() -> bool) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        if Instant::now() >= deadline {
            return Err(fail(format!("timed out waiting: {what}")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn produce(client: &Client, topic: &str, batch: usize) {
    let p = client.producer(ProducerConfig::default());
    let mut futs = Vec::new();
    for i in 0..PER_BATCH {
        for part in 0..PARTITIONS {
            futs.push(p.enqueue(
                topic,
                part,
                vec![Record::new(format!("b{batch}-{part}-{i}"), 0)],
            ));
        }
    }
    for f in futs {
        f.await.expect("produced");
    }
}

/// Waits until the group committed `per_partition` on every partition.
async fn wait_committed(watcher: &mut Consumer, topic: &str, per_partition: i64) -> TestResult {
    let tps: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let c = watcher.committed(&tps).await?;
        if tps
            .iter()
            .all(|tp| c.get(tp).cloned().flatten().map(|o| o.offset) == Some(per_partition))
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(fail(format!("committed offsets stuck at {c:?}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn mixed_group(protocol: GroupProtocol, java_protocol: &str) -> TestResult {
    // Our own testserver, with the CI cluster's consumer-protocol timeouts, unless
    // KP_PEERS_BOOTSTRAP names a broker.
    let (bootstrap, server) = match std::env::var("KP_PEERS_BOOTSTRAP") {
        Ok(b) if !b.trim().is_empty() => (b.trim().to_string(), None),
        _ => {
            let s = TestServer::builder()
                .consumer_group_timeouts(Duration::from_secs(6), Duration::from_millis(250))
                .start()
                .await?;
            (s.bootstrap_servers(), Some(s))
        }
    };
    let config = ClientConfig::new(&bootstrap)
        .with_request_timeout(Duration::from_secs(10))
        .with_retry_backoff(Duration::from_millis(10), Duration::from_millis(500));
    let client = Client::connect(config.clone()).await?;
    let topic = unique("java-mixed-group");
    client
        .create_topics(vec![NewTopic::new(&topic, PARTITIONS, 1)])
        .await?;
    let group = unique("mixed");
    let member_config = || {
        ConsumerConfig::new(&group)
            .with_group_protocol(protocol)
            .with_heartbeat_interval(Duration::from_millis(100))
            .with_session_timeout(Duration::from_secs(10))
            .with_max_poll_interval(Duration::from_secs(60))
            .with_auto_offset_reset(OffsetReset::Earliest)
            .with_max_poll_records(50)
    };
    let new_member = |seen: &Seen| {
        let seen = Arc::clone(seen);
        let config = config.clone();
        let mc = member_config();
        let topic = topic.clone();
        async move {
            let mut c = Client::connect(config).await?.consumer(mc)?;
            c.subscribe(vec![topic], Some(Box::new(CommitOnRevoke)))?;
            Ok::<Member, Box<dyn std::error::Error + Send + Sync>>(spawn_member(c, seen))
        }
    };
    // Reads the group's committed offsets (no membership).
    let mut watcher = Client::connect(config.clone())
        .await?
        .consumer(ConsumerConfig::new(&group))?;
    let seen: Seen = Arc::default();

    produce(&client, &topic, 1).await;
    let r1 = new_member(&seen).await?;
    wait_for("the first Rust member consumed", 60, || {
        seen.lock().unwrap().len() >= 30
    })
    .await?;

    // The Java member joins.
    let stop_file = std::env::temp_dir().join(unique("kp-java-member-stop"));
    let cp = java_classpath().await?;
    let mut java = Command::new("java");
    java.arg("-Xmx256m")
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .arg("-cp")
        .arg(cp)
        .arg("GroupMember")
        .arg(&bootstrap)
        .arg(&topic)
        .arg(&group)
        .arg(java_protocol)
        .arg(&stop_file);
    let java = tokio::spawn(run_peer(java, None, Duration::from_secs(240)));
    wait_for("the Java member took partitions", 90, || {
        let n = r1.assigned.load(Ordering::Acquire);
        n > 0 && n < PARTITIONS as usize
    })
    .await?;

    // A second Rust member joins; a second batch.
    let r2 = new_member(&seen).await?;
    wait_for("the second Rust member took partitions", 90, || {
        r2.assigned.load(Ordering::Acquire) > 0
    })
    .await?;
    produce(&client, &topic, 2).await;
    wait_committed(&mut watcher, &topic, 2 * PER_BATCH as i64).await?;

    // The first Rust member leaves; a third batch.
    r1.leave().await;
    produce(&client, &topic, 3).await;
    wait_committed(&mut watcher, &topic, 3 * PER_BATCH as i64).await?;

    // The Java member leaves; a fourth batch, for the last Rust member.
    std::fs::write(&stop_file, b"stop")?;
    let out = java.await??;
    let _ = std::fs::remove_file(&stop_file);
    out.ensure_success("java GroupMember")?;
    produce(&client, &topic, 4).await;
    wait_committed(&mut watcher, &topic, 4 * PER_BATCH as i64).await?;
    r2.leave().await;

    let mut java_seen = Vec::new();
    for line in out.tagged_lines(&["RECORD"]) {
        let mut p = None;
        let mut o = None;
        for field in line.split_whitespace() {
            if let Some(v) = field.strip_prefix("p=") {
                p = v.parse::<i32>().ok();
            }
            if let Some(v) = field.strip_prefix("o=") {
                o = v.parse::<i64>().ok();
            }
        }
        match (p, o) {
            (Some(p), Some(o)) => java_seen.push((p, o)),
            _ => return Err(fail(format!("bad Java line {line:?}"))),
        }
    }
    if java_seen.is_empty() {
        return Err(fail(format!(
            "the Java member consumed nothing\n{}\n{}",
            out.stdout, out.stderr
        )));
    }
    let ours = seen.lock().unwrap().clone();
    let mut count: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for r in ours.iter().chain(java_seen.iter()) {
        *count.entry(*r).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    if !twice.is_empty() {
        return Err(fail(format!(
            "consumed more than once: {twice:?}\njava:\n{}",
            out.stdout
        )));
    }
    let total = 4 * PER_BATCH * PARTITIONS as usize;
    if count.len() != total {
        return Err(fail(format!(
            "consumed {} distinct records, want {total}",
            count.len()
        )));
    }
    for p in 0..PARTITIONS {
        for o in 0..(4 * PER_BATCH) as i64 {
            if !count.contains_key(&(p, o)) {
                return Err(fail(format!("record {p}/{o} never consumed")));
            }
        }
    }
    eprintln!(
        "mixed group ({java_protocol}): ours {} records, Java {}",
        ours.len(),
        java_seen.len()
    );
    if let Some(s) = server {
        s.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs peers: run .ci/test-all"]
async fn java_client_and_ours_share_a_classic_group_every_record_exactly_once() -> TestResult {
    mixed_group(GroupProtocol::Classic, "classic").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs peers: run .ci/test-all"]
async fn java_client_and_ours_share_a_consumer_protocol_group_every_record_exactly_once(
) -> TestResult {
    mixed_group(GroupProtocol::Consumer, "consumer").await
}

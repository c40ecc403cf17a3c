//! The facade's transactional consume-transform-produce stage (`stream::run_transactional`)
//! on a 3-node Apache Kafka cluster (KRaft) across a killed coordinator: input and output
//! topics with replication factor 3, records produced while the stage runs, and the node
//! that is the transaction coordinator of the stage's `transactional.id` killed (SIGKILL)
//! in the middle of the run and started again later. The stage must finish the input, and a
//! `read_committed` reader of the output must see every input record exactly once: none
//! missing, none twice.
//!
//! Needs a cluster started by `.ci/kafka/kafka-cluster start 3 DIR` (`.ci/test-all` step c),
//! found through the environment described in `common/cluster.rs`.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_persistence::stream::{
    run_transactional, TransactionalControl, TransactionalOutput, TransactionalSettings,
    TransactionalStats,
};
use kafka_persistence_wire::{
    Client, ClientConfig, ConsumerConfig, CoordinatorKind, IsolationLevel, NewTopic, OffsetReset,
    OffsetSpec, ProducerConfig, Record, TopicPartition,
};

use common::cluster::Cluster;
use common::{fail, unique, TestResult};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Input records.
const TOTAL: usize = 3_000;
/// Partitions of the input and the output.
const PARTITIONS: i32 = 3;
/// How long any one phase may wait for progress.
const PHASE_TIMEOUT: Duration = Duration::from_secs(90);

fn client_config(bootstrap: &str, id: &str) -> ClientConfig {
    ClientConfig::new(bootstrap)
        .with_client_id(id)
        .with_request_timeout(Duration::from_secs(10))
        .with_delivery_timeout(Duration::from_secs(120))
        .with_retry_backoff(Duration::from_millis(100), Duration::from_secs(1))
}

/// The output records committed so far, read with `read_committed` from the beginning:
/// value -> how many times it was seen.
async fn committed_output(
    client: &Client,
    topic: &str,
) -> Result<BTreeMap<String, usize>, BoxError> {
    let mut reader = client.consumer(
        ConsumerConfig::default()
            .with_isolation(IsolationLevel::ReadCommitted)
            .with_auto_offset_reset(OffsetReset::Earliest),
    )?;
    let parts: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    reader.assign(parts.clone())?;
    // The high watermarks now: everything committed before this call is below them (a
    // read_committed position passes them once the transactions open now have ended).
    let mut ends = BTreeMap::new();
    for tp in &parts {
        ends.insert(
            tp.clone(),
            client
                .list_offset(&tp.topic, tp.partition, OffsetSpec::Latest)
                .await?,
        );
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let deadline = Instant::now() + PHASE_TIMEOUT;
    loop {
        let mut done = true;
        for tp in &parts {
            if reader.position(tp).await? < ends[tp] {
                done = false;
            }
        }
        if done {
            return Ok(seen);
        }
        if Instant::now() > deadline {
            return Err(fail(format!(
                "reading {topic}: not at {ends:?} after {PHASE_TIMEOUT:?}"
            )));
        }
        for r in reader.poll(Duration::from_millis(200)).await? {
            let v = String::from_utf8_lossy(r.record.value.as_deref().unwrap_or_default());
            *seen.entry(v.into_owned()).or_default() += 1;
        }
    }
}

type Stage = tokio::task::JoinHandle<Result<TransactionalStats, kafka_persistence_wire::Error>>;

/// Waits until at least `n` distinct outputs are committed; fails at once if the stage ended.
async fn wait_output(
    client: &Client,
    topic: &str,
    n: usize,
    what: &str,
    stage: &mut Stage,
) -> TestResult {
    let deadline = Instant::now() + PHASE_TIMEOUT;
    loop {
        let have = committed_output(client, topic).await?.len();
        if have >= n {
            return Ok(());
        }
        if stage.is_finished() {
            let ended = stage.await?;
            return Err(fail(format!(
                "{what}: the stage ended at {have} of {n} outputs: {ended:?}"
            )));
        }
        if Instant::now() > deadline {
            return Err(fail(format!(
                "{what}: {have} of {n} outputs after {PHASE_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs peers: run .ci/test-all"]
async fn apache_kafka_cluster_transactional_pipeline_survives_a_killed_coordinator() -> TestResult {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let cluster = Cluster::from_env()?;
    cluster.all_up()?;
    let admin = Client::connect(client_config(&cluster.bootstrap, "pipeline-admin")).await?;
    let (input, output) = (unique("pipeline-in"), unique("pipeline-out"));
    admin
        .create_topics(vec![
            NewTopic::new(&input, PARTITIONS, 3).with_config("min.insync.replicas", "2"),
            NewTopic::new(&output, PARTITIONS, 3).with_config("min.insync.replicas", "2"),
        ])
        .await?;
    let (tid, group) = (unique("pipeline-tid"), unique("pipeline-group"));

    // Input arrives while the stage runs: a quarter first, the rest paced over the run.
    let produced = Arc::new(AtomicUsize::new(0));
    let feeder = {
        let client = Client::connect(client_config(&cluster.bootstrap, "pipeline-feeder")).await?;
        let (input, produced) = (input.clone(), Arc::clone(&produced));
        tokio::spawn(async move {
            let p = client.producer(ProducerConfig::default());
            for chunk in (0..TOTAL).collect::<Vec<_>>().chunks(50) {
                let mut sends = Vec::new();
                for &i in chunk {
                    // Current timestamps: with old ones the brokers' retention (7 days) may
                    // delete the first segments when a restarted node rolls its logs.
                    let rec = Record::new(format!("in-{i}"), now_ms());
                    sends.push(p.enqueue(&input, (i as i32) % PARTITIONS, vec![rec]));
                }
                for s in sends {
                    s.await?;
                }
                let n = produced.fetch_add(chunk.len(), Ordering::SeqCst) + chunk.len();
                if n >= TOTAL / 4 {
                    tokio::time::sleep(Duration::from_millis(60)).await;
                }
            }
            Ok::<(), kafka_persistence_wire::Error>(())
        })
    };

    let client = Client::connect(client_config(&cluster.bootstrap, "pipeline-stage")).await?;
    let mut consumer = client.consumer(
        ConsumerConfig::new(&group)
            .with_isolation(IsolationLevel::ReadCommitted)
            .with_auto_offset_reset(OffsetReset::Earliest)
            .with_session_timeout(Duration::from_secs(10))
            .with_heartbeat_interval(Duration::from_millis(500)),
    )?;
    consumer.subscribe(vec![input.clone()], None)?;
    let producer = client
        .transactional_producer(
            ProducerConfig::default()
                .with_transactional_id(&tid)
                .with_transaction_timeout(Duration::from_secs(60)),
        )
        .await?;
    let control = TransactionalControl::default();
    let out_topic = output.clone();
    let mut stage: Stage = tokio::spawn(run_transactional(
        consumer,
        producer,
        TransactionalSettings {
            commit_interval: Duration::from_millis(100),
            ..TransactionalSettings::default()
        },
        control.clone(),
        move |r| {
            let v = String::from_utf8_lossy(r.record.value.as_deref().unwrap_or_default());
            vec![TransactionalOutput::single(
                &out_topic,
                r.partition,
                Record::new(v.replacen("in-", "out-", 1), r.record.timestamp),
            )]
        },
    ));

    wait_output(&admin, &output, TOTAL / 8, "before the kill", &mut stage).await?;
    let txn_coordinator = admin
        .find_coordinator(CoordinatorKind::Transaction, &tid)
        .await?;
    let group_coordinator = admin
        .find_coordinator(CoordinatorKind::Group, &group)
        .await?;
    let before_kill = committed_output(&admin, &output).await?.len();
    cluster.kill(txn_coordinator)?;
    let t_kill = Instant::now();
    eprintln!(
        "killed node {txn_coordinator} (transaction coordinator; group coordinator: node \
         {group_coordinator}) with {before_kill} outputs committed, {} inputs produced",
        produced.load(Ordering::SeqCst)
    );
    // The pipeline goes on while the node is down: more outputs commit.
    wait_output(
        &admin,
        &output,
        before_kill + TOTAL / 8,
        "with the coordinator down",
        &mut stage,
    )
    .await?;
    let moved_to = admin
        .find_coordinator(CoordinatorKind::Transaction, &tid)
        .await?;
    let resumed = t_kill.elapsed();
    cluster.restart(txn_coordinator)?;
    feeder.await??;
    if let Err(e) = wait_output(&admin, &output, TOTAL, "after the restart", &mut stage).await {
        let seen = committed_output(&admin, &output).await?;
        let missing: Vec<usize> = (0..TOTAL)
            .filter(|i| !seen.contains_key(&format!("out-{i}")))
            .collect();
        let mut group_view = admin.consumer(ConsumerConfig::new(&group))?;
        let parts: Vec<TopicPartition> = (0..PARTITIONS)
            .map(|p| TopicPartition::new(&input, p))
            .collect();
        let committed = group_view.committed(&parts).await?;
        return Err(fail(format!(
            "{e}; missing inputs {missing:?}; the group's committed offsets {committed:?}"
        )));
    }
    control.stop();
    let stats = stage.await??;

    let seen = committed_output(&admin, &output).await?;
    let twice: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    let missing: Vec<usize> = (0..TOTAL)
        .filter(|i| !seen.contains_key(&format!("out-{i}")))
        .collect();
    let unexpected: Vec<&String> = seen
        .keys()
        .filter(|v| {
            v.strip_prefix("out-")
                .and_then(|n| n.parse::<usize>().ok())
                .is_none_or(|n| n >= TOTAL)
        })
        .collect();
    eprintln!(
        "node {txn_coordinator} killed; the coordinator moved to node {moved_to}; outputs \
         committed again {resumed:?} after the kill; stage: {stats:?}"
    );
    if !twice.is_empty() || !missing.is_empty() || !unexpected.is_empty() {
        return Err(fail(format!(
            "not exactly once: {} twice (first {:?}), {} missing (first {:?}), unexpected {:?}",
            twice.len(),
            twice.first(),
            missing.len(),
            missing.first(),
            unexpected.first()
        )));
    }
    if moved_to == txn_coordinator {
        return Err(fail(format!(
            "the transaction coordinator is still node {txn_coordinator} after it was killed"
        )));
    }
    Ok(())
}

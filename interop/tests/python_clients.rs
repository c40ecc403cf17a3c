//! The Python clients against our testserver: confluent-kafka (librdkafka, idempotent
//! producer) and kafka-python (pure Python, idempotent producer): CreateTopics, keyed records
//! with headers, list offsets, consume by assign.
//!
//! Needs the venv of `.ci/test-all` (or `KP_PYTHON`); see interop/README.md.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{assert_lines, peer_file, python, run_peer, unique, PeerBroker, TestResult};

const PEER_TIMEOUT: Duration = Duration::from_secs(120);
const COUNT: usize = 5;

/// The lines a peer script prints for 5 records at offsets 0..5; `null_header` is how the
/// odd records' `empty` header reads back.
fn expected(topic: &str, null_header: &str) -> Vec<String> {
    let mut want = vec![format!("CREATED {topic}")];
    want.extend((0..COUNT).map(|i| format!("SENT key-{i} p=0 o={i}")));
    want.push(format!("OFFSETS earliest=0 latest={COUNT}"));
    want.extend((0..COUNT).map(|i| {
        let extra = if i % 2 == 1 {
            format!(";empty={null_header}")
        } else {
            String::new()
        };
        format!("RECORD p=0 o={i} k=key-{i} v=value-{i} h=[trace=t{i};dup=a;dup=b{extra}]")
    }));
    want.push("DONE".to_string());
    want
}

async fn run_script(
    script: &str,
    broker: &PeerBroker,
    topic: &str,
) -> Result<common::PeerOutput, Box<dyn std::error::Error + Send + Sync>> {
    let mut cmd = Command::new(python());
    cmd.arg(peer_file(script)).arg(&broker.bootstrap).arg(topic);
    let out = run_peer(cmd, None, PEER_TIMEOUT).await?;
    out.ensure_success(script)?;
    Ok(out)
}

const TAGS: &[&str] = &[
    "CREATED",
    "SENT",
    "FAILED",
    "UNDELIVERED",
    "OFFSETS",
    "RECORD",
    "ERROR",
    "TIMEOUT",
    "DONE",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs peers: run .ci/test-all"]
async fn confluent_kafka_idempotent_producer_and_assign_consumer() -> TestResult {
    let broker = PeerBroker::start().await?;
    let topic = unique("py-confluent");
    let out = run_script("python/confluent_check.py", &broker, &topic).await?;
    assert_lines(
        "confluent-kafka",
        &out.tagged_lines(TAGS),
        &expected(&topic, "(null)"),
        &out,
    )?;
    broker
        .expect_high_watermark(&topic, 0, COUNT as i64)
        .await?;
    broker.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs peers: run .ci/test-all"]
async fn kafka_python_admin_producer_end_offsets_and_consumer() -> TestResult {
    let broker = PeerBroker::start().await?;
    let topic = unique("py-kafka-python");
    let out = run_script("python/kafka_python_check.py", &broker, &topic).await?;
    // kafka-python cannot send a null header value; its script sends an empty one.
    assert_lines(
        "kafka-python",
        &out.tagged_lines(TAGS),
        &expected(&topic, ""),
        &out,
    )?;
    broker
        .expect_high_watermark(&topic, 0, COUNT as i64)
        .await?;
    broker.shutdown().await;
    Ok(())
}

/// The transaction witness (issue 8, item 7): a confluent-kafka transactional producer's
/// aborted records are never seen by our `read_committed` consumer (its committed ones
/// are), and ours are never seen by confluent-kafka's `read_committed` consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs peers: run .ci/test-all"]
async fn confluent_kafka_transactions_witness_read_committed_both_ways() -> TestResult {
    use kafka_persistence_wire::{
        Client, ClientConfig, ConsumerConfig, IsolationLevel, NewTopic, OffsetReset,
        ProducerConfig, Record, TopicPartition,
    };
    let broker = PeerBroker::start().await?;
    let topic = unique("py-confluent-txn");
    let client = Client::connect(
        ClientConfig::new(&broker.bootstrap).with_request_timeout(Duration::from_secs(10)),
    )
    .await?;
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await?;
    let script = peer_file("python/confluent_txn.py");
    // 1. confluent-kafka aborts 3, commits 3.
    let mut cmd = Command::new(python());
    cmd.arg(&script)
        .arg("produce")
        .arg(&broker.bootstrap)
        .arg(&topic)
        .arg(unique("py-tid"));
    let out = run_peer(cmd, None, PEER_TIMEOUT).await?;
    out.ensure_success("confluent_txn.py produce")?;
    assert_lines(
        "confluent-kafka transactional producer",
        &out.tagged_lines(&["ABORTED", "COMMITTED", "ERROR", "DONE"]),
        &[
            "ABORTED".to_owned(),
            "COMMITTED".to_owned(),
            "DONE".to_owned(),
        ],
        &out,
    )?;
    // 2. Ours aborts 3, commits 3.
    let p = client
        .transactional_producer(ProducerConfig::default().with_transactional_id(unique("rs-tid")))
        .await?;
    for (tag, commit) in [("rs-aborted", false), ("rs-committed", true)] {
        p.begin_transaction().await?;
        for i in 0..3 {
            p.send(&topic, 0, vec![Record::new(format!("{tag}-{i}"), 1)])
                .await?;
        }
        if commit {
            p.commit_transaction().await?;
        } else {
            p.abort_transaction().await?;
        }
    }
    let committed: Vec<String> = ["py-committed", "rs-committed"]
        .iter()
        .flat_map(|t| (0..3).map(move |i| format!("{t}-{i}")))
        .collect();
    // 3. Our read_committed consumer sees exactly the committed records (read_uncommitted
    //    sees the aborted ones too: they are in the log).
    for (isolation, want) in [
        (IsolationLevel::ReadCommitted, 6usize),
        (IsolationLevel::ReadUncommitted, 12),
    ] {
        let mut c = client.consumer(
            ConsumerConfig::default()
                .with_isolation(isolation)
                .with_auto_offset_reset(OffsetReset::Earliest),
        )?;
        c.assign(vec![TopicPartition::new(&topic, 0)])?;
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while got.len() < want && std::time::Instant::now() < deadline {
            for r in c.poll(Duration::from_millis(200)).await? {
                got.push(String::from_utf8(
                    r.record.value.unwrap_or_default().to_vec(),
                )?);
            }
        }
        // Nothing more arrives afterwards.
        for r in c.poll(Duration::from_millis(500)).await? {
            got.push(String::from_utf8(
                r.record.value.unwrap_or_default().to_vec(),
            )?);
        }
        if isolation == IsolationLevel::ReadCommitted && got != committed {
            return Err(common::fail(format!(
                "our read_committed consumer read {got:?}, want {committed:?}"
            )));
        }
        if got.len() != want {
            return Err(common::fail(format!("{isolation:?} read {got:?}")));
        }
    }
    // 4. confluent-kafka's read_committed consumer sees exactly the committed records.
    let mut cmd = Command::new(python());
    cmd.arg(&script)
        .arg("consume")
        .arg(&broker.bootstrap)
        .arg(&topic);
    let out = run_peer(cmd, None, PEER_TIMEOUT).await?;
    out.ensure_success("confluent_txn.py consume")?;
    let mut want: Vec<String> = committed.iter().map(|v| format!("RECORD {v}")).collect();
    want.push("DONE".to_owned());
    assert_lines(
        "confluent-kafka read_committed consumer",
        &out.tagged_lines(&["RECORD", "ERROR", "TIMEOUT", "DONE"]),
        &want,
        &out,
    )?;
    broker.shutdown().await;
    Ok(())
}

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

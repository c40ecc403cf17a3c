//! Apache Kafka's Java client (kafka-clients 4.x) against our testserver: AdminClient
//! CreateTopics and ListOffsets, an idempotent producer with keys and headers, a consumer by
//! assign + seek, and a classic consumer group that commits.
//!
//! Needs javac and the kafka-clients jars: run `.ci/test-all`, or see interop/README.md.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{assert_lines, java_classpath, run_peer, unique, PeerBroker, TestResult};

const PEER_TIMEOUT: Duration = Duration::from_secs(180);

fn headers(i: usize) -> String {
    let mut h = format!("[trace=t{i};dup=a;dup=b");
    if i % 2 == 1 {
        h.push_str(";empty=(null)");
    }
    h.push(']');
    h
}

async fn run_java(
    bootstrap: &str,
    topic: &str,
    mode: &str,
) -> Result<common::PeerOutput, Box<dyn std::error::Error + Send + Sync>> {
    run_java_with(bootstrap, topic, mode, None).await
}

/// `properties`: a file of client properties (security settings) the peer loads.
async fn run_java_with(
    bootstrap: &str,
    topic: &str,
    mode: &str,
    properties: Option<&std::path::Path>,
) -> Result<common::PeerOutput, Box<dyn std::error::Error + Send + Sync>> {
    let cp = java_classpath().await?;
    let mut java = Command::new("java");
    if let Some(p) = properties {
        java.env("KP_JAVA_CLIENT_PROPERTIES", p);
    }
    java.arg("-Xmx256m")
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .arg("-cp")
        .arg(cp)
        .arg("InteropClient")
        .arg(bootstrap)
        .arg(topic)
        .arg(mode);
    let out = run_peer(java, None, PEER_TIMEOUT).await?;
    out.ensure_success("java InteropClient")?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs peers: run .ci/test-all"]
async fn java_client_produces_idempotently_and_consumes_by_assign_and_seek() -> TestResult {
    let broker = PeerBroker::start().await?;
    let topic = unique("java-assign");
    let out = run_java(&broker.bootstrap, &topic, "assign").await?;

    let mut want = vec![format!("CREATED {topic} partitions=1")];
    want.extend((0..6).map(|i| format!("SENT key-{i} p=0 o={i}")));
    want.push("OFFSETS earliest=0 latest=6".to_string());
    // The consumer seeks to offset 1: it must not see record 0.
    want.extend((1..6).map(|i| format!("RECORD p=0 o={i} k=key-{i} v=value-{i} h={}", headers(i))));
    want.push("DONE".to_string());
    let got = out.tagged_lines(&["CREATED", "SENT", "OFFSETS", "RECORD", "TIMEOUT", "DONE"]);
    assert_lines("java assign", &got, &want, &out)?;
    broker.expect_high_watermark(&topic, 0, 6).await?;
    broker.shutdown().await;
    Ok(())
}

/// The `group` / `group848` run: `group_type` and `assignor` as the Java AdminClient
/// reports them.
async fn group_run(mode: &str, group_type: &str, assignor: &str) -> TestResult {
    let broker = PeerBroker::start().await?;
    let topic = unique("java-group");
    let out = run_java(&broker.bootstrap, &topic, mode).await?;

    // The Java client's murmur2 partitioner puts key-1 and key-2 on partition 0, key-0 and
    // key-3 on partition 1 (checked against Apache Kafka).
    let placement = [(0usize, 1, 0), (1, 0, 0), (2, 0, 1), (3, 1, 1)]; // (key, partition, offset)
    let mut want = vec![format!("CREATED {topic} partitions=2")];
    want.extend(
        placement
            .iter()
            .map(|(k, p, o)| format!("SENT key-{k} p={p} o={o}")),
    );
    let mut by_position = placement.to_vec();
    by_position.sort_by_key(|(_, p, o)| (*p, *o));
    want.extend(
        by_position
            .iter()
            .map(|(k, p, o)| format!("RECORD p={p} o={o} k=key-{k} v=value-{k} h={}", headers(*k))),
    );
    // The AdminClient's listGroups (ListGroups v5) and describeConsumerGroups
    // (ConsumerGroupDescribe, then DescribeGroups for a classic group) while the member is in.
    want.push(format!(
        "LISTED type={group_type} protocol=consumer state=Stable"
    ));
    want.push(format!(
        "DESCRIBED type={group_type} state=Stable assignor={assignor} member \
         client=interop-java host=/127.0.0.1 partitions=[0, 1]"
    ));
    want.push("DESCRIBED-UNKNOWN error=GroupIdNotFoundException".to_string());
    want.push("COMMITTED p=0 o=2".to_string());
    want.push("COMMITTED p=1 o=2".to_string());
    want.push("DONE".to_string());
    let got = out.tagged_lines(&[
        "CREATED",
        "SENT",
        "RECORD",
        "LISTED",
        "DESCRIBED",
        "DESCRIBED-UNKNOWN",
        "COMMITTED",
        "TIMEOUT",
        "DONE",
    ]);
    assert_lines(&format!("java {mode}"), &got, &want, &out)?;
    broker.expect_high_watermark(&topic, 0, 2).await?;
    broker.expect_high_watermark(&topic, 1, 2).await?;
    broker.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs peers: run .ci/test-all"]
async fn java_client_consumer_group_subscribes_and_commits() -> TestResult {
    group_run("group", "Classic", "range").await
}

/// The same with `group.protocol=consumer` (KIP-848): the AdminClient describes the group
/// with ConsumerGroupDescribe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs peers: run .ci/test-all"]
async fn java_client_consumer_protocol_group_is_listed_and_described() -> TestResult {
    group_run("group848", "Consumer", "uniform").await
}

/// The Java client over SASL_SSL with SCRAM-SHA-512 (PEM trust store, hostname verification
/// on) against the testserver's TLS listener, SCRAM users and ACLs: the same produce, list
/// offsets and consume as the plaintext test, as a principal with ALL on the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs peers: run .ci/test-all"]
async fn java_client_over_sasl_ssl_scram_against_the_testserver() -> TestResult {
    use kafka_persistence_testserver::{
        AclOperation, CertificateAuthority, SaslMechanism, TestServer,
    };
    let ca = CertificateAuthority::new("java test CA")?;
    let cert = ca.issue_server(&["127.0.0.1", "localhost"])?;
    let server = TestServer::builder()
        .tls(&cert.cert_pem, &cert.key_pem)
        .sasl_user(SaslMechanism::ScramSha512, "alice", "alice-secret")
        .acl("User:alice", AclOperation::All, "*")
        .start()
        .await?;
    let topic = unique("java-sasl");
    let dir = std::env::temp_dir().join(&topic);
    std::fs::create_dir_all(&dir)?;
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem())?;
    let props = dir.join("client.properties");
    std::fs::write(
        &props,
        format!(
            "security.protocol=SASL_SSL\n\
             ssl.truststore.type=PEM\n\
             ssl.truststore.location={}\n\
             sasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"alice\" password=\"alice-secret\";\n",
            ca_file.display()
        ),
    )?;
    let out = run_java_with(&server.bootstrap_servers(), &topic, "assign", Some(&props)).await?;
    let mut want = vec![format!("CREATED {topic} partitions=1")];
    want.extend((0..6).map(|i| format!("SENT key-{i} p=0 o={i}")));
    want.push("OFFSETS earliest=0 latest=6".to_string());
    want.extend((1..6).map(|i| format!("RECORD p=0 o={i} k=key-{i} v=value-{i} h={}", headers(i))));
    want.push("DONE".to_string());
    let got = out.tagged_lines(&["CREATED", "SENT", "OFFSETS", "RECORD", "TIMEOUT", "DONE"]);
    assert_lines("java over SASL_SSL", &got, &want, &out)?;
    if server.request_count(17).await == 0 {
        return Err(common::fail("the Java client never sent SaslHandshake"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    server.shutdown().await;
    Ok(())
}

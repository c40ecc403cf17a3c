//! kcat (librdkafka) against our testserver: produce keyed records with headers (idempotent),
//! consume them back with a format string, consume the tail (ListOffsets latest), and read
//! metadata (`-L -J`).
//!
//! Needs kcat (`apt-get install kcat`, done by `.ci/test-all`); see interop/README.md.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{
    assert_lines, fail, java_classpath, kcat, run_peer, unique, PeerBroker, PeerOutput, TestResult,
};

const PEER_TIMEOUT: Duration = Duration::from_secs(60);

fn kcat_cmd(bootstrap: &str) -> Command {
    let mut cmd = Command::new(kcat());
    cmd.arg("-b")
        .arg(bootstrap)
        .arg("-X")
        .arg("socket.timeout.ms=20000");
    cmd
}

/// kcat cannot create topics: the testserver's control API does (or, against an external
/// broker, the Java AdminClient).
async fn create_topic(broker: &PeerBroker, topic: &str) -> TestResult {
    match &broker.server {
        Some(server) => Ok(server.create_topic(topic, 1, &[]).await?),
        None => {
            let mut java = Command::new("java");
            java.arg("-cp")
                .arg(java_classpath().await?)
                .arg("InteropClient")
                .arg(&broker.bootstrap)
                .arg(topic)
                .arg("create");
            run_peer(java, None, Duration::from_secs(120))
                .await?
                .ensure_success("java InteropClient create")
        }
    }
}

async fn produce(bootstrap: &str, topic: &str, headers: &[&str], lines: &str) -> TestResult {
    let mut cmd = kcat_cmd(bootstrap);
    cmd.args(["-P", "-t", topic, "-p", "0", "-K", ":"]).args([
        "-X",
        "enable.idempotence=true",
        "-X",
        "acks=all",
    ]);
    for h in headers {
        cmd.arg("-H").arg(h);
    }
    let out = run_peer(cmd, Some(lines.to_string()), PEER_TIMEOUT).await?;
    out.ensure_success("kcat -P")?;
    if out.stderr.contains("Delivery failed") || out.stderr.contains("ERROR") {
        return Err(fail(format!("kcat -P reported: {}", out.stderr)));
    }
    Ok(())
}

async fn consume(
    bootstrap: &str,
    topic: &str,
    offset: &str,
) -> Result<PeerOutput, Box<dyn std::error::Error + Send + Sync>> {
    let mut cmd = kcat_cmd(bootstrap);
    cmd.args(["-C", "-t", topic, "-p", "0", "-o", offset, "-e"])
        .args(["-f", "RECORD p=%p o=%o k=%k v=%s h=[%h]\\n"]);
    let out = run_peer(cmd, None, PEER_TIMEOUT).await?;
    out.ensure_success("kcat -C")?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs peers: run .ci/test-all"]
async fn kcat_produces_keys_and_headers_and_consumes_them_back() -> TestResult {
    let broker = PeerBroker::start().await?;
    let topic = unique("kcat");
    create_topic(&broker, &topic).await?;

    produce(
        &broker.bootstrap,
        &topic,
        &["trace=x", "dup=a", "dup=b"],
        "key-0:value-0\nkey-1:value-1\nkey-2:value-2\n",
    )
    .await?;
    produce(
        &broker.bootstrap,
        &topic,
        &["only=second"],
        "key-3:value-3\n",
    )
    .await?;

    let out = consume(&broker.bootstrap, &topic, "beginning").await?;
    let mut want: Vec<String> = (0..3)
        .map(|i| format!("RECORD p=0 o={i} k=key-{i} v=value-{i} h=[trace=x,dup=a,dup=b]"))
        .collect();
    want.push("RECORD p=0 o=3 k=key-3 v=value-3 h=[only=second]".to_string());
    assert_lines(
        "kcat -C -o beginning",
        &out.tagged_lines(&["RECORD"]),
        &want,
        &out,
    )?;

    // A relative offset from the end needs ListOffsets(latest): only the last record.
    let tail = consume(&broker.bootstrap, &topic, "-1").await?;
    assert_lines(
        "kcat -C -o -1",
        &tail.tagged_lines(&["RECORD"]),
        &want[3..],
        &tail,
    )?;
    broker.expect_high_watermark(&topic, 0, 4).await?;
    broker.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs peers: run .ci/test-all"]
async fn kcat_lists_metadata_of_brokers_and_topic() -> TestResult {
    let broker = PeerBroker::start().await?;
    let topic = unique("kcat-meta");
    create_topic(&broker, &topic).await?;

    let mut cmd = kcat_cmd(&broker.bootstrap);
    cmd.args(["-L", "-J", "-t", &topic]);
    let out = run_peer(cmd, None, PEER_TIMEOUT).await?;
    out.ensure_success("kcat -L -J")?;
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .map_err(|e| fail(format!("kcat -L -J printed no JSON ({e}): {}", out.stdout)))?;

    let brokers = json["brokers"]
        .as_array()
        .ok_or_else(|| fail(format!("no brokers in {json}")))?;
    let first = broker
        .bootstrap
        .split(',')
        .next()
        .ok_or_else(|| fail("empty bootstrap"))?;
    if !brokers
        .iter()
        .any(|b| b["name"].as_str().is_some_and(|n| n.starts_with(first)))
    {
        return Err(fail(format!("broker {first} not listed in {json}")));
    }
    let topics = json["topics"]
        .as_array()
        .ok_or_else(|| fail(format!("no topics in {json}")))?;
    if topics.len() != 1 || topics[0]["topic"] != topic.as_str() {
        return Err(fail(format!("want exactly topic {topic}: {json}")));
    }
    let partitions = topics[0]["partitions"]
        .as_array()
        .ok_or_else(|| fail(format!("no partitions in {json}")))?;
    if partitions.len() != 1 || partitions[0]["partition"] != 0 {
        return Err(fail(format!("want one partition 0: {json}")));
    }
    let leader = partitions[0]["leader"].clone();
    if !brokers.iter().any(|b| b["id"] == leader) {
        return Err(fail(format!(
            "leader {leader} is not a listed broker: {json}"
        )));
    }
    if topics[0].get("error").is_some_and(|e| !e.is_null()) {
        return Err(fail(format!("topic error: {json}")));
    }
    broker.shutdown().await;
    Ok(())
}

/// kcat (librdkafka) over SASL_SSL (PLAIN) against the testserver's TLS listener with ACLs: an
/// authorized user produces and consumes, a read-only user's write is refused with
/// TOPIC_AUTHORIZATION_FAILED, a wrong password is an authentication failure. PLAIN, because
/// librdkafka 2.0.x (Debian's kcat) sends a wrong SCRAM nonce, which Apache Kafka refuses too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs peers: run .ci/test-all"]
async fn kcat_sasl_ssl_plain_with_acls_against_the_testserver() -> TestResult {
    use kafka_persistence_testserver::{
        AclOperation, CertificateAuthority, SaslMechanism, TestServer,
    };
    let ca = CertificateAuthority::new("kcat test CA")?;
    let cert = ca.issue_server(&["127.0.0.1"])?;
    let server = TestServer::builder()
        .tls(&cert.cert_pem, &cert.key_pem)
        .sasl_user(SaslMechanism::Plain, "alice", "alice-secret")
        .sasl_user(SaslMechanism::Plain, "bob", "bob-secret")
        .acl("User:alice", AclOperation::All, "*")
        .acl("User:bob", AclOperation::Read, "*")
        .start()
        .await?;
    let topic = unique("kcat-sasl");
    server.create_topic(&topic, 1, &[]).await?;
    let ca_file = std::env::temp_dir().join(format!("{topic}-ca.pem"));
    std::fs::write(&ca_file, ca.cert_pem())?;
    let bootstrap = server.bootstrap_servers();
    let secured = |user: &str, password: &str| {
        let mut cmd = kcat_cmd(&bootstrap);
        for kv in [
            "security.protocol=SASL_SSL".to_owned(),
            format!("ssl.ca.location={}", ca_file.display()),
            "sasl.mechanisms=PLAIN".to_owned(),
            format!("sasl.username={user}"),
            format!("sasl.password={password}"),
        ] {
            cmd.arg("-X").arg(kv);
        }
        cmd
    };

    let mut produce = secured("alice", "alice-secret");
    produce.args(["-P", "-t", &topic, "-p", "0"]);
    let out = run_peer(produce, Some("over-tls\n".to_owned()), PEER_TIMEOUT).await?;
    out.ensure_success("kcat -P as alice")?;
    let mut consume = secured("alice", "alice-secret");
    consume.args([
        "-C",
        "-t",
        &topic,
        "-p",
        "0",
        "-o",
        "beginning",
        "-e",
        "-f",
        "RECORD v=%s\\n",
    ]);
    let out = run_peer(consume, None, PEER_TIMEOUT).await?;
    out.ensure_success("kcat -C as alice")?;
    assert_lines(
        "kcat -C as alice",
        &out.tagged_lines(&["RECORD"]),
        &["RECORD v=over-tls".to_owned()],
        &out,
    )?;

    let mut refused = secured("bob", "bob-secret");
    refused.args(["-P", "-t", &topic, "-p", "0"]);
    let out = run_peer(refused, Some("not-allowed\n".to_owned()), PEER_TIMEOUT).await?;
    if !out.stderr.contains("Topic authorization failed") {
        return Err(fail(format!("bob's write was not refused: {}", out.stderr)));
    }
    let mut wrong = secured("alice", "wrong");
    wrong.args(["-L", "-m", "3"]);
    let out = run_peer(wrong, None, PEER_TIMEOUT).await?;
    if !out.stderr.contains("SASL authentication error") {
        return Err(fail(format!(
            "a wrong password was not refused: {}",
            out.stderr
        )));
    }
    let info = server
        .partition_info(&topic, 0)
        .await
        .ok_or_else(|| fail("partition gone"))?;
    if info.high_watermark != 1 {
        return Err(fail(format!(
            "high watermark {} (want 1)",
            info.high_watermark
        )));
    }
    let _ = std::fs::remove_file(&ca_file);
    server.shutdown().await;
    Ok(())
}

//! Our client (`wire`) against Apache Kafka's SASL_SSL listener: TLS with a private CA and
//! hostname verification on, SCRAM-SHA-512, and the StandardAuthorizer's ACLs.
//!
//! - alice (ACL: ALL on every topic) creates a topic, produces and fetches;
//! - bob (READ and DESCRIBE only) reads, and gets `Error::Authorization`
//!   (TOPIC_AUTHORIZATION_FAILED) for a write, at once, without retries;
//! - a wrong password is `Error::Authentication` (SASL_AUTHENTICATION_FAILED);
//! - a CA that did not sign the broker's certificate is `Error::Tls`;
//! - on the REAUTH listener (3 s sessions, KIP-368) alice works across several sessions on
//!   the same connections (`KP_KAFKA_SECURE_REAUTH_BOOTSTRAP`).
//!
//! Needs the broker started by `.ci/kafka/kafka-secure start DIR` (`.ci/test-all` step e):
//! `KP_KAFKA_SECURE_BOOTSTRAP` and `KP_KAFKA_SECURE_CA` (the CA's PEM file).

mod common;

use std::time::{Duration, Instant};

use kafka_persistence_testserver::CertificateAuthority;
use kafka_persistence_wire::{
    Client, ClientConfig, Error, FetchRequest, NewTopic, ProducerConfig, Record,
};

use common::{fail, unique, TestResult};

fn secure_env() -> Result<(String, String), Box<dyn std::error::Error + Send + Sync>> {
    let bootstrap = std::env::var("KP_KAFKA_SECURE_BOOTSTRAP").map_err(|_| {
        fail("KP_KAFKA_SECURE_BOOTSTRAP is not set: run .ci/test-all (step e), see interop/README.md")
    })?;
    let ca = std::env::var("KP_KAFKA_SECURE_CA")
        .map_err(|_| fail("KP_KAFKA_SECURE_CA is not set: run .ci/test-all (step e)"))?;
    Ok((bootstrap, ca))
}

/// The Java client's property names, as a user would write them.
fn config(bootstrap: &str, ca: &str, user: &str, password: &str) -> ClientConfig {
    ClientConfig::new(bootstrap)
        .with_property("security.protocol", "SASL_SSL")
        .with_property("ssl.ca.location", ca)
        .with_property("sasl.mechanism", "SCRAM-SHA-512")
        .with_property("sasl.username", user)
        .with_property("sasl.password", password)
        .with_connect_timeout(Duration::from_secs(10))
        .with_request_timeout(Duration::from_secs(15))
        .with_delivery_timeout(Duration::from_secs(30))
}

#[tokio::test]
#[ignore = "needs peers: run .ci/test-all"]
async fn apache_kafka_sasl_ssl_scram_and_acls() -> TestResult {
    let (bootstrap, ca) = secure_env()?;
    let topic = unique("kp-secure");

    // alice: authorized for everything on topics.
    let alice = Client::connect(config(&bootstrap, &ca, "alice", "alice-secret")).await?;
    alice
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await?;
    let producer = alice.producer(ProducerConfig::default());
    let mut sent = Vec::new();
    for i in 0..3 {
        let meta = producer
            .send(
                &topic,
                0,
                vec![Record::new(
                    format!("secure-{i}").into_bytes(),
                    1_700_000_000_000 + i,
                )],
            )
            .await?;
        sent.push(meta.base_offset);
    }
    if sent != vec![0, 1, 2] {
        return Err(fail(format!("offsets {sent:?}, expected [0, 1, 2]")));
    }
    let fetched = alice.fetch(FetchRequest::new(&topic, 0, 0)).await?;
    let values: Vec<Option<&[u8]>> = fetched.records.iter().map(|r| r.value.as_deref()).collect();
    if values
        != vec![
            Some(&b"secure-0"[..]),
            Some(&b"secure-1"[..]),
            Some(&b"secure-2"[..]),
        ]
    {
        return Err(fail(format!("alice fetched {values:?}")));
    }

    // bob: may read, may not write.
    let bob = Client::connect(config(&bootstrap, &ca, "bob", "bob-secret")).await?;
    let fetched = bob.fetch(FetchRequest::new(&topic, 0, 0)).await?;
    if fetched.records.len() != 3 {
        return Err(fail(format!("bob read {} records", fetched.records.len())));
    }
    let start = Instant::now();
    match bob
        .producer(ProducerConfig::default().with_idempotence(false))
        .send(&topic, 0, vec![Record::new(&b"forbidden"[..], 1)])
        .await
    {
        Err(Error::Authorization { code: 29, .. }) => {}
        other => {
            return Err(fail(format!(
                "bob's write: expected TOPIC_AUTHORIZATION_FAILED, got {other:?}"
            )))
        }
    }
    if start.elapsed() > Duration::from_secs(10) {
        return Err(fail(format!(
            "the authorization error took {:?}",
            start.elapsed()
        )));
    }
    let latest = alice
        .list_offset(&topic, 0, kafka_persistence_wire::OffsetSpec::Latest)
        .await?;
    if latest != 3 {
        return Err(fail(format!(
            "high watermark {latest} after bob's refused write"
        )));
    }

    // A wrong password: an authentication error, not a retry loop.
    let start = Instant::now();
    match Client::connect(config(&bootstrap, &ca, "alice", "not-her-password")).await {
        Err(Error::Authentication { reason, .. })
            if reason.contains("SASL_AUTHENTICATION_FAILED") =>
        {
            if reason.contains("not-her-password") {
                return Err(fail("the password appears in the error"));
            }
        }
        other => {
            return Err(fail(format!(
                "wrong password: expected Error::Authentication, got {other:?}"
            )))
        }
    }
    if start.elapsed() > Duration::from_secs(10) {
        return Err(fail(format!(
            "the authentication error took {:?}",
            start.elapsed()
        )));
    }

    // A CA that did not sign the broker's certificate.
    let stranger = CertificateAuthority::new("stranger").map_err(|e| fail(e.to_string()))?;
    match Client::connect(
        ClientConfig::new(&bootstrap)
            .with_property("security.protocol", "SASL_SSL")
            .with_ssl_ca_pem(stranger.cert_pem())
            .with_property("sasl.mechanism", "SCRAM-SHA-512")
            .with_property("sasl.username", "alice")
            .with_property("sasl.password", "alice-secret"),
    )
    .await
    {
        Err(Error::Tls { .. }) => {}
        other => {
            return Err(fail(format!(
                "untrusted CA: expected Error::Tls, got {other:?}"
            )))
        }
    }
    alice.delete_topics(&[topic]).await?;
    Ok(())
}

/// KIP-368 on Apache Kafka: the REAUTH listener (`connections.max.reauth.ms=3000`) closes a
/// connection used after its session expired. alice keeps producing and fetching for 2.5
/// lifetimes; every request succeeds, no connection is opened meanwhile (the broker would
/// have closed the old ones), and the sessions were renewed in place.
#[tokio::test]
#[ignore = "needs peers: run .ci/test-all"]
async fn apache_kafka_sasl_ssl_reauthentication_keeps_connections() -> TestResult {
    let (_, ca) = secure_env()?;
    let bootstrap = std::env::var("KP_KAFKA_SECURE_REAUTH_BOOTSTRAP").map_err(|_| {
        fail("KP_KAFKA_SECURE_REAUTH_BOOTSTRAP is not set: run .ci/test-all (step e)")
    })?;
    let lifetime = Duration::from_millis(3000);
    let topic = unique("kp-reauth");
    let alice = Client::connect(config(&bootstrap, &ca, "alice", "alice-secret")).await?;
    alice
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await?;
    let producer = alice.producer(ProducerConfig::default());
    // Warm up: the producer's and the fetcher's connections exist before counting.
    producer
        .send(
            &topic,
            0,
            vec![Record::new(&b"warm-up"[..], 1_700_000_000_000)],
        )
        .await?;
    alice.fetch(FetchRequest::new(&topic, 0, 0)).await?;
    let before = alice.connection_stats();
    let until = Instant::now() + lifetime * 5 / 2;
    let mut rounds = 0u32;
    while Instant::now() < until {
        let meta = producer
            .send(
                &topic,
                0,
                vec![Record::new(
                    format!("r-{rounds}").into_bytes(),
                    1_700_000_000_000,
                )],
            )
            .await?;
        let fetched = alice
            .fetch(FetchRequest::new(&topic, 0, meta.base_offset))
            .await?;
        if fetched.records.first().and_then(|r| r.value.as_deref())
            != Some(format!("r-{rounds}").as_bytes())
        {
            return Err(fail(format!(
                "round {rounds}: fetched {:?}",
                fetched.records
            )));
        }
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = alice.connection_stats();
    if after.opened != before.opened {
        return Err(fail(format!(
            "{} connection(s) opened during {rounds} rounds: sessions were not renewed in place",
            after.opened - before.opened
        )));
    }
    if after.reauthentications < before.reauthentications + 2 {
        return Err(fail(format!(
            "{} re-authentication(s) in 2.5 session lifetimes",
            after.reauthentications - before.reauthentications
        )));
    }
    alice.delete_topics(&[topic]).await?;
    Ok(())
}

//! KIP-368 re-authentication: against the testserver with `connections_max_reauth`, a client
//! keeps working across many session lifetimes on the same connections (it re-authenticates
//! before each session ends, holding new requests meanwhile, failing none in flight), and
//! OAUTHBEARER presents a fresh token from its callback each time. The broker's side (a
//! connection that does not re-authenticate is closed) is `testserver/tests/security.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_persistence_testserver::{CertificateAuthority, SaslMechanism, TestServer};
use kafka_persistence_wire::{
    Client, ClientConfig, FetchRequest, NewTopic, OAuthBearerToken, ProducerConfig, Record,
    SaslMechanism as Mechanism, SecurityProtocol,
};
use kafka_protocol::messages::ApiKey;

const LIFETIME: Duration = Duration::from_millis(400);

fn config(bootstrap: &str) -> ClientConfig {
    ClientConfig::new(bootstrap)
        .with_connect_timeout(Duration::from_secs(5))
        .with_request_timeout(Duration::from_secs(10))
        .with_delivery_timeout(Duration::from_secs(20))
        // No retries worth the name: a connection lost to an expired session must show.
        .with_retry_backoff(Duration::from_millis(10), Duration::from_millis(50))
}

/// Produces and fetches on `topic` for `span`, with `parallel` requests in flight at a time;
/// every one must succeed. Returns how many round trips ran.
async fn keep_busy(client: &Client, topic: &str, span: Duration, parallel: usize) -> usize {
    let producer = client.producer(ProducerConfig::default());
    let until = Instant::now() + span;
    let mut rounds = 0;
    while Instant::now() < until {
        let sends = (0..parallel).map(|i| {
            producer.send(
                topic,
                0,
                vec![Record::new(
                    format!("v{rounds}-{i}").into_bytes(),
                    1_700_000_000_000,
                )],
            )
        });
        let metas = futures::future::join_all(sends).await;
        let first = metas[0].as_ref().expect("produce across re-authentication");
        for m in &metas {
            m.as_ref().expect("produce across re-authentication");
        }
        let fetched = client
            .fetch(FetchRequest::new(topic, 0, first.base_offset))
            .await
            .expect("fetch across re-authentication");
        assert!(!fetched.records.is_empty());
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    rounds
}

#[tokio::test]
async fn scram_over_tls_reauthenticates_without_reconnecting() {
    let ca = CertificateAuthority::new("reauth CA").expect("CA");
    let cert = ca.issue_server(&["127.0.0.1"]).expect("cert");
    let server = TestServer::builder()
        .tls(&cert.cert_pem, &cert.key_pem)
        .sasl_user(SaslMechanism::ScramSha512, "alice", "pw-512")
        .connections_max_reauth(LIFETIME)
        .start()
        .await
        .expect("server");
    let client = Client::connect(
        config(&server.bootstrap_servers())
            .with_security_protocol(SecurityProtocol::SaslSsl)
            .with_ssl_ca_pem(ca.cert_pem())
            .with_sasl(Mechanism::ScramSha512, "alice", "pw-512"),
    )
    .await
    .expect("connect");
    client
        .create_topics(vec![NewTopic::new("reauth-scram", 1, 1)])
        .await
        .expect("create");
    // Warm up: the producer's and the fetcher's connections exist before counting.
    keep_busy(&client, "reauth-scram", Duration::from_millis(100), 4).await;
    let opened = server.connections_accepted();
    let stats = client.connection_stats();
    let handshakes = server.request_count(ApiKey::SaslHandshake as i16).await;

    // Five lifetimes of steady traffic, several requests in flight at each moment.
    let rounds = keep_busy(&client, "reauth-scram", LIFETIME * 5, 4).await;
    assert!(rounds > 20, "{rounds} rounds");

    let after = client.connection_stats();
    assert_eq!(
        server.connections_accepted(),
        opened,
        "no new connection: the sessions were renewed in place"
    );
    assert_eq!(after.opened, stats.opened);
    // Every live connection renews about every 0.9 lifetimes: at least 4 times each here.
    let renewed = after.reauthentications - stats.reauthentications;
    assert!(renewed >= 4, "{renewed} re-authentications");
    let new_handshakes = server.request_count(ApiKey::SaslHandshake as i16).await - handshakes;
    assert_eq!(
        new_handshakes, renewed,
        "one SaslHandshake per re-authentication"
    );
}

#[tokio::test]
async fn idle_connections_also_renew_and_stay_usable() {
    let server = TestServer::builder()
        .sasl_user(SaslMechanism::Plain, "carol", "pw-plain")
        .connections_max_reauth(LIFETIME)
        .start()
        .await
        .expect("server");
    let client = Client::connect(
        config(&server.bootstrap_servers())
            .with_security_protocol(SecurityProtocol::SaslPlaintext)
            .with_sasl(Mechanism::Plain, "carol", "pw-plain"),
    )
    .await
    .expect("connect");
    client
        .create_topics(vec![NewTopic::new("reauth-idle", 1, 1)])
        .await
        .expect("create");
    // Warm up: the producer's and the fetcher's connections exist before counting.
    keep_busy(&client, "reauth-idle", Duration::from_millis(50), 1).await;
    let opened = server.connections_accepted();
    // Idle for three lifetimes: without re-authentication the next request would find its
    // connection closed by the broker.
    tokio::time::sleep(LIFETIME * 3).await;
    keep_busy(&client, "reauth-idle", Duration::from_millis(50), 1).await;
    assert_eq!(server.connections_accepted(), opened);
    assert!(client.connection_stats().reauthentications >= 2);
}

#[tokio::test]
async fn oauthbearer_reauthenticates_with_a_fresh_token() {
    let mut builder = TestServer::builder().connections_max_reauth(LIFETIME);
    for i in 0..64 {
        builder = builder.oauthbearer_token(format!("token-{i}"), "svc");
    }
    let server = builder.start().await.expect("server");
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&issued);
    let client = Client::connect(
        config(&server.bootstrap_servers())
            .with_security_protocol(SecurityProtocol::SaslPlaintext)
            .with_oauthbearer_token_callback(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move { Ok(OAuthBearerToken::new(format!("token-{n}"))) }
            }),
    )
    .await
    .expect("connect");
    client
        .create_topics(vec![NewTopic::new("reauth-oauth", 1, 1)])
        .await
        .expect("create");
    keep_busy(&client, "reauth-oauth", Duration::from_millis(50), 2).await;
    let opened = server.connections_accepted();
    let before = issued.load(Ordering::SeqCst);
    keep_busy(&client, "reauth-oauth", LIFETIME * 3, 2).await;
    assert_eq!(server.connections_accepted(), opened);
    let renewed = client.connection_stats().reauthentications;
    assert!(renewed >= 2, "{renewed}");
    // One callback call per re-authentication: each presented a token not used before.
    assert!(issued.load(Ordering::SeqCst) - before >= 2);
}

#[tokio::test]
async fn a_failed_reauthentication_fails_the_connection_with_its_cause() {
    // The token callback starts failing after the first token: re-authentication fails,
    // the connection is closed, the next request opens a new one, which fails to
    // authenticate with the callback's error.
    let server = TestServer::builder()
        .oauthbearer_token("only-once", "svc")
        .connections_max_reauth(LIFETIME)
        .start()
        .await
        .expect("server");
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let client = Client::connect(
        config(&server.bootstrap_servers())
            .with_security_protocol(SecurityProtocol::SaslPlaintext)
            .with_delivery_timeout(Duration::from_secs(3))
            .with_oauthbearer_token_callback(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Ok(OAuthBearerToken::new("only-once"))
                    } else {
                        Err("identity provider down".to_owned())
                    }
                }
            }),
    )
    .await
    .expect("connect");
    tokio::time::sleep(LIFETIME * 2).await;
    // The client tried to re-authenticate on its own, before any request needed it.
    assert!(calls.load(Ordering::SeqCst) >= 2);
    let e = client
        .create_topics(vec![NewTopic::new("reauth-fail", 1, 1)])
        .await
        .expect_err("no session any more");
    assert!(e.to_string().contains("identity provider down"), "{e}");
    assert_eq!(client.connection_stats().reauthentications, 0);
}

//! TLS, SASL and authorization: our client against the testserver's TLS listener, SASL users
//! and ACLs, and against hostile peers scripted here (a TLS endpoint that is not Kafka, a
//! server that closes or goes silent mid-handshake, an oversized SASL frame). Every failure
//! must be a clear error, naming the broker, well within the time limits, and no secret may
//! appear in `Debug` or in an error.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_persistence_testserver::{
    AclOperation, CertificateAuthority, CertifiedKey, SaslMechanism, TestServer,
};
use kafka_persistence_wire::protocol::{decode_request, encode_response};
use kafka_persistence_wire::{
    Client, ClientConfig, Error, FetchRequest, NewTopic, OAuthBearerToken, ProducerConfig, Record,
    SecurityProtocol,
};
use kafka_protocol::messages::{ApiKey, ResponseKind, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PASSWORD: &str = "correct-horse-battery-staple";

/// Short limits: every failure below must arrive well within them.
fn config(bootstrap: &str) -> ClientConfig {
    ClientConfig::new(bootstrap)
        .with_connect_timeout(Duration::from_secs(2))
        .with_request_timeout(Duration::from_secs(5))
        .with_delivery_timeout(Duration::from_secs(10))
        .with_retry_backoff(Duration::from_millis(10), Duration::from_millis(200))
}

struct Pki {
    ca: CertificateAuthority,
    server: CertifiedKey,
}

fn pki() -> Pki {
    let ca = CertificateAuthority::new("kafka-persistence test CA").expect("CA");
    let server = ca.issue_server(&["127.0.0.1", "localhost"]).expect("cert");
    Pki { ca, server }
}

/// Creates a topic, produces one record and fetches it back: the connection really works.
async fn round_trip(client: &Client, topic: &str) {
    client
        .create_topics(vec![NewTopic::new(topic, 1, 1)])
        .await
        .expect("create topic");
    let meta = client
        .producer(ProducerConfig::default())
        .send(
            topic,
            0,
            vec![Record::new(&b"secured"[..], 1_700_000_000_000)],
        )
        .await
        .expect("produce");
    let fetched = client
        .fetch(FetchRequest::new(topic, 0, meta.base_offset))
        .await
        .expect("fetch");
    assert_eq!(fetched.records[0].value.as_deref(), Some(&b"secured"[..]));
}

/// Connects and expects an error within `within`.
async fn connect_err(cfg: ClientConfig, within: Duration) -> Error {
    let start = Instant::now();
    let r = tokio::time::timeout(within + Duration::from_secs(5), Client::connect(cfg))
        .await
        .expect("connect must end");
    let e = match r {
        Ok(_) => panic!("connect unexpectedly succeeded"),
        Err(e) => e,
    };
    assert!(
        start.elapsed() < within,
        "took {:?} (limit {within:?}): {e}",
        start.elapsed()
    );
    e
}

#[tokio::test]
async fn tls_with_a_private_ca() {
    let pki = pki();
    let server = TestServer::builder()
        .tls(&pki.server.cert_pem, &pki.server.key_pem)
        .start()
        .await
        .expect("server");
    let cfg = config(&server.bootstrap_servers())
        .with_security_protocol(SecurityProtocol::Ssl)
        .with_ssl_ca_pem(pki.ca.cert_pem());
    let client = Client::connect(cfg).await.expect("connect over TLS");
    round_trip(&client, "tls-topic").await;
}

#[tokio::test]
async fn tls_settings_under_the_java_property_names() {
    let pki = pki();
    let server = TestServer::builder()
        .tls(&pki.server.cert_pem, &pki.server.key_pem)
        .sasl_user(SaslMechanism::ScramSha512, "alice", PASSWORD)
        .start()
        .await
        .expect("server");
    let dir = std::env::temp_dir().join(format!("kp-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pki.ca.cert_pem()).expect("write ca");
    let cfg = config(&server.bootstrap_servers())
        .with_property("security.protocol", "SASL_SSL")
        .with_property("ssl.ca.location", ca.display().to_string())
        .with_property("ssl.endpoint.identification.algorithm", "https")
        .with_property("sasl.mechanism", "SCRAM-SHA-512")
        .with_property("sasl.username", "alice")
        .with_property("sasl.password", PASSWORD);
    assert!(
        cfg.extra_properties().is_empty(),
        "{:?}",
        cfg.extra_properties()
    );
    let client = Client::connect(cfg).await.expect("connect");
    round_trip(&client, "props-topic").await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate() {
    let pki = pki();
    let server = TestServer::builder()
        .tls(&pki.server.cert_pem, &pki.server.key_pem)
        .tls_client_ca(pki.ca.cert_pem())
        .start()
        .await
        .expect("server");
    let client_cert = pki.ca.issue_client("alice").expect("client cert");
    let base = config(&server.bootstrap_servers())
        .with_security_protocol(SecurityProtocol::Ssl)
        .with_ssl_ca_pem(pki.ca.cert_pem());
    let client = Client::connect(
        base.clone()
            .with_ssl_certificate_pem(&client_cert.cert_pem, client_cert.key_pem.as_str()),
    )
    .await
    .expect("connect with a client certificate");
    round_trip(&client, "mtls-topic").await;

    // Without a certificate the broker refuses the handshake: a TLS error, not a retry loop.
    let e = connect_err(base.clone(), Duration::from_secs(3)).await;
    assert!(matches!(e, Error::Tls { .. }), "{e:?}");
    assert!(!e.is_retriable());
    // A certificate from another CA is refused as well.
    let stranger = CertificateAuthority::new("other CA")
        .and_then(|ca| ca.issue_client("mallory"))
        .expect("stranger");
    let e = connect_err(
        base.with_ssl_certificate_pem(&stranger.cert_pem, stranger.key_pem.as_str()),
        Duration::from_secs(3),
    )
    .await;
    assert!(matches!(e, Error::Tls { .. }), "{e:?}");
}

#[tokio::test]
async fn plaintext_client_on_a_tls_listener_gets_a_hint() {
    let pki = pki();
    let server = TestServer::builder()
        .tls(&pki.server.cert_pem, &pki.server.key_pem)
        .start()
        .await
        .expect("server");
    let e = connect_err(
        config(&server.bootstrap_servers()).with_delivery_timeout(Duration::from_millis(500)),
        Duration::from_secs(3),
    )
    .await;
    assert!(e.to_string().contains("security.protocol"), "{e}");
}

#[tokio::test]
async fn untrusted_ca_is_a_tls_error_naming_the_broker() {
    let pki = pki();
    let server = TestServer::builder()
        .tls(&pki.server.cert_pem, &pki.server.key_pem)
        .start()
        .await
        .expect("server");
    let other = CertificateAuthority::new("not the broker's CA").expect("CA");
    let bootstrap = server.bootstrap_servers();
    let e = connect_err(
        config(&bootstrap)
            .with_security_protocol(SecurityProtocol::Ssl)
            .with_ssl_ca_pem(other.cert_pem()),
        Duration::from_secs(2),
    )
    .await;
    match &e {
        Error::Tls { broker, reason } => {
            assert_eq!(broker, &bootstrap);
            assert!(reason.contains("trusted CA"), "{reason}");
        }
        other => panic!("expected Error::Tls, got {other:?}"),
    }
    assert!(e.to_string().contains(&bootstrap), "{e}");
}

#[tokio::test]
async fn hostname_mismatch_fails_unless_verification_is_off() {
    let ca = CertificateAuthority::new("CA").expect("CA");
    let wrong = ca.issue_server(&["broker.example.invalid"]).expect("cert");
    let server = TestServer::builder()
        .tls(&wrong.cert_pem, &wrong.key_pem)
        .start()
        .await
        .expect("server");
    let base = config(&server.bootstrap_servers())
        .with_security_protocol(SecurityProtocol::Ssl)
        .with_ssl_ca_pem(ca.cert_pem());
    let e = connect_err(base.clone(), Duration::from_secs(2)).await;
    match &e {
        Error::Tls { reason, .. } => assert!(reason.contains("does not name"), "{reason}"),
        other => panic!("expected Error::Tls, got {other:?}"),
    }
    // ssl.endpoint.identification.algorithm= (empty): the chain is still checked, the name not.
    let client = Client::connect(
        base.clone()
            .with_property("ssl.endpoint.identification.algorithm", ""),
    )
    .await
    .expect("connect without hostname verification");
    round_trip(&client, "no-hostname-check").await;
    // ... but an untrusted chain is still refused.
    let stranger = CertificateAuthority::new("stranger").expect("CA");
    let e = connect_err(
        base.with_ssl_hostname_verification(false)
            .with_ssl_ca_pem(stranger.cert_pem()),
        Duration::from_secs(2),
    )
    .await;
    assert!(matches!(e, Error::Tls { .. }), "{e:?}");
}

#[tokio::test]
async fn scram_and_plain_against_the_testserver() {
    let pki = pki();
    let server = TestServer::builder()
        .tls(&pki.server.cert_pem, &pki.server.key_pem)
        .sasl_user(SaslMechanism::ScramSha256, "alice", PASSWORD)
        .sasl_user(SaslMechanism::ScramSha512, "bob", PASSWORD)
        .sasl_user(SaslMechanism::Plain, "carol", PASSWORD)
        .start()
        .await
        .expect("server");
    for (mechanism, user) in [
        (SaslMechanism::ScramSha256, "alice"),
        (SaslMechanism::ScramSha512, "bob"),
        (SaslMechanism::Plain, "carol"),
    ] {
        let client = Client::connect(
            config(&server.bootstrap_servers())
                .with_security_protocol(SecurityProtocol::SaslSsl)
                .with_ssl_ca_pem(pki.ca.cert_pem())
                .with_sasl(mechanism, user, PASSWORD),
        )
        .await
        .unwrap_or_else(|e| panic!("{mechanism}: {e}"));
        round_trip(&client, &format!("sasl-{user}")).await;
    }
    // Every connection authenticated: one SaslHandshake per connection opened.
    assert!(server.request_count(ApiKey::SaslHandshake as i16).await >= 3);
}

#[tokio::test]
async fn sasl_plaintext_scram() {
    let server = TestServer::builder()
        .sasl_user(SaslMechanism::ScramSha512, "alice", PASSWORD)
        .start()
        .await
        .expect("server");
    let client = Client::connect(
        config(&server.bootstrap_servers())
            .with_security_protocol(SecurityProtocol::SaslPlaintext)
            .with_sasl(SaslMechanism::ScramSha512, "alice", PASSWORD),
    )
    .await
    .expect("connect");
    round_trip(&client, "sasl-plaintext").await;
    // A client without SASL is cut off at its first request after ApiVersions.
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        Client::connect(
            config(&server.bootstrap_servers()).with_delivery_timeout(Duration::from_secs(1)),
        ),
    )
    .await
    .expect("ends");
    assert!(r.is_err());
}

#[tokio::test]
async fn wrong_credentials_are_an_authentication_error_without_the_password() {
    let server = TestServer::builder()
        .sasl_user(SaslMechanism::ScramSha256, "alice", PASSWORD)
        .sasl_user(SaslMechanism::ScramSha512, "alice", PASSWORD)
        .sasl_user(SaslMechanism::Plain, "alice", PASSWORD)
        .start()
        .await
        .expect("server");
    let bootstrap = server.bootstrap_servers();
    for mechanism in [
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
        SaslMechanism::Plain,
    ] {
        for (user, password) in [("alice", "wrong-password-123"), ("nobody", PASSWORD)] {
            let e = connect_err(
                config(&bootstrap)
                    .with_security_protocol(SecurityProtocol::SaslPlaintext)
                    .with_sasl(mechanism, user, password),
                Duration::from_secs(2),
            )
            .await;
            match &e {
                Error::Authentication {
                    broker,
                    mechanism: m,
                    reason,
                } => {
                    assert_eq!(broker, &bootstrap);
                    assert_eq!(*m, mechanism.name());
                    assert!(reason.contains("SASL_AUTHENTICATION_FAILED"), "{reason}");
                }
                other => panic!("{mechanism}: expected Error::Authentication, got {other:?}"),
            }
            assert!(!e.is_retriable());
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains(password), "{shown}");
        }
    }
    // Refused at once: one handshake per attempt, no retries.
    assert_eq!(server.request_count(ApiKey::SaslHandshake as i16).await, 6);
}

#[tokio::test]
async fn unsupported_mechanism_lists_what_the_broker_offers() {
    let server = TestServer::builder()
        .sasl_user(SaslMechanism::ScramSha512, "alice", PASSWORD)
        .start()
        .await
        .expect("server");
    let e = connect_err(
        config(&server.bootstrap_servers())
            .with_security_protocol(SecurityProtocol::SaslPlaintext)
            .with_sasl(SaslMechanism::Plain, "alice", PASSWORD),
        Duration::from_secs(2),
    )
    .await;
    match &e {
        Error::UnsupportedSaslMechanism {
            mechanism, offered, ..
        } => {
            assert_eq!(*mechanism, "PLAIN");
            assert_eq!(offered, &vec!["SCRAM-SHA-512".to_owned()]);
        }
        other => panic!("expected UnsupportedSaslMechanism, got {other:?}"),
    }
    assert!(e.to_string().contains("SCRAM-SHA-512"), "{e}");
    assert!(!e.is_retriable());
}

#[tokio::test]
async fn oauthbearer_asks_the_callback_for_each_connection() {
    let server = TestServer::builder()
        .oauthbearer_token("token-for-alice", "alice")
        .start()
        .await
        .expect("server");
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let client = Client::connect(
        config(&server.bootstrap_servers())
            .with_security_protocol(SecurityProtocol::SaslPlaintext)
            .with_oauthbearer_token_callback(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { Ok(OAuthBearerToken::new("token-for-alice").with_extension("trace", "1")) }
            }),
    )
    .await
    .expect("connect");
    round_trip(&client, "oauth-topic").await;
    assert!(calls.load(Ordering::SeqCst) >= 1);

    let e = connect_err(
        config(&server.bootstrap_servers())
            .with_security_protocol(SecurityProtocol::SaslPlaintext)
            .with_oauthbearer_token_callback(|| async {
                Ok(OAuthBearerToken::new("stolen-or-expired"))
            }),
        Duration::from_secs(2),
    )
    .await;
    assert!(matches!(e, Error::Authentication { .. }), "{e:?}");
    assert!(!format!("{e:?}").contains("stolen-or-expired"));
    let e = connect_err(
        config(&server.bootstrap_servers())
            .with_security_protocol(SecurityProtocol::SaslPlaintext)
            .with_oauthbearer_token_callback(|| async { Err("identity provider down".to_owned()) }),
        Duration::from_secs(2),
    )
    .await;
    assert!(e.to_string().contains("identity provider down"), "{e}");
}

#[tokio::test]
async fn acl_denial_of_write_is_the_authorization_kind_and_not_retried() {
    let server = TestServer::builder()
        .sasl_user(SaslMechanism::ScramSha256, "admin", PASSWORD)
        .sasl_user(SaslMechanism::ScramSha256, "reader", PASSWORD)
        .super_user("User:admin")
        .acl("User:reader", AclOperation::Read, "guarded")
        .start()
        .await
        .expect("server");
    let as_user = |user: &str| {
        config(&server.bootstrap_servers())
            .with_security_protocol(SecurityProtocol::SaslPlaintext)
            .with_sasl(SaslMechanism::ScramSha256, user, PASSWORD)
    };
    let admin = Client::connect(as_user("admin")).await.expect("admin");
    round_trip(&admin, "guarded").await;

    let reader = Client::connect(as_user("reader")).await.expect("reader");
    let fetched = reader
        .fetch(FetchRequest::new("guarded", 0, 0))
        .await
        .expect("reader may read");
    assert_eq!(fetched.records.len(), 1);
    let produces_before = server.request_count(ApiKey::Produce as i16).await;
    let start = Instant::now();
    let e = reader
        .producer(ProducerConfig::default())
        .send("guarded", 0, vec![Record::new(&b"nope"[..], 1)])
        .await
        .expect_err("reader may not write");
    match &e {
        Error::Authorization { code, name, .. } => {
            assert_eq!(*code, 29);
            assert_eq!(*name, "TOPIC_AUTHORIZATION_FAILED");
        }
        other => panic!("expected Error::Authorization, got {other:?}"),
    }
    assert!(!e.is_retriable());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        server.request_count(ApiKey::Produce as i16).await,
        produces_before + 1,
        "an authorization failure must not be retried"
    );
    let e = reader
        .create_topics(vec![NewTopic::new("not-yours", 1, 1)])
        .await
        .expect_err("reader may not create");
    assert!(matches!(e, Error::Authorization { code: 29, .. }), "{e:?}");
    // A topic the reader may not even describe: the authorization error, not "unknown topic".
    admin
        .create_topics(vec![NewTopic::new("hidden", 1, 1)])
        .await
        .expect("admin creates");
    let e = reader
        .fetch(FetchRequest::new("hidden", 0, 0))
        .await
        .expect_err("no Describe on hidden");
    match &e {
        Error::Authorization {
            code: 29, topic, ..
        } => {
            assert_eq!(topic.as_deref(), Some("hidden"))
        }
        other => panic!("expected Error::Authorization, got {other:?}"),
    }
}

#[tokio::test]
async fn secrets_never_reach_debug_or_errors() {
    let cfg = ClientConfig::new("127.0.0.1:1")
        .with_property("security.protocol", "SASL_SSL")
        .with_property("sasl.mechanism", "PLAIN")
        .with_property("sasl.username", "alice")
        .with_property("sasl.password", "pw-SECRET-1")
        .with_property("ssl.key.pem", "-----BEGIN PRIVATE KEY-----\nKEY-SECRET-2\n")
        .with_property("ssl.certificate.pem", "-----BEGIN CERTIFICATE-----\nx\n")
        .with_property(
            "sasl.jaas.config",
            "org.Foo required password=\"JAAS-SECRET-3\";",
        )
        .with_property("ssl.key.password", "KEYPW-SECRET-4");
    let shown = format!("{cfg:?}");
    for secret in [
        "pw-SECRET-1",
        "KEY-SECRET-2",
        "JAAS-SECRET-3",
        "KEYPW-SECRET-4",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("alice"));
    // The bad key PEM fails at connect naming where it came from, not what it holds.
    let e = Client::connect(cfg).await.expect_err("bad PEM");
    let msg = format!("{e} {e:?}");
    assert!(matches!(e, Error::Config(_)), "{msg}");
    for secret in [
        "pw-SECRET-1",
        "KEY-SECRET-2",
        "JAAS-SECRET-3",
        "KEYPW-SECRET-4",
    ] {
        assert!(!msg.contains(secret), "{secret} in {msg}");
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile peers
// ---------------------------------------------------------------------------------------------

/// A TLS acceptor for scripted peers, with the testserver's PKI.
fn acceptor(pki: &Pki) -> tokio_rustls::TlsAcceptor {
    let provider = kafka_persistence_wire::tls::crypto_provider();
    let chain = kafka_persistence_wire::tls::parse_certificates(&pki.server.cert_pem, "cert")
        .expect("cert");
    let key =
        kafka_persistence_wire::tls::parse_private_key(&pki.server.key_pem, "key").expect("key");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Runs `peer` on every connection to a fresh loopback port; returns `host:port`.
async fn scripted_peer<F, Fut>(peer: F) -> String
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(peer(s));
        }
    });
    addr
}

/// Reads one request frame.
async fn read_frame<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<Bytes> {
    let len = s.read_i32().await.ok()?;
    let mut frame = vec![0u8; usize::try_from(len).ok()?];
    s.read_exact(&mut frame).await.ok()?;
    Some(Bytes::from(frame))
}

/// Answers a SaslHandshake request with success for `mechanism`.
async fn accept_handshake<S>(s: &mut S, mechanism: &'static str) -> Option<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let frame = read_frame(s).await?;
    let (header, _) = decode_request(frame).ok()?;
    let body = SaslHandshakeResponse::default()
        .with_mechanisms(vec![StrBytes::from_static_str(mechanism)]);
    let mut out = BytesMut::new();
    encode_response(
        ApiKey::SaslHandshake,
        header.request_api_version,
        header.correlation_id,
        &ResponseKind::SaslHandshake(body),
        &mut out,
    )
    .ok()?;
    s.write_all(&out).await.ok()
}

#[tokio::test]
async fn hostile_tls_endpoint_that_is_not_kafka() {
    let pki = pki();
    let acceptor = acceptor(&pki);
    let addr = scripted_peer(move |tcp| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(mut tls) = acceptor.accept(tcp).await {
                let mut buf = [0u8; 64];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    .await;
                let _ = tls.flush().await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        }
    })
    .await;
    for protocol in [SecurityProtocol::Ssl, SecurityProtocol::SaslSsl] {
        let mut cfg = config(&addr)
            .with_security_protocol(protocol)
            .with_ssl_ca_pem(pki.ca.cert_pem());
        if protocol.uses_sasl() {
            cfg = cfg.with_sasl(SaslMechanism::ScramSha512, "u", PASSWORD);
        }
        let e = connect_err(cfg, Duration::from_secs(3)).await;
        // "HTTP" read as a frame length is far past any limit: refused before allocating.
        assert!(matches!(e, Error::Protocol(_)), "{protocol:?}: {e:?}");
        assert!(!e.is_retriable());
    }
}

#[tokio::test]
async fn hostile_server_closes_mid_handshake() {
    // TLS: the peer reads the ClientHello and hangs up.
    let tls_addr = scripted_peer(|mut tcp| async move {
        let mut buf = [0u8; 16];
        let _ = tcp.read_exact(&mut buf).await;
    })
    .await;
    let pki = pki();
    let e = connect_err(
        config(&tls_addr)
            .with_security_protocol(SecurityProtocol::Ssl)
            .with_ssl_ca_pem(pki.ca.cert_pem())
            .with_delivery_timeout(Duration::from_secs(1)),
        Duration::from_secs(3),
    )
    .await;
    match &e {
        Error::Io { broker, source } => {
            assert_eq!(broker, &tls_addr);
            assert!(source.to_string().contains("TLS handshake"), "{source}");
        }
        other => panic!("expected Error::Io, got {other:?}"),
    }
    // SASL: the peer accepts the handshake, then hangs up on SaslAuthenticate.
    let sasl_addr = scripted_peer(|mut tcp| async move {
        if accept_handshake(&mut tcp, "SCRAM-SHA-512").await.is_some() {
            let _ = read_frame(&mut tcp).await;
        }
    })
    .await;
    let e = connect_err(
        config(&sasl_addr)
            .with_security_protocol(SecurityProtocol::SaslPlaintext)
            .with_sasl(SaslMechanism::ScramSha512, "u", PASSWORD)
            .with_delivery_timeout(Duration::from_secs(1)),
        Duration::from_secs(3),
    )
    .await;
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert!(e.to_string().contains(&sasl_addr), "{e}");
}

#[tokio::test]
async fn hostile_oversized_sasl_challenge_is_refused_before_allocating() {
    let addr = scripted_peer(|mut tcp| async move {
        if accept_handshake(&mut tcp, "SCRAM-SHA-256").await.is_some()
            && read_frame(&mut tcp).await.is_some()
        {
            // A 2 GiB "server-first message".
            let _ = tcp.write_all(&i32::MAX.to_be_bytes()).await;
            let _ = tcp.write_all(&[0u8; 1024]).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    })
    .await;
    let e = connect_err(
        config(&addr)
            .with_security_protocol(SecurityProtocol::SaslPlaintext)
            .with_sasl(SaslMechanism::ScramSha256, "u", PASSWORD),
        Duration::from_secs(2),
    )
    .await;
    match &e {
        Error::Protocol(kafka_persistence_wire::protocol::ProtocolError::FrameSize {
            max, ..
        }) => {
            assert_eq!(*max, kafka_persistence_wire::sasl::MAX_SASL_FRAME);
        }
        other => panic!("expected a frame size error, got {other:?}"),
    }
}

#[tokio::test]
async fn hostile_server_never_answers_the_handshake() {
    let silent = || {
        scripted_peer(|mut tcp| async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = tcp.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
    };
    let pki = pki();
    let tls_addr = silent().await;
    let quick = |addr: &str| {
        config(addr)
            .with_connect_timeout(Duration::from_millis(300))
            .with_delivery_timeout(Duration::from_secs(1))
    };
    let e = connect_err(
        quick(&tls_addr)
            .with_security_protocol(SecurityProtocol::Ssl)
            .with_ssl_ca_pem(pki.ca.cert_pem()),
        Duration::from_secs(3),
    )
    .await;
    // Each attempt times out after the connect timeout; the call gives up at the delivery
    // timeout with the last attempt's error, or, if time ran out during an attempt, says
    // why the attempts before failed. Either way the stage and the broker are named.
    match &e {
        Error::Timeout { what, .. } => {
            assert!(
                what.contains("TLS handshake with") && what.contains(&tls_addr),
                "{what}"
            );
        }
        other => panic!("expected Error::Timeout, got {other:?}"),
    }
    let sasl_addr = silent().await;
    let e = connect_err(
        quick(&sasl_addr)
            .with_security_protocol(SecurityProtocol::SaslPlaintext)
            .with_sasl(SaslMechanism::ScramSha512, "u", PASSWORD),
        Duration::from_secs(3),
    )
    .await;
    match &e {
        Error::Timeout { what, .. } => {
            assert!(
                what.contains("SASL SCRAM-SHA-512") && what.contains(&sasl_addr),
                "{what}"
            )
        }
        other => panic!("expected Error::Timeout, got {other:?}"),
    }
}

/// A log sink for `secrets_never_reach_logs`.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_reach_logs() {
    let logs = LogBuffer::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = TestServer::builder()
        .sasl_user(SaslMechanism::ScramSha256, "alice", PASSWORD)
        .sasl_user(SaslMechanism::Plain, "carol", PASSWORD)
        .start()
        .await
        .expect("server");
    let base = config(&server.bootstrap_servers())
        .with_security_protocol(SecurityProtocol::SaslPlaintext)
        // Not interpreted: logged as ignored, but never with its value.
        .with_property(
            "sasl.jaas.config",
            "x required password=\"JAAS-LOG-SECRET\";",
        );
    let client = Client::connect(base.clone().with_sasl(
        SaslMechanism::ScramSha256,
        "alice",
        PASSWORD,
    ))
    .await
    .expect("connect");
    round_trip(&client, "logged").await;
    let _ = Client::connect(base.clone().with_sasl(
        SaslMechanism::Plain,
        "carol",
        "WRONG-LOG-SECRET",
    ))
    .await;
    let _ =
        Client::connect(base.with_sasl(SaslMechanism::ScramSha256, "alice", "WRONG-LOG-SECRET"))
            .await;

    let text =
        String::from_utf8_lossy(&logs.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    assert!(
        text.contains("authenticated"),
        "the log is captured: {text}"
    );
    assert!(text.contains("sasl.jaas.config"), "{text}");
    for secret in [PASSWORD, "JAAS-LOG-SECRET", "WRONG-LOG-SECRET"] {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
    }
}

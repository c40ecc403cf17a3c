//! The broker's side of security, spoken to byte by byte: what a SASL listener accepts before
//! authentication, how the exchange fails, and which principal an ACL sees (SASL user or the
//! client certificate's CN). The client's view of the same is `wire/tests/tls_sasl.rs`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use kafka_persistence_testserver::{AclOperation, CertificateAuthority, SaslMechanism, TestServer};
use kafka_persistence_wire::sasl::{plain, scram};
use kafka_persistence_wire::{
    Client, ClientConfig, Error, ProducerConfig, Record, SecurityProtocol,
};
use kafka_protocol::messages::*;

async fn handshake(raw: &mut Raw, mechanism: &str) -> SaslHandshakeResponse {
    raw.call(
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(sb(mechanism)),
    )
    .await
}

async fn authenticate(raw: &mut Raw, bytes: Vec<u8>) -> SaslAuthenticateResponse {
    raw.call(
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes)),
    )
    .await
}

#[tokio::test]
async fn fault_sasl_listener_serves_only_the_exchange_before_authentication() {
    let server = TestServer::builder()
        .sasl_user(SaslMechanism::Plain, "alice", "pw")
        .sasl_user(SaslMechanism::ScramSha256, "alice", "pw")
        .start()
        .await
        .unwrap();
    let addr = server.bootstrap_servers();

    // ApiVersions is allowed and advertises the SASL apis; Metadata before auth closes.
    let mut raw = Raw::connect(&addr).await;
    let av: ApiVersionsResponse = raw
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    for key in [ApiKey::SaslHandshake, ApiKey::SaslAuthenticate] {
        assert!(
            av.api_keys.iter().any(|k| k.api_key == key as i16),
            "{key:?}"
        );
    }
    raw.send(ApiKey::Metadata, 12, &MetadataRequest::default())
        .await;
    assert!(
        raw.closed().await,
        "Metadata before authentication must close"
    );

    // Unknown mechanism: the enabled ones are listed, and the connection closes.
    let mut raw = Raw::connect(&addr).await;
    let r = handshake(&mut raw, "GSSAPI").await;
    assert_eq!(r.error_code, 33);
    let listed: Vec<String> = r.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(listed, vec!["PLAIN", "SCRAM-SHA-256"]);
    assert!(raw.closed().await);

    // SaslAuthenticate without a handshake: ILLEGAL_SASL_STATE.
    let mut raw = Raw::connect(&addr).await;
    let r = authenticate(&mut raw, plain::client_message("alice", "pw")).await;
    assert_eq!(r.error_code, 34);
    assert!(raw.closed().await);

    // Wrong password: SASL_AUTHENTICATION_FAILED with a message, then closed.
    let mut raw = Raw::connect(&addr).await;
    assert_eq!(handshake(&mut raw, "PLAIN").await.error_code, 0);
    let r = authenticate(&mut raw, plain::client_message("alice", "nope")).await;
    assert_eq!(r.error_code, 58);
    assert!(r.error_message.is_some_and(|m| !m.contains("nope")));
    assert!(raw.closed().await);

    // Right password: now Metadata is served.
    let mut raw = Raw::connect(&addr).await;
    assert_eq!(handshake(&mut raw, "PLAIN").await.error_code, 0);
    let r = authenticate(&mut raw, plain::client_message("alice", "pw")).await;
    assert_eq!(r.error_code, 0);
    let md: MetadataResponse = raw
        .call(ApiKey::Metadata, 12, &MetadataRequest::default())
        .await;
    assert_eq!(md.brokers.len(), 1);
    // A second handshake on an authenticated connection is refused.
    assert_eq!(handshake(&mut raw, "PLAIN").await.error_code, 34);
}

#[tokio::test]
async fn fault_scram_exchange_byte_by_byte() {
    let server = TestServer::builder()
        .sasl_user(SaslMechanism::ScramSha512, "bob", "pencil")
        .start()
        .await
        .unwrap();
    let addr = server.bootstrap_servers();
    for (password, ok) in [("pencil", true), ("crayon", false)] {
        let mut raw = Raw::connect(&addr).await;
        assert_eq!(handshake(&mut raw, "SCRAM-SHA-512").await.error_code, 0);
        let first = scram::ClientFirst::new("bob", "fyko+d2lbbFgONRv9qkxdawL");
        let r = authenticate(&mut raw, first.to_bytes()).await;
        assert_eq!(r.error_code, 0);
        let sf = scram::ServerFirst::parse(&r.auth_bytes).unwrap();
        assert!(sf.nonce.starts_with(&first.nonce) && sf.nonce.len() > first.nonce.len());
        assert_eq!(sf.iterations, 4096);
        // Compute client-final as RFC 5802 says.
        let hash = scram::ScramHash::Sha512;
        let salted = hash.salted_password(password.as_bytes(), &sf.salt, sf.iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        let stored = hash.hash(&client_key);
        let without_proof = format!("c=biws,r={}", sf.nonce);
        let auth = scram::auth_message(&first.bare, &sf.raw, &without_proof);
        let sig = hash.hmac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        use base64::Engine;
        let fin = format!(
            "{without_proof},p={}",
            base64::engine::general_purpose::STANDARD.encode(proof)
        );
        let r = authenticate(&mut raw, fin.into_bytes()).await;
        if ok {
            assert_eq!(r.error_code, 0);
            let server_key = hash.hmac(&salted, b"Server Key");
            let expected = hash.hmac(&server_key, auth.as_bytes());
            assert_eq!(
                scram::ServerFinal::parse(&r.auth_bytes).unwrap(),
                scram::ServerFinal::Verifier(expected)
            );
        } else {
            assert_eq!(r.error_code, 58);
            assert!(raw.closed().await);
        }
    }
    // An unknown user gets a server-first message too (no user enumeration).
    let mut raw = Raw::connect(&addr).await;
    assert_eq!(handshake(&mut raw, "SCRAM-SHA-512").await.error_code, 0);
    let r = authenticate(&mut raw, scram::ClientFirst::new("eve", "abc").to_bytes()).await;
    assert_eq!(r.error_code, 0);
    assert!(scram::ServerFirst::parse(&r.auth_bytes).is_ok());
}

#[tokio::test]
async fn fault_plaintext_listener_refuses_a_sasl_handshake() {
    let server = TestServer::start().await.unwrap();
    let mut raw = Raw::connect(&server.bootstrap_servers()).await;
    assert_eq!(handshake(&mut raw, "PLAIN").await.error_code, 34);
}

#[tokio::test]
async fn fault_mutual_tls_principal_is_the_certificate_common_name() {
    let ca = CertificateAuthority::new("CA").unwrap();
    let cert = ca.issue_server(&["127.0.0.1"]).unwrap();
    let server = TestServer::builder()
        .tls(&cert.cert_pem, &cert.key_pem)
        .tls_client_ca(ca.cert_pem())
        .acl("User:CN=writer", AclOperation::All, "*")
        .acl("User:CN=reader", AclOperation::Read, "*")
        .start()
        .await
        .unwrap();
    server.create_topic("t", 1, &[]).await.unwrap();
    let connect = |cn: &str| {
        let key = ca.issue_client(cn).unwrap();
        ClientConfig::new(server.bootstrap_servers())
            .with_security_protocol(SecurityProtocol::Ssl)
            .with_ssl_ca_pem(ca.cert_pem())
            .with_ssl_certificate_pem(key.cert_pem, key.key_pem.as_str())
            .with_delivery_timeout(Duration::from_secs(5))
    };
    let writer = Client::connect(connect("writer")).await.unwrap();
    writer
        .producer(ProducerConfig::default())
        .send("t", 0, vec![Record::new(&b"ok"[..], 1)])
        .await
        .unwrap();
    let reader = Client::connect(connect("reader")).await.unwrap();
    let e = reader
        .producer(ProducerConfig::default())
        .send("t", 0, vec![Record::new(&b"no"[..], 1)])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Authorization { code: 29, .. }), "{e:?}");
    let info = server.partition_info("t", 0).await.unwrap();
    assert_eq!(info.high_watermark, 1, "the refused write was not applied");
}

#[tokio::test]
async fn fault_acls_cover_read_create_and_delete() {
    let server = TestServer::builder()
        .sasl_user(SaslMechanism::Plain, "alice", "pw")
        .acl("User:alice", AclOperation::Write, "mine")
        .start()
        .await
        .unwrap();
    server.create_topic("mine", 1, &[]).await.unwrap();
    server.create_topic("theirs", 1, &[]).await.unwrap();
    let client = Client::connect(
        ClientConfig::new(server.bootstrap_servers())
            .with_security_protocol(SecurityProtocol::SaslPlaintext)
            .with_sasl(SaslMechanism::Plain, "alice", "pw")
            .with_delivery_timeout(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    let p = client.producer(ProducerConfig::default());
    p.send("mine", 0, vec![Record::new(&b"a"[..], 1)])
        .await
        .unwrap();
    // Write implies Describe (ListOffsets) but not Read.
    assert!(client
        .list_offset("mine", 0, kafka_persistence_wire::OffsetSpec::Latest)
        .await
        .is_ok());
    let e = client
        .fetch(kafka_persistence_wire::FetchRequest::new("mine", 0, 0))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Authorization { .. }), "{e:?}");
    let e = p
        .send("theirs", 0, vec![Record::new(&b"b"[..], 1)])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Authorization { .. }), "{e:?}");
    let e = client
        .delete_topics(&["mine".to_owned()])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Authorization { .. }), "{e:?}");
}

#[tokio::test]
async fn fault_serve_flag_specs_parse_or_say_what_is_wrong() {
    let b = TestServer::builder()
        .sasl_user_spec("SCRAM-SHA-512:alice:pa:ss")
        .unwrap()
        .acl_spec("User:alice:write:events")
        .unwrap();
    assert!(TestServer::builder().sasl_user_spec("GSSAPI:a:b").is_err());
    assert!(TestServer::builder()
        .sasl_user_spec("PLAIN:nopassword")
        .is_err());
    assert!(TestServer::builder()
        .acl_spec("User:alice:fly:events")
        .is_err());
    assert!(TestServer::builder().acl_spec("write:events").is_err());
    // The password may contain ':'; the ACL allows alice to write `events` only.
    let server = b.start().await.unwrap();
    server.create_topic("events", 1, &[]).await.unwrap();
    let client = Client::connect(
        ClientConfig::new(server.bootstrap_servers())
            .with_security_protocol(SecurityProtocol::SaslPlaintext)
            .with_sasl(SaslMechanism::ScramSha512, "alice", "pa:ss"),
    )
    .await
    .unwrap();
    client
        .producer(ProducerConfig::default())
        .send("events", 0, vec![Record::new(&b"x"[..], 1)])
        .await
        .unwrap();
}

/// PLAIN handshake and authentication on `raw`; returns the session lifetime granted.
async fn plain_login(raw: &mut Raw, user: &str, password: &str) -> i64 {
    let h = handshake(raw, "PLAIN").await;
    assert_eq!(h.error_code, 0);
    let r = authenticate(raw, plain::client_message(user, password)).await;
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    r.session_lifetime_ms
}

#[tokio::test]
async fn fault_reauthentication_renews_the_session_and_its_absence_closes_the_connection() {
    let lifetime = Duration::from_millis(300);
    let server = TestServer::builder()
        .sasl_user(SaslMechanism::Plain, "alice", "pw")
        .sasl_user(SaslMechanism::Plain, "bob", "pw-bob")
        .sasl_user(SaslMechanism::ScramSha256, "alice", "pw")
        .connections_max_reauth(lifetime)
        .start()
        .await
        .unwrap();
    let addr = server.bootstrap_servers();
    let metadata = MetadataRequest::default();

    // A connection that never re-authenticates: served while its session lasts, closed on
    // the first request after it ended.
    let mut raw = Raw::connect(&addr).await;
    assert_eq!(plain_login(&mut raw, "alice", "pw").await, 300);
    let _: MetadataResponse = raw.call(ApiKey::Metadata, 12, &metadata).await;
    tokio::time::sleep(lifetime + Duration::from_millis(100)).await;
    raw.send(ApiKey::Metadata, 12, &metadata).await;
    assert!(raw.closed().await, "an expired session must close");

    // Re-authenticating in time (SaslHandshake again on the live connection) renews it.
    let mut raw = Raw::connect(&addr).await;
    plain_login(&mut raw, "alice", "pw").await;
    for _ in 0..3 {
        tokio::time::sleep(lifetime * 2 / 3).await;
        assert_eq!(plain_login(&mut raw, "alice", "pw").await, 300);
    }
    let _: MetadataResponse = raw.call(ApiKey::Metadata, 12, &metadata).await;

    // Re-authentication must keep the principal...
    let mut raw = Raw::connect(&addr).await;
    plain_login(&mut raw, "alice", "pw").await;
    assert_eq!(handshake(&mut raw, "PLAIN").await.error_code, 0);
    let r = authenticate(&mut raw, plain::client_message("bob", "pw-bob")).await;
    assert_eq!(r.error_code, 58, "another principal is refused");
    assert!(raw.closed().await);
    // ...and the mechanism.
    let mut raw = Raw::connect(&addr).await;
    plain_login(&mut raw, "alice", "pw").await;
    assert_ne!(handshake(&mut raw, "SCRAM-SHA-256").await.error_code, 0);
    assert!(raw.closed().await);
}

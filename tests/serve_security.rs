//! `kafka-persistence serve` with its security flags, end to end: the binary serves TLS with
//! the given certificate, SCRAM users and ACLs, and our client connects over SASL_SSL.
#![cfg(feature = "testserver")]
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kafka_persistence::testserver::CertificateAuthority;
use kafka_persistence::wire::{
    Client, ClientConfig, Error, NewTopic, ProducerConfig, Record, SaslMechanism, SecurityProtocol,
};

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_flags_enable_tls_scram_and_acls() {
    let dir = std::env::temp_dir().join(format!("kp-serve-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = CertificateAuthority::new("serve test CA").unwrap();
    let cert = ca.issue_server(&["127.0.0.1"]).unwrap();
    std::fs::write(dir.join("broker.pem"), &cert.cert_pem).unwrap();
    std::fs::write(dir.join("broker.key"), &cert.key_pem).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_kafka-persistence"))
        .args(["serve", "--port", "0", "--tls-cert"])
        .arg(dir.join("broker.pem"))
        .arg("--tls-key")
        .arg(dir.join("broker.key"))
        .args([
            "--sasl-user",
            "SCRAM-SHA-256:alice:alice-secret",
            "--sasl-user",
            "SCRAM-SHA-256:bob:bob-secret",
            "--acl",
            "User:alice:all:*",
            "--acl",
            "User:bob:read:*",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let bootstrap = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let bootstrap = bootstrap.trim().to_owned();
    assert!(bootstrap.starts_with("127.0.0.1:"), "{bootstrap:?}");

    let as_user = |user: &str, password: &str| {
        ClientConfig::new(&bootstrap)
            .with_security_protocol(SecurityProtocol::SaslSsl)
            .with_ssl_ca_pem(ca.cert_pem())
            .with_sasl(SaslMechanism::ScramSha256, user, password)
            .with_delivery_timeout(Duration::from_secs(10))
    };
    let alice = Client::connect(as_user("alice", "alice-secret"))
        .await
        .unwrap();
    alice
        .create_topics(vec![NewTopic::new("served", 1, 1)])
        .await
        .unwrap();
    let meta = alice
        .producer(ProducerConfig::default())
        .send("served", 0, vec![Record::new(&b"v"[..], 1)])
        .await
        .unwrap();
    assert_eq!(meta.base_offset, 0);

    let bob = Client::connect(as_user("bob", "bob-secret")).await.unwrap();
    let e = bob
        .producer(ProducerConfig::default())
        .send("served", 0, vec![Record::new(&b"w"[..], 1)])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Authorization { code: 29, .. }), "{e:?}");
    let e = Client::connect(as_user("alice", "wrong"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Authentication { .. }), "{e:?}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

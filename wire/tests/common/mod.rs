//! Test broker helper: `KP_EXTERNAL_BOOTSTRAP` (e.g. Apache Kafka from CI) or an in-process
//! `TestServer`. Tests that need fault injection are named `fault_*` and use `test_server`.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_persistence_testserver::TestServer;
use kafka_persistence_wire::{Client, ClientConfig};

/// A broker to test against; keeps an in-process server alive while held.
pub struct Broker {
    pub bootstrap: String,
    pub server: Option<TestServer>,
}

/// The external broker if `KP_EXTERNAL_BOOTSTRAP` is set, else a fresh `TestServer`.
pub async fn broker() -> Broker {
    match kafka_persistence_testserver::external::bootstrap() {
        Some(b) => Broker {
            bootstrap: b,
            server: None,
        },
        None => test_server(1).await,
    }
}

/// The client properties for `bootstrap` (`KP_EXTERNAL_PROPERTIES` for the external broker:
/// e.g. SASL_SSL settings; none for an in-process server).
pub fn client_properties(bootstrap: &str) -> Vec<(String, String)> {
    kafka_persistence_testserver::external::client_properties(bootstrap)
        .expect("KP_EXTERNAL_PROPERTIES")
}

/// Always an in-process server (for `fault_` tests).
pub async fn test_server(nodes: usize) -> Broker {
    let server = TestServer::builder()
        .nodes(nodes)
        // The consumer group protocol's timeouts as in the CI cluster (.ci/kafka/kafka-cluster).
        .consumer_group_timeouts(Duration::from_secs(6), Duration::from_millis(250))
        .start()
        .await
        .expect("start test server");
    Broker {
        bootstrap: server.bootstrap_servers(),
        server: Some(server),
    }
}

impl Broker {
    pub fn config(&self) -> ClientConfig {
        client_properties(&self.bootstrap)
            .into_iter()
            .fold(ClientConfig::new(&self.bootstrap), |c, (k, v)| {
                c.with_property(k, v)
            })
            .with_request_timeout(Duration::from_secs(10))
            .with_delivery_timeout(Duration::from_secs(30))
            .with_retry_backoff(Duration::from_millis(10), Duration::from_millis(500))
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.config()).await.expect("connect")
    }

    pub fn server(&self) -> &TestServer {
        self.server.as_ref().expect("in-process test server")
    }
}

/// A topic name unique across tests and runs.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "wire-{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

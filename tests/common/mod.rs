//! Shared by the facade's integration tests: the broker a test runs against, its journal and
//! snapshot store, unique persistence ids, a bank-account behaviour on the serde codec.
// Each test binary uses a part of this.
#![allow(dead_code)]

pub(crate) mod account;
pub(crate) mod stream;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_persistence::journal::{Journal, JournalConfig};
use kafka_persistence::snapshot::{SnapshotConfig, SnapshotStore};
use kafka_persistence::testserver::TestServer;

/// The broker for one test: `KP_EXTERNAL_BOOTSTRAP` if set, else an in-process server.
pub(crate) struct Broker {
    pub(crate) bootstrap: String,
    _server: Option<TestServer>,
}

pub(crate) async fn broker() -> Broker {
    match kafka_persistence::testserver::external::bootstrap() {
        Some(b) => Broker {
            bootstrap: b,
            _server: None,
        },
        None => {
            let server = TestServer::start().await.expect("start test server");
            Broker {
                bootstrap: server.bootstrap_servers(),
                _server: Some(server),
            }
        }
    }
}

/// The client properties for `bootstrap` (`KP_EXTERNAL_PROPERTIES` for the external broker:
/// e.g. SASL_SSL settings; none for an in-process server).
pub(crate) fn client_properties(bootstrap: &str) -> Vec<(String, String)> {
    kafka_persistence::testserver::external::client_properties(bootstrap)
        .expect("KP_EXTERNAL_PROPERTIES")
}

impl Broker {
    /// The in-process server (`None` against `KP_EXTERNAL_BOOTSTRAP`: fault-injecting tests
    /// skip themselves).
    pub(crate) fn server(&self) -> Option<&TestServer> {
        self._server.as_ref()
    }

    /// A journal and a snapshot store on this broker, shareable.
    pub(crate) async fn parts(&self) -> (std::sync::Arc<Journal>, std::sync::Arc<SnapshotStore>) {
        (
            std::sync::Arc::new(self.journal().await),
            std::sync::Arc::new(self.store().await),
        )
    }

    /// A journal on this broker (30 s bound per call).
    pub(crate) async fn journal(&self) -> Journal {
        let config = client_properties(&self.bootstrap).into_iter().fold(
            JournalConfig::new(&self.bootstrap).with_timeout(Duration::from_secs(30)),
            |c, (k, v)| c.with_property(k, v),
        );
        Journal::connect(config).await.expect("journal")
    }

    /// A snapshot store on this broker (30 s bound per call).
    pub(crate) async fn store(&self) -> SnapshotStore {
        let config = client_properties(&self.bootstrap).into_iter().fold(
            SnapshotConfig::new(&self.bootstrap).with_timeout(Duration::from_secs(30)),
            |c, (k, v)| c.with_client_property(k, v),
        );
        SnapshotStore::connect(config)
            .await
            .expect("snapshot store")
    }
}

/// A persistence id no other test (or earlier run) uses, containing `/` (not a legal topic
/// character, so the name encoding is exercised too).
pub(crate) fn unique_pid(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{tag}/{nanos:x}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

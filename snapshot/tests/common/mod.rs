//! Test broker helper: `KP_EXTERNAL_BOOTSTRAP` (e.g. Apache Kafka from CI) or an in-process
//! `TestServer`. Tests that need the testserver's control API are named `fault_*` and use
//! `test_server`.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
pub use kafka_persistence_snapshot::Layout;
use kafka_persistence_snapshot::{SnapshotConfig, SnapshotMetadata, SnapshotStore};
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
        None => test_server().await,
    }
}

/// The client properties for `bootstrap` (`KP_EXTERNAL_PROPERTIES` for the external broker:
/// e.g. SASL_SSL settings; none for an in-process server).
pub fn client_properties(bootstrap: &str) -> Vec<(String, String)> {
    kafka_persistence_testserver::external::client_properties(bootstrap)
        .expect("KP_EXTERNAL_PROPERTIES")
}

/// A wire client configuration for `bootstrap`, with its [`client_properties`].
pub fn client_config(bootstrap: &str) -> ClientConfig {
    client_properties(bootstrap)
        .into_iter()
        .fold(ClientConfig::new(bootstrap), |c, (k, v)| {
            c.with_property(k, v)
        })
}

/// A wire client connected to `bootstrap`.
pub async fn client(bootstrap: &str) -> Client {
    Client::connect(client_config(bootstrap))
        .await
        .expect("client")
}

/// Always an in-process server (for `fault_` tests).
pub async fn test_server() -> Broker {
    let server = TestServer::start().await.expect("start test server");
    Broker {
        bootstrap: server.bootstrap_servers(),
        server: Some(server),
    }
}

impl Broker {
    pub fn config(&self) -> SnapshotConfig {
        client_properties(&self.bootstrap).into_iter().fold(
            SnapshotConfig::new(&self.bootstrap).with_timeout(Duration::from_secs(30)),
            |c, (k, v)| c.with_client_property(k, v),
        )
    }

    pub async fn store(&self) -> SnapshotStore {
        SnapshotStore::connect(self.config())
            .await
            .expect("connect")
    }

    /// The configuration in `layout`.
    pub fn config_in(&self, layout: Layout) -> SnapshotConfig {
        self.config().with_layout(layout)
    }

    /// The configuration in `layout` under a topic prefix of its own (for tests that look at
    /// raw partitions or need their own topic settings on a shared external broker).
    pub fn isolated_config(&self, layout: Layout) -> SnapshotConfig {
        self.config_in(layout).with_topic_prefix(unique_prefix())
    }

    pub async fn store_in(&self, layout: Layout) -> SnapshotStore {
        SnapshotStore::connect(self.config_in(layout))
            .await
            .expect("connect")
    }

    pub fn server(&self) -> &TestServer {
        self.server.as_ref().expect("an in-process test server")
    }
}

/// A persistence id unique across tests and runs (an external broker is shared).
pub fn unique_pid(tag: &str) -> String {
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

/// A topic prefix unique across tests and runs (legal in topic names).
pub fn unique_prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "t{nanos:x}-{}-{}-",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs each named `async fn case(layout: Layout)` as two tests, `case::shared` and
/// `case::per_id`.
#[allow(unused_macros)]
macro_rules! in_both_layouts {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[tokio::test]
                async fn shared() {
                    super::$case(::kafka_persistence_snapshot::Layout::Shared).await
                }
                #[tokio::test]
                async fn per_id() {
                    super::$case(::kafka_persistence_snapshot::Layout::PerId).await
                }
            }
        )*
    };
}

/// Saves 11..=15 with payloads `s-1`..`s-5`, one after another (SPEC setup for S3-S9);
/// returns md11..md15.
pub async fn setup_five(store: &SnapshotStore, pid: &str) -> Vec<SnapshotMetadata> {
    let mut mds = Vec::new();
    for (i, seq) in (11..=15).enumerate() {
        let md = store
            .save(
                SnapshotMetadata::new(pid, seq, 0),
                Bytes::from(format!("s-{}", i + 1)),
            )
            .await
            .expect("save");
        mds.push(md);
    }
    for w in mds.windows(2) {
        assert!(
            w[0].timestamp < w[1].timestamp,
            "timestamps strictly increase"
        );
    }
    mds
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Log lines captured from `tracing` on the current thread (the `#[tokio::test]` runtime).
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

pub struct CapturedWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = CapturedWriter;
    fn make_writer(&'a self) -> Self::Writer {
        CapturedWriter(std::sync::Arc::clone(&self.0))
    }
}

/// Captures WARN and above on this thread until the guard is dropped.
pub fn capture_warnings() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

//! Shared test helpers: the broker (embedded `TestServer` or `KP_EXTERNAL_BOOTSTRAP`), unique
//! persistence ids, and the SPEC setup.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{Stream, TryStreamExt};
use kafka_persistence_journal::Layout;
use kafka_persistence_journal::{
    AtomicWrite, Journal, JournalConfig, JournalError, PersistentRepr,
};
use kafka_persistence_testserver::TestServer;

thread_local! {
    static LAYOUT: std::cell::Cell<Layout> = const { std::cell::Cell::new(Layout::Shared) };
}

/// The layout the current test runs in (set by [`layout_tests!`]).
pub fn layout() -> Layout {
    LAYOUT.with(|l| l.get())
}

/// Sets the layout of the current test thread (see [`layout_tests!`]).
pub fn set_layout(layout: Layout) {
    LAYOUT.with(|l| l.set(layout));
}

/// Runs each test once per layout: `per_id::name` and `shared::name`. Every journal a test
/// builds through [`config`] or [`journal`] uses that layout.
#[macro_export]
macro_rules! layout_tests {
    ($( #[tokio::test $( ( $($args:tt)* ) )? ] $(#[$m:meta])* async fn $name:ident () $body:block )*) => {
        $( $(#[$m])* async fn $name() $body )*
        mod per_id {
            $(
                #[tokio::test $( ( $($args)* ) )? ]
                async fn $name() {
                    $crate::common::set_layout(kafka_persistence_journal::Layout::PerId);
                    super::$name().await
                }
            )*
        }
        mod shared {
            $(
                #[tokio::test $( ( $($args)* ) )? ]
                async fn $name() {
                    $crate::common::set_layout(kafka_persistence_journal::Layout::Shared);
                    super::$name().await
                }
            )*
        }
    };
}

/// A broker for one test.
pub enum Broker {
    /// An in-process test server.
    Embedded(TestServer),
    /// An external Kafka (`KP_EXTERNAL_BOOTSTRAP`).
    External(String),
}

impl Broker {
    pub fn bootstrap(&self) -> String {
        match self {
            Broker::Embedded(s) => s.bootstrap_servers(),
            Broker::External(b) => b.clone(),
        }
    }

    /// The test server (only `fault_` tests call this; they never run externally).
    pub fn server(&self) -> &TestServer {
        match self {
            Broker::Embedded(s) => s,
            Broker::External(_) => panic!("fault_ tests need the embedded TestServer"),
        }
    }
}

/// `KP_EXTERNAL_BOOTSTRAP` if set, else a fresh `TestServer`.
pub async fn broker() -> Broker {
    match kafka_persistence_testserver::external::bootstrap() {
        Some(b) => Broker::External(b),
        None => Broker::Embedded(TestServer::start().await.expect("test server starts")),
    }
}

/// The client properties for `bootstrap` (`KP_EXTERNAL_PROPERTIES` for the external broker:
/// e.g. SASL_SSL settings; none for an in-process server).
pub fn client_properties(bootstrap: &str) -> Vec<(String, String)> {
    kafka_persistence_testserver::external::client_properties(bootstrap)
        .expect("KP_EXTERNAL_PROPERTIES")
}

/// The embedded test server (for `fault_` tests).
pub async fn embedded() -> TestServer {
    TestServer::start().await.expect("test server starts")
}

/// The test configuration, in the current test's layout.
pub fn config(bootstrap: &str) -> JournalConfig {
    client_properties(bootstrap).into_iter().fold(
        JournalConfig::new(bootstrap)
            .with_timeout(Duration::from_secs(20))
            .with_layout(layout()),
        |c, (k, v)| c.with_property(k, v),
    )
}

pub async fn journal(broker: &Broker) -> Journal {
    Journal::connect(config(&broker.bootstrap()))
        .await
        .expect("journal connects")
}

/// A persistence id no other test or run uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An event with payload `a-<seq>`.
pub fn event(pid: &str, seq: u64, writer: &str) -> PersistentRepr {
    PersistentRepr::new(pid, seq, format!("a-{seq}")).with_writer_uuid(writer)
}

/// SPEC setup: {1}, {2}, {3}, {4, 5} in one write, four Ok results.
pub async fn setup(journal: &Journal, pid: &str) -> String {
    let writer = unique("writer");
    let writes = vec![
        AtomicWrite::new(vec![event(pid, 1, &writer)]),
        AtomicWrite::new(vec![event(pid, 2, &writer)]),
        AtomicWrite::new(vec![event(pid, 3, &writer)]),
        AtomicWrite::new(vec![event(pid, 4, &writer), event(pid, 5, &writer)]),
    ];
    let results = journal.write(writes).await.expect("setup write");
    assert_eq!(results.len(), 4);
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    writer
}

/// Collects a replay's sequence numbers.
pub async fn seqs<S>(stream: S) -> Vec<u64>
where
    S: Stream<Item = Result<PersistentRepr, JournalError>>,
{
    let events: Vec<PersistentRepr> = stream.try_collect().await.expect("replay");
    events.iter().map(|e| e.sequence_nr).collect()
}

pub const M: u64 = u64::MAX;

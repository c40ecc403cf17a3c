//! Shared by the facade's integration tests: the broker a test runs against.

use kafka_persistence::testserver::TestServer;

/// The broker for one test: `KP_EXTERNAL_BOOTSTRAP` if set, else an in-process server.
pub(crate) struct Broker {
    pub(crate) bootstrap: String,
    _server: Option<TestServer>,
}

pub(crate) async fn broker() -> Broker {
    match std::env::var("KP_EXTERNAL_BOOTSTRAP") {
        Ok(b) if !b.trim().is_empty() => Broker {
            bootstrap: b,
            _server: None,
        },
        _ => {
            let server = TestServer::start().await.expect("start test server");
            Broker {
                bootstrap: server.bootstrap_servers(),
                _server: Some(server),
            }
        }
    }
}

//! The external broker that the crates' test suites run against instead of an in-process
//! [`TestServer`](crate::TestServer) (CI's Apache Kafka), read from the environment:
//!
//! - `KP_EXTERNAL_BOOTSTRAP=host:port[,host:port]`: the broker;
//! - `KP_EXTERNAL_PROPERTIES=/path/client.properties` (optional): Java-style client
//!   properties for it (`security.protocol`, `ssl.ca.location`, `sasl.*`, ...; see
//!   `kafka_persistence_wire::properties`), e.g. the SASL_SSL settings that
//!   `.ci/kafka/kafka-secure start` writes.
//!
//! Every crate's `tests/common` asks [`client_properties`] for the properties of the
//! bootstrap it connects to: they are given only to the external broker, never to an
//! in-process server a test starts for itself.

use std::path::PathBuf;

/// `KP_EXTERNAL_BOOTSTRAP`, if set and not blank.
pub fn bootstrap() -> Option<String> {
    std::env::var("KP_EXTERNAL_BOOTSTRAP")
        .ok()
        .filter(|b| !b.trim().is_empty())
}

/// `KP_EXTERNAL_PROPERTIES`, if set and not blank.
pub fn properties_path() -> Option<PathBuf> {
    std::env::var_os("KP_EXTERNAL_PROPERTIES")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// The client properties for `bootstrap`: those of `KP_EXTERNAL_PROPERTIES` when `bootstrap`
/// is the external broker's, else none. An unreadable or malformed file is an error that
/// names the file (and a line number, never a value).
pub fn client_properties(bootstrap: &str) -> Result<Vec<(String, String)>, String> {
    let (Some(external), Some(path)) = (self::bootstrap(), properties_path()) else {
        return Ok(Vec::new());
    };
    if external.trim() != bootstrap.trim() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("KP_EXTERNAL_PROPERTIES {}: {e}", path.display()))?;
    kafka_persistence_wire::properties::parse(&text)
        .map_err(|e| format!("KP_EXTERNAL_PROPERTIES {}: {e}", path.display()))
}

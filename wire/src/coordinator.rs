//! FindCoordinator: the one lookup of the coordinator of a consumer group or of a
//! transactional id. Callers connect to the address their own way (a group member opens a
//! connection of its own, a transactional producer uses the pool).

use std::time::Duration;

use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use crate::client::Client;
use crate::error::{Error, ErrorCode};

/// What a coordinator is looked up for (FindCoordinator's `key_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoordinatorKind {
    /// The coordinator of a consumer group (its committed offsets and membership).
    Group,
    /// The transaction coordinator of a `transactional.id`.
    Transaction,
}

impl CoordinatorKind {
    fn key_type(self) -> i8 {
        match self {
            CoordinatorKind::Group => 0,
            CoordinatorKind::Transaction => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CoordinatorKind::Group => "group",
            CoordinatorKind::Transaction => "transactional id",
        }
    }
}

/// The node id and `host:port` of the coordinator of `key`.
pub(crate) async fn find(
    client: &Client,
    kind: CoordinatorKind,
    key: &str,
    timeout: Duration,
) -> Result<(i32, String), Error> {
    let conn = client.inner.any_conn().await?;
    let version = conn.version(ApiKey::FindCoordinator)?;
    let mut req = FindCoordinatorRequest::default();
    req.key_type = kind.key_type();
    let k = StrBytes::from_string(key.to_owned());
    if version >= 4 {
        req.coordinator_keys = vec![k];
    } else {
        req.key = k;
    }
    let resp: FindCoordinatorResponse = conn
        .request_at(ApiKey::FindCoordinator, version, &req, timeout)
        .await?;
    let (code, node, host, port) = if version >= 4 {
        match resp.coordinators.first() {
            Some(c) => (c.error_code, c.node_id.0, c.host.to_string(), c.port),
            None => (ErrorCode::COORDINATOR_NOT_AVAILABLE, -1, String::new(), -1),
        }
    } else {
        (
            resp.error_code,
            resp.node_id.0,
            resp.host.to_string(),
            resp.port,
        )
    };
    if code != 0 {
        return Err(Error::broker(
            code,
            None,
            None,
            Some(format!("FindCoordinator for {} {key}", kind.name())),
        ));
    }
    if port <= 0 || host.is_empty() {
        return Err(Error::broker(
            ErrorCode::COORDINATOR_NOT_AVAILABLE,
            None,
            None,
            Some(format!("coordinator {node} without an address")),
        ));
    }
    let addr = format!("{host}:{port}");
    debug!(key, kind = kind.name(), coordinator = node, %addr, "coordinator found");
    Ok((node, addr))
}

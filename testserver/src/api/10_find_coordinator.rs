//! FindCoordinator (key 10), versions 0-4.
//!
//! Behaviour: the coordinator of every group (and transactional id) is the lowest running
//! node; v4 answers each of the batched `coordinator_keys`. With no running node (cannot
//! happen while a node answers) COORDINATOR_NOT_AVAILABLE.
//!
//! Skipped: hashing keys over nodes (one coordinator keeps group state simple), share-group
//! key type.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::{sb, Ctx};

/// The answer with `code` (for every key in v4).
pub(crate) fn error(req: &FindCoordinatorRequest, code: i16) -> FindCoordinatorResponse {
    let mut r = FindCoordinatorResponse::default();
    if req.coordinator_keys.is_empty() {
        r.error_code = code;
        r.node_id = BrokerId(-1);
        r.port = -1;
    }
    for k in &req.coordinator_keys {
        let mut c = Coordinator::default();
        c.key = k.clone();
        c.error_code = code;
        c.node_id = BrokerId(-1);
        c.port = -1;
        r.coordinators.push(c);
    }
    r
}

/// Handles FindCoordinator.
pub(crate) fn handle(
    ctx: &Ctx,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let c = &ctx.cluster;
    let id = c.controller_id();
    let Some(node) = c.node(id) else {
        return error(&req, 15);
    };
    let host = sb(c.settings.host.clone());
    let port = i32::from(node.port);
    let mut r = FindCoordinatorResponse::default();
    if version >= 4 {
        let keys: Vec<StrBytes> = req.coordinator_keys;
        for k in keys {
            let mut co = Coordinator::default();
            co.key = k;
            co.node_id = BrokerId(id);
            co.host = host.clone();
            co.port = port;
            r.coordinators.push(co);
        }
    } else {
        r.node_id = BrokerId(id);
        r.host = host;
        r.port = port;
    }
    r
}

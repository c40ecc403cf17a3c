//! Heartbeat (key 12), versions 0-4.
//!
//! Behaviour: refreshes the member's session; REBALANCE_IN_PROGRESS tells it to rejoin,
//! ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID that it was fenced or expired (a stale generation is
//! ILLEGAL_GENERATION even while a rebalance is prepared, as in Kafka); NOT_COORDINATOR off
//! the coordinator.
//!
//! Skipped: nothing beyond the classic protocol.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::Ctx;
use kafka_persistence_wire::ErrorCode;

/// The answer with `code`.
pub(crate) fn error(code: i16) -> HeartbeatResponse {
    let mut r = HeartbeatResponse::default();
    r.error_code = code;
    r
}

/// Handles Heartbeat.
pub(crate) fn handle(ctx: &Ctx, req: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
    if ctx.cluster.controller_id() != ctx.node_id {
        return error(ErrorCode::NOT_COORDINATOR);
    }
    error(
        ctx.cluster
            .groups
            .heartbeat(&req.group_id.0, req.generation_id, &req.member_id),
    )
}

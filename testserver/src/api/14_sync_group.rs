//! SyncGroup (key 14), versions 0-5.
//!
//! Behaviour: the leader's request stores every member's assignment and makes the group
//! Stable; every member's request parks until then and gets its own assignment. A wrong
//! generation is ILLEGAL_GENERATION, an unknown member UNKNOWN_MEMBER_ID, a group that went
//! back to rebalancing REBALANCE_IN_PROGRESS; NOT_COORDINATOR off the coordinator.
//!
//! Skipped: validating v5's protocol type/name against the group's (they are echoed).

use bytes::Bytes;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::{sb, Ctx};
use kafka_persistence_wire::ErrorCode;

/// The answer with `code`.
pub(crate) fn error(code: i16) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default();
    r.error_code = code;
    r
}

/// Handles SyncGroup.
pub(crate) async fn handle(ctx: &Ctx, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    if ctx.cluster.controller_id() != ctx.node_id {
        return error(ErrorCode::NOT_COORDINATOR);
    }
    let assignments: Vec<(String, Bytes)> = req
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let res = ctx
        .cluster
        .groups
        .sync(
            &req.group_id.0,
            req.generation_id,
            &req.member_id,
            assignments,
        )
        .await;
    let mut r = error(res.error);
    if version >= 5 {
        r.protocol_type = res.protocol_type.map(sb);
        r.protocol_name = res.protocol.map(sb);
    }
    r.assignment = res.assignment;
    r
}

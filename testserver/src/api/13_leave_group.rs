//! LeaveGroup (key 13), versions 0-4.
//!
//! Behaviour: removes the member (v0-2) or members (v3+, by member id or group instance id)
//! and starts a rebalance for the others (an emptied group becomes Empty). Unknown members
//! are UNKNOWN_MEMBER_ID (per member in v3+); NOT_COORDINATOR off the coordinator.
//!
//! Skipped: the leave reason (v5) is not recorded.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::Ctx;
use kafka_persistence_wire::ErrorCode;

/// The answer with `code`.
pub(crate) fn error(req: &LeaveGroupRequest, code: i16) -> LeaveGroupResponse {
    let mut r = LeaveGroupResponse::default();
    r.error_code = code;
    for m in &req.members {
        let mut mr = MemberResponse::default();
        mr.member_id = m.member_id.clone();
        mr.group_instance_id = m.group_instance_id.clone();
        mr.error_code = code;
        r.members.push(mr);
    }
    r
}

/// Handles LeaveGroup.
pub(crate) fn handle(ctx: &Ctx, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    if ctx.cluster.controller_id() != ctx.node_id {
        return error(&req, ErrorCode::NOT_COORDINATOR);
    }
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let codes = ctx.cluster.groups.leave(&req.group_id.0, &members);
    let mut r = LeaveGroupResponse::default();
    if version >= 3 {
        for (m, c) in req.members.iter().zip(codes) {
            let mut mr = MemberResponse::default();
            mr.member_id = m.member_id.clone();
            mr.group_instance_id = m.group_instance_id.clone();
            mr.error_code = c;
            r.members.push(mr);
        }
    } else {
        r.error_code = codes
            .first()
            .copied()
            .unwrap_or(ErrorCode::UNKNOWN_MEMBER_ID);
    }
    r
}

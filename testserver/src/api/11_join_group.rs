//! JoinGroup (key 11), versions 0-7.
//!
//! Behaviour: see `groups.rs` for the state machine. The request parks until the rebalance
//! round is decided (every member joined, or the largest rebalance timeout passed); the leader
//! gets every member's metadata for the chosen protocol. An empty member id gets a new id at
//! once (no MEMBER_ID_REQUIRED round trip, as brokers before KIP-394 did); an unknown non-empty
//! member id is UNKNOWN_MEMBER_ID; protocol type or protocol mismatch is
//! INCONSISTENT_GROUP_PROTOCOL; requests reaching a node that is not the coordinator get
//! NOT_COORDINATOR. v0 has no rebalance timeout: the session timeout is used. A static member
//! (v5+ `group_instance_id`) rejoining a stable group with an empty member id and the same
//! protocols gets a new member id, the current generation and its old assignment, without a
//! rebalance (KIP-345).
//!
//! A group id that is a consumer-protocol group (KIP-848) with members is
//! INCONSISTENT_GROUP_PROTOCOL.
//!
//! Skipped: the initial rebalance delay, group max size, classic members in a
//! consumer-protocol group.

use std::time::Duration;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::{sb, Ctx};
use crate::groups::JoinArgs;
use kafka_persistence_wire::ErrorCode;

/// The answer with `code`.
pub(crate) fn error(code: i16) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.error_code = code;
    r.generation_id = -1;
    r.protocol_name = Some(sb(""));
    r
}

fn ms(v: i32) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or(0))
}

/// Handles JoinGroup.
pub(crate) async fn handle(
    ctx: &Ctx,
    client_id: String,
    req: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    if ctx.cluster.controller_id() != ctx.node_id {
        return error(ErrorCode::NOT_COORDINATOR);
    }
    if ctx.cluster.consumer_groups.has_members(&req.group_id.0) {
        // A group of the consumer protocol (KIP-848) with members.
        return error(ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
    }
    let session = ms(req.session_timeout_ms);
    let args = JoinArgs {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        client_id,
        client_host: ctx.client_host.clone(),
        session_timeout: session,
        rebalance_timeout: if version >= 1 {
            ms(req.rebalance_timeout_ms)
        } else {
            session
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
    };
    let res = ctx.cluster.groups.join(args).await;
    let mut r = error(res.error);
    r.generation_id = res.generation;
    if version >= 7 {
        r.protocol_type = res.protocol_type.map(sb);
    }
    r.protocol_name = Some(sb(res.protocol.unwrap_or_default()));
    r.leader = sb(res.leader);
    r.member_id = sb(res.member_id);
    r.members = res
        .members
        .into_iter()
        .map(|(id, inst, meta)| {
            let mut m = JoinGroupResponseMember::default();
            m.member_id = sb(id);
            if version >= 5 {
                m.group_instance_id = inst.map(sb);
            }
            m.metadata = meta;
            m
        })
        .collect();
    r
}

//! DescribeGroups (key 15), versions 0-6: classic groups.
//!
//! Behaviour, as Apache Kafka's group coordinator: per group its state (Empty,
//! PreparingRebalance, CompletingRebalance, Stable), protocol type, and members with member
//! id, instance id (v4+), client id and client host (`/127.0.0.1`); the chosen protocol and each
//! member's metadata (for that protocol) and assignment only when Stable, empty otherwise.
//! A group id that is unknown, or a group of the consumer protocol (KIP-848), is described
//! as state Dead with no members; v6 adds GROUP_ID_NOT_FOUND and a message. A group whose
//! coordinator is another node is NOT_COORDINATOR. `authorized_operations` is left at
//! "not requested" (i32::MIN) unless asked for; then every operation is claimed (no group ACLs).
//!
//! Skipped: group ACLs (GROUP_AUTHORIZATION_FAILED).

use kafka_persistence_wire::ErrorCode;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};

use super::{sb, Ctx};

/// The bitfield of the group operations (READ, DELETE, DESCRIBE), as Kafka's AclOperation
/// codes: 3, 6, 8.
pub(crate) const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

fn dead(id: &GroupId, code: i16, message: String, version: i16) -> DescribedGroup {
    let mut g = DescribedGroup::default();
    g.group_id = id.clone();
    g.group_state = sb("Dead");
    if version >= 6 {
        g.error_code = code;
        if code != ErrorCode::NONE {
            g.error_message = Some(sb(message));
        }
    }
    g
}

/// The answer with `code` for every group.
pub(crate) fn error(req: &DescribeGroupsRequest, code: i16) -> DescribeGroupsResponse {
    let mut r = DescribeGroupsResponse::default();
    r.groups = req
        .groups
        .iter()
        .map(|id| {
            let mut g = DescribedGroup::default();
            g.group_id = id.clone();
            g.error_code = code;
            g
        })
        .collect();
    r
}

/// Handles DescribeGroups.
pub(crate) fn handle(
    ctx: &Ctx,
    req: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    if ctx.cluster.controller_id() != ctx.node_id {
        return error(&req, ErrorCode::NOT_COORDINATOR);
    }
    let mut r = DescribeGroupsResponse::default();
    for id in &req.groups {
        let name = id.0.as_str();
        let summary =
            if ctx.cluster.consumer_groups.exists(name) && !ctx.cluster.groups.has_members(name) {
                r.groups.push(dead(
                    id,
                    ErrorCode::GROUP_ID_NOT_FOUND,
                    format!("Group {name} is not a classic group."),
                    version,
                ));
                continue;
            } else {
                ctx.cluster.groups.describe(name)
            };
        let Some(s) = summary else {
            r.groups.push(dead(
                id,
                ErrorCode::GROUP_ID_NOT_FOUND,
                format!("Group {name} not found."),
                version,
            ));
            continue;
        };
        let mut g = DescribedGroup::default();
        g.group_id = id.clone();
        g.group_state = sb(s.state.name());
        g.protocol_type = sb(s.protocol_type);
        g.protocol_data = sb(s.protocol);
        if req.include_authorized_operations {
            g.authorized_operations = GROUP_OPERATIONS;
        }
        g.members = s
            .members
            .into_iter()
            .map(|m| {
                let mut d = DescribedGroupMember::default();
                d.member_id = sb(m.member_id);
                d.group_instance_id = m.instance_id.map(sb);
                d.client_id = sb(m.client_id);
                d.client_host = sb(m.client_host);
                d.member_metadata = m.metadata;
                d.member_assignment = m.assignment;
                d
            })
            .collect();
        r.groups.push(g);
    }
    r
}

//! ListGroups (key 16), versions 0-5.
//!
//! Behaviour, as Apache Kafka: every group this node coordinates, classic and consumer
//! protocol (KIP-848) alike, with its protocol type ("consumer" for KIP-848 groups; a classic
//! group that only holds committed offsets has ""), its state (v4+) and its type, "classic" or
//! "consumer" (v5+). `states_filter` (v4+) and `types_filter` (v5+) keep the groups whose
//! state / type is one of the given names, compared case-insensitively; an empty filter keeps
//! all. A node that is not the coordinator lists nothing (the Java AdminClient asks every
//! node and merges the answers).
//!
//! Skipped: group ACLs (groups the principal may not describe are not hidden).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{sb, Ctx};

/// The answer with `code`.
pub(crate) fn error(code: i16) -> ListGroupsResponse {
    let mut r = ListGroupsResponse::default();
    r.error_code = code;
    r
}

fn keep(filter: &[StrBytes], value: &str) -> bool {
    filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(value))
}

/// Handles ListGroups.
pub(crate) fn handle(ctx: &Ctx, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let mut r = error(0);
    if ctx.cluster.controller_id() != ctx.node_id {
        return r;
    }
    let states: &[StrBytes] = if version >= 4 {
        &req.states_filter
    } else {
        &[]
    };
    let types: &[StrBytes] = if version >= 5 { &req.types_filter } else { &[] };
    let consumer = ctx.cluster.consumer_groups.list();
    let mut all: Vec<(String, String, &'static str, &'static str)> = consumer
        .iter()
        .map(|(id, state)| (id.clone(), "consumer".to_owned(), *state, "consumer"))
        .collect();
    for (id, protocol_type, state) in ctx.cluster.groups.list() {
        // A consumer-protocol group's offsets live in the classic store: one entry per id,
        // the consumer group's unless classic members hold the id.
        let taken = consumer.iter().any(|(c, _)| *c == id);
        if taken && !ctx.cluster.groups.has_members(&id) {
            continue;
        }
        all.retain(|(c, ..)| *c != id);
        all.push((id, protocol_type, state.name(), "classic"));
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    for (id, protocol_type, state, kind) in all {
        if !keep(states, state) || !keep(types, kind) {
            continue;
        }
        let mut g = ListedGroup::default();
        g.group_id = GroupId(sb(id));
        g.protocol_type = sb(protocol_type);
        g.group_state = sb(state);
        g.group_type = sb(kind);
        r.groups.push(g);
    }
    r
}

//! OffsetFetch (key 9), versions 1-7.
//!
//! Behaviour: the committed offsets of one group, for the requested partitions or (v2+, null
//! topics) all of them; a partition without a commit answers offset -1. NOT_COORDINATOR off
//! the coordinator (top-level error in v2+, per partition in v1).
//!
//! Skipped: `require_stable` (no transactions, so nothing is ever pending), batched groups
//! (v8+).

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};

use super::{sb, tn, Ctx};
use kafka_persistence_wire::ErrorCode;

/// The answer with `code`.
pub(crate) fn error(req: &OffsetFetchRequest, code: i16, version: i16) -> OffsetFetchResponse {
    let mut r = OffsetFetchResponse::default();
    if version >= 2 {
        r.error_code = code;
    }
    for t in req.topics.iter().flatten() {
        let mut tr = OffsetFetchResponseTopic::default();
        tr.name = t.name.clone();
        for p in &t.partition_indexes {
            let mut pr = OffsetFetchResponsePartition::default();
            pr.partition_index = *p;
            pr.committed_offset = -1;
            pr.error_code = code;
            tr.partitions.push(pr);
        }
        r.topics.push(tr);
    }
    r
}

/// Handles OffsetFetch.
pub(crate) fn handle(ctx: &Ctx, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if ctx.cluster.controller_id() != ctx.node_id {
        return error(&req, ErrorCode::NOT_COORDINATOR, version);
    }
    let wanted = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let mut r = OffsetFetchResponse::default();
    for (topic, parts) in ctx.cluster.groups.committed(&req.group_id.0, wanted) {
        let mut tr = OffsetFetchResponseTopic::default();
        tr.name = tn(&topic);
        for (p, c) in parts {
            let mut pr = OffsetFetchResponsePartition::default();
            pr.partition_index = p;
            match c {
                Some(c) => {
                    pr.committed_offset = c.offset;
                    if version >= 5 {
                        pr.committed_leader_epoch = c.leader_epoch;
                    }
                    pr.metadata = Some(sb(c.metadata.unwrap_or_default()));
                }
                None => {
                    pr.committed_offset = -1;
                    pr.metadata = Some(sb(""));
                }
            }
            tr.partitions.push(pr);
        }
        r.topics.push(tr);
    }
    r
}

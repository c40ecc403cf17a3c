//! OffsetCommit (key 8), versions 2-9.
//!
//! Behaviour: stores offsets (with leader epoch, v6+, and metadata) per group and partition.
//! A "simple" commit (generation -1, empty member id) is accepted for a group without
//! members; otherwise the member must be known (UNKNOWN_MEMBER_ID) and in the current
//! generation (ILLEGAL_GENERATION); while the group prepares a rebalance the current
//! generation may still commit (an eager member commits before rejoining), but between the
//! join round and the leader's SyncGroup (CompletingRebalance) it is REBALANCE_IN_PROGRESS. Unknown topics/partitions are UNKNOWN_TOPIC_OR_PARTITION.
//! NOT_COORDINATOR off the coordinator. A group of the consumer protocol (KIP-848) is
//! validated by `groups848` instead: v9+, `generation_id_or_member_epoch` is the member epoch
//! (STALE_MEMBER_EPOCH when it is not the member's); the offsets go to
//! the same store.
//!
//! The commit time is the broker's clock (v2+ carry none). With a `data_dir` the offsets
//! survive a restart (`groups::store`).
//!
//! Skipped: retention time (v2-4; offsets never expire), metadata size limits.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::Ctx;
use crate::cluster::now_ms;
use crate::groups::Committed;
use crate::groups848::CommitCheck;
use kafka_persistence_wire::ErrorCode;

/// The answer with `code` for every partition.
pub(crate) fn error(req: &OffsetCommitRequest, code: i16) -> OffsetCommitResponse {
    let mut r = OffsetCommitResponse::default();
    for t in &req.topics {
        let mut tr = OffsetCommitResponseTopic::default();
        tr.name = t.name.clone();
        for p in &t.partitions {
            let mut pr = OffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = code;
            tr.partitions.push(pr);
        }
        r.topics.push(tr);
    }
    r
}

/// Handles OffsetCommit.
pub(crate) fn handle(ctx: &Ctx, req: OffsetCommitRequest, version: i16) -> OffsetCommitResponse {
    if ctx.cluster.controller_id() != ctx.node_id {
        return error(&req, ErrorCode::NOT_COORDINATOR);
    }
    let mut offsets = Vec::new();
    let now = now_ms();
    let mut unknown = Vec::new();
    for t in &req.topics {
        let topic = ctx.cluster.topic(&t.name.0);
        for p in &t.partitions {
            if topic
                .as_ref()
                .and_then(|tp| tp.partition(p.partition_index))
                .is_none()
            {
                unknown.push((t.name.0.to_string(), p.partition_index));
                continue;
            }
            offsets.push((
                (t.name.0.to_string(), p.partition_index),
                Committed {
                    offset: p.committed_offset,
                    leader_epoch: if version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    commit_timestamp_ms: now,
                },
            ));
        }
    }
    let check = ctx.cluster.consumer_groups.check_commit(
        &req.group_id.0,
        &req.member_id,
        req.generation_id_or_member_epoch,
        version,
    );
    let c = match check {
        CommitCheck::Classic => ctx.cluster.groups.commit(
            &req.group_id.0,
            req.generation_id_or_member_epoch,
            &req.member_id,
            offsets,
        ),
        CommitCheck::Consumer(ErrorCode::NONE) => {
            ctx.cluster.groups.store_offsets(&req.group_id.0, offsets);
            ErrorCode::NONE
        }
        CommitCheck::Consumer(c) => c,
    };
    let mut r = error(&req, c);
    for tr in &mut r.topics {
        for pr in &mut tr.partitions {
            if unknown
                .iter()
                .any(|(t, p)| **t == *tr.name.0 && *p == pr.partition_index)
            {
                pr.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION;
            }
        }
    }
    r
}

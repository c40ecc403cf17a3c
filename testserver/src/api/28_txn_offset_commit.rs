//! TxnOffsetCommit (key 28), versions 0-4.
//!
//! Behaviour: offsets committed inside the open transaction, stored in the group only when
//! the transaction commits (see `txn`). From v3 (KIP-447) the group's generation and member
//! id are checked like OffsetCommit's (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION; generation -1
//! with an empty member id skips the check); the group must have been added with
//! AddOffsetsToTxn (else INVALID_TXN_STATE); producer checks as in AddPartitionsToTxn
//! (PRODUCER_FENCED from v3, INVALID_PRODUCER_EPOCH before); unknown partitions
//! UNKNOWN_TOPIC_OR_PARTITION; NOT_COORDINATOR off the coordinator.
//!
//! Skipped: v5 (KIP-890), `group_instance_id` fencing.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::Ctx;
use crate::cluster::now_ms;
use crate::groups::Committed;
use kafka_persistence_wire::ErrorCode;

/// The answer with `code` for every partition.
pub(crate) fn error(req: &TxnOffsetCommitRequest, code: i16) -> TxnOffsetCommitResponse {
    let mut r = TxnOffsetCommitResponse::default();
    for t in &req.topics {
        let mut tr = TxnOffsetCommitResponseTopic::default();
        tr.name = t.name.clone();
        for p in &t.partitions {
            let mut pr = TxnOffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = code;
            tr.partitions.push(pr);
        }
        r.topics.push(tr);
    }
    r
}

/// Handles TxnOffsetCommit.
pub(crate) fn handle(
    ctx: &Ctx,
    req: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let c = &ctx.cluster;
    if c.controller_id() != ctx.node_id {
        return error(&req, ErrorCode::NOT_COORDINATOR);
    }
    let group = req.group_id.0.to_string();
    if version >= 3 {
        let code = c
            .groups
            .check_txn_member(&group, req.generation_id, &req.member_id);
        if code != ErrorCode::NONE {
            return error(&req, code);
        }
    }
    let mut offsets = Vec::new();
    let now = now_ms();
    let mut unknown = Vec::new();
    for t in &req.topics {
        let topic = c.topic(&t.name.0);
        for p in &t.partitions {
            let key = (t.name.0.to_string(), p.partition_index);
            if topic
                .as_ref()
                .and_then(|tp| tp.partition(p.partition_index))
                .is_none()
            {
                unknown.push(key);
                continue;
            }
            offsets.push((
                key,
                Committed {
                    offset: p.committed_offset,
                    leader_epoch: if version >= 2 {
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
    let code = if unknown.is_empty() {
        c.txn_offset_commit(
            &req.transactional_id.0,
            req.producer_id.0,
            req.producer_epoch,
            &group,
            offsets,
        )
    } else {
        ErrorCode::OPERATION_NOT_ATTEMPTED
    };
    let mut r = error(&req, crate::txn::for_version(code, version, 3));
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

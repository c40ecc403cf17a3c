//! AddOffsetsToTxn (key 25), versions 0-3.
//!
//! Behaviour: adds a consumer group to the open transaction (opening one), so that
//! TxnOffsetCommit may commit its offsets in the transaction; producer checks as in
//! AddPartitionsToTxn (PRODUCER_FENCED from v2, INVALID_PRODUCER_EPOCH before);
//! INVALID_GROUP_ID for an empty group id; NOT_COORDINATOR off the coordinator.
//!
//! Skipped: v4 (KIP-890).

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::Ctx;
use kafka_persistence_wire::ErrorCode;

/// The answer with `code`.
pub(crate) fn error(code: i16) -> AddOffsetsToTxnResponse {
    let mut r = AddOffsetsToTxnResponse::default();
    r.error_code = code;
    r
}

/// Handles AddOffsetsToTxn.
pub(crate) fn handle(
    ctx: &Ctx,
    req: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    if ctx.cluster.controller_id() != ctx.node_id {
        return error(ErrorCode::NOT_COORDINATOR);
    }
    let code = ctx.cluster.add_offsets_to_txn(
        &req.transactional_id.0,
        req.producer_id.0,
        req.producer_epoch,
        &req.group_id.0,
    );
    error(crate::txn::for_version(code, version, 2))
}

//! EndTxn (key 26), versions 0-4.
//!
//! Behaviour: commits or aborts the open transaction: a marker in each of its partitions,
//! then (commit) its offsets stored in their groups (see `txn`). The EndTxn that just
//! completed may be repeated (NONE); otherwise a closed transaction is INVALID_TXN_STATE.
//! Producer checks as in AddPartitionsToTxn (PRODUCER_FENCED from v2, INVALID_PRODUCER_EPOCH
//! before); NOT_COORDINATOR off the coordinator.
//!
//! Skipped: v5 (KIP-890's epoch bump per transaction).

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use super::Ctx;
use kafka_persistence_wire::ErrorCode;

/// The answer with `code`.
pub(crate) fn error(code: i16) -> EndTxnResponse {
    let mut r = EndTxnResponse::default();
    r.error_code = code;
    r.producer_id = ProducerId(-1);
    r.producer_epoch = -1;
    r
}

/// Handles EndTxn.
pub(crate) fn handle(ctx: &Ctx, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    if ctx.cluster.controller_id() != ctx.node_id {
        return error(ErrorCode::NOT_COORDINATOR);
    }
    let code = ctx.cluster.end_txn(
        &req.transactional_id.0,
        req.producer_id.0,
        req.producer_epoch,
        req.committed,
    );
    error(crate::txn::for_version(code, version, 2))
}

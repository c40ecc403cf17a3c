//! AddPartitionsToTxn (key 24), versions 0-3 (the client versions).
//!
//! Behaviour: adds partitions to the open transaction of the transactional id (opening one),
//! see `txn`. Per partition: UNKNOWN_TOPIC_OR_PARTITION for unknown ones (the others then
//! OPERATION_NOT_ATTEMPTED, nothing added, as in Kafka); INVALID_PRODUCER_ID_MAPPING for a
//! producer id that is not the transactional id's; PRODUCER_FENCED (INVALID_PRODUCER_EPOCH
//! before v2) for another epoch; NOT_COORDINATOR off the coordinator.
//!
//! Skipped: v4+ (the brokers' batched form and KIP-890's verification).

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use super::Ctx;
use kafka_persistence_wire::ErrorCode;

/// The answer with `codes[i]` for the i-th partition of the request (`code` for all if
/// `codes` is shorter).
fn answer(req: &AddPartitionsToTxnRequest, code: i16, codes: &[i16]) -> AddPartitionsToTxnResponse {
    let mut r = AddPartitionsToTxnResponse::default();
    let mut i = 0;
    for t in &req.v3_and_below_topics {
        let mut tr = AddPartitionsToTxnTopicResult::default();
        tr.name = t.name.clone();
        for p in &t.partitions {
            let mut pr = AddPartitionsToTxnPartitionResult::default();
            pr.partition_index = *p;
            pr.partition_error_code = codes.get(i).copied().unwrap_or(code);
            i += 1;
            tr.results_by_partition.push(pr);
        }
        r.results_by_topic_v3_and_below.push(tr);
    }
    r
}

/// The answer with `code` for every partition.
pub(crate) fn error(req: &AddPartitionsToTxnRequest, code: i16) -> AddPartitionsToTxnResponse {
    answer(req, code, &[])
}

/// Handles AddPartitionsToTxn.
pub(crate) fn handle(
    ctx: &Ctx,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if ctx.cluster.controller_id() != ctx.node_id {
        return error(&req, ErrorCode::NOT_COORDINATOR);
    }
    let partitions: Vec<(String, i32)> = req
        .v3_and_below_topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    let codes: Vec<i16> = ctx
        .cluster
        .add_partitions_to_txn(
            &req.v3_and_below_transactional_id.0,
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            &partitions,
        )
        .into_iter()
        .map(|c| crate::txn::for_version(c, version, 2))
        .collect();
    answer(&req, ErrorCode::NONE, &codes)
}

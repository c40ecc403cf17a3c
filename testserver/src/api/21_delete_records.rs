//! DeleteRecords (key 21), versions 0-2.
//!
//! Behaviour: moves the partition's log start offset to the given offset (-1 = the high
//! watermark) and drops the batches entirely below it; answers the new low watermark. An
//! offset above the high watermark is OFFSET_OUT_OF_RANGE; a lower offset than the current
//! log start is a no-op that answers the current one. Only the leader accepts it.
//!
//! Skipped: `timeout_ms` (immediate).

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::Ctx;
use crate::cluster::lock;
use kafka_persistence_wire::ErrorCode;

fn result(index: i32, code: i16, low_watermark: i64) -> DeleteRecordsPartitionResult {
    let mut r = DeleteRecordsPartitionResult::default();
    r.partition_index = index;
    r.error_code = code;
    r.low_watermark = low_watermark;
    r
}

/// The answer with `code` for every partition.
pub(crate) fn error(req: &DeleteRecordsRequest, code: i16) -> DeleteRecordsResponse {
    let mut r = DeleteRecordsResponse::default();
    for t in &req.topics {
        let mut tr = DeleteRecordsTopicResult::default();
        tr.name = t.name.clone();
        tr.partitions = t
            .partitions
            .iter()
            .map(|p| result(p.partition_index, code, -1))
            .collect();
        r.topics.push(tr);
    }
    r
}

/// Handles DeleteRecords.
pub(crate) fn handle(ctx: &Ctx, req: DeleteRecordsRequest, _version: i16) -> DeleteRecordsResponse {
    let mut r = DeleteRecordsResponse::default();
    for t in req.topics {
        let topic = ctx.cluster.topic(&t.name.0);
        let mut tr = DeleteRecordsTopicResult::default();
        tr.name = t.name;
        for p in t.partitions {
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition_index))
            else {
                tr.partitions.push(result(
                    p.partition_index,
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                    -1,
                ));
                continue;
            };
            let mut log = lock(&partition.log);
            if log.leader != ctx.node_id {
                tr.partitions.push(result(
                    p.partition_index,
                    ErrorCode::NOT_LEADER_OR_FOLLOWER,
                    -1,
                ));
                continue;
            }
            let target = if p.offset == -1 {
                log.high_watermark
            } else {
                p.offset
            };
            if target < 0 || target > log.high_watermark {
                tr.partitions.push(result(
                    p.partition_index,
                    ErrorCode::OFFSET_OUT_OF_RANGE,
                    -1,
                ));
                continue;
            }
            match log.advance_log_start(target) {
                Ok(low) => tr
                    .partitions
                    .push(result(p.partition_index, ErrorCode::NONE, low)),
                Err(e) => {
                    tracing::warn!(error = %e, "persisting log start offset failed");
                    tr.partitions.push(result(
                        p.partition_index,
                        ErrorCode::KAFKA_STORAGE_ERROR,
                        -1,
                    ));
                }
            }
        }
        r.topics.push(tr);
    }
    r
}

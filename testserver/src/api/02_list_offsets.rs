//! ListOffsets (key 2), versions 1-8.
//!
//! Behaviour: timestamp -1 (latest) answers the high watermark, -2 (earliest) the log start
//! offset, -3 (max timestamp, v7+) the last offset of the batch with the largest timestamp, and
//! any other timestamp the first record at or after it (offset -1 if none). Only the leader
//! answers (NOT_LEADER_OR_FOLLOWER otherwise); `current_leader_epoch` is checked like Fetch.
//! With isolation level 1 (read_committed), "latest" is the last stable offset.
//!
//! Skipped: -4 (earliest local, tiered storage) and -5 (earliest pending upload) are answered
//! like -2; the leader epoch returned is the partition's current one, not the batch's.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::Ctx;
use crate::cluster::lock;
use kafka_persistence_wire::ErrorCode;

fn partition_error(index: i32, code: i16) -> ListOffsetsPartitionResponse {
    let mut r = ListOffsetsPartitionResponse::default();
    r.partition_index = index;
    r.error_code = code;
    r.timestamp = -1;
    r.offset = -1;
    r
}

/// The answer with `code` for every partition.
pub(crate) fn error(req: &ListOffsetsRequest, code: i16) -> ListOffsetsResponse {
    let mut resp = ListOffsetsResponse::default();
    for t in &req.topics {
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name.clone();
        tr.partitions = t
            .partitions
            .iter()
            .map(|p| partition_error(p.partition_index, code))
            .collect();
        resp.topics.push(tr);
    }
    resp
}

/// Handles ListOffsets.
pub(crate) fn handle(ctx: &Ctx, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let mut resp = ListOffsetsResponse::default();
    for t in req.topics {
        let topic = ctx.cluster.topic(&t.name.0);
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name;
        for p in t.partitions {
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition_index))
            else {
                tr.partitions.push(partition_error(
                    p.partition_index,
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                ));
                continue;
            };
            let log = lock(&partition.log);
            if log.leader != ctx.node_id {
                tr.partitions.push(partition_error(
                    p.partition_index,
                    ErrorCode::NOT_LEADER_OR_FOLLOWER,
                ));
                continue;
            }
            if version >= 4
                && p.current_leader_epoch >= 0
                && p.current_leader_epoch != log.leader_epoch
            {
                let c = if p.current_leader_epoch < log.leader_epoch {
                    ErrorCode::FENCED_LEADER_EPOCH
                } else {
                    ErrorCode::UNKNOWN_LEADER_EPOCH
                };
                tr.partitions.push(partition_error(p.partition_index, c));
                continue;
            }
            let (offset, timestamp) = match p.timestamp {
                -1 if req.isolation_level == 1 => {
                    (log.txns.last_stable_offset(log.high_watermark), -1)
                }
                -1 => (log.high_watermark, -1),
                -2 | -4 | -5 => (log.log_start_offset, -1),
                -3 => log.max_timestamp_offset().unwrap_or((-1, -1)),
                ts if ts >= 0 => log.offset_for_timestamp(ts).unwrap_or((-1, -1)),
                _ => {
                    tr.partitions.push(partition_error(
                        p.partition_index,
                        ErrorCode::INVALID_REQUEST,
                    ));
                    continue;
                }
            };
            let mut r = partition_error(p.partition_index, ErrorCode::NONE);
            r.offset = offset;
            r.timestamp = timestamp;
            if version >= 4 {
                r.leader_epoch = log.leader_epoch;
            }
            tr.partitions.push(r);
        }
        resp.topics.push(tr);
    }
    resp
}

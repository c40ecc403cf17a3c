//! Produce (key 0), versions 3-11.
//!
//! Behaviour, in kfake's order of checks per partition:
//! - acks must be -1, 0 or 1 (else INVALID_REQUIRED_ACKS everywhere); acks=0 gets no answer,
//!   but the records are still appended.
//! - unknown topic/partition: UNKNOWN_TOPIC_OR_PARTITION; this node not the leader:
//!   NOT_LEADER_OR_FOLLOWER plus the CurrentLeader hint and the leader's endpoint (v10+, KIP-951).
//! - batch size above the topic's `max.message.bytes`: MESSAGE_TOO_LARGE.
//! - exactly one v2 batch with a valid length and CRC (else CORRUPT_MESSAGE); compression id
//!   <= 4 (else UNSUPPORTED_COMPRESSION_TYPE); base offset 0, at least one record,
//!   `last_offset_delta == count - 1`, no control batch (else INVALID_RECORD); on a compacted
//!   topic every record needs a key (INVALID_RECORD).
//! - idempotence (see `log::PartitionLog::check_sequence`): duplicates of the last 5 batches
//!   answer the original base offset; gaps OUT_OF_ORDER_SEQUENCE_NUMBER; stale epochs
//!   INVALID_PRODUCER_EPOCH (also against the epoch InitProducerId handed out last).
//! - offsets are assigned by rewriting the batch's base offset and partition leader epoch; with
//!   `message.timestamp.type=LogAppendTime` the max timestamp and CRC are rewritten too.
//!
//! - transactions: a request with a transactional id carries only transactional batches and
//!   the other way round (else INVALID_TXN_STATE); a transactional batch must belong to the
//!   open transaction of its producer id and epoch, for a partition added to it
//!   (`txn`: INVALID_TXN_STATE, INVALID_PRODUCER_EPOCH for a fenced epoch).
//!
//! Skipped: topic ids (v13),
//! per-record errors, `timeout_ms` (writes are immediate), throttling.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_persistence_wire::record::{
    decode_batch, set_base_offset, set_log_append_time, set_partition_leader_epoch, validate_batch,
    BatchHeader, DecodeLimits, RecordError,
};
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};

use super::{sb, Ctx};
use crate::cluster::{lock, now_ms, Topic};
use crate::log::SeqCheck;
use kafka_persistence_wire::ErrorCode;

fn partition_error(index: i32, code: i16) -> PartitionProduceResponse {
    let mut r = PartitionProduceResponse::default();
    r.index = index;
    r.error_code = code;
    r.base_offset = -1;
    r.log_append_time_ms = -1;
    r.log_start_offset = -1;
    r
}

/// The answer with `code` for every partition (injected errors, bad acks).
pub(crate) fn error(req: &ProduceRequest, code: i16) -> ProduceResponse {
    let mut resp = ProduceResponse::default();
    for t in &req.topic_data {
        let mut tr = TopicProduceResponse::default();
        tr.name = t.name.clone();
        tr.topic_id = t.topic_id;
        tr.partition_responses = t
            .partition_data
            .iter()
            .map(|p| partition_error(p.index, code))
            .collect();
        resp.responses.push(tr);
    }
    resp
}

/// Handles a produce request; `None` for acks=0.
pub(crate) fn handle(ctx: &Ctx, req: ProduceRequest, version: i16) -> Option<ProduceResponse> {
    let acks = req.acks;
    if !matches!(acks, -1..=1) {
        return Some(error(&req, ErrorCode::INVALID_REQUIRED_ACKS));
    }
    let transactional = req.transactional_id.as_ref().map(|t| t.0.to_string());
    let now = now_ms();
    let mut resp = ProduceResponse::default();
    let mut leaders: BTreeMap<i32, ()> = BTreeMap::new();
    for t in req.topic_data {
        let topic = ctx.cluster.topic(&t.name.0);
        let mut tr = TopicProduceResponse::default();
        tr.name = t.name;
        tr.topic_id = t.topic_id;
        for p in t.partition_data {
            let r = produce_partition(
                ctx,
                topic.as_ref(),
                p.index,
                p.records,
                transactional.as_deref(),
                now,
                version,
            );
            if r.error_code == ErrorCode::NOT_LEADER_OR_FOLLOWER && version >= 10 {
                leaders.insert(r.current_leader.leader_id.0, ());
            }
            tr.partition_responses.push(r);
        }
        resp.responses.push(tr);
    }
    if acks == 0 {
        return None;
    }
    if version >= 10 {
        for id in leaders.keys() {
            if let Some(node) = ctx.cluster.node(*id) {
                let mut e = NodeEndpoint::default();
                e.node_id = BrokerId(node.id);
                e.host = sb(ctx.cluster.settings.host.clone());
                e.port = i32::from(node.port);
                resp.node_endpoints.push(e);
            }
        }
    }
    Some(resp)
}

fn record_error_code(e: &RecordError) -> i16 {
    match e {
        RecordError::UnknownCompression(_) => ErrorCode::UNSUPPORTED_COMPRESSION_TYPE,
        _ => ErrorCode::CORRUPT_MESSAGE,
    }
}

/// Checks a batch's structure beyond length and CRC (producer-side rules).
fn check_batch(h: &BatchHeader) -> Result<(), i16> {
    if h.base_offset != 0
        || h.record_count <= 0
        || h.last_offset_delta != h.record_count - 1
        || h.is_control()
    {
        return Err(ErrorCode::INVALID_RECORD);
    }
    Ok(())
}

fn all_records_keyed(bytes: &Bytes) -> bool {
    let mut buf = bytes.clone();
    match decode_batch(&mut buf, &DecodeLimits::default()) {
        Ok(b) => b.records.iter().all(|r| r.key.is_some()),
        Err(_) => false,
    }
}

fn produce_partition(
    ctx: &Ctx,
    topic: Option<&Arc<Topic>>,
    index: i32,
    records: Option<Bytes>,
    transactional: Option<&str>,
    now: i64,
    version: i16,
) -> PartitionProduceResponse {
    let Some(topic) = topic else {
        return partition_error(index, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
    };
    let Some(partition) = topic.partition(index) else {
        return partition_error(index, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
    };
    // Leadership first: a client talking to the wrong node must learn that before anything.
    {
        let log = lock(&partition.log);
        if log.leader != ctx.node_id {
            let mut r = partition_error(index, ErrorCode::NOT_LEADER_OR_FOLLOWER);
            if version >= 10 {
                let mut l = LeaderIdAndEpoch::default();
                l.leader_id = BrokerId(log.leader);
                l.leader_epoch = log.leader_epoch;
                r.current_leader = l;
            }
            return r;
        }
    }
    let Some(records) = records else {
        return partition_error(index, ErrorCode::CORRUPT_MESSAGE);
    };
    if records.len() > topic.config.max_message_bytes {
        return partition_error(index, ErrorCode::MESSAGE_TOO_LARGE);
    }
    let header = match validate_batch(&records) {
        Ok(h) => h,
        Err(e) => return partition_error(index, record_error_code(&e)),
    };
    if let Err(c) = check_batch(&header) {
        return partition_error(index, c);
    }
    if header.is_transactional() != transactional.is_some() {
        return partition_error(index, ErrorCode::INVALID_TXN_STATE);
    }
    if topic.config.compact && !all_records_keyed(&records) {
        return partition_error(index, ErrorCode::INVALID_RECORD);
    }
    if header.producer_id >= 0 {
        let producers = lock(&ctx.cluster.producers);
        if producers
            .epochs
            .get(&header.producer_id)
            .is_some_and(|&e| header.producer_epoch < e)
        {
            return partition_error(index, ErrorCode::INVALID_PRODUCER_EPOCH);
        }
    }
    let mut bytes = BytesMut::from(&records[..]);
    drop(records);
    let log_append_time = if topic.config.log_append_time {
        set_log_append_time(&mut bytes, now);
        now
    } else {
        -1
    };
    let mut log = lock(&partition.log);
    if topic.deleted.load(std::sync::atomic::Ordering::Acquire) {
        return partition_error(index, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
    }
    if log.leader != ctx.node_id {
        // Moved while we validated; the client retries against the new leader.
        return partition_error(index, ErrorCode::NOT_LEADER_OR_FOLLOWER);
    }
    if let Some(tid) = transactional {
        // Under the partition's lock, so an EndTxn cannot write its marker in between.
        if let Err(c) = ctx.cluster.check_txn_produce(
            tid,
            header.producer_id,
            header.producer_epoch,
            &topic.name,
            index,
        ) {
            return partition_error(index, c);
        }
    }
    let base_offset = match log.check_sequence(&header) {
        Err(c) => return partition_error(index, c),
        Ok(SeqCheck::Duplicate(base)) => {
            tracing::debug!(topic = %topic.name, partition = index, base, "duplicate idempotent batch");
            base
        }
        Ok(SeqCheck::Append) => {
            let base = log.high_watermark;
            set_base_offset(&mut bytes, base);
            set_partition_leader_epoch(&mut bytes, log.leader_epoch);
            match log.append(&header, bytes.freeze()) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(topic = %topic.name, partition = index, error = %e, "append to data_dir failed");
                    return partition_error(index, ErrorCode::KAFKA_STORAGE_ERROR);
                }
            }
        }
    };
    let log_start_offset = log.log_start_offset;
    drop(log);
    partition.appended.notify_waiters();
    let mut r = PartitionProduceResponse::default();
    r.index = index;
    r.base_offset = base_offset;
    r.log_append_time_ms = log_append_time;
    r.log_start_offset = log_start_offset;
    r
}

//! Fetch (key 1), versions 4-16.
//!
//! Behaviour:
//! - per partition: unknown topic UNKNOWN_TOPIC_OR_PARTITION (UNKNOWN_TOPIC_ID by id, v13+);
//!   not the leader NOT_LEADER_OR_FOLLOWER with the CurrentLeader hint (v12+) and the leader's
//!   endpoint (v16+); `current_leader_epoch` older than the partition's FENCED_LEADER_EPOCH,
//!   newer UNKNOWN_LEADER_EPOCH (v9+); an offset below the log start or above the high
//!   watermark OFFSET_OUT_OF_RANGE.
//! - records: whole stored batches, starting with the one that *contains* the fetch offset
//!   (so the client drops records below it), up to `partition_max_bytes` and the response's
//!   `max_bytes`, except that the first batch of the response is returned even when larger
//!   (KIP-74), so a consumer never gets stuck.
//! - long poll: when fewer than `min_bytes` are available and no partition has an error, the
//!   request waits up to `max_wait_ms`, woken by every append (and by leader moves and topic
//!   deletion) on the partitions it asks for.
//! - last stable offset: the first offset of the oldest open transaction (else the high
//!   watermark); log start offset reported (v5+). `read_committed` (isolation level 1) gets
//!   no batch starting at or above it, and the aborted transactions that overlap the offsets
//!   returned (`txn::partition`), from which the client drops aborted batches.
//!
//! Skipped: fetch sessions (KIP-227: session id 0 = "no session", clients send full fetches),
//! rack-aware PreferredReadReplica, diverging epochs, throttling.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_persistence_wire::record::BatchHeader;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};
use tokio::sync::futures::Notified;

use super::{sb, Ctx};
use crate::cluster::{lock, Partition, Topic};
use kafka_persistence_wire::ErrorCode;

fn partition_error(index: i32, code: i16) -> PartitionData {
    let mut r = PartitionData::default();
    r.partition_index = index;
    r.error_code = code;
    r.high_watermark = -1;
    r.last_stable_offset = -1;
    r.log_start_offset = -1;
    r.aborted_transactions = None;
    r
}

/// The answer with `code` for every partition.
pub(crate) fn error(req: &FetchRequest, code: i16) -> FetchResponse {
    let mut resp = FetchResponse::default();
    for t in &req.topics {
        let mut tr = FetchableTopicResponse::default();
        tr.topic = t.topic.clone();
        tr.topic_id = t.topic_id;
        tr.partitions = t
            .partitions
            .iter()
            .map(|p| partition_error(p.partition, code))
            .collect();
        resp.responses.push(tr);
    }
    resp
}

fn resolve(ctx: &Ctx, t: &FetchTopic, version: i16) -> Result<Arc<Topic>, i16> {
    if version >= 13 {
        ctx.cluster
            .topic_by_id(t.topic_id)
            .ok_or(ErrorCode::UNKNOWN_TOPIC_ID)
    } else {
        ctx.cluster
            .topic(&t.topic.0)
            .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)
    }
}

/// One pass over the request: the response, the record bytes in it, whether any partition
/// failed, and the leaders named in NOT_LEADER hints.
struct Pass {
    resp: FetchResponse,
    bytes: usize,
    failed: bool,
    leaders: Vec<i32>,
}

fn build(ctx: &Ctx, req: &FetchRequest, topics: &[Result<Arc<Topic>, i16>], version: i16) -> Pass {
    let max_bytes = usize::try_from(req.max_bytes).unwrap_or(0);
    let read_committed = req.isolation_level == 1;
    let mut pass = Pass {
        resp: FetchResponse::default(),
        bytes: 0,
        failed: false,
        leaders: Vec::new(),
    };
    for (t, resolved) in req.topics.iter().zip(topics) {
        let mut tr = FetchableTopicResponse::default();
        if version >= 13 {
            tr.topic_id = t.topic_id;
        } else {
            tr.topic = t.topic.clone();
        }
        for p in &t.partitions {
            let topic = match resolved {
                Ok(topic) => topic,
                Err(c) => {
                    pass.failed = true;
                    tr.partitions.push(partition_error(p.partition, *c));
                    continue;
                }
            };
            let Some(partition) = topic.partition(p.partition) else {
                pass.failed = true;
                tr.partitions.push(partition_error(
                    p.partition,
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                ));
                continue;
            };
            if topic.deleted.load(std::sync::atomic::Ordering::Acquire) {
                pass.failed = true;
                tr.partitions.push(partition_error(
                    p.partition,
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                ));
                continue;
            }
            let log = lock(&partition.log);
            let mut r = partition_error(p.partition, ErrorCode::NONE);
            let lso = log.txns.last_stable_offset(log.high_watermark);
            r.high_watermark = log.high_watermark;
            r.last_stable_offset = lso;
            r.log_start_offset = log.log_start_offset;
            if log.leader != ctx.node_id {
                r.error_code = ErrorCode::NOT_LEADER_OR_FOLLOWER;
                r.high_watermark = -1;
                r.last_stable_offset = -1;
                r.log_start_offset = -1;
                if version >= 12 {
                    let mut l = LeaderIdAndEpoch::default();
                    l.leader_id = BrokerId(log.leader);
                    l.leader_epoch = log.leader_epoch;
                    r.current_leader = l;
                    pass.leaders.push(log.leader);
                }
                pass.failed = true;
            } else if version >= 9
                && p.current_leader_epoch >= 0
                && p.current_leader_epoch != log.leader_epoch
            {
                r.error_code = if p.current_leader_epoch < log.leader_epoch {
                    ErrorCode::FENCED_LEADER_EPOCH
                } else {
                    ErrorCode::UNKNOWN_LEADER_EPOCH
                };
                pass.failed = true;
            } else if p.fetch_offset < log.log_start_offset || p.fetch_offset > log.high_watermark {
                r.error_code = ErrorCode::OFFSET_OUT_OF_RANGE;
                pass.failed = true;
            } else {
                let part_max = usize::try_from(p.partition_max_bytes).unwrap_or(0);
                let limit = part_max.min(max_bytes.saturating_sub(pass.bytes));
                let upper = if read_committed { lso } else { i64::MAX };
                let (slices, n) = log.read(p.fetch_offset, limit, pass.bytes == 0, upper);
                if read_committed {
                    // The aborted transactions overlapping what is returned: from the fetch
                    // offset to the end of the last batch returned.
                    let end = slices
                        .last()
                        .and_then(|b| BatchHeader::parse(b).ok())
                        .map_or(p.fetch_offset, |h| h.last_offset() + 1);
                    r.aborted_transactions = Some(
                        log.txns
                            .aborted_between(p.fetch_offset, end)
                            .into_iter()
                            .map(|a| {
                                let mut t = AbortedTransaction::default();
                                t.producer_id = ProducerId(a.producer_id);
                                t.first_offset = a.first_offset;
                                t
                            })
                            .collect(),
                    );
                }
                drop(log);
                pass.bytes += n;
                r.records = Some(concat(slices, n));
            }
            tr.partitions.push(r);
        }
        pass.resp.responses.push(tr);
    }
    pass
}

/// Joins the batch slices; one slice (the common case) is passed through without copying.
fn concat(mut slices: Vec<Bytes>, total: usize) -> Bytes {
    match slices.len() {
        0 => Bytes::new(),
        1 => slices.pop().unwrap_or_default(),
        _ => {
            let mut out = BytesMut::with_capacity(total);
            for s in slices {
                out.extend_from_slice(&s);
            }
            out.freeze()
        }
    }
}

/// Handles a fetch, long-polling when asked to.
pub(crate) async fn handle(ctx: &Ctx, req: FetchRequest, version: i16) -> FetchResponse {
    let topics: Vec<Result<Arc<Topic>, i16>> = req
        .topics
        .iter()
        .map(|t| resolve(ctx, t, version))
        .collect();
    let watched: Vec<Arc<Partition>> = req
        .topics
        .iter()
        .zip(&topics)
        .filter_map(|(t, r)| r.as_ref().ok().map(|topic| (t, topic)))
        .flat_map(|(t, topic)| {
            t.partitions
                .iter()
                .filter_map(|p| topic.partition(p.partition).cloned())
                .collect::<Vec<_>>()
        })
        .collect();
    let max_wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0));
    let deadline = Instant::now() + max_wait;
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0).max(1);
    loop {
        // Arm the wake-ups before looking, so an append between the look and the wait counts.
        let mut notified: Vec<Pin<Box<Notified<'_>>>> = watched
            .iter()
            .map(|p| Box::pin(p.appended.notified()))
            .collect();
        for n in &mut notified {
            n.as_mut().enable();
        }
        let pass = build(ctx, &req, &topics, version);
        let now = Instant::now();
        if pass.failed || pass.bytes >= min_bytes || now >= deadline || notified.is_empty() {
            return finish(ctx, pass, version);
        }
        let wait = futures::future::select_all(notified);
        if tokio::time::timeout(deadline - now, wait).await.is_err() {
            let pass = build(ctx, &req, &topics, version);
            return finish(ctx, pass, version);
        }
    }
}

fn finish(ctx: &Ctx, mut pass: Pass, version: i16) -> FetchResponse {
    if version >= 16 {
        pass.leaders.sort_unstable();
        pass.leaders.dedup();
        for id in pass.leaders {
            if let Some(node) = ctx.cluster.node(id) {
                let mut e = NodeEndpoint::default();
                e.node_id = BrokerId(node.id);
                e.host = sb(ctx.cluster.settings.host.clone());
                e.port = i32::from(node.port);
                pass.resp.node_endpoints.push(e);
            }
        }
    }
    pass.resp
}

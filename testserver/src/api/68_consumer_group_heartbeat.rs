//! ConsumerGroupHeartbeat (key 68), versions 0-1: the consumer group protocol of KIP-848.
//!
//! Behaviour: see `groups848` for membership, epochs, the server-side assignors (`uniform`,
//! the default, and `range`) and reconciliation. Owned partitions arrive and the assignment
//! leaves by topic id (topic ids unknown to the cluster are ignored). v0 lets the coordinator
//! choose the member id of a joining member; v1 needs the member's own (INVALID_REQUEST when
//! empty). A group id that is a classic group with members is GROUP_ID_NOT_FOUND, as in
//! Kafka. NOT_COORDINATOR off the coordinator.
//!
//! A `subscribed_topic_regex` (v1) subscribes to every topic whose whole name matches.
//!
//! Skipped: `rack_id`.

use std::time::Duration;

use kafka_persistence_wire::ErrorCode;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use super::{sb, Ctx};
use crate::groups848::assign::Partitions;
use crate::groups848::HeartbeatArgs;

/// The answer with `code`.
pub(crate) fn error(code: i16) -> ConsumerGroupHeartbeatResponse {
    let mut r = ConsumerGroupHeartbeatResponse::default();
    r.error_code = code;
    r.member_epoch = -1;
    r
}

fn ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Handles ConsumerGroupHeartbeat.
pub(crate) fn handle(
    ctx: &Ctx,
    client_id: String,
    req: ConsumerGroupHeartbeatRequest,
    version: i16,
) -> ConsumerGroupHeartbeatResponse {
    let cluster = &ctx.cluster;
    if cluster.controller_id() != ctx.node_id {
        return error(ErrorCode::NOT_COORDINATOR);
    }
    if cluster.groups.has_members(&req.group_id.0) {
        let mut r = error(ErrorCode::GROUP_ID_NOT_FOUND);
        r.error_message = Some(sb(format!(
            "group {} is a classic group",
            req.group_id.0.as_str()
        )));
        return r;
    }
    let owned = req.topic_partitions.as_ref().map(|tps| {
        let mut out = Partitions::new();
        for tp in tps {
            if let Some(t) = cluster.topic_by_id(tp.topic_id) {
                out.entry(t.name.clone())
                    .or_default()
                    .extend(tp.partitions.iter().copied());
            }
        }
        out.retain(|_, s| !s.is_empty());
        out
    });
    let args = HeartbeatArgs {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout: (req.rebalance_timeout_ms >= 0)
            .then(|| Duration::from_millis(u64::try_from(req.rebalance_timeout_ms).unwrap_or(0))),
        topics: req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.0.to_string()).collect()),
        regex: req.subscribed_topic_regex.as_ref().map(|s| s.to_string()),
        assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
        owned,
        client_id,
        client_host: ctx.client_host.clone(),
        version,
    };
    let count = |t: &str| {
        cluster
            .topic(t)
            .map(|t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX))
    };
    let all = || {
        cluster
            .all_topics()
            .iter()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>()
    };
    let res = cluster.consumer_groups.heartbeat(args, &count, &all);
    let mut r = error(res.error);
    r.error_message = res.message.map(sb);
    r.member_id = Some(sb(res.member_id));
    r.member_epoch = res.epoch;
    r.heartbeat_interval_ms = ms(res.heartbeat_interval);
    r.assignment = res.assignment.map(|a| {
        let mut out = Assignment::default();
        for (t, ps) in a {
            if let Some(topic) = cluster.topic(&t) {
                let mut tp = TopicPartitions::default();
                tp.topic_id = topic.id;
                tp.partitions = ps.into_iter().collect();
                out.topic_partitions.push(tp);
            }
        }
        out
    });
    r
}

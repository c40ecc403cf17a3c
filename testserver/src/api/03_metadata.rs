//! Metadata (key 3), versions 1-12.
//!
//! Behaviour:
//! - brokers: the running nodes; controller: the lowest running node; cluster id (v2+).
//! - topics: null = all topics, empty = none; by name, or by topic id (v10+). Unknown names
//!   are created only when the builder enabled auto-creation *and* (v4+) the request allows
//!   it; otherwise UNKNOWN_TOPIC_OR_PARTITION (UNKNOWN_TOPIC_ID by id). Illegal names are
//!   INVALID_TOPIC_EXCEPTION.
//! - partitions: leader, leader epoch (v7+), replicas = ISR = the leader. A partition whose
//!   leader node is stopped is LEADER_NOT_AVAILABLE with leader -1 (replication factor 1).
//!
//! Skipped: authorized operations (always "not requested"), racks, internal topics.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};

use super::{sb, tn, Ctx};
use crate::cluster::{lock, Topic};
use crate::config::validate_topic_name;
use kafka_persistence_wire::ErrorCode;

/// The answer with `code` for every requested topic (no brokers, so clients retry).
pub(crate) fn error(req: &MetadataRequest, code: i16) -> MetadataResponse {
    let mut r = MetadataResponse::default();
    r.controller_id = BrokerId(-1);
    for t in req.topics.iter().flatten() {
        let mut tr = MetadataResponseTopic::default();
        tr.error_code = code;
        tr.name = t.name.clone();
        tr.topic_id = t.topic_id;
        r.topics.push(tr);
    }
    r
}

fn describe(ctx: &Ctx, topic: &Topic, version: i16) -> MetadataResponseTopic {
    let mut tr = MetadataResponseTopic::default();
    tr.name = Some(tn(&topic.name));
    if version >= 10 {
        tr.topic_id = topic.id;
    }
    for (i, p) in topic.partitions.iter().enumerate() {
        let (leader, epoch) = {
            let log = lock(&p.log);
            (log.leader, log.leader_epoch)
        };
        let mut pr = MetadataResponsePartition::default();
        pr.partition_index = i as i32;
        pr.replica_nodes = vec![BrokerId(leader)];
        if ctx.cluster.is_running(leader) {
            pr.leader_id = BrokerId(leader);
            pr.isr_nodes = vec![BrokerId(leader)];
        } else {
            pr.error_code = ErrorCode::LEADER_NOT_AVAILABLE;
            pr.leader_id = BrokerId(-1);
            if version >= 5 {
                pr.offline_replicas = vec![BrokerId(leader)];
            }
        }
        if version >= 7 {
            pr.leader_epoch = epoch;
        }
        tr.partitions.push(pr);
    }
    tr
}

fn unknown(
    name: Option<kafka_protocol::messages::TopicName>,
    id: uuid::Uuid,
    code: i16,
) -> MetadataResponseTopic {
    let mut tr = MetadataResponseTopic::default();
    tr.error_code = code;
    tr.name = name;
    tr.topic_id = id;
    tr
}

/// Handles Metadata.
pub(crate) fn handle(ctx: &Ctx, req: MetadataRequest, version: i16) -> MetadataResponse {
    let c = &ctx.cluster;
    let mut r = MetadataResponse::default();
    for n in c.nodes.iter().filter(|n| c.is_running(n.id)) {
        let mut b = MetadataResponseBroker::default();
        b.node_id = BrokerId(n.id);
        b.host = sb(c.settings.host.clone());
        b.port = i32::from(n.port);
        r.brokers.push(b);
    }
    if version >= 2 {
        r.cluster_id = Some(sb(c.cluster_id.clone()));
    }
    r.controller_id = BrokerId(c.controller_id());
    let allow_create =
        c.settings.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    match req.topics {
        None => {
            for t in c.all_topics() {
                r.topics.push(describe(ctx, &t, version));
            }
        }
        Some(requested) => {
            for t in requested {
                let Some(name) = t.name.clone() else {
                    // By id (v10+).
                    match c.topic_by_id(t.topic_id) {
                        Some(topic) => r.topics.push(describe(ctx, &topic, version)),
                        None => {
                            r.topics
                                .push(unknown(None, t.topic_id, ErrorCode::UNKNOWN_TOPIC_ID))
                        }
                    }
                    continue;
                };
                if let Some(topic) = c.topic(&name.0) {
                    r.topics.push(describe(ctx, &topic, version));
                    continue;
                }
                if validate_topic_name(&name.0).is_err() {
                    r.topics.push(unknown(
                        Some(name),
                        t.topic_id,
                        ErrorCode::INVALID_TOPIC_EXCEPTION,
                    ));
                    continue;
                }
                if !allow_create {
                    r.topics.push(unknown(
                        Some(name),
                        t.topic_id,
                        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                    ));
                    continue;
                }
                match c.create_topic(&name.0, c.settings.default_partitions, &[]) {
                    Ok(topic) => {
                        tracing::debug!(topic = %name.0, reason = "metadata auto-create", "created topic");
                        r.topics.push(describe(ctx, &topic, version));
                    }
                    Err(_) => match c.topic(&name.0) {
                        // Created concurrently by another request.
                        Some(topic) => r.topics.push(describe(ctx, &topic, version)),
                        None => r.topics.push(unknown(
                            Some(name),
                            t.topic_id,
                            ErrorCode::INVALID_TOPIC_EXCEPTION,
                        )),
                    },
                }
            }
        }
    }
    r
}

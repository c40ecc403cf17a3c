//! ConsumerGroupDescribe (key 69), versions 0-1: groups of the consumer protocol (KIP-848).
//!
//! Behaviour, as Apache Kafka's group coordinator: per group its state (Empty, Assigning,
//! Reconciling, Stable; see `groups848`), group epoch, assignment epoch, assignor name, and
//! members with member id, instance id, member epoch (-2 for a static member that left its
//! slot), client id and host, subscribed topic names and regex, current assignment and target
//! assignment (by topic id and name), member type 1 (a consumer-protocol member; v1). An
//! unknown group id, or a classic group, is GROUP_ID_NOT_FOUND with a message. A group whose
//! coordinator is another node is NOT_COORDINATOR.
//!
//! Skipped: rack ids (none are kept), group ACLs.

use kafka_persistence_wire::ErrorCode;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId,
};

use super::describe_groups::GROUP_OPERATIONS;
use super::{sb, tn, Ctx};
use crate::cluster::Cluster;
use crate::groups848::assign::Partitions;

fn failed(id: &GroupId, code: i16, message: Option<String>) -> DescribedGroup {
    let mut g = DescribedGroup::default();
    g.group_id = id.clone();
    g.error_code = code;
    g.error_message = message.map(sb);
    g
}

/// The answer with `code` for every group.
pub(crate) fn error(
    req: &ConsumerGroupDescribeRequest,
    code: i16,
) -> ConsumerGroupDescribeResponse {
    let mut r = ConsumerGroupDescribeResponse::default();
    r.groups = req
        .group_ids
        .iter()
        .map(|id| failed(id, code, None))
        .collect();
    r
}

fn assignment(cluster: &Cluster, p: Partitions) -> Assignment {
    let mut a = Assignment::default();
    for (t, ps) in p {
        let mut tp = TopicPartitions::default();
        if let Some(topic) = cluster.topic(&t) {
            tp.topic_id = topic.id;
        }
        tp.topic_name = tn(&t);
        tp.partitions = ps.into_iter().collect();
        a.topic_partitions.push(tp);
    }
    a
}

/// Handles ConsumerGroupDescribe.
pub(crate) fn handle(
    ctx: &Ctx,
    req: ConsumerGroupDescribeRequest,
    _version: i16,
) -> ConsumerGroupDescribeResponse {
    let cluster = &ctx.cluster;
    if cluster.controller_id() != ctx.node_id {
        return error(&req, ErrorCode::NOT_COORDINATOR);
    }
    let mut r = ConsumerGroupDescribeResponse::default();
    for id in &req.group_ids {
        let name = id.0.as_str();
        let summary = if cluster.groups.has_members(name) {
            None
        } else {
            cluster.consumer_groups.describe(name)
        };
        let Some(s) = summary else {
            let message = if cluster.groups.describe(name).is_some() {
                format!("Group {name} is not a consumer group.")
            } else {
                format!("Group {name} not found.")
            };
            r.groups
                .push(failed(id, ErrorCode::GROUP_ID_NOT_FOUND, Some(message)));
            continue;
        };
        let mut g = DescribedGroup::default();
        g.group_id = id.clone();
        g.group_state = sb(s.state);
        g.group_epoch = s.epoch;
        g.assignment_epoch = s.assignment_epoch;
        g.assignor_name = sb(s.assignor);
        if req.include_authorized_operations {
            g.authorized_operations = GROUP_OPERATIONS;
        }
        g.members = s
            .members
            .into_iter()
            .map(|m| {
                let mut d = Member::default();
                d.member_id = sb(m.member_id);
                d.instance_id = m.instance_id.map(sb);
                d.member_epoch = m.epoch;
                d.client_id = sb(m.client_id);
                d.client_host = sb(m.client_host);
                d.subscribed_topic_names = m.topics.iter().map(|t| tn(t)).collect();
                d.subscribed_topic_regex = m.regex.map(sb);
                d.assignment = assignment(cluster, m.assignment);
                d.target_assignment = assignment(cluster, m.target);
                d.member_type = 1;
                d
            })
            .collect();
        r.groups.push(g);
    }
    r
}

//! Request handlers, one file per api (`NN_name.rs`, NN = api key), and the registry that
//! ApiVersions and the request decoder are built from.

use std::sync::Arc;

use kafka_persistence_wire::ErrorCode;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::Cluster;

#[path = "25_add_offsets_to_txn.rs"]
mod add_offsets_to_txn;
#[path = "24_add_partitions_to_txn.rs"]
mod add_partitions_to_txn;
#[path = "18_api_versions.rs"]
mod api_versions;
#[path = "69_consumer_group_describe.rs"]
mod consumer_group_describe;
#[path = "68_consumer_group_heartbeat.rs"]
mod consumer_group_heartbeat;
#[path = "19_create_topics.rs"]
mod create_topics;
#[path = "21_delete_records.rs"]
mod delete_records;
#[path = "20_delete_topics.rs"]
mod delete_topics;
#[path = "60_describe_cluster.rs"]
mod describe_cluster;
#[path = "32_describe_configs.rs"]
mod describe_configs;
#[path = "15_describe_groups.rs"]
mod describe_groups;
#[path = "26_end_txn.rs"]
mod end_txn;
#[path = "01_fetch.rs"]
mod fetch;
#[path = "10_find_coordinator.rs"]
mod find_coordinator;
#[path = "12_heartbeat.rs"]
mod heartbeat;
#[path = "22_init_producer_id.rs"]
mod init_producer_id;
#[path = "11_join_group.rs"]
mod join_group;
#[path = "13_leave_group.rs"]
mod leave_group;
#[path = "16_list_groups.rs"]
mod list_groups;
#[path = "02_list_offsets.rs"]
mod list_offsets;
#[path = "03_metadata.rs"]
mod metadata;
#[path = "08_offset_commit.rs"]
mod offset_commit;
#[path = "09_offset_fetch.rs"]
mod offset_fetch;
#[path = "00_produce.rs"]
mod produce;
#[path = "36_sasl_authenticate.rs"]
mod sasl_authenticate;
#[path = "17_sasl_handshake.rs"]
mod sasl_handshake;
#[path = "14_sync_group.rs"]
mod sync_group;
#[path = "28_txn_offset_commit.rs"]
mod txn_offset_commit;

/// The apis this broker serves, with the version range it implements. ApiVersions
/// advertises exactly this table and the decoder rejects everything outside it.
pub(crate) const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// The supported `(min, max)` versions of `key`, if served.
pub(crate) fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, min, max)| (min, max))
}

/// What a handler knows about where it runs.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) node_id: i32,
    /// The peer's address as Kafka reports it in group descriptions (`/127.0.0.1`).
    pub(crate) client_host: String,
}

/// A string as the protocol's `StrBytes`.
pub(crate) fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// A topic name.
pub(crate) fn tn(s: &str) -> TopicName {
    TopicName(sb(s))
}

/// The request header's client id ("" when null).
fn client_id(header: &RequestHeader) -> String {
    header
        .client_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default()
}

/// Handles one request; `None` means "send nothing" (acks=0). The version is the one the
/// response must be encoded with.
pub(crate) async fn handle(
    ctx: &Ctx,
    header: &RequestHeader,
    request: RequestKind,
) -> Option<(i16, ResponseKind)> {
    let v = header.request_api_version;
    let body = match request {
        RequestKind::Produce(r) => return produce::handle(ctx, r, v).map(|b| (v, b.into())),
        RequestKind::Fetch(r) => fetch::handle(ctx, r, v).await.into(),
        RequestKind::ListOffsets(r) => list_offsets::handle(ctx, r, v).into(),
        RequestKind::Metadata(r) => metadata::handle(ctx, r, v).into(),
        RequestKind::OffsetCommit(r) => offset_commit::handle(ctx, r, v).into(),
        RequestKind::OffsetFetch(r) => offset_fetch::handle(ctx, r, v).into(),
        RequestKind::FindCoordinator(r) => find_coordinator::handle(ctx, r, v).into(),
        RequestKind::JoinGroup(r) => join_group::handle(ctx, client_id(header), r, v)
            .await
            .into(),
        RequestKind::Heartbeat(r) => heartbeat::handle(ctx, r, v).into(),
        RequestKind::LeaveGroup(r) => leave_group::handle(ctx, r, v).into(),
        RequestKind::SyncGroup(r) => sync_group::handle(ctx, r, v).await.into(),
        RequestKind::DescribeGroups(r) => describe_groups::handle(ctx, r, v).into(),
        RequestKind::ListGroups(r) => list_groups::handle(ctx, r, v).into(),
        RequestKind::ApiVersions(r) => {
            let (version, body) = api_versions::handle(ctx, r, v);
            return Some((version, body.into()));
        }
        RequestKind::CreateTopics(r) => create_topics::handle(ctx, r, v).into(),
        RequestKind::DeleteTopics(r) => delete_topics::handle(ctx, r, v).into(),
        RequestKind::DeleteRecords(r) => delete_records::handle(ctx, r, v).into(),
        RequestKind::InitProducerId(r) => init_producer_id::handle(ctx, r, v).into(),
        RequestKind::AddPartitionsToTxn(r) => add_partitions_to_txn::handle(ctx, r, v).into(),
        RequestKind::AddOffsetsToTxn(r) => add_offsets_to_txn::handle(ctx, r, v).into(),
        RequestKind::EndTxn(r) => end_txn::handle(ctx, r, v).into(),
        RequestKind::TxnOffsetCommit(r) => txn_offset_commit::handle(ctx, r, v).into(),
        RequestKind::DescribeConfigs(r) => describe_configs::handle(ctx, r, v).into(),
        RequestKind::DescribeCluster(r) => describe_cluster::handle(ctx, r, v).into(),
        RequestKind::ConsumerGroupHeartbeat(r) => {
            consumer_group_heartbeat::handle(ctx, client_id(header), r, v).into()
        }
        RequestKind::ConsumerGroupDescribe(r) => consumer_group_describe::handle(ctx, r, v).into(),
        other => {
            // The decoder only lets registered keys through; answer nothing and close.
            tracing::warn!(request = ?std::mem::discriminant(&other), "no handler for request");
            return None;
        }
    };
    Some((v, body))
}

/// What the connection loop does with a request before the ordinary handlers see it.
#[derive(Debug)]
pub(crate) enum Gate {
    /// Serve it as usual.
    Pass,
    /// Answer with this (version, body), then close the connection if `close`.
    Respond(i16, Box<ResponseKind>, bool),
    /// Close the connection without answering.
    Close(&'static str),
}

/// The SASL exchange (which needs the connection's state) and ACL checks: see `auth`.
pub(crate) fn gate(
    cluster: &Cluster,
    session: &mut crate::auth::Session,
    header: &RequestHeader,
    request: &RequestKind,
) -> Gate {
    let v = header.request_api_version;
    let settings = &cluster.settings.auth;
    match request {
        RequestKind::SaslHandshake(r) => {
            let body = sasl_handshake::handle(settings, session, r);
            let close = body.error_code != 0;
            return Gate::Respond(v, Box::new(body.into()), close);
        }
        RequestKind::SaslAuthenticate(r) => {
            let (body, close) = sasl_authenticate::handle(settings, session, r);
            return Gate::Respond(v, Box::new(body.into()), close);
        }
        _ => {}
    }
    // As Kafka: any request but a re-authentication's closes an expired session.
    if session.expired(std::time::Instant::now()) {
        return Gate::Close("SASL session expired without re-authentication");
    }
    if let RequestKind::ApiVersions(_) = request {
        return Gate::Pass;
    }
    if !session.authenticated() {
        return Gate::Close("request before SASL authentication");
    }
    if !settings.authorize {
        return Gate::Pass;
    }
    let Some((op, topics)) = crate::auth::topic_operation(cluster, request) else {
        return Gate::Pass;
    };
    if topics
        .iter()
        .all(|t| settings.allowed(&session.principal, op, t))
    {
        return Gate::Pass;
    }
    tracing::debug!(principal = %session.principal, operation = ?op, ?topics, reason = "no ACL", "refusing request");
    match error_response(header, request, ErrorCode::TOPIC_AUTHORIZATION_FAILED) {
        Some((v, body)) => Gate::Respond(v, Box::new(body), false),
        None => Gate::Close("unauthorized acks=0 produce"),
    }
}

/// The response to a request that an injected error short-circuits: `code` for every
/// topic/partition (or at top level), nothing applied. acks=0 produce still gets no answer.
pub(crate) fn error_response(
    header: &RequestHeader,
    request: &RequestKind,
    code: i16,
) -> Option<(i16, ResponseKind)> {
    let v = header.request_api_version;
    let body: ResponseKind = match request {
        RequestKind::Produce(r) => {
            if r.acks == 0 {
                return None;
            }
            produce::error(r, code).into()
        }
        RequestKind::Fetch(r) => fetch::error(r, code).into(),
        RequestKind::ListOffsets(r) => list_offsets::error(r, code).into(),
        RequestKind::Metadata(r) => metadata::error(r, code).into(),
        RequestKind::OffsetCommit(r) => offset_commit::error(r, code).into(),
        RequestKind::OffsetFetch(r) => offset_fetch::error(r, code, v).into(),
        RequestKind::FindCoordinator(r) => find_coordinator::error(r, code).into(),
        RequestKind::JoinGroup(_) => join_group::error(code).into(),
        RequestKind::Heartbeat(_) => heartbeat::error(code).into(),
        RequestKind::LeaveGroup(r) => leave_group::error(r, code).into(),
        RequestKind::SyncGroup(_) => sync_group::error(code).into(),
        RequestKind::DescribeGroups(r) => describe_groups::error(r, code).into(),
        RequestKind::ListGroups(_) => list_groups::error(code).into(),
        RequestKind::ApiVersions(_) => {
            // KIP-511: an UNSUPPORTED_VERSION answer is always a v0 body. Injected, it
            // emulates a broker whose highest ApiVersions version is below the requested one.
            if code == ErrorCode::UNSUPPORTED_VERSION {
                return Some((0, api_versions::unsupported_below(v).into()));
            }
            api_versions::error(code).into()
        }
        RequestKind::CreateTopics(r) => create_topics::error(r, code).into(),
        RequestKind::DeleteTopics(r) => delete_topics::error(r, code).into(),
        RequestKind::DeleteRecords(r) => delete_records::error(r, code).into(),
        RequestKind::InitProducerId(_) => init_producer_id::error(code).into(),
        RequestKind::AddPartitionsToTxn(r) => add_partitions_to_txn::error(r, code).into(),
        RequestKind::AddOffsetsToTxn(_) => add_offsets_to_txn::error(code).into(),
        RequestKind::EndTxn(_) => end_txn::error(code).into(),
        RequestKind::TxnOffsetCommit(r) => txn_offset_commit::error(r, code).into(),
        RequestKind::DescribeConfigs(r) => describe_configs::error(r, code).into(),
        RequestKind::DescribeCluster(_) => describe_cluster::error(code).into(),
        RequestKind::ConsumerGroupHeartbeat(_) => consumer_group_heartbeat::error(code).into(),
        RequestKind::ConsumerGroupDescribe(r) => consumer_group_describe::error(r, code).into(),
        _ => return None,
    };
    Some((v, body))
}

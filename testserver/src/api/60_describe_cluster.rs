//! DescribeCluster (key 60), versions 0-1.
//!
//! Behaviour: the running nodes, the cluster id and the controller (the lowest running node).
//! v1's `endpoint_type` must be 1 (brokers); 2 (controllers) is answered with the same nodes.
//!
//! Skipped: authorized operations (always "not requested"), racks, fenced brokers.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{sb, Ctx};

/// The answer with a top-level `code`.
pub(crate) fn error(code: i16) -> DescribeClusterResponse {
    let mut r = DescribeClusterResponse::default();
    r.error_code = code;
    r
}

/// Handles DescribeCluster.
pub(crate) fn handle(
    ctx: &Ctx,
    _req: DescribeClusterRequest,
    _version: i16,
) -> DescribeClusterResponse {
    let c = &ctx.cluster;
    let mut r = DescribeClusterResponse::default();
    r.cluster_id = sb(c.cluster_id.clone());
    r.controller_id = BrokerId(c.controller_id());
    for n in c.nodes.iter().filter(|n| c.is_running(n.id)) {
        let mut b = DescribeClusterBroker::default();
        b.broker_id = BrokerId(n.id);
        b.host = sb(c.settings.host.clone());
        b.port = i32::from(n.port);
        r.brokers.push(b);
    }
    r
}

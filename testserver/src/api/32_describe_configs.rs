//! DescribeConfigs (key 32), versions 1-4 (kafka-protocol 0.18 dropped v0).
//!
//! Behaviour: topic resources (type 2) list every topic config Kafka knows, with the value
//! given at creation (source DYNAMIC_TOPIC_CONFIG) or the default (source DEFAULT_CONFIG),
//! e.g. `max.message.bytes=1048588`, `cleanup.policy=delete`, `retention.ms=604800000`;
//! `configuration_keys` filters them (null or empty = all). Unknown topics are UNKNOWN_TOPIC_OR_PARTITION. Broker
//! resources (type 4, name = node id) list a few static broker configs.
//!
//! Skipped: synonyms, documentation and config types (left empty/unknown), other resource
//! types (INVALID_REQUEST).

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::{sb, Ctx};
use kafka_persistence_wire::ErrorCode;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// The answer with `code` for every resource.
pub(crate) fn error(req: &DescribeConfigsRequest, code: i16) -> DescribeConfigsResponse {
    let mut r = DescribeConfigsResponse::default();
    for res in &req.resources {
        let mut rr = DescribeConfigsResult::default();
        rr.error_code = code;
        rr.resource_type = res.resource_type;
        rr.resource_name = res.resource_name.clone();
        r.results.push(rr);
    }
    r
}

fn entry(
    name: &str,
    value: String,
    is_default: bool,
    source_if_set: i8,
) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default();
    e.name = sb(name);
    e.value = Some(sb(value));
    // 5 = DEFAULT_CONFIG.
    e.config_source = if is_default { 5 } else { source_if_set };
    e
}

/// Handles DescribeConfigs.
pub(crate) fn handle(
    ctx: &Ctx,
    req: DescribeConfigsRequest,
    _version: i16,
) -> DescribeConfigsResponse {
    let c = &ctx.cluster;
    let mut r = DescribeConfigsResponse::default();
    for res in req.resources {
        let mut rr = DescribeConfigsResult::default();
        rr.resource_type = res.resource_type;
        rr.resource_name = res.resource_name.clone();
        let wanted = |k: &str| {
            res.configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.is_empty() || keys.iter().any(|x| &**x == k))
        };
        match res.resource_type {
            TOPIC => match c.topic(&res.resource_name) {
                Some(topic) => {
                    rr.configs = topic
                        .config
                        .describe()
                        .into_iter()
                        .filter(|(k, _, _)| wanted(k))
                        // 1 = DYNAMIC_TOPIC_CONFIG.
                        .map(|(k, v, d)| entry(k, v, d, 1))
                        .collect();
                }
                None => {
                    rr.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION;
                    rr.error_message = Some(sb(format!(
                        "topic '{}' does not exist",
                        &*res.resource_name
                    )));
                }
            },
            BROKER => {
                let broker = [
                    (
                        "auto.create.topics.enable",
                        c.settings.auto_create_topics.to_string(),
                    ),
                    ("default.replication.factor", "1".to_string()),
                    ("log.cleanup.policy", "delete".to_string()),
                    (
                        "log.retention.ms",
                        crate::config::DEFAULT_RETENTION_MS.to_string(),
                    ),
                    (
                        "message.max.bytes",
                        c.settings.default_max_message_bytes.to_string(),
                    ),
                    ("num.partitions", c.settings.default_partitions.to_string()),
                ];
                // 4 = STATIC_BROKER_CONFIG.
                rr.configs = broker
                    .into_iter()
                    .filter(|(k, _)| wanted(k))
                    .map(|(k, v)| entry(k, v, false, 4))
                    .collect();
            }
            _ => {
                rr.error_code = ErrorCode::INVALID_REQUEST;
                rr.error_message = Some(sb("unsupported resource type"));
            }
        }
        r.results.push(rr);
    }
    r
}

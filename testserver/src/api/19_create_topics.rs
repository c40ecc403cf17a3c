//! CreateTopics (key 19), versions 2-7.
//!
//! Behaviour: validates like Kafka: names (INVALID_TOPIC_EXCEPTION for illegal characters,
//! more than 249 characters, `.`/`..`, or a `.`-versus-`_` collision with an existing topic),
//! TOPIC_ALREADY_EXISTS, partitions (INVALID_PARTITIONS), replication factor at most the
//! number of nodes (INVALID_REPLICATION_FACTOR), configs (INVALID_CONFIG for unknown names or
//! bad values of the configs the broker acts on), the same name twice in one request
//! (INVALID_REQUEST). `validate_only` checks without creating. Configs are kept and reported
//! by DescribeConfigs; v5+ answers the partition count, replication factor and all configs.
//! `num_partitions = -1` means the broker default, `replication_factor = -1` means 1.
//!
//! Skipped: manual replica assignments only set the partition count (leaders are still
//! spread round-robin); `timeout_ms` is ignored (creation is immediate); any node accepts it.

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::{sb, Ctx};
use crate::cluster::TopicError;
use kafka_persistence_wire::ErrorCode;

/// The answer with `code` for every topic.
pub(crate) fn error(req: &CreateTopicsRequest, code: i16) -> CreateTopicsResponse {
    let mut r = CreateTopicsResponse::default();
    for t in &req.topics {
        let mut tr = CreatableTopicResult::default();
        tr.name = t.name.clone();
        tr.error_code = code;
        tr.num_partitions = -1;
        tr.replication_factor = -1;
        r.topics.push(tr);
    }
    r
}

/// Handles CreateTopics.
pub(crate) fn handle(ctx: &Ctx, req: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let c = &ctx.cluster;
    let mut r = CreateTopicsResponse::default();
    let names: Vec<&str> = req.topics.iter().map(|t| -> &str { &t.name.0 }).collect();
    for t in &req.topics {
        let mut tr = CreatableTopicResult::default();
        tr.name = t.name.clone();
        tr.num_partitions = -1;
        tr.replication_factor = -1;
        let name: &str = &t.name.0;
        let fail = |tr: &mut CreatableTopicResult, code: i16, msg: String| {
            tr.error_code = code;
            tr.error_message = Some(sb(msg));
        };
        if names.iter().filter(|n| **n == name).count() > 1 {
            fail(
                &mut tr,
                ErrorCode::INVALID_REQUEST,
                format!("topic '{name}' appears more than once"),
            );
            r.topics.push(tr);
            continue;
        }
        let mut partitions = if t.num_partitions == -1 {
            c.settings.default_partitions
        } else {
            t.num_partitions
        };
        if !t.assignments.is_empty() {
            if t.num_partitions != -1 || t.replication_factor != -1 {
                fail(
                    &mut tr,
                    ErrorCode::INVALID_REQUEST,
                    "both assignments and partitions/replication factor given".into(),
                );
                r.topics.push(tr);
                continue;
            }
            partitions = i32::try_from(t.assignments.len()).unwrap_or(i32::MAX);
            if t.assignments
                .iter()
                .flat_map(|a| a.broker_ids.iter())
                .any(|b| c.node(b.0).is_none())
            {
                fail(
                    &mut tr,
                    ErrorCode::INVALID_REPLICA_ASSIGNMENT,
                    "unknown broker in assignment".into(),
                );
                r.topics.push(tr);
                continue;
            }
        }
        let rf = if t.replication_factor == -1 {
            1
        } else {
            t.replication_factor
        };
        if rf <= 0 || rf as usize > c.nodes.len() {
            fail(
                &mut tr,
                ErrorCode::INVALID_REPLICATION_FACTOR,
                format!("replication factor {rf} is not in 1..={}", c.nodes.len()),
            );
            r.topics.push(tr);
            continue;
        }
        let configs: Vec<(String, String)> = t
            .configs
            .iter()
            .filter_map(|cfg| {
                cfg.value
                    .as_ref()
                    .map(|v| (cfg.name.to_string(), v.to_string()))
            })
            .collect();
        let result = if req.validate_only {
            c.validate_new_topic(name, partitions, &configs)
                .map(|cfg| (None, cfg))
        } else {
            c.create_topic(name, partitions, &configs)
                .map(|topic| (Some(topic.id), topic.config.clone()))
        };
        match result {
            Ok((id, cfg)) => {
                if version >= 7 {
                    if let Some(id) = id {
                        tr.topic_id = id;
                    }
                }
                if version >= 5 {
                    tr.num_partitions = partitions;
                    tr.replication_factor = rf;
                    tr.configs = Some(
                        cfg.describe()
                            .into_iter()
                            .map(|(k, v, is_default)| {
                                let mut e = CreatableTopicConfigs::default();
                                e.name = sb(k);
                                e.value = Some(sb(v));
                                // 1 = DYNAMIC_TOPIC_CONFIG, 5 = DEFAULT_CONFIG.
                                e.config_source = if is_default { 5 } else { 1 };
                                e
                            })
                            .collect(),
                    );
                }
            }
            Err(TopicError::Code(code, msg)) => fail(&mut tr, code, msg),
            Err(TopicError::Io(msg)) => fail(&mut tr, ErrorCode::KAFKA_STORAGE_ERROR, msg),
        }
        r.topics.push(tr);
    }
    r
}

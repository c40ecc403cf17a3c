//! DeleteTopics (key 20), versions 1-6.
//!
//! Behaviour: deletes by name (v1-5 `topic_names`, v6 `topics` by name or id); unknown topics
//! are UNKNOWN_TOPIC_OR_PARTITION (UNKNOWN_TOPIC_ID by id). Deletion is immediate: later
//! requests see the topic gone, long-polling fetches on it wake up with an error, and the
//! name can be created again at once.
//!
//! Skipped: `timeout_ms` (immediate), controller routing (any node accepts it).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::{sb, Ctx};
use crate::cluster::TopicError;
use kafka_persistence_wire::ErrorCode;

fn targets(req: &DeleteTopicsRequest) -> Vec<(Option<TopicName>, uuid::Uuid)> {
    let mut v: Vec<(Option<TopicName>, uuid::Uuid)> = req
        .topic_names
        .iter()
        .map(|n| (Some(n.clone()), uuid::Uuid::nil()))
        .collect();
    v.extend(req.topics.iter().map(|t| (t.name.clone(), t.topic_id)));
    v
}

/// The answer with `code` for every topic.
pub(crate) fn error(req: &DeleteTopicsRequest, code: i16) -> DeleteTopicsResponse {
    let mut r = DeleteTopicsResponse::default();
    for (name, id) in targets(req) {
        let mut tr = DeletableTopicResult::default();
        tr.name = name;
        tr.topic_id = id;
        tr.error_code = code;
        r.responses.push(tr);
    }
    r
}

/// Handles DeleteTopics.
pub(crate) fn handle(ctx: &Ctx, req: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    let c = &ctx.cluster;
    let mut r = DeleteTopicsResponse::default();
    for (name, id) in targets(&req) {
        let mut tr = DeletableTopicResult::default();
        let resolved = match &name {
            Some(n) => c
                .topic(&n.0)
                .map(|t| t.name.clone())
                .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
            None => c
                .topic_by_id(id)
                .map(|t| t.name.clone())
                .ok_or(ErrorCode::UNKNOWN_TOPIC_ID),
        };
        tr.name = name;
        if version >= 6 {
            tr.topic_id = id;
        }
        match resolved {
            Ok(n) => match c.delete_topic(&n) {
                Ok(()) => {
                    if version >= 6 {
                        tr.name = Some(super::tn(&n));
                    }
                }
                Err(TopicError::Code(code, msg)) => {
                    tr.error_code = code;
                    if version >= 5 {
                        tr.error_message = Some(sb(msg));
                    }
                }
                Err(TopicError::Io(msg)) => {
                    tr.error_code = ErrorCode::KAFKA_STORAGE_ERROR;
                    if version >= 5 {
                        tr.error_message = Some(sb(msg));
                    }
                }
            },
            Err(code) => tr.error_code = code,
        }
        r.responses.push(tr);
    }
    r
}

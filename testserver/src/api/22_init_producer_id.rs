//! InitProducerId (key 22), versions 0-4.
//!
//! Behaviour: without a transactional id, every call hands out a fresh producer id with epoch
//! 0 (idempotent producers; per-partition sequence state lives in the partitions). With a
//! transactional id, the first call allocates an id, each later call bumps its epoch (a new id
//! once the epoch would overflow), so older producer instances are fenced: their produce
//! requests get INVALID_PRODUCER_EPOCH. A v3+ request naming an id/epoch that is not the
//! current one for that transactional id is INVALID_PRODUCER_EPOCH (KIP-360). An empty
//! transactional id is INVALID_REQUEST, as in Kafka.
//!
//! Skipped: transactions themselves (see Produce), `transaction_timeout_ms`, the coordinator
//! lookup (any node answers), v5+ (KIP-939 two-phase commit).

use std::sync::atomic::Ordering;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::Ctx;
use crate::cluster::lock;
use kafka_persistence_wire::ErrorCode;

/// The answer with `code`.
pub(crate) fn error(code: i16) -> InitProducerIdResponse {
    let mut r = InitProducerIdResponse::default();
    r.error_code = code;
    r.producer_id = ProducerId(-1);
    r.producer_epoch = -1;
    r
}

/// Handles InitProducerId.
pub(crate) fn handle(
    ctx: &Ctx,
    req: InitProducerIdRequest,
    _version: i16,
) -> InitProducerIdResponse {
    let c = &ctx.cluster;
    let mut producers = lock(&c.producers);
    let (pid, epoch) = match req.transactional_id {
        None => (c.next_producer_id.fetch_add(1, Ordering::Relaxed), 0),
        Some(tid) if tid.0.is_empty() => return error(ErrorCode::INVALID_REQUEST),
        Some(tid) => {
            let tid = tid.0.to_string();
            let next = match producers.transactional.get(&tid).copied() {
                None => (c.next_producer_id.fetch_add(1, Ordering::Relaxed), 0),
                Some((pid, epoch)) => {
                    if req.producer_id.0 >= 0
                        && (req.producer_id.0 != pid || req.producer_epoch != epoch)
                    {
                        return error(ErrorCode::INVALID_PRODUCER_EPOCH);
                    }
                    if epoch >= i16::MAX - 1 {
                        (c.next_producer_id.fetch_add(1, Ordering::Relaxed), 0)
                    } else {
                        (pid, epoch + 1)
                    }
                }
            };
            producers.transactional.insert(tid, next);
            next
        }
    };
    producers.epochs.insert(pid, epoch);
    let mut r = InitProducerIdResponse::default();
    r.producer_id = ProducerId(pid);
    r.producer_epoch = epoch;
    r
}

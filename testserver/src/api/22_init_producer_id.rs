//! InitProducerId (key 22), versions 0-4.
//!
//! Behaviour: without a transactional id, every call hands out a fresh producer id with epoch
//! 0 (idempotent producers; per-partition sequence state lives in the partitions). With a
//! transactional id (only on the coordinator, else NOT_COORDINATOR), the transaction
//! coordinator (`txn`) allocates an id or bumps its epoch, fencing older instances and
//! aborting the transaction they left open; a v3+ request naming an id/epoch that is not the
//! current one is PRODUCER_FENCED (KIP-360); a timeout outside 1..=900000 ms is
//! INVALID_TRANSACTION_TIMEOUT; an empty transactional id INVALID_REQUEST, as in Kafka.
//!
//! Skipped: v5+ (KIP-939 two-phase commit).

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
    version: i16,
) -> InitProducerIdResponse {
    let c = &ctx.cluster;
    let (pid, epoch) = match req.transactional_id {
        None => {
            let pid = c.next_producer_id.fetch_add(1, Ordering::Relaxed);
            lock(&c.producers).epochs.insert(pid, 0);
            (pid, 0)
        }
        Some(tid) => {
            if c.controller_id() != ctx.node_id {
                return error(ErrorCode::NOT_COORDINATOR);
            }
            match c.init_transactional(
                &tid.0,
                req.transaction_timeout_ms,
                req.producer_id.0,
                req.producer_epoch,
            ) {
                Ok(x) => x,
                Err(code) => return error(crate::txn::for_version(code, version, 4)),
            }
        }
    };
    let mut r = InitProducerIdResponse::default();
    r.producer_id = ProducerId(pid);
    r.producer_epoch = epoch;
    r
}

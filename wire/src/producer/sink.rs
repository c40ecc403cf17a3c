//! The per-broker sink: groups due batches by leader into ProduceRequests (several partitions
//! per request), submits them on the leader's connection with a callback, and applies each
//! partition's answer through the outcome policy ([`super::policy::decide`]).
//!
//! Response handling runs on the connection's reader task (the callback): no task hop between
//! the socket and completing the senders.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, info, warn};

use super::accumulator::{mark_dirty, partition_mut, BatchState, Gate, State};
use super::policy::{decide, Action, Facts};
use super::Inner;
use crate::config::Acks;
use crate::conn::Connection;
use crate::error::{lookup, Error, ErrorCode};
use crate::protocol;
use crate::sync::lock;

/// Where a partition's batches go: its leader and the connection to it.
#[derive(Clone)]
pub(super) struct Route {
    pub(super) node: i32,
    pub(super) conn: Arc<Connection>,
}

/// One batch in a request: topic, partition, batch id, encoded batch.
type Item = (Arc<str>, i32, u64, Bytes);

/// A batch's fate as the broker (or the connection) reported it.
pub(super) enum Outcome {
    /// Stored at this base offset (-1 if unknown).
    Stored(i64),
    /// Failed with this error.
    Failed(Error),
}

impl Inner {
    /// Sends what can be sent: closes open batches that are due and have room in the
    /// in-flight window, and sends queued batches in order, one per partition per request,
    /// grouped by leader.
    pub(super) fn drain(self: &Arc<Self>, st: &mut State, force: bool) {
        let max = self.config.max_in_flight.clamp(1, 5);
        let linger = self.config.linger;
        let batch_size = self.config.batch_size;
        loop {
            let candidates = std::mem::take(&mut st.dirty);
            if candidates.is_empty() {
                return;
            }
            let mut requests: Vec<(Route, Vec<Item>)> = Vec::new();
            let mut to_recover: Vec<(Arc<str>, i32)> = Vec::new();
            for (topic, partition) in candidates {
                let Some(p) = partition_mut(st, &topic, partition) else {
                    continue;
                };
                p.dirty = false;
                if p.blocked {
                    continue;
                }
                match &p.gate {
                    Gate::Open => {}
                    Gate::Held => continue,
                    Gate::Failed(e) => {
                        let e = Arc::clone(e);
                        self.fail_partition(p, &e);
                        continue;
                    }
                }
                let window = if p.confirmed || !self.idempotent {
                    max
                } else {
                    1
                };
                let queued = p
                    .queue
                    .iter()
                    .filter(|b| b.state == BatchState::Queued)
                    .count();
                if let Some(o) = &p.open {
                    let due = force
                        || linger.is_zero()
                        || o.bytes >= batch_size
                        || o.created.elapsed() >= linger;
                    if due && (force || p.inflight + queued < window) {
                        self.close_open(p);
                    }
                }
                if p.inflight >= window {
                    continue;
                }
                let Some(idx) = p.queue.iter().position(|b| b.state == BatchState::Queued) else {
                    continue;
                };
                let route = match &p.route {
                    Some(r) if !r.conn.is_failed() => r.clone(),
                    _ => {
                        p.route = None;
                        p.blocked = true;
                        if !p.recovering {
                            p.recovering = true;
                            to_recover.push((Arc::clone(&topic), partition));
                        }
                        continue;
                    }
                };
                let b = &mut p.queue[idx];
                b.state = BatchState::InFlight;
                let item = (Arc::clone(&topic), partition, b.id, b.bytes.clone());
                p.inflight += 1;
                // More may be sendable next round.
                p.dirty = true;
                st.dirty.push((topic, partition));
                match requests
                    .iter_mut()
                    .find(|(r, _)| r.node == route.node && Arc::ptr_eq(&r.conn, &route.conn))
                {
                    Some((_, items)) => items.push(item),
                    None => requests.push((route, vec![item])),
                }
            }
            for (topic, partition) in to_recover {
                self.spawn_recovery(topic, partition);
            }
            if requests.is_empty() {
                // Nothing was sent: whatever is still marked dirty waits for an event.
                for (topic, partition) in std::mem::take(&mut st.dirty) {
                    if let Some(p) = partition_mut(st, &topic, partition) {
                        p.dirty = false;
                    }
                }
                return;
            }
            for (route, items) in requests {
                self.send_request(st, route, items);
            }
        }
    }

    /// Encodes and submits one ProduceRequest. Failures to submit are handled inline.
    pub(super) fn send_request(self: &Arc<Self>, st: &mut State, route: Route, items: Vec<Item>) {
        let conn = &route.conn;
        let prepared = conn.version(ApiKey::Produce).and_then(|version| {
            let mut topic_data: Vec<TopicProduceData> = Vec::new();
            for (topic, partition, _, bytes) in &items {
                let pd = PartitionProduceData::default()
                    .with_index(*partition)
                    .with_records(Some(bytes.clone()));
                match topic_data
                    .iter_mut()
                    .find(|t| t.name.0.as_str() == &**topic)
                {
                    Some(t) => t.partition_data.push(pd),
                    None => topic_data.push(
                        TopicProduceData::default()
                            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                            .with_partition_data(vec![pd]),
                    ),
                }
            }
            let req = ProduceRequest::default()
                .with_transactional_id(self.config.transactional_id.as_ref().map(|t| {
                    kafka_protocol::messages::TransactionalId(StrBytes::from_string(t.clone()))
                }))
                .with_acks(self.config.acks.as_i16())
                .with_timeout_ms(
                    i32::try_from(self.request_timeout.as_millis()).unwrap_or(i32::MAX),
                )
                .with_topic_data(topic_data);
            conn.encode(ApiKey::Produce, version, &req)
                .map(|(cid, frame)| (version, cid, frame))
        });
        let ids: Vec<(Arc<str>, i32, u64)> =
            items.into_iter().map(|(t, p, id, _)| (t, p, id)).collect();
        let (version, cid, frame) = match prepared {
            Ok(x) => x,
            Err(e) => {
                for (t, p, id) in &ids {
                    self.batch_outcome(st, t, *p, *id, Outcome::Failed(e.duplicate()), None);
                }
                return;
            }
        };
        if self.config.acks == Acks::None {
            let outcome = conn.send_frame_no_response(ApiKey::Produce, frame);
            for (t, p, id) in &ids {
                let o = match &outcome {
                    Ok(()) => Outcome::Stored(-1),
                    Err(e) => Outcome::Failed(e.duplicate()),
                };
                self.batch_outcome(st, t, *p, *id, o, None);
            }
            return;
        }
        let me = Arc::clone(self);
        let node = route.node;
        let addr = conn.addr().to_owned();
        let cb_ids = ids.clone();
        let callback: crate::conn::Callback =
            Box::new(move |r| me.on_response(&addr, node, version, cb_ids, r));
        if let Err((e, _unrun)) =
            conn.try_send_with_callback(ApiKey::Produce, cid, frame, self.request_timeout, callback)
        {
            for (t, p, id) in &ids {
                self.batch_outcome(st, t, *p, *id, Outcome::Failed(e.duplicate()), None);
            }
        }
    }

    /// Runs on the connection's reader task with the response (or the failure).
    pub(super) fn on_response(
        self: &Arc<Self>,
        addr: &str,
        node: i32,
        version: i16,
        ids: Vec<(Arc<str>, i32, u64)>,
        r: Result<Bytes, Error>,
    ) {
        let decoded = r.and_then(|frame| {
            protocol::decode_response::<ProduceResponse>(ApiKey::Produce, version, frame)
                .map(|(_, body)| body)
                .map_err(Error::Protocol)
        });
        let mut st = self.lock_state();
        match decoded {
            Err(e) => {
                for (t, p, id) in &ids {
                    self.batch_outcome(&mut st, t, *p, *id, Outcome::Failed(e.duplicate()), None);
                }
            }
            Ok(resp) => {
                for (t, p, id) in &ids {
                    let pr = resp
                        .responses
                        .iter()
                        .filter(|tr| tr.name.0.as_str() == &**t)
                        .flat_map(|tr| tr.partition_responses.iter())
                        .find(|pr| pr.index == *p);
                    let (outcome, hint) = match pr {
                        None => (
                            Outcome::Failed(Error::broker(
                                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                                Some(t),
                                Some(*p),
                                Some(format!("partition missing in Produce response from {addr}")),
                            )),
                            None,
                        ),
                        Some(pr) if pr.error_code == 0 => (Outcome::Stored(pr.base_offset), None),
                        Some(pr) if pr.error_code == ErrorCode::DUPLICATE_SEQUENCE_NUMBER => {
                            (Outcome::Stored(pr.base_offset), None)
                        }
                        Some(pr) => {
                            let e = if pr.error_code == ErrorCode::MESSAGE_TOO_LARGE
                                || pr.error_code == ErrorCode::RECORD_LIST_TOO_LARGE
                            {
                                let size = partition_mut(&mut st, t, *p)
                                    .and_then(|ps| ps.queue.iter().find(|b| b.id == *id))
                                    .map_or(0, |b| b.bytes.len());
                                Error::MessageTooLarge {
                                    topic: t.to_string(),
                                    partition: *p,
                                    size,
                                }
                            } else {
                                Error::broker(
                                    pr.error_code,
                                    Some(t),
                                    Some(*p),
                                    pr.error_message.as_ref().map(|m| m.as_str().to_owned()),
                                )
                            };
                            let hint = (pr.current_leader.leader_id.0 >= 0).then_some((
                                pr.current_leader.leader_id.0,
                                pr.current_leader.leader_epoch,
                                pr.log_start_offset,
                            ));
                            let hint = hint.or(Some((-1, -1, pr.log_start_offset)));
                            (Outcome::Failed(e), hint)
                        }
                    };
                    self.batch_outcome(&mut st, t, *p, *id, outcome, hint);
                }
            }
        }
        let _ = node;
        self.drain(&mut st, false);
    }

    /// Applies the outcome of one batch. `hint` = (leader, leader epoch, log start offset) from
    /// an error response.
    pub(super) fn batch_outcome(
        self: &Arc<Self>,
        st: &mut State,
        topic: &str,
        partition: i32,
        id: u64,
        outcome: Outcome,
        hint: Option<(i32, i32, i64)>,
    ) {
        let State { topics, dirty, .. } = st;
        let Some(p) = topics.get_mut(topic).and_then(|m| m.get_mut(&partition)) else {
            return;
        };
        let Some(idx) = p.queue.iter().position(|b| b.id == id) else {
            return;
        };
        if p.queue[idx].state == BatchState::InFlight {
            p.inflight = p.inflight.saturating_sub(1);
            p.queue[idx].state = BatchState::Queued;
        }
        match outcome {
            Outcome::Stored(base) => {
                if let Some(b) = p.queue.remove(idx) {
                    if base >= 0 {
                        p.last_acked_offset = base + i64::from(b.count) - 1;
                    }
                    p.backoff = None;
                    // Stored while an earlier failure is pending does not prove the broker's
                    // state is in step with ours; the retry's success will.
                    if !p.blocked {
                        p.confirmed = true;
                    }
                    self.finish(b.waiters, b.permits, Ok(base));
                }
            }
            Outcome::Failed(e) => {
                // Back to one batch in flight until the next success.
                p.confirmed = false;
                let code = e.code();
                if let Some((leader, epoch, _)) = hint {
                    if leader >= 0 && e.needs_metadata_refresh() {
                        let moved = lock(&self.client.inner.metadata)
                            .apply_leader_hint(topic, partition, leader, epoch);
                        if moved {
                            debug!(
                                topic,
                                partition,
                                leader,
                                reason = "KIP-951 current leader hint",
                                "leader moved"
                            );
                        }
                    }
                }
                let facts = Facts {
                    code,
                    retriable: e.is_retriable() || matches!(e, Error::Protocol(_) | Error::Closed),
                    too_large: matches!(e, Error::MessageTooLarge { .. }),
                    idempotent: self.idempotent,
                    behind_pending: idx > 0,
                    reset_due: p.need_reset,
                    sends: p.queue[idx].waiters.len(),
                    log_start_offset: hint.map_or(-1, |h| h.2),
                    last_acked_offset: p.last_acked_offset,
                };
                let mut action = decide(&facts);
                if action == Action::Split {
                    if self.split_batch(p, idx) {
                        // Several sends merged into a batch the topic refuses: each half goes
                        // again (and is split again if needed); a single send stays whole.
                        debug!(topic, partition, error = %e, max_batch = p.max_batch, reason = "batch of several sends too large", "split batch; will retry");
                    } else {
                        action = Action::Fail {
                            reset: self.idempotent,
                        };
                    }
                }
                match action {
                    Action::Split => {}
                    Action::Retry => {
                        // Resend the identical bytes later (never re-sequenced, unless a reset
                        // restamps the whole queue).
                        debug!(topic, partition, seq = p.queue[idx].seq, error = %e, ambiguous = code.is_none_or(|c| lookup(c).ambiguous), "produce failed; will retry");
                        p.need_refresh |= e.needs_metadata_refresh();
                        if e.needs_metadata_refresh() {
                            p.route = None;
                        }
                        p.queue[idx].last_error = Some(e);
                        p.blocked = true;
                    }
                    Action::ResetProducer => {
                        // The broker lost (or never had) our sequence state for the head batch.
                        info!(topic, partition, error = %e, reason = "producer state expired on the broker", "resetting producer id for partition");
                        p.queue[idx].last_error = Some(e);
                        p.need_reset = true;
                        p.blocked = true;
                    }
                    Action::FailDataLoss => {
                        warn!(topic, partition, error = %e, last_acked = p.last_acked_offset, "sequence error at the head of the queue: possible data loss; failing the batch");
                        if let Some(b) = p.queue.remove(idx) {
                            let err = Error::ProducerState {
                                topic: topic.to_owned(),
                                partition,
                                reason: e.to_string(),
                            };
                            self.finish(b.waiters, b.permits, Err(&err));
                        }
                        p.need_reset = true;
                        p.blocked = true;
                    }
                    Action::Fail { reset } => {
                        debug!(topic, partition, error = %e, "produce failed (not retriable)");
                        if let Some(b) = p.queue.remove(idx) {
                            self.finish(b.waiters, b.permits, Err(&e));
                        }
                        if reset {
                            // The sequence numbers after this batch no longer line up.
                            p.need_reset = true;
                            p.blocked = true;
                        }
                    }
                }
                if p.blocked && p.backoff.is_none() {
                    p.backoff = Some(self.client.inner.backoff());
                }
            }
        }
        if p.blocked && !p.recovering {
            p.recovering = true;
            self.spawn_recovery(Arc::clone(&p.topic), partition);
        }
        mark_dirty(dirty, p);
    }
}

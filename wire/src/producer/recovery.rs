//! Recovery, the slow path of a partition after an error: wait until nothing is in flight,
//! fail batches past their delivery timeout, back off, refresh metadata, find the leader, take
//! a fresh producer id when the sequence state is broken (restamping the queued batches from
//! sequence 0), then resume sending in order. One recovery task per partition at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tracing::{debug, info, warn};

use super::accumulator::{mark_dirty, partition_mut, seq_add, PartitionState, State};
use super::sink::Route;
use super::Inner;
use crate::backoff::Backoff;
use crate::client::ConnKind;
use crate::error::Error;

/// Rewrites producer id, epoch and base sequence of an encoded batch and recomputes its CRC.
pub(super) fn restamp(batch: &[u8], pid: i64, epoch: i16, seq: i32) -> Bytes {
    let mut b = BytesMut::from(batch);
    if b.len() >= 61 {
        b[43..51].copy_from_slice(&pid.to_be_bytes());
        b[51..53].copy_from_slice(&epoch.to_be_bytes());
        b[53..57].copy_from_slice(&seq.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    b.freeze()
}

impl Inner {
    pub(super) fn spawn_recovery(self: &Arc<Self>, topic: Arc<str>, partition: i32) {
        let me = Arc::clone(self);
        tokio::spawn(async move { me.recover(topic, partition).await });
    }

    /// Fails every batch (queued and open) of a partition.
    pub(super) fn fail_partition(&self, p: &mut PartitionState, e: &Error) {
        let mut failed = false;
        while let Some(b) = p.queue.pop_front() {
            self.finish(b.waiters, b.permits, Err(e));
            failed = true;
        }
        if let Some(o) = p.open.take() {
            self.finish(o.waiters, o.permits, Err(e));
        }
        p.inflight = 0;
        if failed && self.idempotent {
            p.need_reset = true;
        }
    }

    /// The slow path: waits until nothing is in flight for the partition, fails batches past
    /// their delivery timeout, backs off, refreshes metadata, finds the leader, takes a fresh
    /// producer id if needed, then resumes sending in order.
    pub(super) async fn recover(self: Arc<Self>, topic: Arc<str>, partition: i32) {
        loop {
            // 1. Wait until every in-flight batch of the partition has an outcome.
            loop {
                let notified = self.progress.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let inflight = {
                    let mut st = self.lock_state();
                    partition_mut(&mut st, &topic, partition).map_or(0, |p| p.inflight)
                };
                if inflight == 0 {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(20), notified).await;
            }
            // 2. Expire batches past the delivery timeout; pick the backoff.
            let (delay, need_refresh) = {
                let mut st = self.lock_state();
                let Some(p) = partition_mut(&mut st, &topic, partition) else {
                    return;
                };
                let now = Instant::now();
                let mut expired = false;
                while p.queue.front().is_some_and(|b| b.deadline <= now) {
                    if let Some(b) = p.queue.pop_front() {
                        let e = match b.last_error {
                            Some(e) => e,
                            None => Error::Timeout {
                                what: format!("delivery to {topic}/{partition}"),
                                after: self.delivery_timeout,
                            },
                        };
                        warn!(topic = %topic, partition, error = %e, "delivery timeout: failing batch");
                        self.finish(b.waiters, b.permits, Err(&e));
                        expired = true;
                    }
                }
                if expired && self.idempotent {
                    p.need_reset = true;
                }
                let delay = p
                    .backoff
                    .as_mut()
                    .map_or(Duration::ZERO, Backoff::next_delay);
                (delay, p.need_refresh)
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            // 3. Metadata and route.
            if need_refresh {
                if let Err(e) = self
                    .client
                    .inner
                    .refresh(&[topic.to_string()], "produce error")
                    .await
                {
                    debug!(topic = %topic, partition, error = %e, "metadata refresh failed");
                }
            }
            let route = async {
                let node = self.client.inner.leader(&topic, partition).await?;
                let conn = self.client.inner.broker_conn(node, ConnKind::Main).await?;
                Ok::<_, Error>(Route { node, conn })
            }
            .await;
            let route = match route {
                Ok(r) => r,
                Err(e) => {
                    let mut st = self.lock_state();
                    let Some(p) = partition_mut(&mut st, &topic, partition) else {
                        return;
                    };
                    let fatal = !e.is_retriable() && !matches!(e, Error::Protocol(_));
                    if fatal {
                        debug!(topic = %topic, partition, error = %e, "cannot route produce; failing");
                        self.fail_partition(p, &e);
                    } else {
                        debug!(topic = %topic, partition, error = %e, "no route to leader; retrying");
                        p.need_refresh = true;
                        if p.backoff.is_none() {
                            p.backoff = Some(self.client.inner.backoff());
                        }
                        if let Some(b) = p.queue.front_mut() {
                            b.last_error = Some(e);
                        }
                        if !p.queue.is_empty() || p.open.is_some() {
                            continue;
                        }
                    }
                    p.blocked = false;
                    p.recovering = false;
                    return;
                }
            };
            // 4. Fresh producer id if the sequence state is broken.
            let need_reset = {
                let mut st = self.lock_state();
                partition_mut(&mut st, &topic, partition).is_some_and(|p| p.need_reset)
            };
            if need_reset && self.config.transactional_id.is_some() {
                // A transactional producer never takes a fresh id on its own (that would
                // bump its epoch under the coordinator): the queue fails, the transaction
                // must abort, and the abort re-initialises the producer.
                let mut st = self.lock_state();
                let Some(p) = partition_mut(&mut st, &topic, partition) else {
                    return;
                };
                let e = Error::Transaction(format!(
                    "producer state of {topic}/{partition} lost inside the transaction"
                ));
                self.fail_partition(p, &e);
                p.need_reset = false;
                p.blocked = false;
                p.recovering = false;
                return;
            }
            let fresh = if need_reset && self.idempotent {
                match self.init_producer_id().await {
                    Ok(x) => Some(x),
                    Err(e) => {
                        let mut st = self.lock_state();
                        let Some(p) = partition_mut(&mut st, &topic, partition) else {
                            return;
                        };
                        if let Some(b) = p.queue.front_mut() {
                            b.last_error = Some(e);
                        }
                        continue;
                    }
                }
            } else {
                None
            };
            // 5. Resume.
            let mut st = self.lock_state();
            let State { topics, dirty, .. } = &mut *st;
            let Some(p) = topics.get_mut(&*topic).and_then(|m| m.get_mut(&partition)) else {
                return;
            };
            if let Some((pid, epoch)) = fresh {
                info!(topic = %topic, partition, producer_id = pid, epoch, reason = "sequence state reset", "restamping queued batches");
                p.pid = pid;
                p.epoch = epoch;
                let mut seq = 0;
                for b in p.queue.iter_mut() {
                    b.bytes = restamp(&b.bytes, pid, epoch, seq);
                    b.seq = seq;
                    seq = seq_add(seq, b.count);
                }
                p.next_seq = seq;
                p.need_reset = false;
                p.confirmed = false;
            }
            p.route = Some(route);
            p.need_refresh = false;
            p.blocked = false;
            p.recovering = false;
            mark_dirty(dirty, p);
            self.drain(&mut st, false);
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::record::{encode_batch, EncodeOptions, Record};

    #[test]
    fn restamp_rewrites_identity_and_keeps_crc_valid() {
        let recs = vec![Record::new("a", 1), Record::new("b", 2)];
        let mut buf = BytesMut::new();
        let opts = EncodeOptions {
            producer_id: 1,
            producer_epoch: 0,
            base_sequence: 40,
            ..Default::default()
        };
        encode_batch(&recs, &opts, &mut buf).unwrap();
        let out = restamp(&buf, 99, 3, 0);
        let h = crate::record::validate_batch(&out).unwrap();
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (99, 3, 0)
        );
        assert_eq!(h.record_count, 2);
    }
}

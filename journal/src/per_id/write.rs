//! Layout v1 writes: pipelined per id through the producer, each chunk's offset reserved
//! ahead; a chunk that lands elsewhere is verified against the log (fencing).

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::{join_all, BoxFuture, FutureExt};
use kafka_persistence_wire as wire;

use super::naming::PARTITION;
use super::pid::{PidEntry, Reservation};
use super::topics::NewTopicSpec;
use super::PerId;
use crate::chunk::{
    self, plan_chunks, write_size, Chunk, Planned, DEFAULT_MAX_MESSAGE_BYTES, DESCRIBE_THRESHOLD,
};
use crate::error::JournalError;
use crate::gate::Ticket;
use crate::layout::Written;
use crate::repr::AtomicWrite;

/// A write's work per id, with its place in line, taken before the write awaits anything.
pub(crate) struct WritePlan {
    /// Results decided while planning (invalid writes); the rest are filled in later.
    results: Vec<Option<Result<(), crate::error::WriteError>>>,
    /// Per id, in first-appearance order.
    ids: Vec<PidPlan>,
}

/// One id's part of a [`WritePlan`]: its entry, its place in line, its atomic writes (with
/// their indices into the caller's writes).
type PidPlan = (Arc<PidEntry>, Ticket, Vec<(usize, AtomicWrite)>);

type SendFuture = BoxFuture<'static, Result<wire::RecordMetadata, wire::Error>>;

impl PerId {
    /// Validates and groups `writes` by id and takes each id's place in line: everything a
    /// write does before its first await.
    pub(crate) fn plan(&self, writes: Vec<AtomicWrite>) -> WritePlan {
        let grouped = chunk::group(writes);
        let ids = grouped
            .ids
            .into_iter()
            .map(|ws| {
                let entry = self.entry(chunk::id_of(&ws));
                let ticket = entry.gate.ticket();
                (entry, ticket, ws)
            })
            .collect();
        WritePlan {
            results: grouped.results,
            ids,
        }
    }

    pub(crate) async fn write(self: &Arc<Self>, plan: WritePlan) -> Result<Written, JournalError> {
        let WritePlan { results, ids } = plan;
        // Create the topics of ids this journal has not seen yet in one request.
        let missing: Vec<NewTopicSpec> = ids
            .iter()
            .filter(|(e, _, _)| !e.topic_known())
            .map(|(e, _, _)| self.new_topic(&e.topic))
            .collect();
        if !missing.is_empty() {
            self.creator.create(&self.client, missing).await?;
            for (e, _, _) in &ids {
                e.topic_created();
            }
        }
        let per_pid = ids
            .into_iter()
            .map(|(entry, ticket, ws)| self.write_pid(entry, ticket, ws));
        let mut first_error = None;
        let mut planned: Vec<Planned> = Vec::new();
        for outcome in join_all(per_pid).await {
            match outcome {
                Ok(done) => planned.extend(done),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let mut published = Vec::new();
        let results = chunk::finish(results, planned, &mut published);
        Ok((results, published))
    }

    /// Writes the atomic writes of one id: plan (fencing check, size check), reserve offsets,
    /// send (pipelined), decide.
    async fn write_pid(
        self: &Arc<Self>,
        entry: Arc<PidEntry>,
        ticket: Ticket,
        writes: Vec<(usize, AtomicWrite)>,
    ) -> Result<Vec<Planned>, JournalError> {
        let gate = ticket.enter().await;
        if entry.needs_sync() {
            entry.sync(&self.client).await?;
        }
        let limit = self.max_message_bytes(&entry, &writes).await?;
        let pid = entry.persistence_id.clone();
        let timestamp = crate::now_ms();
        let (plan, reservations) = entry.reserve(|highest| {
            plan_chunks(&pid, writes, highest, limit, timestamp, || {
                self.next_batch_id()
            })
        });
        let (mut out, mut chunks) = (plan.out, plan.chunks);
        // Start every send in reservation order (the producer keeps call order per
        // partition), then let other writers of this id reserve behind us.
        let mut sends: Vec<SendFuture> = Vec::with_capacity(chunks.len());
        for c in &mut chunks {
            let records = std::mem::take(&mut c.records);
            // `enqueue` takes the send's place in the partition's line before it returns.
            sends.push(
                self.producer
                    .enqueue(&entry.topic, PARTITION, records)
                    .boxed(),
            );
        }
        drop(gate);

        let decisions = chunks
            .into_iter()
            .zip(sends)
            .zip(reservations)
            .map(|((chunk, send), r)| self.decide(&entry, chunk, send, r));
        let mut fenced: HashSet<usize> = HashSet::new();
        let mut first_error = None;
        for d in join_all(decisions).await {
            match d {
                Ok((true, _)) => {}
                Ok((false, indices)) => fenced.extend(indices),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let expected = entry.verified_highest().saturating_add(1);
        chunk::mark_fenced(&mut out, &fenced, &pid, expected);
        Ok(out)
    }

    /// Waits for one sent chunk and decides whether the log accepted it.
    async fn decide(
        &self,
        entry: &PidEntry,
        chunk: Chunk,
        send: SendFuture,
        reservation: Reservation,
    ) -> Result<(bool, Vec<usize>), JournalError> {
        let Reservation {
            expected,
            prev,
            guard,
        } = reservation;
        let sent = send.await;
        let prev_ok = match prev {
            Some(p) => p.await.unwrap_or(false),
            None => true,
        };
        let meta = match sent {
            Ok(meta) => meta,
            Err(e) => {
                tracing::warn!(persistence_id = %entry.persistence_id, error = %e, reason = "produce failed, outcome unknown", "write failed");
                guard.complete(false, false);
                return Err(e.into());
            }
        };
        let base = meta.base_offset;
        let settled = entry
            .settle(&self.client, guard, expected, prev_ok, base, &chunk.stubs)
            .await?;
        match settled {
            Some(ok) => {
                if !ok {
                    tracing::warn!(persistence_id = %entry.persistence_id, offset = base, reason = "another writer's records came first", "write fenced");
                }
                Ok((ok, chunk.indices))
            }
            None => Err(JournalError::Unknown(
                entry.persistence_id.clone(),
                format!("records at offset {base} not found while verifying"),
            )),
        }
    }

    /// The limit for one record batch of this id's topic.
    async fn max_message_bytes(
        &self,
        entry: &PidEntry,
        writes: &[(usize, AtomicWrite)],
    ) -> Result<usize, JournalError> {
        let configured = self
            .config
            .max_message_bytes
            .and_then(|m| usize::try_from(m).ok());
        if let Some(known) = entry.max_message_bytes() {
            return Ok(known);
        }
        let big = writes
            .iter()
            .any(|(_, w)| write_size(w) > DESCRIBE_THRESHOLD);
        if !big {
            return Ok(configured
                .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES)
                .min(DEFAULT_MAX_MESSAGE_BYTES));
        }
        let described = self
            .client
            .describe_topic_config(&entry.topic)
            .await?
            .get("max.message.bytes")
            .and_then(|v| v.trim().parse::<usize>().ok());
        let limit = match (described, configured) {
            (Some(d), Some(c)) => d.min(c),
            (Some(d), None) => d,
            (None, Some(c)) => c,
            (None, None) => DEFAULT_MAX_MESSAGE_BYTES,
        };
        tracing::debug!(topic = %entry.topic, limit, reason = "large write", "read max.message.bytes");
        entry.set_max_message_bytes(limit);
        Ok(limit)
    }
}

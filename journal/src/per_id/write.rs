//! Layout v1 writes: pipelined per id through the producer, each chunk's offset reserved
//! ahead; a chunk that lands elsewhere is verified against the log (fencing).

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use futures::future::{join_all, BoxFuture, FutureExt};
use kafka_persistence_wire as wire;
use tokio::sync::oneshot;

use super::log::{scan, ScanOptions, Until, Verified};
use super::naming::PARTITION;
use super::pid::{InflightGuard, Outcome, PidEntry};
use super::topics::NewTopicSpec;
use super::PerId;
use crate::chunk::{
    self, plan_chunks, write_size, Chunk, Planned, DEFAULT_MAX_MESSAGE_BYTES, DESCRIBE_THRESHOLD,
};
use crate::error::JournalError;
use crate::gate::Ticket;
use crate::layout::Written;
use crate::repr::AtomicWrite;
use crate::scan::Applied;

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
            .map(|(p, ws)| {
                let entry = self.entry(&p);
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
            .filter(|(e, _, _)| !e.lock().topic_exists)
            .map(|(e, _, _)| self.new_topic(&e.topic))
            .collect();
        if !missing.is_empty() {
            self.creator.create(&self.client, missing).await?;
            for (e, _, _) in &ids {
                e.lock().topic_exists = true;
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
        let needs_sync = {
            let st = entry.lock();
            st.verified.is_none() || st.poisoned
        };
        if needs_sync {
            entry.drain().await;
            entry.sync(&self.client).await?;
        }
        let limit = self.max_message_bytes(&entry, &writes).await?;
        let pid = entry.persistence_id.clone();
        let timestamp = crate::now_ms();

        // Plan and reserve under the state lock.
        let mut reservations: Vec<(i64, Option<Outcome>, InflightGuard)> = Vec::new();
        let (mut out, mut chunks) = {
            let mut st = entry.lock();
            let plan = plan_chunks(&pid, writes, st.highest, limit, timestamp, || {
                self.next_batch_id()
            });
            st.highest = plan.highest;
            for c in &plan.chunks {
                let expected = st.next_offset;
                st.next_offset = st.next_offset.saturating_add(c.records.len() as i64);
                st.inflight += 1;
                let (tx, rx) = oneshot::channel();
                let prev = st.last_outcome.replace(rx.shared());
                reservations.push((
                    expected,
                    prev,
                    InflightGuard {
                        entry: Arc::clone(&entry),
                        outcome: Some(tx),
                    },
                ));
            }
            (plan.out, plan.chunks)
        };
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

        let decisions = chunks.into_iter().zip(sends).zip(reservations).map(
            |((chunk, send), (expected, prev, guard))| {
                self.decide(Arc::clone(&entry), chunk, send, expected, prev, guard)
            },
        );
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
        let expected = entry
            .lock()
            .verified
            .as_ref()
            .map_or(0, |v| v.state.highest.saturating_add(1));
        chunk::mark_fenced(&mut out, &fenced, &pid, expected);
        Ok(out)
    }

    /// Waits for one sent chunk and decides whether the log accepted it.
    async fn decide(
        &self,
        entry: Arc<PidEntry>,
        chunk: Chunk,
        send: SendFuture,
        expected: i64,
        prev: Option<Outcome>,
        guard: InflightGuard,
    ) -> Result<(bool, Vec<usize>), JournalError> {
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
        let n = chunk.stubs.len() as i64;
        {
            let mut st = entry.lock();
            if let Some(v) = st.verified.as_mut() {
                if prev_ok && meta.base_offset == expected && v.state.next_offset == expected {
                    for (k, stub) in chunk.stubs.iter().enumerate() {
                        v.apply(expected + k as i64, stub);
                    }
                    drop(st);
                    guard.complete(true, true);
                    return Ok((true, chunk.indices));
                }
            }
        }
        // The batch landed elsewhere (another writer, or an earlier write of ours failed):
        // read the records in between to learn whether the log accepted it.
        tracing::info!(persistence_id = %entry.persistence_id, expected, landed = meta.base_offset, prev_ok, reason = "write landed at an unexpected offset", "verifying write against the log");
        let mut v = entry
            .lock()
            .verified
            .clone()
            .unwrap_or_else(|| Verified::new(0));
        let base = meta.base_offset;
        let mut accepted = None;
        let res = scan(
            &self.client,
            &entry.topic,
            &mut v,
            Until::Offset(base.saturating_add(n)),
            ScanOptions::FULL,
            |m| {
                if m.offset == base {
                    accepted = Some(matches!(m.applied, Applied::Event | Applied::Gap));
                }
                ControlFlow::Continue(())
            },
        )
        .await;
        if let Err(e) = res {
            guard.complete(false, false);
            return Err(e);
        }
        entry.lock().verified = Some(v);
        guard.complete(false, false);
        match accepted {
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
        if let Some(known) = entry.lock().max_message_bytes {
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
        entry.lock().max_message_bytes = Some(limit);
        Ok(limit)
    }
}

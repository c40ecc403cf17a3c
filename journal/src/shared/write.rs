//! Layout v2 writes: per id in call order (the id's gate), many ids and calls in flight at
//! once; each chunk is sent to the id's shared partition, and its acknowledgement is decided
//! by the partition's state in offset order (see [`super::partition`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use kafka_persistence_wire as wire;

use super::partition::{Decision, Registered};
use super::{tail, ActiveId, Partition, Shared};
use crate::chunk::{self, plan_chunks, Planned};
use crate::error::JournalError;
use crate::format::JournalRecord;
use crate::gate::Ticket;
use crate::inflight::InflightWrite;
use crate::layout::Written;
use crate::repr::AtomicWrite;

/// A send's acknowledgement (the producer's own future: no box per send).
type SendFuture = wire::DeliveryFuture;

/// How long a send waits for the acknowledgements of earlier sends before it reads the
/// partition to learn what lies before it.
const GAP_PATIENCE: Duration = Duration::from_millis(5);
/// The longest such wait while earlier sends are still out.
const MAX_GAP_PATIENCE: Duration = Duration::from_millis(160);

/// One id's part of a [`Plan`]: the id, its place in line, its atomic writes (with their
/// indices into the caller's writes).
type IdPlan = (Arc<ActiveId>, Ticket, Vec<(usize, AtomicWrite)>);

/// A call's writes, with each id's place in line taken.
pub(crate) struct Plan {
    results: Vec<Option<Result<(), crate::error::WriteError>>>,
    ids: Vec<IdPlan>,
}

impl Plan {
    /// Adds the call's ids to `seen`; false if one of them was there already.
    pub(crate) fn insert_ids<'a>(
        &'a self,
        seen: &mut HashSet<&'a str, crate::hash::IdHashBuilder>,
    ) -> bool {
        self.ids
            .iter()
            .all(|(active, _, _)| seen.insert(active.persistence_id.as_ref()))
    }
}

/// Groups `writes` by id and takes each id's ticket: everything before the first await.
pub(crate) fn plan(shared: &Shared, writes: Vec<AtomicWrite>) -> Plan {
    let grouped = chunk::group(writes);
    let ids = grouped
        .ids
        .into_iter()
        .map(|ws| {
            let active = shared.active(chunk::id_of(&ws));
            let ticket = crate::gate::ticket(&active);
            (active, ticket, ws)
        })
        .collect();
    Plan {
        results: grouped.results,
        ids,
    }
}

/// One id's planned chunk, on its way.
struct Sent {
    /// Index into the call's ids.
    id: usize,
    /// The caller's atomic writes it stores.
    indices: Vec<usize>,
    stubs: Vec<JournalRecord>,
    /// Counts the chunk as in flight for its id until decided (or dropped: then as failed,
    /// so the id's next call reads the log instead of waiting for it).
    inflight: InflightWrite,
}

/// One send to a partition: several ids' chunks, one record batch.
struct Send<'a> {
    partition: &'a Partition,
    records: Vec<wire::Record>,
    chunks: Vec<Sent>,
    size: usize,
}

/// One id of a round: the call it belongs to, the id, its gate entered, its writes.
struct Entered {
    call: usize,
    active: Arc<ActiveId>,
    /// Held until the round's sends are handed to the producer.
    _gate: crate::gate::GateGuard,
    writes: Vec<(usize, AtomicWrite)>,
}

/// Writes one round of calls (see [`super::rounds`]): every call's ids in one pass, so a
/// partition gets one send for the whole round instead of one per call. No id may appear in
/// two calls of a round (each holds its own ticket: the second would wait for the first
/// forever). One outcome per call, in order; a call fails only through its own ids.
pub(crate) async fn write_round(
    shared: &Arc<Shared>,
    calls: Vec<Plan>,
) -> Vec<Result<Written, JournalError>> {
    let mut call_results = Vec::with_capacity(calls.len());
    let mut errors: Vec<Option<JournalError>> = Vec::with_capacity(calls.len());
    let mut pending = Vec::new();
    for (k, Plan { results, ids }) in calls.into_iter().enumerate() {
        call_results.push(results);
        errors.push(None);
        pending.extend(ids.into_iter().map(|id| (k, id)));
    }
    // Enter every id's gate, in plan order (tickets were taken in call order, so two rounds
    // never wait for each other crosswise), then plan every id's chunks.
    let mut entered = Vec::with_capacity(pending.len());
    for (call, (active, ticket, writes)) in pending {
        let gate = ticket.enter().await;
        entered.push(Entered {
            call,
            active,
            _gate: gate,
            writes,
        });
    }
    let now = crate::now_ms();
    // Everything that can fail comes before anything is reserved: a call with an id whose
    // state cannot be read sends nothing.
    let mut highests = Vec::with_capacity(entered.len());
    for e in &entered {
        if errors[e.call].is_some() {
            highests.push(0);
            continue;
        }
        let first = e.writes.first().map_or(0, |(_, w)| w.lowest_sequence_nr());
        let highest = match reserved(shared, &e.active, false).await {
            // Another instance may have written the id since this one last read it: read
            // the partition before refusing.
            Ok(h) if first != h.saturating_add(1) => reserved(shared, &e.active, true).await,
            r => r,
        };
        match highest {
            Ok(h) => highests.push(h),
            Err(err) => {
                errors[e.call] = Some(err);
                highests.push(0);
            }
        }
    }
    let mut planned: Vec<Vec<Planned>> = Vec::with_capacity(entered.len());
    let mut sends: Vec<Send<'_>> = Vec::new();
    let mut open: Vec<Option<usize>> = vec![None; shared.partitions.len()];
    let limit = shared.max_message_bytes.min(crate::chunk::MAX_CHUNK_BYTES);
    for (k, (e, highest)) in entered.iter_mut().zip(highests).enumerate() {
        if errors[e.call].is_some() {
            planned.push(Vec::new());
            continue;
        }
        let active = &e.active;
        let plan = plan_chunks(
            active.persistence_id.as_ref(),
            std::mem::take(&mut e.writes),
            highest,
            shared.max_message_bytes,
            now,
            || shared.next_batch_id(),
        );
        active.lock().reserved = Some(plan.highest);
        planned.push(plan.out);
        let p = &shared.partitions[active.partition];
        for c in plan.chunks {
            let slot = match open[active.partition] {
                Some(i) if sends[i].size + c.size <= limit => i,
                _ => {
                    sends.push(Send {
                        partition: p,
                        records: Vec::new(),
                        chunks: Vec::new(),
                        size: 0,
                    });
                    open[active.partition] = Some(sends.len() - 1);
                    sends.len() - 1
                }
            };
            let s = &mut sends[slot];
            s.size += c.size;
            s.records.extend(c.records);
            s.chunks.push(Sent {
                id: k,
                indices: c.indices,
                stubs: c.stubs,
                inflight: crate::inflight::begin(active),
            });
        }
    }
    // Hand every send to the producer now, in order (it keeps call order per partition),
    // numbering them in the partition's send book in the same order.
    let mut started = Vec::with_capacity(sends.len());
    for s in sends {
        let (fut, slot) = start_send(shared, s.partition, s.records);
        started.push((fut, slot, s.chunks, s.partition));
    }
    // Let the next calls of these ids in: their sends queue behind ours.
    let (calls_of, actives): (Vec<usize>, Vec<Arc<ActiveId>>) =
        entered.into_iter().map(|e| (e.call, e.active)).unzip();

    let decisions = started.into_iter().map(|(fut, slot, mut chunks, p)| {
        let actives = &actives;
        async move {
            let outcome = decide(shared, p, fut, slot, &mut chunks, actives).await;
            for (c, o) in chunks.iter_mut().zip(&outcome) {
                c.inflight.finish(matches!(o, Ok(true)));
            }
            chunks.into_iter().zip(outcome).collect::<Vec<_>>()
        }
    });
    let mut fenced: Vec<HashSet<usize>> = vec![HashSet::new(); actives.len()];
    for per_send in join_all(decisions).await {
        for (c, d) in per_send {
            match d {
                Ok(true) => {}
                Ok(false) => fenced[c.id].extend(c.indices),
                Err(e) => {
                    errors[calls_of[c.id]].get_or_insert(e);
                }
            }
        }
    }
    for (k, out) in planned.iter_mut().enumerate() {
        if fenced[k].is_empty() {
            continue;
        }
        let active = &actives[k];
        let pid = active.persistence_id.as_ref();
        let expected = shared.partitions[active.partition]
            .state()
            .heads
            .get(pid)
            .map_or(1, |h| h.highest.saturating_add(1));
        tracing::warn!(
            persistence_id = pid,
            reason = "another writer's records came first",
            "write fenced"
        );
        chunk::mark_fenced(out, &fenced[k], pid, expected);
    }
    // Each call's ids are consecutive in the round, in call order.
    let mut by_call = calls_of.into_iter().zip(planned).peekable();
    call_results
        .into_iter()
        .zip(errors)
        .enumerate()
        .map(|(call, (results, error))| {
            let mut published = Vec::new();
            let mut mine = Vec::new();
            while let Some((_, out)) = by_call.next_if(|(c, _)| *c == call) {
                mine.push(out);
            }
            match error {
                Some(e) => Err(e),
                None => {
                    let results =
                        chunk::finish(results, mine.into_iter().flatten(), &mut published);
                    Ok((results, published))
                }
            }
        })
        .collect()
}

/// Marks a send as finished when it is dropped undecided (timeout, cancellation), so later
/// sends of the partition do not wait for its acknowledgement.
struct SendSlot<'a> {
    partition: &'a Partition,
    send: Option<u64>,
}

impl SendSlot<'_> {
    fn take(&mut self) -> Option<u64> {
        self.send.take()
    }
}

impl Drop for SendSlot<'_> {
    fn drop(&mut self) {
        if let Some(send) = self.send.take() {
            self.partition.state().register_failed(send);
        }
    }
}

/// Numbers a send in the partition's send book and hands it to the producer, in one step.
fn start_send<'a>(
    shared: &Shared,
    p: &'a Partition,
    records: Vec<wire::Record>,
) -> (SendFuture, SendSlot<'a>) {
    let mut st = p.state();
    let send = st.sends.start();
    // `enqueue` takes the send's place in the partition's line before it returns.
    let fut = shared
        .producer
        .enqueue(&shared.journal_topic, p.id, records);
    drop(st);
    (
        fut,
        SendSlot {
            partition: p,
            send: Some(send),
        },
    )
}

/// The reservation view of `active`, refreshed from the partition's head when it is unknown
/// or poisoned, or (with `refresh`) after reading the partition to its end.
async fn reserved(shared: &Shared, active: &ActiveId, refresh: bool) -> Result<u64, JournalError> {
    let p = &shared.partitions[active.partition];
    let stale = active.lock().reserved.is_none() || active.inflight.poisoned();
    if !stale && !refresh {
        return Ok(active.lock().reserved.unwrap_or(0));
    }
    active.inflight.drain().await;
    if refresh || active.inflight.poisoned() {
        tail::catch_up(shared, p).await?;
    }
    let highest = p
        .state()
        .heads
        .get(active.persistence_id.as_ref())
        .map_or(0, |h| h.highest);
    active.lock().reserved = Some(highest);
    active.inflight.clear_poison();
    Ok(highest)
}

/// Waits for one send's acknowledgement and for the partition to decide each of its chunks.
async fn decide(
    shared: &Shared,
    p: &Partition,
    send: SendFuture,
    mut slot: SendSlot<'_>,
    chunks: &mut [Sent],
    actives: &[Arc<ActiveId>],
) -> Vec<Result<bool, JournalError>> {
    let pid = |c: &Sent| actives[c.id].persistence_id.to_string();
    let registered = match send.await {
        Ok(meta) => {
            let Some(n) = slot.take() else {
                return chunks
                    .iter()
                    .map(|c| {
                        Err(JournalError::Unknown(
                            pid(c),
                            "send registered twice".into(),
                        ))
                    })
                    .collect();
            };
            let list = chunks.iter_mut().map(|c| {
                (
                    actives[c.id].persistence_id.as_ref(),
                    std::mem::take(&mut c.stubs),
                )
            });
            let regs = p.state().register_acks(n, meta.base_offset, list);
            (meta.base_offset, regs)
        }
        Err(e) => {
            tracing::warn!(partition = p.id, error = %e, reason = "produce failed, outcome unknown", "write failed");
            if let Some(n) = slot.take() {
                p.state().register_failed(n);
            }
            let reason = e.to_string();
            let mut out: Vec<Result<bool, JournalError>> = Vec::with_capacity(chunks.len());
            out.push(Err(e.into()));
            out.extend(
                chunks
                    .iter()
                    .skip(1)
                    .map(|c| Err(JournalError::Unknown(pid(c), reason.clone()))),
            );
            return out;
        }
    };
    let (base, regs) = registered;
    let mut out = Vec::with_capacity(regs.len());
    for (c, r) in chunks.iter().zip(regs) {
        out.push(await_decision(shared, p, r).await.and_then(|d| match d {
            Decision::Accepted(ok) => Ok(ok),
            Decision::Unknown => Err(JournalError::Unknown(
                pid(c),
                format!(
                    "the records near offset {base} were read before their acknowledgement and \
                     their outcome is no longer known"
                ),
            )),
        }));
    }
    p.changed.notify_waiters();
    out
}

/// Waits for a registered chunk's decision, reading the partition when only a read can fill
/// the gap before it.
async fn await_decision(
    shared: &Shared,
    p: &Partition,
    r: Registered,
) -> Result<Decision, JournalError> {
    match r {
        Registered::Now(d) => Ok(d),
        Registered::Later(mut rx) => {
            // The patience doubles while earlier sends are still out (they fill the gap when
            // they report): under load thousands of chunks wait here, and a fixed 5 ms would
            // wake each of them 200 times a second for nothing.
            let mut patience = GAP_PATIENCE;
            loop {
                match tokio::time::timeout(patience, &mut rx).await {
                    Ok(Ok(d)) => return Ok(d),
                    Ok(Err(_)) => return Ok(Decision::Unknown),
                    Err(_) => {
                        if p.state().needs_read() {
                            tail::catch_up(shared, p).await?;
                            patience = GAP_PATIENCE;
                        } else {
                            patience = (patience * 2).min(MAX_GAP_PATIENCE);
                        }
                    }
                }
            }
        }
    }
}

/// Sends a deletion marker of `pid` and waits for the partition to apply it.
pub(crate) async fn send_and_decide(
    shared: &Shared,
    p: &Partition,
    pid: &str,
    records: Vec<wire::Record>,
    stubs: Vec<JournalRecord>,
) -> Result<bool, JournalError> {
    let (fut, mut slot) = start_send(shared, p, records);
    let meta = match fut.await {
        Ok(meta) => meta,
        Err(e) => {
            if let Some(n) = slot.take() {
                p.state().register_failed(n);
            }
            return Err(e.into());
        }
    };
    let Some(n) = slot.take() else {
        return Err(JournalError::Unknown(
            pid.to_string(),
            "send registered twice".into(),
        ));
    };
    let r = p.state().register_ack(n, meta.base_offset, pid, stubs);
    let d = await_decision(shared, p, r).await?;
    p.changed.notify_waiters();
    match d {
        Decision::Accepted(ok) => Ok(ok),
        Decision::Unknown => Err(JournalError::Unknown(
            pid.to_string(),
            "deletion marker outcome unknown".into(),
        )),
    }
}

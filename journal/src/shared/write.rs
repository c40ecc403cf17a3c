//! Layout v2 writes: per id in call order (the id's gate), many ids and calls in flight at
//! once; each chunk is sent to the id's shared partition, and its acknowledgement is decided
//! by the partition's state in offset order (see [`super::partition`]).

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{join_all, BoxFuture, FutureExt};
use kafka_persistence_wire as wire;

use super::partition::{Decision, Registered};
use super::{tail, ActiveId, Partition, Shared};
use crate::chunk::{self, plan_chunks, Planned};
use crate::error::JournalError;
use crate::format::JournalRecord;
use crate::gate::Ticket;
use crate::layout::Written;
use crate::repr::AtomicWrite;

type SendFuture = BoxFuture<'static, Result<wire::RecordMetadata, wire::Error>>;

/// How long a send waits for the acknowledgements of earlier sends before it reads the
/// partition to learn what lies before it.
const GAP_PATIENCE: Duration = Duration::from_millis(5);

/// One id's part of a [`Plan`]: the id, its place in line, its atomic writes (with their
/// indices into the caller's writes).
type IdPlan = (Arc<ActiveId>, Ticket, Vec<(usize, AtomicWrite)>);

/// A call's writes, with each id's place in line taken.
pub(crate) struct Plan {
    results: Vec<Option<Result<(), crate::error::WriteError>>>,
    ids: Vec<IdPlan>,
}

/// Groups `writes` by id and takes each id's ticket: everything before the first await.
pub(crate) fn plan(shared: &Shared, writes: Vec<AtomicWrite>) -> Plan {
    let grouped = chunk::group(writes);
    let ids = grouped
        .ids
        .into_iter()
        .map(|(p, ws)| {
            let active = shared.active(&p);
            let ticket = active.gate.ticket();
            (active, ticket, ws)
        })
        .collect();
    Plan {
        results: grouped.results,
        ids,
    }
}

pub(crate) async fn write(shared: &Arc<Shared>, plan: Plan) -> Result<Written, JournalError> {
    let Plan { results, ids } = plan;
    let per_id = ids
        .into_iter()
        .map(|(active, ticket, ws)| write_id(shared, active, ticket, ws));
    let mut first_error = None;
    let mut planned: Vec<Planned> = Vec::new();
    for outcome in join_all(per_id).await {
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

/// The reservation view of `active`, refreshed from the partition's head when it is unknown
/// or poisoned, or (with `refresh`) after reading the partition to its end.
async fn reserved(shared: &Shared, active: &ActiveId, refresh: bool) -> Result<u64, JournalError> {
    let p = &shared.partitions[active.partition];
    let stale = {
        let st = active.lock();
        st.reserved.is_none() || st.poisoned
    };
    if !stale && !refresh {
        return Ok(active.lock().reserved.unwrap_or(0));
    }
    active.drain().await;
    if refresh || active.lock().poisoned {
        tail::catch_up(shared, p).await?;
    }
    let highest = p
        .state()
        .heads
        .get(active.persistence_id.as_str())
        .map_or(0, |h| h.highest);
    let mut st = active.lock();
    st.reserved = Some(highest);
    st.poisoned = false;
    Ok(highest)
}

async fn write_id(
    shared: &Arc<Shared>,
    active: Arc<ActiveId>,
    ticket: Ticket,
    writes: Vec<(usize, AtomicWrite)>,
) -> Result<Vec<Planned>, JournalError> {
    let gate = ticket.enter().await;
    let p = &shared.partitions[active.partition];
    let mut highest = reserved(shared, &active, false).await?;
    let first = writes.first().map_or(0, |(_, w)| w.lowest_sequence_nr());
    if first != highest.saturating_add(1) {
        // Another instance may have written the id since this one last read it: read the
        // partition before refusing.
        highest = reserved(shared, &active, true).await?;
    }
    let pid = active.persistence_id.as_str();
    let plan = plan_chunks(
        pid,
        writes,
        highest,
        shared.max_message_bytes,
        crate::now_ms(),
        || shared.next_batch_id(),
    );
    let mut out = plan.out;
    let mut chunks = plan.chunks;
    {
        let mut st = active.lock();
        st.reserved = Some(plan.highest);
        st.inflight += chunks.len();
    }
    // Hand every send to the producer now, in order (it keeps call order per partition),
    // numbering them in the partition's send book in the same order.
    let mut sends: Vec<(SendFuture, SendSlot<'_>, Vec<JournalRecord>)> =
        Vec::with_capacity(chunks.len());
    for c in &mut chunks {
        let records = std::mem::take(&mut c.records);
        let stubs = std::mem::take(&mut c.stubs);
        let producer = shared.producer.clone();
        let topic = shared.journal_topic.clone();
        let partition = p.id;
        let mut st = p.state();
        let send = st.sends.start();
        let mut fut: SendFuture =
            async move { producer.send(&topic, partition, records).await }.boxed();
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        if let Poll::Ready(r) = Pin::new(&mut fut).poll(&mut cx) {
            fut = futures::future::ready(r).boxed();
        }
        drop(st);
        sends.push((
            fut,
            SendSlot {
                partition: p,
                send: Some(send),
            },
            stubs,
        ));
    }
    drop(gate);

    let decisions = chunks.iter().zip(sends).map(|(chunk, (fut, slot, stubs))| {
        let active = &active;
        async move {
            let d = decide(shared, p, pid, fut, slot, stubs).await;
            active.finish(matches!(d, Ok(true)));
            d.map(|ok| (ok, chunk.indices.clone()))
        }
    });
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
    if !fenced.is_empty() {
        let expected = p
            .state()
            .heads
            .get(pid)
            .map_or(1, |h| h.highest.saturating_add(1));
        tracing::warn!(
            persistence_id = pid,
            reason = "another writer's records came first",
            "write fenced"
        );
        chunk::mark_fenced(&mut out, &fenced, pid, expected);
    }
    Ok(out)
}

/// Waits for one send's acknowledgement and for the partition to decide it.
async fn decide(
    shared: &Shared,
    p: &Partition,
    pid: &str,
    send: SendFuture,
    mut slot: SendSlot<'_>,
    stubs: Vec<JournalRecord>,
) -> Result<bool, JournalError> {
    let meta = match send.await {
        Ok(meta) => meta,
        Err(e) => {
            tracing::warn!(persistence_id = pid, error = %e, reason = "produce failed, outcome unknown", "write failed");
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
    let registered = p.state().register_ack(n, meta.base_offset, pid, stubs);
    let decision = match registered {
        Registered::Now(d) => d,
        Registered::Later(mut rx) => loop {
            match tokio::time::timeout(GAP_PATIENCE, &mut rx).await {
                Ok(Ok(d)) => break d,
                Ok(Err(_)) => break Decision::Unknown,
                Err(_) => {
                    if p.state().needs_read() {
                        tail::catch_up(shared, p).await?;
                    }
                }
            }
        },
    };
    p.changed.notify_waiters();
    match decision {
        Decision::Accepted(ok) => Ok(ok),
        Decision::Unknown => Err(JournalError::Unknown(
            pid.to_string(),
            format!(
                "the records at offset {} were read before their acknowledgement and their \
                 outcome is no longer known",
                meta.base_offset
            ),
        )),
    }
}

/// Sends `stubs`' full records for `pid` (a deletion marker) and waits for its decision.
pub(crate) async fn send_and_decide(
    shared: &Shared,
    p: &Partition,
    pid: &str,
    records: Vec<wire::Record>,
    stubs: Vec<JournalRecord>,
) -> Result<bool, JournalError> {
    let producer = shared.producer.clone();
    let topic = shared.journal_topic.clone();
    let partition = p.id;
    let (fut, slot) = {
        let mut st = p.state();
        let send = st.sends.start();
        let mut fut: SendFuture =
            async move { producer.send(&topic, partition, records).await }.boxed();
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        if let Poll::Ready(r) = Pin::new(&mut fut).poll(&mut cx) {
            fut = futures::future::ready(r).boxed();
        }
        (
            fut,
            SendSlot {
                partition: p,
                send: Some(send),
            },
        )
    };
    decide(shared, p, pid, fut, slot, stubs).await
}

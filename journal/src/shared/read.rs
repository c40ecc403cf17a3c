//! Layout v2 reads: replays and live queries fetch only the offset ranges the id's head
//! names (several ranges in flight at once), never scanning the partition; `events_by_
//! partition` streams a whole partition in log order for read models.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};
use kafka_persistence_wire::{self as wire, FetchRequest};

use super::head::{Head, Range};
use super::{tail, ActiveId, Shared};
use crate::error::JournalError;
use crate::format::JournalRecord;
use crate::gate::Ticket;
use crate::journal::bounded;
use crate::repr::PersistentRepr;
use crate::scan::{Applied, ScanState};

/// How long a live query waits for news before it reads the partition again.
const LIVE_WAIT: Duration = Duration::from_millis(200);
/// Fetch size for a replay that wants few events.
const SMALL_FETCH_BYTES: i32 = 1024 * 1024;
/// Fetch size for a replay that wants many.
const LARGE_FETCH_BYTES: i32 = 32 * 1024 * 1024;
/// A guess of one journal record's size, to size a range's fetch.
const RECORD_BYTES_GUESS: i64 = 256;

/// One accepted event of a shared journal partition, with where it is
/// ([`crate::Journal::events_by_partition`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PartitionEvent {
    /// The partition of the shared journal topic.
    pub partition: i32,
    /// The event's offset in it (resume a projection at `offset + 1`).
    pub offset: i64,
    /// The event.
    pub event: PersistentRepr,
}

/// The id's head after this instance's earlier calls of the id and the partition's current
/// end: enters the id's gate, waits for its writes in flight, reads the partition's tail.
pub(crate) async fn current_head(
    shared: &Shared,
    active: &ActiveId,
    ticket: Ticket,
) -> Result<Option<Head>, JournalError> {
    let _gate = ticket.enter().await;
    active.inflight.drain().await;
    let p = &shared.partitions[active.partition];
    tail::catch_up(shared, p).await?;
    let head = p.state().heads.get(active.persistence_id.as_ref()).cloned();
    Ok(head)
}

/// Every persistence id that wrote, sorted.
pub(crate) async fn persistence_ids(shared: &Shared) -> Result<Vec<String>, JournalError> {
    let reads = shared.partitions.iter().map(|p| tail::catch_up(shared, p));
    for r in futures::future::join_all(reads).await {
        r?;
    }
    let mut ids: Vec<String> = Vec::new();
    for p in &shared.partitions {
        let st = p.state();
        ids.extend(st.heads.keys().map(|k| k.to_string()));
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Reads the records of `pid` in `range`, applying the acceptance rule from the range's
/// start state, and returns the accepted events in `first..=end` above `deleted_to`, at most
/// `max`; stops as soon as `end` or `max` is reached.
#[allow(clippy::too_many_arguments)]
async fn read_range(
    shared: &Shared,
    partition: i32,
    pid: &str,
    range: Range,
    first: u64,
    end: u64,
    deleted_to: u64,
    max: u64,
    log_start: i64,
) -> Result<Vec<PersistentRepr>, JournalError> {
    // A range that retention cut: its first remaining record seeds the state, and what lies
    // before it counts as lost unless deleted.
    let cut = range.start < log_start;
    let seeded = !(cut || range.mid_batch);
    let mut state = ScanState::resume(
        range.highest_before,
        0,
        0,
        None,
        seeded,
        range.start.max(log_start),
    );
    let mut out = Vec::new();
    let mut pos = range.start.max(log_start);
    let mut checked = !cut;
    let small = max <= 64 || end.saturating_sub(first) < 64;
    let cap = if small {
        SMALL_FETCH_BYTES
    } else {
        LARGE_FETCH_BYTES
    };
    while pos < range.end {
        // Sized to the range: the broker returns the batch holding `pos` whole even when it
        // is larger, so a short range costs about one batch, not a megabyte of other ids.
        let want = (range.end - pos).saturating_mul(RECORD_BYTES_GUESS);
        let max_bytes = i32::try_from(want).unwrap_or(i32::MAX).clamp(1, cap);
        let req = FetchRequest::new(shared.journal_topic.as_str(), partition, pos)
            .with_max_bytes(max_bytes)
            .with_max_wait(Duration::ZERO);
        let resp = match shared.client.fetch(req).await {
            Ok(r) => r,
            Err(wire::Error::OffsetOutOfRange {
                log_start_offset, ..
            }) => {
                return Err(JournalError::EventsLost {
                    persistence_id: pid.to_string(),
                    from: range.highest_before.saturating_add(1).max(deleted_to + 1),
                    to: end.max(range.highest_before + 1),
                })
                .inspect_err(|_| {
                    tracing::warn!(
                        persistence_id = pid,
                        partition,
                        offset = pos,
                        log_start_offset,
                        reason = "the id's records are below the log start",
                        "events lost"
                    );
                });
            }
            Err(e) => return Err(e.into()),
        };
        let progressed = resp.next_offset > pos;
        for rec in resp.records {
            if rec.offset < pos {
                continue;
            }
            if rec.offset >= range.end {
                pos = range.end;
                break;
            }
            pos = rec.offset + 1;
            if rec.key.as_deref() != Some(pid.as_bytes()) {
                continue;
            }
            let Some(value) = rec.value else { continue };
            let r = JournalRecord::decode_value(value).map_err(|e| JournalError::Corrupt {
                topic: shared.journal_topic.clone(),
                offset: rec.offset,
                reason: e.to_string(),
            })?;
            let applied = state.apply(rec.offset, &r);
            if !checked {
                checked = true;
                let lost_to = state.removed_to.max(range.highest_before);
                let lost_from = range.highest_before.saturating_add(1).max(deleted_to + 1);
                if lost_to >= lost_from && lost_from <= end && lost_to >= first {
                    return Err(JournalError::EventsLost {
                        persistence_id: pid.to_string(),
                        from: lost_from,
                        to: lost_to,
                    });
                }
            }
            if applied == Applied::Event {
                let seq = r.sequence_nr;
                if seq >= first && seq <= end && seq > deleted_to {
                    out.push(r.into_repr(pid));
                    if out.len() as u64 >= max {
                        return Ok(out);
                    }
                }
            }
            if state.highest >= end {
                return Ok(out);
            }
        }
        if !progressed {
            break;
        }
        pos = pos.max(resp.next_offset.min(range.end));
    }
    Ok(out)
}

/// Where a replay or live query stands.
struct Cursor {
    shared: Arc<Shared>,
    active: Arc<ActiveId>,
    /// The next sequence number to emit.
    next: u64,
    to: u64,
    remaining: u64,
    live: bool,
    /// The current pass: ranges still to read, its end, the deletion mark.
    ranges: VecDeque<(Range, u64)>,
    pass_end: u64,
    deleted_to: u64,
    log_start: i64,
    buffered: VecDeque<PersistentRepr>,
    opened: bool,
    done: bool,
}

impl Cursor {
    /// Starts a pass over the ranges that hold `next..=min(to, highest)`.
    async fn open_pass(&mut self) -> Result<(), JournalError> {
        let p = &self.shared.partitions[self.active.partition];
        let head = if !self.opened {
            // The first pass takes its place in line behind this instance's earlier calls
            // of the id when the stream is first polled.
            let ticket = crate::gate::ticket(&self.active);
            current_head(&self.shared, &self.active, ticket).await?
        } else {
            {
                tail::catch_up(&self.shared, p).await?;
                p.state()
                    .heads
                    .get(self.active.persistence_id.as_ref())
                    .cloned()
            }
        };
        let log_start = p.state().log_start;
        self.opened = true;
        let Some(head) = head else {
            return Ok(());
        };
        let first = self.next.max(head.deleted_to.saturating_add(1)).max(1);
        let end = self.to.min(head.highest);
        self.deleted_to = head.deleted_to;
        self.next = first;
        if first > end {
            return Ok(());
        }
        let pid = self.active.persistence_id.as_ref();
        if head.removed_to > head.deleted_to && first <= head.removed_to {
            return Err(JournalError::EventsLost {
                persistence_id: pid.to_string(),
                from: head.deleted_to + 1,
                to: head.removed_to,
            });
        }
        for (i, r) in head.ranges.iter().enumerate() {
            let last = head.range_last(i);
            if last <= r.highest_before || last < first || r.highest_before >= end {
                continue; // holds nothing of first..=end (or only refused records)
            }
            if r.end <= log_start && last > head.deleted_to {
                // Retention removed the whole range.
                return Err(JournalError::EventsLost {
                    persistence_id: pid.to_string(),
                    from: r.highest_before.saturating_add(1).max(head.deleted_to + 1),
                    to: last,
                });
            }
            self.ranges.push_back((*r, last));
        }
        self.log_start = log_start;
        self.pass_end = end;
        Ok(())
    }

    /// Reads the next range of the pass (or starts a pass, or waits for news when live).
    async fn step(&mut self) -> Result<(), JournalError> {
        if let Some((range, last)) = self.ranges.pop_front() {
            let events = read_range(
                &self.shared,
                self.shared.partitions[self.active.partition].id,
                &self.active.persistence_id,
                range,
                self.next,
                self.pass_end,
                self.deleted_to,
                self.remaining,
                self.log_start,
            )
            .await?;
            self.remaining = self.remaining.saturating_sub(events.len() as u64);
            self.next = self.next.max(last.min(self.pass_end).saturating_add(1));
            self.buffered.extend(events);
            if self.remaining == 0 {
                self.done = true;
            }
            return Ok(());
        }
        if self.opened {
            if !self.live || self.next > self.to {
                self.done = true;
                return Ok(());
            }
            // Live: wait for the partition to move, then look again.
            let p = &self.shared.partitions[self.active.partition];
            let known = p
                .state()
                .heads
                .get(self.active.persistence_id.as_ref())
                .map_or(0, |h| h.highest);
            if known < self.next {
                let _ = tokio::time::timeout(LIVE_WAIT, p.changed.notified()).await;
            }
        }
        self.open_pass().await
    }
}

/// Replays (`live` false) or follows (`live` true) the events of `pid` in `from..=to`.
pub(crate) fn events(
    shared: Arc<Shared>,
    pid: &str,
    from: u64,
    to: u64,
    max: u64,
    live: bool,
) -> BoxStream<'static, Result<PersistentRepr, JournalError>> {
    if max == 0 || from > to || to == 0 {
        return stream::empty().boxed();
    }
    let active = shared.active(pid);
    let cursor = Cursor {
        shared,
        active,
        next: from,
        to,
        remaining: max,
        live,
        ranges: VecDeque::new(),
        pass_end: 0,
        deleted_to: 0,
        log_start: 0,
        buffered: VecDeque::new(),
        opened: false,
        done: false,
    };
    stream::unfold(Some(cursor), |state| async move {
        let mut c = state?;
        loop {
            if let Some(e) = c.buffered.pop_front() {
                return Some((Ok(e), Some(c)));
            }
            if c.done {
                return None;
            }
            // The step borrows the cursor: hold the config through the shared state.
            let shared = Arc::clone(&c.shared);
            if let Err(e) = bounded(&shared.config, "replay", c.step()).await {
                return Some((Err(e), None));
            }
        }
    })
    .boxed()
}

/// Where a partition stream stands.
struct PartitionCursor {
    shared: Arc<Shared>,
    index: usize,
    pos: i64,
    /// Non-live: the end captured at the start.
    end: Option<i64>,
    live: bool,
    /// The acceptance state of each id met so far.
    states: HashMap<String, ScanState>,
    buffered: VecDeque<PartitionEvent>,
    done: bool,
}

impl PartitionCursor {
    /// The acceptance state of `pid` just before `offset` (the first of its records this
    /// stream meets): from the head's range holding `offset`, plus the id's records in that
    /// range before the stream's start.
    async fn seed(&self, pid: &str, offset: i64) -> Result<ScanState, JournalError> {
        let p = &self.shared.partitions[self.index];
        let range = p.state().heads.get(pid).and_then(|h| {
            h.ranges
                .iter()
                .find(|r| r.start <= offset && offset < r.end)
                .copied()
        });
        let Some(range) = range else {
            // Its records were pruned by a deletion: every event is deleted anyway.
            return Ok(ScanState::resume(0, 0, 0, None, false, offset));
        };
        let mut state = ScanState::resume(
            range.highest_before,
            0,
            0,
            None,
            !range.mid_batch,
            range.start,
        );
        let mut pos = range.start;
        while pos < offset {
            let req = FetchRequest::new(self.shared.journal_topic.as_str(), p.id, pos)
                .with_max_bytes(SMALL_FETCH_BYTES)
                .with_max_wait(Duration::ZERO);
            let resp = self.shared.client.fetch(req).await?;
            let progressed = resp.next_offset > pos;
            for rec in resp.records {
                if rec.offset < pos || rec.offset >= offset {
                    continue;
                }
                pos = rec.offset + 1;
                if rec.key.as_deref() != Some(pid.as_bytes()) {
                    continue;
                }
                if let Some(Ok(r)) = rec.value.map(JournalRecord::decode_value) {
                    state.apply(rec.offset, &r);
                }
            }
            if !progressed {
                break;
            }
            pos = pos.max(resp.next_offset);
        }
        Ok(state)
    }

    async fn step(&mut self) -> Result<(), JournalError> {
        let p = &self.shared.partitions[self.index];
        if let Some(end) = self.end {
            if self.pos >= end {
                self.done = true;
                return Ok(());
            }
        }
        let req = FetchRequest::new(self.shared.journal_topic.as_str(), p.id, self.pos)
            .with_max_bytes(SMALL_FETCH_BYTES)
            .with_max_wait(if self.live { LIVE_WAIT } else { Duration::ZERO });
        let resp = self.shared.client.fetch(req).await?;
        let end = match self.end {
            Some(e) => e,
            None if self.live => i64::MAX,
            None => *self.end.get_or_insert(resp.high_watermark),
        };
        let last = resp.records.last().map(|r| r.offset);
        if last.is_some_and(|l| p.state().frontier <= l) {
            tail::catch_up(&self.shared, p).await?;
        }
        let progressed = resp.next_offset > self.pos;
        for rec in resp.records {
            if rec.offset < self.pos {
                continue;
            }
            if rec.offset >= end {
                self.done = true;
                return Ok(());
            }
            self.pos = rec.offset + 1;
            let (Some(key), Some(value)) = (rec.key, rec.value) else {
                continue;
            };
            let Ok(pid) = std::str::from_utf8(&key) else {
                continue;
            };
            let Ok(r) = JournalRecord::decode_value(value) else {
                continue;
            };
            // The id's key is copied only the first time the stream meets it.
            let applied = match self.states.get_mut(pid) {
                Some(state) => state.apply(rec.offset, &r),
                None => {
                    let mut state = self.seed(pid, rec.offset).await?;
                    let applied = state.apply(rec.offset, &r);
                    self.states.insert(pid.to_string(), state);
                    applied
                }
            };
            if applied == Applied::Event {
                let deleted_to = p.state().heads.get(pid).map_or(0, |h| h.deleted_to);
                if r.sequence_nr > deleted_to {
                    self.buffered.push_back(PartitionEvent {
                        partition: p.id,
                        offset: rec.offset,
                        event: r.into_repr(pid),
                    });
                }
            }
        }
        if progressed {
            self.pos = self.pos.max(resp.next_offset);
        } else if !self.live {
            self.done = true;
        }
        Ok(())
    }
}

/// See [`crate::Journal::events_by_partition`].
pub(crate) fn events_by_partition(
    shared: Arc<Shared>,
    partition: i32,
    from_offset: i64,
    live: bool,
) -> BoxStream<'static, Result<PartitionEvent, JournalError>> {
    let Some(index) = usize::try_from(partition)
        .ok()
        .filter(|&i| i < shared.partitions.len())
    else {
        let n = shared.partitions.len();
        return stream::once(async move {
            Err(JournalError::Config(format!(
                "partition {partition} does not exist (the journal topic has {n})"
            )))
        })
        .boxed();
    };
    let cursor = PartitionCursor {
        shared,
        index,
        pos: from_offset.max(0),
        end: None,
        live,
        states: HashMap::new(),
        buffered: VecDeque::new(),
        done: false,
    };
    stream::unfold(Some(cursor), |state| async move {
        let mut c = state?;
        loop {
            if let Some(e) = c.buffered.pop_front() {
                return Some((Ok(e), Some(c)));
            }
            if c.done {
                return None;
            }
            let shared = Arc::clone(&c.shared);
            if let Err(e) = bounded(&shared.config, "events_by_partition", c.step()).await {
                return Some((Err(e), None));
            }
        }
    })
    .boxed()
}

//! Layout v1 replay and the live query: streams over a persistence id's topic.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};

use super::log::{scan, ScanOptions, Until, Verified, FETCH_MAX_BYTES};
use super::naming::{decode_topic, PARTITION};
use super::PerId;
use crate::error::JournalError;
use crate::journal::bounded;
use crate::repr::PersistentRepr;
use crate::scan::Applied;

/// How long a live query's fetch waits for new records.
const LIVE_WAIT: Duration = Duration::from_millis(200);
/// How often a live query looks for a topic that does not exist yet.
const TOPIC_POLL: Duration = Duration::from_millis(200);

/// Where a replay stands.
struct Cursor {
    inner: Arc<PerId>,
    persistence_id: String,
    topic: String,
    /// The replay's own view of the log, starting at a checkpoint.
    log: Verified,
    /// The first sequence number to emit (after deletions).
    from: u64,
    to: u64,
    remaining: u64,
    /// Every sequence number up to this is deleted (live: raised by markers as they come).
    deleted_to: u64,
    /// Exclusive end offset (`None`: live, no end).
    end_offset: Option<i64>,
    buffered: VecDeque<PersistentRepr>,
    done: bool,
}

impl Cursor {
    /// Reads one fetch worth of records.
    async fn step(&mut self) -> Result<(), JournalError> {
        let live = self.end_offset.is_none();
        let until = match self.end_offset {
            Some(end) => Until::Offset(end),
            None => Until::Offset(i64::MAX),
        };
        let small = self.remaining <= 64 || self.to.saturating_sub(self.from) < 64;
        let opts = ScanOptions {
            max_fetches: 1,
            // Batches are at most 1 MiB: 2 MiB always covers the batch holding the start and
            // the next one.
            max_bytes: if small {
                2 * 1024 * 1024
            } else {
                FETCH_MAX_BYTES
            },
            max_wait: if live { LIVE_WAIT } else { Duration::ZERO },
        };
        let before = self.log.state().next_offset;
        let (from, to) = (self.from, self.to);
        let pid = self.persistence_id.clone();
        let mut remaining = self.remaining;
        let mut deleted_to = self.deleted_to;
        let buffered = &mut self.buffered;
        let end = scan(
            &self.inner.client,
            &self.topic,
            &mut self.log,
            until,
            opts,
            |m| {
                if m.applied == Applied::Deletion && live {
                    deleted_to = deleted_to.max(m.state.deleted_to);
                }
                if m.applied == Applied::Event {
                    let seq = m.record.sequence_nr;
                    if seq >= from && seq <= to && seq > deleted_to {
                        buffered.push_back(m.record.into_repr(&pid));
                        remaining = remaining.saturating_sub(1);
                    }
                }
                if remaining == 0 || m.state.highest >= to {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .await?;
        self.remaining = remaining;
        self.deleted_to = deleted_to;
        if end.stopped {
            self.done = true;
        } else if let Some(e) = self.end_offset {
            if self.log.state().next_offset >= e || self.log.state().next_offset == before {
                self.done = true;
            }
        }
        Ok(())
    }
}

/// Sets up a replay: `None` if there is nothing to replay.
async fn open(
    inner: Arc<PerId>,
    persistence_id: String,
    from: u64,
    to: u64,
    max: u64,
    live: bool,
) -> Result<Option<Cursor>, JournalError> {
    let entry = inner.entry(&persistence_id);
    let Some(verified) = entry.synced(entry.gate.ticket(), &inner.client).await? else {
        return Ok(None);
    };
    let state = *verified.state();
    let first = from.max(state.deleted_to.saturating_add(1)).max(1);
    if !live && first > to.min(state.highest) {
        return Ok(None);
    }
    if let Some((lost_from, lost_to)) = state.lost_range() {
        if first <= lost_to && lost_from <= to {
            return Err(JournalError::EventsLost {
                persistence_id,
                from: lost_from,
                to: lost_to,
            });
        }
    }
    let start = verified.start_for(first);
    Ok(Some(Cursor {
        topic: entry.topic.clone(),
        log: Verified::from_state(start, verified.log_start()),
        inner,
        persistence_id,
        from: first,
        to,
        remaining: max,
        deleted_to: state.deleted_to,
        end_offset: (!live).then_some(state.next_offset),
        buffered: VecDeque::new(),
        done: false,
    }))
}

enum Phase {
    Opening,
    /// Live query on an id whose topic does not exist yet.
    Waiting,
    Reading(Box<Cursor>),
    Done,
}

struct Replay {
    inner: Arc<PerId>,
    persistence_id: String,
    from: u64,
    to: u64,
    max: u64,
    live: bool,
    phase: Phase,
}

async fn next(mut r: Replay) -> Option<(Result<PersistentRepr, JournalError>, Replay)> {
    loop {
        match std::mem::replace(&mut r.phase, Phase::Done) {
            Phase::Done => return None,
            Phase::Opening | Phase::Waiting => {
                let opened = bounded(
                    &r.inner.config,
                    "replay",
                    open(
                        Arc::clone(&r.inner),
                        r.persistence_id.clone(),
                        r.from,
                        r.to,
                        r.max,
                        r.live,
                    ),
                )
                .await;
                match opened {
                    Ok(Some(c)) => r.phase = Phase::Reading(Box::new(c)),
                    Ok(None) if r.live => {
                        tokio::time::sleep(TOPIC_POLL).await;
                        r.phase = Phase::Waiting;
                    }
                    Ok(None) => return None,
                    Err(e) => return Some((Err(e), r)),
                }
            }
            Phase::Reading(mut c) => {
                if let Some(repr) = c.buffered.pop_front() {
                    r.phase = Phase::Reading(c);
                    return Some((Ok(repr), r));
                }
                if c.done {
                    return None;
                }
                // The step borrows the cursor: hold the config through the shared state.
                let inner = Arc::clone(&c.inner);
                match bounded(&inner.config, "replay", c.step()).await {
                    Ok(()) => r.phase = Phase::Reading(c),
                    Err(e) => return Some((Err(e), r)),
                }
            }
        }
    }
}

/// The events of `persistence_id` in `from..=to`, at most `max`; a live stream (`live`)
/// waits for new ones and completes only at `to`.
pub(crate) fn events(
    inner: Arc<PerId>,
    persistence_id: String,
    from: u64,
    to: u64,
    max: u64,
    live: bool,
) -> BoxStream<'static, Result<PersistentRepr, JournalError>> {
    if max == 0 || from > to || to == 0 {
        return stream::empty().boxed();
    }
    let r = Replay {
        inner,
        persistence_id,
        from,
        to,
        max,
        live,
        phase: Phase::Opening,
    };
    stream::unfold(r, next).boxed()
}

/// Every persistence id with a journal topic under this journal's prefix.
pub(crate) async fn list_ids(inner: &PerId) -> Result<Vec<String>, JournalError> {
    let mut topics = inner.client.list_topics().await?;
    topics.sort();
    let mut ids = Vec::new();
    for topic in topics {
        match decode_topic(&inner.config.topic_prefix, &topic) {
            None => {}
            Some(Ok(id)) => ids.push(id),
            Some(Err(())) => {
                // A hashed name: the id is the key of every record.
                if let Some(id) = first_key(inner, &topic).await? {
                    ids.push(id);
                }
            }
        }
    }
    Ok(ids)
}

async fn first_key(inner: &PerId, topic: &str) -> Result<Option<String>, JournalError> {
    let start = inner
        .client
        .list_offset(
            topic,
            PARTITION,
            kafka_persistence_wire::OffsetSpec::Earliest,
        )
        .await?;
    let resp = super::log::fetch(&inner.client, topic, start, 64 * 1024, Duration::ZERO).await?;
    Ok(resp
        .records
        .into_iter()
        .find_map(|r| r.key)
        .and_then(|k| String::from_utf8(k.to_vec()).ok()))
}

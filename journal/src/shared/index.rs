//! Layout v2's index topic: restoring a partition's heads at `connect`, and writing changed
//! heads and checkpoints (in the background every `index_flush_interval_ms`, and on
//! [`crate::Journal::flush_index`]).
//!
//! The index is a cache of the journal topic. Its invariant: a checkpoint
//! `{journal_offset: C, index_offset: E}` says that the last head record of every id among
//! the index records before index offset `E` reflects every journal record of that id below
//! journal offset `C`. A writer checks that before writing a checkpoint: it writes the heads
//! that changed, reads the index back up to its end `E`, and rewrites any id whose last head
//! there is older than what it knows (another instance may have written an older head after a
//! newer one). Restoring a partition reads its index records, takes the last checkpoint, and
//! reads the journal partition from `T = min(C, as_of of every last head at or after E)`:
//! heads written after the verified position may be stale, so the journal's tail is read
//! from the oldest of them. Records a head already reflects (offset below its `as_of`) are
//! skipped. No checkpoint, a truncated or lagging index: `T` falls back to the checkpoint
//! found, or to the journal's log start; nothing is lost, only more is read.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use kafka_persistence_wire::{FetchRequest, OffsetSpec, Record};

use super::head::{
    decode_head_as_of, decode_index, encode, CheckpointRecord, IndexEntry, CHECKPOINT_KEY,
};
use super::heads::HeadId;
use super::{tail, Partition, Shared};
use crate::error::JournalError;

/// Bytes asked for per fetch of the index topic.
const INDEX_FETCH_BYTES: i32 = 8 * 1024 * 1024;
/// Heads written per index batch.
const HEADS_PER_BATCH: usize = 2_000;
/// Heads taken from a partition per flush round (bounds the time its lock is held).
const HEADS_PER_ROUND: usize = 50_000;
/// Verification rounds per flush before it gives up writing a checkpoint this time.
const MAX_ROUNDS: usize = 4;

/// The index records of one partition, as read at restore or while verifying.
#[derive(Default)]
struct IndexRead {
    /// The last head per id, with the index offset it was at.
    heads: HashMap<String, (i64, super::head::Head)>,
    /// The last checkpoint.
    checkpoint: Option<CheckpointRecord>,
    /// The offset after the last record read.
    end: i64,
}

/// Reads the index partition from `from` to the high watermark of the first fetch, giving
/// each record (offset, key, value) to `visit` in offset order; returns the offset after the
/// last record read.
async fn scan_index(
    shared: &Shared,
    partition: i32,
    from: i64,
    mut visit: impl FnMut(i64, Option<&[u8]>, Option<&Bytes>),
) -> Result<i64, JournalError> {
    let topic = shared.index_topic.as_str();
    let start = shared
        .client
        .list_offset(topic, partition, OffsetSpec::Earliest)
        .await?;
    let mut pos = from.max(start);
    let mut target: Option<i64> = None;
    loop {
        if target.is_some_and(|t| pos >= t) {
            break;
        }
        let req = FetchRequest::new(topic, partition, pos)
            .with_max_bytes(INDEX_FETCH_BYTES)
            .with_max_wait(Duration::ZERO);
        let resp = shared.client.fetch(req).await?;
        let hw = *target.get_or_insert(resp.high_watermark);
        let progressed = resp.next_offset > pos;
        for rec in &resp.records {
            if rec.offset < pos || rec.offset >= hw {
                continue;
            }
            pos = rec.offset + 1;
            visit(rec.offset, rec.key.as_deref(), rec.value.as_ref());
        }
        if !progressed {
            break;
        }
        pos = pos.max(resp.next_offset.min(hw));
    }
    Ok(pos.max(target.unwrap_or(pos)))
}

/// Reads the index partition from `from` to its high watermark, keeping each id's last head.
async fn read_index(shared: &Shared, partition: i32, from: i64) -> Result<IndexRead, JournalError> {
    let mut out = IndexRead::default();
    out.end = scan_index(
        shared,
        partition,
        from,
        |offset, key, value| match decode_index(key, value) {
            Some(IndexEntry::Head(id, head)) => {
                out.heads.insert(id, (offset, head));
            }
            Some(IndexEntry::Checkpoint(c)) => out.checkpoint = Some(c),
            None => {}
        },
    )
    .await?;
    Ok(out)
}

/// Reads partition `p`'s index back from `from` and marks for rewriting every id whose last
/// head there is older than the head this instance holds (as of at most `frontier`): another
/// instance wrote an older head after a newer one. Returns the offset after the last record
/// read and how many ids were marked. Only the heads' ids (borrowed) and `as_of` are decoded;
/// the last head of each id is found by the id's entry number, so nothing is copied per id.
async fn verify(
    shared: &Shared,
    p: &Partition,
    from: i64,
    frontier: i64,
) -> Result<(i64, usize), JournalError> {
    // (entry number, as_of) of every head record of an id this instance indexes, in order.
    let mut seen: Vec<(HeadId, i64)> = Vec::new();
    let end = scan_index(shared, p.id, from, |_, key, value| {
        if let Some((id, as_of)) = decode_head_as_of(key, value) {
            if let Some(i) = p.state().heads.find(id) {
                seen.push((i, as_of));
            }
        }
    })
    .await?;
    let mut st = p.state();
    let mut done = vec![0u64; st.heads.len().div_ceil(64)];
    let mut stale = 0usize;
    for &(i, as_of) in seen.iter().rev() {
        let (word, bit) = (i as usize / 64, 1u64 << (i % 64));
        let Some(w) = done.get_mut(word) else {
            continue;
        };
        if *w & bit != 0 {
            continue; // a later head of this id was checked already
        }
        *w |= bit;
        let newer = st
            .heads
            .entry_mut(i)
            .is_some_and(|(_, ours)| ours.as_of > as_of && ours.as_of <= frontier);
        if newer {
            st.mark_dirty_at(i);
            stale += 1;
        }
    }
    Ok((end, stale))
}

/// Restores partition `p`'s heads at `connect` (see the module documentation).
pub(crate) async fn restore(shared: &Shared, p: &Partition) -> Result<(), JournalError> {
    let read = read_index(shared, p.id, 0).await?;
    let journal_start = shared
        .client
        .list_offset(&shared.journal_topic, p.id, OffsetSpec::Earliest)
        .await?;
    let from = match &read.checkpoint {
        Some(c) => read
            .heads
            .values()
            .filter(|(at, _)| *at >= c.index_offset)
            .map(|(_, h)| h.as_of)
            .fold(c.journal_offset, i64::min),
        None => 0,
    };
    let heads = read.heads.len();
    {
        let mut st = p.state();
        for (id, (_, head)) in read.heads {
            st.restore_head(id, head);
        }
        // Records below the start that no head reflects may have been removed: ids first
        // met in the tail may have lost their beginning.
        st.fresh_initialized = from >= journal_start;
        st.log_start = journal_start;
        st.frontier = from.max(journal_start);
    }
    *p.index_position.lock().await = (read.end, read.checkpoint.map(|c| c.journal_offset));
    tail::catch_up(shared, p).await?;
    tracing::debug!(
        partition = p.id,
        heads,
        tail_from = from,
        frontier = p.state().frontier,
        "restored the index"
    );
    Ok(())
}

/// Starts the background index writer (it stops when the journal is dropped).
pub(crate) fn start_writer(shared: &Arc<Shared>) {
    let weak: Weak<Shared> = Arc::downgrade(shared);
    let interval = Duration::from_millis(shared.config.index_flush_interval_ms.max(1));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(shared) = weak.upgrade() else {
                return;
            };
            if let Err(e) = flush_all(&shared).await {
                tracing::warn!(error = %e, reason = "index write failed; the journal's tail covers it", "index not written");
            }
        }
    });
}

/// Reads every partition's tail (so what other instances wrote is indexed too), then writes
/// changed heads and a checkpoint per partition.
pub(crate) async fn flush_all(shared: &Shared) -> Result<(), JournalError> {
    let flushes = shared.partitions.iter().map(|p| async move {
        tail::catch_up(shared, p).await?;
        flush(shared, p).await
    });
    let mut first_error = None;
    for r in futures::future::join_all(flushes).await {
        if let Err(e) = r {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Writes partition `p`'s changed heads, verifies the index, and writes a checkpoint.
async fn flush(shared: &Shared, p: &Partition) -> Result<(), JournalError> {
    let mut guard = p.index_position.lock().await;
    let (position, last_checkpoint) = &mut *guard;
    for _ in 0..MAX_ROUNDS {
        let frontier = p.state().frontier;
        let mut wrote = false;
        loop {
            let heads = p.state().take_dirty(HEADS_PER_ROUND);
            if heads.is_empty() {
                break;
            }
            wrote = true;
            write_heads(shared, p.id, heads).await?;
        }
        if !wrote && *last_checkpoint == Some(frontier) {
            // Nothing new since the last checkpoint.
            return Ok(());
        }
        // Read back what the index holds now, ours and anybody else's.
        let (end, stale) = verify(shared, p, *position, frontier).await?;
        *position = end;
        if stale > 0 {
            tracing::debug!(
                partition = p.id,
                stale,
                reason = "an older head was written after a newer one",
                "rewriting heads"
            );
            continue;
        }
        let checkpoint = CheckpointRecord {
            journal_offset: frontier,
            index_offset: *position,
        };
        let record = Record::new(encode(&checkpoint), crate::now_ms())
            .with_key(Bytes::from_static(&[CHECKPOINT_KEY]));
        shared
            .index_producer
            .send(&shared.index_topic, p.id, vec![record])
            .await?;
        *last_checkpoint = Some(frontier);
        return Ok(());
    }
    tracing::debug!(
        partition = p.id,
        reason = "the index kept changing",
        "checkpoint postponed"
    );
    Ok(())
}

async fn write_heads(
    shared: &Shared,
    partition: i32,
    heads: Vec<(Bytes, super::head::HeadRecord)>,
) -> Result<(), JournalError> {
    let now = crate::now_ms();
    let mut sends = Vec::new();
    for batch in heads.chunks(HEADS_PER_BATCH) {
        let records: Vec<Record> = batch
            .iter()
            .map(|(key, h)| Record::new(encode(h), now).with_key(key.clone()))
            .collect();
        let producer = &shared.index_producer;
        let topic = shared.index_topic.as_str();
        sends.push(async move { producer.send(topic, partition, records).await });
    }
    for r in futures::future::join_all(sends).await {
        r?;
    }
    Ok(())
}

//! Layout v2: keeping the in-memory index of one index partition current by reading the
//! partition in offset order (the restore at connect is the first catch-up of every
//! partition).
//!
//! - Retention moved the log start past the position: continue at the log start.
//! - The position is past the log end (the topic was recreated or truncated): forget the
//!   partition's index and read it again from its start.
//! - This store wrote to the partition: wait (long poll) until the high watermark passes its
//!   write, so a call after a save or delete sees it; stop waiting after a bound (the write
//!   was lost).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use kafka_persistence_wire::{self as wire, Client, FetchRequest};
use tracing::{debug, warn};

use crate::error::SnapshotError;
use crate::layout::lock;
use crate::layout::shared::index::PartitionIndex;

/// Partition bytes asked for per fetch while catching up an index partition.
const CATCH_UP_FETCH_BYTES: i32 = 1024 * 1024;
/// How long one catch-up fetch waits for this store's own write to become visible.
const OWN_WRITE_WAIT: Duration = Duration::from_millis(100);
/// Waits for an own write before the catch-up stops waiting for it (it was lost, e.g. to an
/// unclean leader election, and the high watermark will not pass it).
const MAX_OWN_WRITE_WAITS: u32 = 50;

/// One index partition: its index and what its catch-up needs.
#[derive(Debug, Default)]
pub(super) struct Partition {
    /// The index.
    pub(super) index: Mutex<PartitionIndex>,
    /// Serializes catch-ups of this partition (the index is applied in offset order).
    turn: tokio::sync::Mutex<()>,
    /// One past the offset of this store's latest write to the partition.
    written_to: AtomicI64,
}

impl Partition {
    /// Notes that this store wrote to the partition below `end` (one past its last record).
    pub(super) fn wrote_to(&self, end: i64) {
        self.written_to.fetch_max(end, Ordering::AcqRel);
    }
}

/// Reads index partition `partition` of `topic` from the index's position to the high
/// watermark (and at least past this store's own writes), applying every record. One fetch
/// when nothing is new. Catch-ups of one partition take turns.
pub(super) async fn catch_up(
    client: &Client,
    topic: &str,
    partition: i32,
    part: &Partition,
) -> Result<(), SnapshotError> {
    let _turn = part.turn.lock().await;
    let mut waits = 0_u32;
    loop {
        let min_end = part.written_to.load(Ordering::Acquire);
        let position = lock(&part.index).position();
        let mut req =
            FetchRequest::new(topic, partition, position).with_max_bytes(CATCH_UP_FETCH_BYTES);
        if position < min_end {
            req = req.with_max_wait(OWN_WRITE_WAIT);
        }
        let resp = match client.fetch(req).await {
            Ok(r) => r,
            Err(wire::Error::OffsetOutOfRange {
                log_start_offset,
                high_watermark,
                ..
            }) if log_start_offset > position
                || (high_watermark >= 0 && position > high_watermark) =>
            {
                let mut ix = lock(&part.index);
                if log_start_offset > position {
                    debug!(
                        topic,
                        partition,
                        position,
                        log_start_offset,
                        reason = "offset below log start",
                        "index catch-up continues at the log start"
                    );
                    ix.advance_to(log_start_offset);
                } else {
                    warn!(
                        topic,
                        partition,
                        position,
                        high_watermark,
                        reason = "position beyond the log end (truncated or recreated)",
                        "restoring the partition's index from its start"
                    );
                    ix.reset(log_start_offset.max(0));
                    part.written_to.store(0, Ordering::Release);
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let now = {
            let mut ix = lock(&part.index);
            for r in &resp.records {
                ix.apply(r);
            }
            ix.advance_to(resp.next_offset);
            ix.position()
        };
        if now >= resp.high_watermark.max(min_end) {
            return Ok(());
        }
        if now <= position && resp.high_watermark > position {
            return Err(SnapshotError::Stalled {
                topic: topic.to_owned(),
                offset: position,
            });
        }
        if now <= position {
            // Waiting (long poll) for this store's own write to be visible.
            waits += 1;
            if waits >= MAX_OWN_WRITE_WAITS {
                warn!(
                    topic,
                    partition,
                    position,
                    written_to = min_end,
                    high_watermark = resp.high_watermark,
                    reason = "high watermark stays below this store's write",
                    "no longer waiting for it"
                );
                // Unless a newer write raised it meanwhile.
                let _ = part.written_to.compare_exchange(
                    min_end,
                    now,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                return Ok(());
            }
        }
    }
}

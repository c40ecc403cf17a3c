//! Reading a persistence id's log: the fetch loop that feeds [`ScanState`], and the verified
//! state the journal caches per persistence id.

use std::ops::ControlFlow;
use std::time::Duration;

use kafka_persistence_wire::{self as wire, Client, FetchRequest, OffsetSpec};

use super::naming::PARTITION;
use crate::error::JournalError;
use crate::format::JournalRecord;
use crate::scan::{Applied, ScanState};

/// Bytes asked for per fetch: large, so a recovery needs few round trips.
pub(crate) const FETCH_MAX_BYTES: i32 = 32 * 1024 * 1024;
/// A checkpoint is kept every this many accepted sequence numbers.
const CHECKPOINT_EVERY: u64 = 1024;

/// The state of a log prefix, read from Kafka (or known from our own acknowledged writes),
/// with checkpoints so replays can start near their first sequence number.
#[derive(Clone, Debug)]
///
/// Its fields change only through its methods: [`Verified::apply`] (a record read, or one of
/// our own acknowledged writes), [`Verified::skip_to`] and the log start moving; the copy a
/// journal caches per id is owned by [`super::pid::PidEntry`].
pub(crate) struct Verified {
    /// The state after the verified prefix; `state.next_offset` is its end.
    state: ScanState,
    /// States at earlier offsets (ascending), the first being the start of the scan.
    checkpoints: Vec<ScanState>,
    /// The log start offset last seen.
    log_start: i64,
}

impl Verified {
    /// Nothing read yet, the log starting at `log_start`.
    pub(crate) fn new(log_start: i64) -> Self {
        let state = ScanState::at_log_start(log_start);
        Verified {
            state,
            checkpoints: vec![state],
            log_start: log_start.max(0),
        }
    }

    /// The state after the verified prefix.
    pub(crate) fn state(&self) -> &ScanState {
        &self.state
    }

    /// The log start offset last seen.
    pub(crate) fn log_start(&self) -> i64 {
        self.log_start
    }

    /// Offsets below `offset` hold nothing of the journal (control batches, compacted-away
    /// offsets, records without a value): the verified prefix ends there. Never goes back.
    fn skip_to(&mut self, offset: i64) {
        self.state.next_offset = self.state.next_offset.max(offset);
    }

    /// Applies one record, keeping a checkpoint now and then.
    pub(crate) fn apply(&mut self, offset: i64, rec: &JournalRecord) -> Applied {
        let before = self.state;
        let applied = self.state.apply(offset, rec);
        if matches!(applied, Applied::Event | Applied::Gap) {
            let due = self
                .checkpoints
                .last()
                .is_none_or(|c| before.highest >= c.highest.saturating_add(CHECKPOINT_EVERY));
            if due {
                self.checkpoints.push(before);
            }
        }
        applied
    }

    /// Where a replay of sequence numbers from `from` can start reading.
    pub(crate) fn start_for(&self, from: u64) -> ScanState {
        self.checkpoints
            .iter()
            .rev()
            .find(|c| c.highest < from && c.next_offset >= self.log_start)
            .copied()
            .unwrap_or_else(|| ScanState::at_log_start(self.log_start))
    }

    /// A verified prefix known only by its end state (for replays starting at a checkpoint).
    pub(crate) fn from_state(state: ScanState, log_start: i64) -> Self {
        Verified {
            state,
            checkpoints: vec![state],
            log_start: log_start.max(0),
        }
    }

    /// The log start moved to `log_start` (retention or DeleteRecords).
    pub(crate) fn set_log_start(&mut self, log_start: i64) {
        if log_start > self.log_start {
            self.log_start = log_start;
            self.checkpoints.retain(|c| c.next_offset >= log_start);
        }
    }
}

/// One record met by [`scan`].
pub(crate) struct Met<'a> {
    /// Its offset.
    pub(crate) offset: i64,
    /// What the state machine decided.
    pub(crate) applied: Applied,
    /// The decoded record.
    pub(crate) record: JournalRecord,
    /// The state after it.
    pub(crate) state: &'a ScanState,
}

/// How far [`scan`] reads.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Until {
    /// To the high watermark seen by the first fetch.
    HighWatermark,
    /// To this offset (exclusive).
    Offset(i64),
}

/// Fetch settings of a [`scan`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScanOptions {
    /// Stop after this many fetches.
    pub(crate) max_fetches: usize,
    /// Bytes per fetch.
    pub(crate) max_bytes: i32,
    /// Long-poll wait per fetch (0: answer at once).
    pub(crate) max_wait: Duration,
}

impl ScanOptions {
    /// Read to the end, never waiting.
    pub(crate) const FULL: ScanOptions = ScanOptions {
        max_fetches: usize::MAX,
        max_bytes: FETCH_MAX_BYTES,
        max_wait: Duration::ZERO,
    };
}

/// What [`scan`] ended with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScanEnd {
    /// True if the callback stopped the scan.
    pub(crate) stopped: bool,
}

/// Reads the log from `verified.state.next_offset` to `until`, applying every record to
/// `verified` and handing it to `on_record`, which may stop the scan.
///
/// Fetches with `max_wait` 0: it never waits out a poll timeout. If the log start moved past
/// the read position, the scan restarts at the log start with a fresh state.
pub(crate) async fn scan<F>(
    client: &Client,
    topic: &str,
    verified: &mut Verified,
    until: Until,
    opts: ScanOptions,
    mut on_record: F,
) -> Result<ScanEnd, JournalError>
where
    F: FnMut(Met<'_>) -> ControlFlow<()> + Send,
{
    let mut target = match until {
        Until::HighWatermark => None,
        Until::Offset(o) => Some(o),
    };
    let mut fetches = 0usize;
    loop {
        if fetches >= opts.max_fetches {
            return Ok(ScanEnd { stopped: false });
        }
        fetches += 1;
        if let Some(t) = target {
            if verified.state.next_offset >= t {
                return Ok(ScanEnd { stopped: false });
            }
        }
        let offset = verified.state.next_offset;
        let resp = match fetch(client, topic, offset, opts.max_bytes, opts.max_wait).await {
            Ok(resp) => resp,
            Err(JournalError::Kafka(wire::Error::OffsetOutOfRange {
                log_start_offset, ..
            })) => {
                let log_start = if log_start_offset > offset {
                    log_start_offset
                } else {
                    client
                        .list_offset(topic, PARTITION, OffsetSpec::Earliest)
                        .await?
                };
                if log_start <= offset {
                    return Err(JournalError::Kafka(wire::Error::OffsetOutOfRange {
                        topic: topic.to_string(),
                        partition: PARTITION,
                        offset,
                        log_start_offset: log_start,
                        high_watermark: -1,
                    }));
                }
                tracing::debug!(
                    topic,
                    offset,
                    log_start,
                    reason = "log start moved past the read position",
                    "restarting scan at log start"
                );
                *verified = Verified::new(log_start);
                continue;
            }
            Err(e) => return Err(e),
        };
        if resp.log_start_offset > verified.log_start {
            // Retention or another process removed records: what was verified may hide a
            // loss, so read again from the new start.
            tracing::debug!(
                topic,
                offset,
                log_start = resp.log_start_offset,
                reason = "log start moved",
                "restarting scan at log start"
            );
            *verified = Verified::new(resp.log_start_offset);
            continue;
        }
        verified.set_log_start(resp.log_start_offset);
        let t = *target.get_or_insert(resp.high_watermark);
        if resp.records.is_empty() {
            if resp.next_offset > verified.state.next_offset {
                // Only control batches or compacted-away offsets: skip them.
                verified.skip_to(resp.next_offset.min(t));
                continue;
            }
            return Ok(ScanEnd { stopped: false });
        }
        for rec in resp.records {
            if rec.offset < verified.state.next_offset {
                continue;
            }
            if rec.offset >= t {
                return Ok(ScanEnd { stopped: false });
            }
            let Some(value) = rec.value else {
                verified.skip_to(rec.offset.saturating_add(1));
                continue;
            };
            let record = JournalRecord::decode_value(value).map_err(|e| JournalError::Corrupt {
                topic: topic.to_string(),
                offset: rec.offset,
                reason: e.to_string(),
            })?;
            let applied = verified.apply(rec.offset, &record);
            let met = Met {
                offset: rec.offset,
                applied,
                record,
                state: &verified.state,
            };
            if on_record(met).is_break() {
                return Ok(ScanEnd { stopped: true });
            }
        }
        if resp.next_offset > verified.state.next_offset {
            verified.skip_to(resp.next_offset.min(t));
        }
    }
}

/// One fetch of the journal partition, answered at once.
pub(crate) async fn fetch(
    client: &Client,
    topic: &str,
    offset: i64,
    max_bytes: i32,
    max_wait: Duration,
) -> Result<wire::FetchResponse, JournalError> {
    let mut req = FetchRequest::new(topic, PARTITION, offset);
    req.max_bytes = max_bytes;
    req.max_wait = max_wait;
    Ok(client.fetch(req).await?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::repr::PersistentRepr;

    fn ev(seq: u64) -> JournalRecord {
        JournalRecord::event(&PersistentRepr::new("p", seq, &b"x"[..]), seq, seq)
    }

    #[test]
    fn checkpoints_let_replays_start_near_their_sequence_number() {
        let mut v = Verified::new(0);
        // offsets are not sequence numbers: every event is preceded by a foreign record
        let mut offset = 0;
        for seq in 1..=5000u64 {
            v.apply(offset, &JournalRecord::deletion(0, 0));
            v.apply(offset + 1, &ev(seq));
            offset += 2;
        }
        assert_eq!(v.state.highest, 5000);
        let start = v.start_for(3000);
        assert!(
            start.highest < 3000 && start.highest >= 3000 - 1024 - 1,
            "{start:?}"
        );
        assert!(start.next_offset > 2 * 1024);
        assert_eq!(v.start_for(1), ScanState::at_log_start(0));
        // once the log start passes a checkpoint, it is not used
        v.set_log_start(start.next_offset + 1);
        let later = v.start_for(3000);
        assert!(later.next_offset > start.next_offset);
    }
}

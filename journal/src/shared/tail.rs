//! Reading a shared journal partition into its heads: from the frontier to the high
//! watermark, applying every record in offset order ([`PartitionState::apply`]). Reads of one
//! partition are single-flight: a caller that asks while a read runs waits for it and, if a
//! read that started after its call has finished meanwhile, is done without another fetch.
//!
//! [`PartitionState::apply`]: super::partition::PartitionState::apply

use std::sync::atomic::Ordering;
use std::time::Duration;

use kafka_persistence_wire::{self as wire, FetchRequest, OffsetSpec};

use super::{Partition, Shared};
use crate::error::JournalError;
use crate::format::JournalRecord;

/// Bytes asked for per fetch of the tail.
const TAIL_FETCH_BYTES: i32 = 8 * 1024 * 1024;

/// Brings `p`'s heads up to the partition's high watermark as of this call.
pub(crate) async fn catch_up(shared: &Shared, p: &Partition) -> Result<(), JournalError> {
    let seen = p.reads_started.load(Ordering::Acquire);
    let _read = p.fetch_lock.lock().await;
    if p.reads_done.load(Ordering::Acquire) > seen {
        return Ok(());
    }
    let me = p.reads_started.fetch_add(1, Ordering::AcqRel) + 1;
    let result = read_to_end(shared, p).await;
    p.reads_done.fetch_max(me, Ordering::AcqRel);
    result
}

async fn read_to_end(shared: &Shared, p: &Partition) -> Result<(), JournalError> {
    let topic = shared.journal_topic.as_str();
    let mut target: Option<i64> = None;
    loop {
        let from = p.state().frontier;
        if target.is_some_and(|t| from >= t) {
            return Ok(());
        }
        let req = FetchRequest::new(topic, p.id, from)
            .with_max_bytes(TAIL_FETCH_BYTES)
            .with_max_wait(Duration::ZERO);
        let resp = match shared.client.fetch(req).await {
            Ok(resp) => resp,
            Err(wire::Error::OffsetOutOfRange {
                log_start_offset, ..
            }) => {
                let start = if log_start_offset > from {
                    log_start_offset
                } else {
                    shared
                        .client
                        .list_offset(topic, p.id, OffsetSpec::Earliest)
                        .await?
                };
                if start <= from {
                    return Err(JournalError::Kafka(wire::Error::OffsetOutOfRange {
                        topic: topic.to_string(),
                        partition: p.id,
                        offset: from,
                        log_start_offset: start,
                        high_watermark: -1,
                    }));
                }
                tracing::warn!(
                    topic,
                    partition = p.id,
                    from,
                    log_start = start,
                    reason = "records removed before this instance read them",
                    "skipping to the log start"
                );
                let mut st = p.state();
                st.log_start = start;
                // Ids met from here on may have lost their beginning.
                st.fresh_initialized = false;
                st.skip_to(start);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let hw = *target.get_or_insert(resp.high_watermark);
        let empty = resp.records.is_empty();
        {
            let mut st = p.state();
            st.log_start = st.log_start.max(resp.log_start_offset);
            for rec in resp.records {
                if rec.offset < st.frontier || rec.offset >= hw {
                    continue;
                }
                // Applied straight from the fetched bytes: the key is borrowed, not copied.
                let reason = match (&rec.key, rec.value) {
                    (Some(key), Some(value)) => match std::str::from_utf8(key) {
                        Ok(id) => match JournalRecord::decode_value(value) {
                            Ok(r) => {
                                st.apply(rec.offset, id, &r);
                                continue;
                            }
                            Err(e) => e.to_string(),
                        },
                        Err(_) => "key is not UTF-8".to_string(),
                    },
                    _ => "record without key or value".to_string(),
                };
                tracing::warn!(topic, partition = p.id, offset = rec.offset, %reason, "ignoring a record that is not a journal record");
                st.skip_to(rec.offset + 1);
            }
            if resp.next_offset > st.frontier {
                let frontier = st.frontier;
                st.skip_to(resp.next_offset.min(hw.max(frontier)));
            }
        }
        p.changed.notify_waiters();
        if empty && resp.next_offset <= from {
            // Nothing more to read below the high watermark: done.
            return Ok(());
        }
    }
}

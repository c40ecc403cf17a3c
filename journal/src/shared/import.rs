//! Layout v2 import of an id's history exported from layout v1 (`kafka-persistence
//! migrate`): idempotent (a complete id is left alone) and resumable (an id interrupted
//! half-way continues after what is already there).

use super::{tail, write, ActiveId, Shared};
use crate::chunk::MAX_CHUNK_BYTES;
use crate::error::JournalError;
use crate::format::{record_size_bound, JournalRecord, BATCH_OVERHEAD};
use crate::gate::Ticket;
use crate::migrate::{IdExport, ImportOutcome};

pub(crate) async fn import(
    shared: &Shared,
    active: &ActiveId,
    ticket: Ticket,
    export: IdExport,
) -> Result<ImportOutcome, JournalError> {
    let _gate = ticket.enter().await;
    active.inflight.drain().await;
    let p = &shared.partitions[active.partition];
    tail::catch_up(shared, p).await?;
    let pid = active.persistence_id.as_ref();
    let (mut highest, mut deleted_to) = p
        .state()
        .heads
        .get(pid)
        .map_or((0, 0), |h| (h.highest, h.deleted_to));
    let mut outcome = ImportOutcome::default();
    if highest >= export.highest && deleted_to >= export.deleted_to {
        outcome.already_complete = true;
        return Ok(outcome);
    }
    // Written from here on by another writer than the import: refuse rather than interleave.
    let refused = |what: &str| {
        JournalError::Unknown(
            pid.to_string(),
            format!("{what} was not accepted: another writer wrote the id during the migration"),
        )
    };
    let todo: Vec<_> = export
        .records
        .iter()
        .filter(|r| r.last_sequence_nr > highest)
        .collect();
    if let Some(first) = todo.first() {
        if first.sequence_nr > highest.saturating_add(1) {
            // The history's beginning was deleted: a marker carries the chain to it.
            let to = first.sequence_nr - 1;
            if to > export.deleted_to.max(deleted_to) {
                return Err(JournalError::EventsLost {
                    persistence_id: pid.to_string(),
                    from: highest + 1,
                    to,
                });
            }
            let marker = JournalRecord::deletion(to, to);
            let rec = marker.to_record(pid, crate::now_ms());
            if !write::send_and_decide(shared, p, pid, vec![rec], vec![marker]).await? {
                return Err(refused("a deletion marker"));
            }
            outcome.records_written += 1;
            highest = to;
            deleted_to = to;
        }
    }
    let limit = shared.max_message_bytes.min(MAX_CHUNK_BYTES);
    let mut i = 0;
    while i < todo.len() {
        let batch_start = todo[i].sequence_nr;
        let batch_id = shared.next_batch_id();
        let mut size = BATCH_OVERHEAD;
        let mut records = Vec::new();
        let mut stubs = Vec::new();
        while i < todo.len() {
            let Some(rec) = todo[i].to_journal_record(batch_start, batch_id) else {
                i += 1;
                continue;
            };
            let kafka = rec.to_record(pid, crate::now_ms());
            let n = record_size_bound(pid.len(), kafka.value.as_ref().map_or(0, |v| v.len()));
            if !records.is_empty() && size + n > limit {
                break;
            }
            size += n;
            records.push(kafka);
            stubs.push(rec);
            i += 1;
        }
        if records.is_empty() {
            continue;
        }
        let count = records.len() as u64;
        let last = stubs.last().map_or(highest, JournalRecord::last);
        if !write::send_and_decide(shared, p, pid, records, stubs).await? {
            return Err(refused("a copied batch"));
        }
        outcome.records_written += count;
        highest = last;
    }
    if export.deleted_to > deleted_to || export.highest > highest {
        let marker = JournalRecord::deletion(
            export.deleted_to.max(deleted_to),
            export.highest.max(highest),
        );
        let rec = marker.to_record(pid, crate::now_ms());
        if !write::send_and_decide(shared, p, pid, vec![rec], vec![marker]).await? {
            return Err(refused("the deletion marker"));
        }
        outcome.records_written += 1;
    }
    // The id's reservation view is read from the head again by its next write.
    active.inflight.poison();
    Ok(outcome)
}

//! Copying an id's history between layouts (`kafka-persistence migrate`): layout v1 exports
//! the records replays accept (events and gap markers, with their sequence numbers, writer
//! ids, timestamps, manifests, metadata and tags) and the deletion mark; layout v2 imports
//! them, continuing where an earlier, interrupted run of the same id stopped.

use crate::format::{JournalRecord, JournalRecordView, RecordKind, KIND_EVENT, KIND_GAP};

/// One id's accepted history (see [`crate::Journal::export_id`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct IdExport {
    /// The persistence id.
    pub persistence_id: String,
    /// The highest sequence number (counting gaps and deletions).
    pub highest: u64,
    /// Every sequence number up to this one is deleted.
    pub deleted_to: u64,
    /// The accepted records above the deletion mark, ascending: events and gap markers.
    pub records: Vec<JournalRecordView>,
}

/// What [`crate::Journal::import_id`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportOutcome {
    /// Records written (events, gap markers, deletion markers).
    pub records_written: u64,
    /// The id was already complete in the target: nothing written.
    pub already_complete: bool,
}

impl JournalRecordView {
    /// Back to the stored record, for batch `(batch_start, batch_id)`.
    pub(crate) fn to_journal_record(
        &self,
        batch_start: u64,
        batch_id: u64,
    ) -> Option<JournalRecord> {
        match self.kind {
            RecordKind::Event => self
                .event
                .as_ref()
                .map(|e| JournalRecord::event(e, batch_start, batch_id)),
            RecordKind::Gap => Some(JournalRecord::gap(
                self.sequence_nr,
                self.last_sequence_nr,
                batch_start,
                batch_id,
            )),
            _ => None,
        }
    }

    /// The view of a stored, accepted record.
    pub(crate) fn from_record(persistence_id: &str, rec: JournalRecord) -> Self {
        let kind = match rec.kind {
            KIND_EVENT => RecordKind::Event,
            KIND_GAP => RecordKind::Gap,
            other => RecordKind::Unknown(other),
        };
        let last = rec.last();
        JournalRecordView {
            persistence_id: persistence_id.to_string(),
            kind,
            sequence_nr: rec.sequence_nr,
            last_sequence_nr: last,
            batch_start: rec.batch_start,
            batch_id: rec.batch_id,
            deleted_to: rec.deleted_to,
            highest: rec.highest,
            event: (kind == RecordKind::Event).then(|| rec.into_repr(persistence_id)),
        }
    }
}

//! The journal record format: one protobuf [`JournalRecord`] per Kafka record, key =
//! persistence id.
//!
//! A record is an event, a gap marker (sequence numbers of a rejected write), or a deletion
//! marker (the journal's deletion state, carrying the highest sequence number). Sequence
//! numbers are explicit; offsets are never assumed to equal them.

use bytes::{Bytes, BytesMut};
use kafka_persistence_wire::record::Record;
use prost::Message;

use crate::repr::PersistentRepr;

/// Record kind: an event.
pub(crate) const KIND_EVENT: i32 = 0;
/// Record kind: a gap marker for the sequence numbers `sequence_nr..=last_sequence_nr`.
pub(crate) const KIND_GAP: i32 = 1;
/// Record kind: a deletion marker.
pub(crate) const KIND_DELETION: i32 = 2;

/// The protobuf value of every journal record (hand-written, no protoc).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct JournalRecord {
    /// [`KIND_EVENT`], [`KIND_GAP`] or [`KIND_DELETION`].
    #[prost(int32, tag = "1")]
    pub(crate) kind: i32,
    /// The (first) sequence number this record accounts for.
    #[prost(uint64, tag = "2")]
    pub(crate) sequence_nr: u64,
    /// Gap markers: the last sequence number covered (events: 0 = same as `sequence_nr`).
    #[prost(uint64, tag = "3")]
    pub(crate) last_sequence_nr: u64,
    /// The first sequence number of the produce batch this record was written in.
    #[prost(uint64, tag = "4")]
    pub(crate) batch_start: u64,
    /// A random id of that produce batch: replay accepts a batch as a whole.
    #[prost(fixed64, tag = "5")]
    pub(crate) batch_id: u64,
    /// The writer's uuid.
    #[prost(string, tag = "6")]
    pub(crate) writer_uuid: String,
    /// The event's timestamp.
    #[prost(int64, tag = "7")]
    pub(crate) timestamp: i64,
    /// The payload manifest.
    #[prost(string, tag = "8")]
    pub(crate) manifest: String,
    /// Metadata; `Some(empty)` is kept distinct from `None`.
    #[prost(bytes = "bytes", optional, tag = "9")]
    pub(crate) metadata: Option<Bytes>,
    /// Tags.
    #[prost(string, repeated, tag = "10")]
    pub(crate) tags: Vec<String>,
    /// The event payload.
    #[prost(bytes = "bytes", tag = "11")]
    pub(crate) payload: Bytes,
    /// Deletion markers: every sequence number up to this one is deleted.
    #[prost(uint64, tag = "12")]
    pub(crate) deleted_to: u64,
    /// Deletion markers: the highest sequence number when the marker was written.
    #[prost(uint64, tag = "13")]
    pub(crate) highest: u64,
}

impl JournalRecord {
    /// The event record of `repr`, written in the batch `(batch_start, batch_id)`.
    pub(crate) fn event(repr: &PersistentRepr, batch_start: u64, batch_id: u64) -> Self {
        JournalRecord {
            kind: KIND_EVENT,
            sequence_nr: repr.sequence_nr,
            last_sequence_nr: 0,
            batch_start,
            batch_id,
            writer_uuid: repr.writer_uuid.clone(),
            timestamp: repr.timestamp,
            manifest: repr.manifest.clone(),
            metadata: repr.metadata.clone(),
            tags: repr.tags.clone(),
            payload: repr.payload.clone(),
            deleted_to: 0,
            highest: 0,
        }
    }

    /// A gap marker for `from..=to`.
    pub(crate) fn gap(from: u64, to: u64, batch_start: u64, batch_id: u64) -> Self {
        JournalRecord {
            kind: KIND_GAP,
            sequence_nr: from,
            last_sequence_nr: to,
            batch_start,
            batch_id,
            ..JournalRecord::default()
        }
    }

    /// A deletion marker.
    pub(crate) fn deletion(deleted_to: u64, highest: u64) -> Self {
        JournalRecord {
            kind: KIND_DELETION,
            deleted_to,
            highest,
            ..JournalRecord::default()
        }
    }

    /// The last sequence number this record accounts for.
    pub(crate) fn last(&self) -> u64 {
        self.last_sequence_nr.max(self.sequence_nr)
    }

    /// The Kafka record: key = persistence id, value = this message.
    pub(crate) fn to_record(&self, persistence_id: &str, timestamp: i64) -> Record {
        let mut value = BytesMut::with_capacity(self.encoded_len());
        // Encoding into a BytesMut with enough capacity cannot fail.
        let _ = self.encode(&mut value);
        Record::new(value.freeze(), timestamp)
            .with_key(Bytes::copy_from_slice(persistence_id.as_bytes()))
    }

    /// Decodes a record value (zero-copy for payload and metadata).
    pub(crate) fn decode_value(value: Bytes) -> Result<Self, prost::DecodeError> {
        JournalRecord::decode(value)
    }

    /// The event this record holds (`kind` must be [`KIND_EVENT`]).
    pub(crate) fn into_repr(self, persistence_id: &str) -> PersistentRepr {
        PersistentRepr {
            persistence_id: persistence_id.to_string(),
            sequence_nr: self.sequence_nr,
            payload: self.payload,
            manifest: self.manifest,
            writer_uuid: self.writer_uuid,
            timestamp: self.timestamp,
            metadata: self.metadata,
            tags: self.tags,
        }
    }
}

/// What a journal record is (see [`JournalRecordView`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordKind {
    /// An event (`kind` 0).
    Event,
    /// A gap marker for the sequence numbers of a rejected write (`kind` 1).
    Gap,
    /// A deletion marker (`kind` 2).
    Deletion,
    /// A kind this version does not know (ignored by replays).
    Unknown(i32),
}

/// A decoded record of a journal topic (either layout), for consumers that read the journal
/// topic with their own Kafka client. The value is the protobuf message documented in the
/// crate README ("Record format"); the key is the persistence id in UTF-8.
///
/// A record is *accepted* when its first sequence number continues the id's accepted ones
/// (`sequence_nr == highest + 1`) and, unless it is the first record of its batch
/// (`sequence_nr == batch_start`), its batch's previous records were accepted (same
/// `batch_id`); a consumer that applies this rule per key, in offset order, sees exactly
/// what replays show.
///
/// ```
/// use kafka_persistence_journal::{JournalRecordView, RecordKind};
/// // kind 0 (event), sequence_nr 1, batch_start 1, payload "hi"
/// let value = [0x10, 0x01, 0x20, 0x01, 0x5a, 0x02, b'h', b'i'];
/// let view = JournalRecordView::decode(b"cart-1", &value).unwrap();
/// assert_eq!(view.kind, RecordKind::Event);
/// let event = view.event.unwrap();
/// assert_eq!((event.persistence_id.as_str(), event.sequence_nr), ("cart-1", 1));
/// assert_eq!(&event.payload[..], b"hi");
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct JournalRecordView {
    /// The persistence id (the record key).
    pub persistence_id: String,
    /// What the record is.
    pub kind: RecordKind,
    /// The first sequence number it accounts for (events, gaps).
    pub sequence_nr: u64,
    /// The last sequence number it accounts for (gaps; events: `sequence_nr`).
    pub last_sequence_nr: u64,
    /// The first sequence number of the batch (atomic writes) it was written in.
    pub batch_start: u64,
    /// The random id of that batch.
    pub batch_id: u64,
    /// Deletion markers: every sequence number up to this one is deleted.
    pub deleted_to: u64,
    /// Deletion markers: the highest sequence number when the marker was written.
    pub highest: u64,
    /// The event, for [`RecordKind::Event`].
    pub event: Option<PersistentRepr>,
}

impl JournalRecordView {
    /// Decodes a journal record from its key and value bytes.
    pub fn decode(key: &[u8], value: &[u8]) -> Result<Self, prost::DecodeError> {
        let persistence_id = String::from_utf8_lossy(key).into_owned();
        let rec = JournalRecord::decode(value)?;
        let kind = match rec.kind {
            KIND_EVENT => RecordKind::Event,
            KIND_GAP => RecordKind::Gap,
            KIND_DELETION => RecordKind::Deletion,
            other => RecordKind::Unknown(other),
        };
        let last = rec.last();
        Ok(JournalRecordView {
            kind,
            sequence_nr: rec.sequence_nr,
            last_sequence_nr: last,
            batch_start: rec.batch_start,
            batch_id: rec.batch_id,
            deleted_to: rec.deleted_to,
            highest: rec.highest,
            event: (kind == RecordKind::Event).then(|| rec.into_repr(&persistence_id)),
            persistence_id,
        })
    }
}

/// An upper bound of the encoded size of a record with this key and value inside a batch.
pub(crate) fn record_size_bound(key_len: usize, value_len: usize) -> usize {
    // length varint (5) + attributes (1) + timestamp delta (10) + offset delta (5)
    // + key length (5) + key + value length (5) + value + header count (5)
    41 + key_len + value_len
}

/// The fixed size of a record batch header.
pub(crate) const BATCH_OVERHEAD: usize = 61;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn event_round_trips_exactly() {
        let repr = PersistentRepr::new("p", 7, &b"payload"[..])
            .with_manifest("m")
            .with_writer_uuid("w")
            .with_timestamp(-5)
            .with_metadata(Bytes::new())
            .with_tags(["a", "b"]);
        let rec = JournalRecord::event(&repr, 7, 99);
        let kafka = rec.to_record("p", 1);
        assert_eq!(kafka.key.as_deref(), Some(&b"p"[..]));
        let value = kafka.value.clone().unwrap_or_default();
        let back = JournalRecord::decode_value(value).unwrap();
        assert_eq!(back.kind, KIND_EVENT);
        assert_eq!(back.batch_id, 99);
        assert_eq!(back.into_repr("p"), repr);
    }

    #[test]
    fn none_metadata_stays_none() {
        let repr = PersistentRepr::new("p", 1, &b""[..]);
        let rec = JournalRecord::event(&repr, 1, 1);
        let value = rec.to_record("p", 0).value.unwrap_or_default();
        let back = JournalRecord::decode_value(value).unwrap().into_repr("p");
        assert_eq!(back.metadata, None);
        assert_eq!(back, repr);
    }

    #[test]
    fn markers_round_trip() {
        let gap = JournalRecord::gap(7, 9, 6, 3);
        let v = gap.to_record("p", 0).value.unwrap_or_default();
        let back = JournalRecord::decode_value(v).unwrap();
        assert_eq!((back.kind, back.sequence_nr, back.last()), (KIND_GAP, 7, 9));
        let del = JournalRecord::deletion(3, 5);
        let v = del.to_record("p", 0).value.unwrap_or_default();
        let back = JournalRecord::decode_value(v).unwrap();
        assert_eq!(
            (back.kind, back.deleted_to, back.highest),
            (KIND_DELETION, 3, 5)
        );
    }

    #[test]
    fn garbage_does_not_panic() {
        for bytes in [&[0xffu8, 0xff, 0xff][..], &[0x0a, 0x80][..], &[0x5a][..]] {
            let _ = JournalRecord::decode_value(Bytes::copy_from_slice(bytes));
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_events_round_trip(seq in 1u64.., payload in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            manifest in ".{0,8}", meta in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..8)),
            ts in proptest::num::i64::ANY, tags in proptest::collection::vec(".{0,4}", 0..3)) {
            let mut repr = PersistentRepr::new("pid", seq, payload).with_manifest(manifest).with_timestamp(ts).with_tags(tags);
            repr.metadata = meta.map(Bytes::from);
            let v = JournalRecord::event(&repr, seq, 1).to_record("pid", 0).value.unwrap_or_default();
            let back = JournalRecord::decode_value(v).unwrap().into_repr("pid");
            proptest::prop_assert_eq!(back, repr);
        }
    }
}

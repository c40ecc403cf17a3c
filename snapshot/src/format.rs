//! The value of an index record, the same in both layouts (see the crate documentation for
//! the keys and partitions of each layout): an [`IndexRecord`] protobuf with the metadata and
//! either the payload inline (small snapshots) or a [`Manifest`] naming the chunk records.
//! A null value (tombstone) deletes.

use bytes::Bytes;
use prost::Message;

/// The version written into every [`IndexRecord`].
pub(crate) const FORMAT_VERSION: u32 = 1;

/// The value of an index record.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct IndexRecord {
    /// Format version ([`FORMAT_VERSION`]).
    #[prost(uint32, tag = "1")]
    pub(crate) version: u32,
    /// The persistence id.
    #[prost(string, tag = "2")]
    pub(crate) persistence_id: String,
    /// The sequence number (equal to the one in the record key).
    #[prost(uint64, tag = "3")]
    pub(crate) sequence_nr: u64,
    /// The timestamp as stored.
    #[prost(int64, tag = "4")]
    pub(crate) timestamp: i64,
    /// User metadata (`Some` of empty is kept).
    #[prost(bytes = "bytes", optional, tag = "5")]
    pub(crate) metadata: Option<Bytes>,
    /// The payload, when stored inline.
    #[prost(bytes = "bytes", optional, tag = "6")]
    pub(crate) inline_payload: Option<Bytes>,
    /// The chunks, when stored in chunk records.
    #[prost(message, optional, tag = "7")]
    pub(crate) manifest: Option<Manifest>,
}

/// Where the chunks of a large snapshot are and how to check them.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Manifest {
    /// The save's generation (part of every chunk key).
    #[prost(uint64, tag = "1")]
    pub(crate) generation: u64,
    /// The partition holding the chunks.
    #[prost(int32, tag = "2")]
    pub(crate) partition: i32,
    /// The offset of each chunk, in chunk order.
    #[prost(int64, repeated, tag = "3")]
    pub(crate) offsets: Vec<i64>,
    /// The length of the whole payload.
    #[prost(uint64, tag = "4")]
    pub(crate) total_length: u64,
    /// CRC-32C of the whole payload.
    #[prost(fixed32, tag = "5")]
    pub(crate) crc32c: u32,
}

/// Why a stored record cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Corrupt(pub(crate) String);

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the payload of a decoded index record is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Payload {
    /// In the index record.
    Inline(Bytes),
    /// In chunk records.
    Chunked(Manifest),
}

/// Encodes an index record value.
pub(crate) fn encode_index(record: &IndexRecord) -> Bytes {
    Bytes::from(record.encode_to_vec())
}

/// Decodes and checks an index record value found under the key of `key_sequence_nr`.
pub(crate) fn decode_index(
    key_sequence_nr: u64,
    value: Bytes,
) -> Result<(IndexRecord, Payload), Corrupt> {
    let mut rec = IndexRecord::decode(value)
        .map_err(|e| Corrupt(format!("index record does not decode: {e}")))?;
    if rec.version != FORMAT_VERSION {
        return Err(Corrupt(format!("unknown format version {}", rec.version)));
    }
    if rec.sequence_nr != key_sequence_nr {
        return Err(Corrupt(format!(
            "sequence number {} differs from its key {key_sequence_nr}",
            rec.sequence_nr
        )));
    }
    let payload = match (rec.inline_payload.take(), rec.manifest.take()) {
        (Some(p), None) => Payload::Inline(p),
        (None, Some(m)) => {
            if m.offsets.is_empty() || m.offsets.len() > u32::MAX as usize {
                return Err(Corrupt(format!("manifest with {} chunks", m.offsets.len())));
            }
            Payload::Chunked(m)
        }
        (Some(_), Some(_)) => return Err(Corrupt("both inline payload and manifest".into())),
        (None, None) => return Err(Corrupt("neither inline payload nor manifest".into())),
    };
    Ok((rec, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64) -> IndexRecord {
        IndexRecord {
            version: FORMAT_VERSION,
            persistence_id: "p/1".into(),
            sequence_nr: seq,
            timestamp: 1_700_000_000_123,
            metadata: Some(Bytes::new()),
            inline_payload: Some(Bytes::from_static(b"")),
            manifest: None,
        }
    }

    #[test]
    fn index_records_round_trip_with_empty_options_kept() {
        let rec = record(15);
        let (back, payload) = decode_index(15, encode_index(&rec)).expect("decodes");
        assert_eq!(back.metadata, Some(Bytes::new()));
        assert_eq!(back.timestamp, rec.timestamp);
        assert_eq!(payload, Payload::Inline(Bytes::new()));
        let mut none = record(15);
        none.metadata = None;
        let (back, _) = decode_index(15, encode_index(&none)).expect("decodes");
        assert_eq!(back.metadata, None);
    }

    #[test]
    fn manifests_round_trip() {
        let mut rec = record(3);
        rec.inline_payload = None;
        let m = Manifest {
            generation: 7,
            partition: 1,
            offsets: vec![10, 11, 40],
            total_length: 3_000_000,
            crc32c: 0xdead_beef,
        };
        rec.manifest = Some(m.clone());
        let (_, payload) = decode_index(3, encode_index(&rec)).expect("decodes");
        assert_eq!(payload, Payload::Chunked(m));
    }

    #[test]
    fn garbage_and_inconsistent_records_are_corrupt() {
        assert!(decode_index(1, Bytes::from_static(b"\xff\xff\xff\xff")).is_err());
        assert!(decode_index(16, encode_index(&record(15))).is_err());
        let mut both = record(1);
        both.manifest = Some(Manifest::default());
        assert!(decode_index(1, encode_index(&both)).is_err());
        let mut neither = record(1);
        neither.inline_payload = None;
        assert!(decode_index(1, encode_index(&neither)).is_err());
        let mut future = record(1);
        future.version = 2;
        assert!(decode_index(1, encode_index(&future)).is_err());
        assert!(decode_index(0, Bytes::new()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200), seq in 0u64..20) {
            let _ = decode_index(seq, Bytes::from(bytes));
        }
    }
}

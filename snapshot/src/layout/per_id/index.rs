//! Layout v1: reading the index partition of a snapshot topic, the live metadata of one
//! persistence id.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_persistence_wire::{self as wire, Client, ConsumedRecord, FetchRequest};
use tracing::debug;

use crate::error::SnapshotError;
use crate::format::{decode_index, IndexRecord, Manifest, Payload};
use crate::layout::per_id::keys::{parse_index_key, INDEX_PARTITION};
/// Partition bytes asked for per fetch while scanning the index.
const SCAN_FETCH_BYTES: i32 = 1024 * 1024;

/// One live index entry.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    /// A decodable index record.
    Valid {
        /// The record (payload fields moved into `payload`).
        record: IndexRecord,
        /// Where the payload is.
        payload: Payload,
    },
    /// A record whose value cannot be used; the key's sequence number is still known.
    Corrupt {
        /// Why it cannot be used.
        reason: String,
        /// Its offset in the index partition.
        offset: i64,
    },
}

impl Entry {
    /// The timestamp of a decodable entry (`None`: the record does not decode).
    pub(crate) fn timestamp(&self) -> Option<i64> {
        match self {
            Entry::Valid { record, .. } => Some(record.timestamp),
            Entry::Corrupt { .. } => None,
        }
    }

    /// The manifest of a chunked entry.
    pub(crate) fn manifest(&self) -> Option<&Manifest> {
        match self {
            Entry::Valid {
                payload: Payload::Chunked(m),
                ..
            } => Some(m),
            _ => None,
        }
    }
}

/// The live index of one snapshot topic, as of the high watermark seen when the scan began.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    /// Live entries by sequence number.
    pub(crate) entries: BTreeMap<u64, Entry>,
    /// Manifests that were overwritten or deleted (their chunks are garbage), with their
    /// sequence numbers.
    pub(crate) superseded: Vec<(u64, Manifest)>,
}

impl Index {
    /// Applies one record of the index partition, in offset order.
    pub(crate) fn apply(&mut self, record: ConsumedRecord) {
        let Some(seq) = record.key.as_deref().and_then(parse_index_key) else {
            // Chunk records (single-partition topics) and foreign records.
            return;
        };
        let previous = match record.value {
            None => self.entries.remove(&seq),
            Some(value) => self
                .entries
                .insert(seq, decode_entry(seq, value, record.offset)),
        };
        if let Some(old) = previous.as_ref().and_then(Entry::manifest) {
            let still_live = self
                .entries
                .get(&seq)
                .and_then(Entry::manifest)
                .is_some_and(|m| m.generation == old.generation);
            if !still_live {
                self.superseded.push((seq, old.clone()));
            }
        }
    }

    /// The highest timestamp among the live, decodable entries.
    pub(crate) fn max_timestamp(&self) -> Option<i64> {
        self.entries
            .values()
            .filter_map(|e| match e {
                Entry::Valid { record, .. } => Some(record.timestamp),
                Entry::Corrupt { .. } => None,
            })
            .max()
    }
}

fn decode_entry(seq: u64, value: Bytes, offset: i64) -> Entry {
    match decode_index(seq, value) {
        Ok((record, payload)) => Entry::Valid { record, payload },
        Err(e) => Entry::Corrupt {
            reason: e.0,
            offset,
        },
    }
}

/// Reads the index partition of `topic` from its start up to the high watermark of the
/// first answer (records written after the scan began are not waited for).
pub(crate) async fn scan(client: &Client, topic: &str) -> Result<Index, SnapshotError> {
    let mut index = Index::default();
    let mut offset = 0_i64;
    let mut end: Option<i64> = None;
    loop {
        let req =
            FetchRequest::new(topic, INDEX_PARTITION, offset).with_max_bytes(SCAN_FETCH_BYTES);
        let resp = match client.fetch(req).await {
            Ok(r) => r,
            Err(wire::Error::OffsetOutOfRange {
                log_start_offset, ..
            }) if log_start_offset > offset => {
                debug!(
                    topic,
                    offset,
                    log_start_offset,
                    reason = "offset below log start",
                    "index scan restarts at the log start"
                );
                offset = log_start_offset;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let end = *end.get_or_insert(resp.high_watermark);
        for record in resp.records {
            if record.offset >= end {
                break;
            }
            index.apply(record);
        }
        if resp.next_offset >= end {
            return Ok(index);
        }
        if resp.next_offset <= offset {
            return Err(SnapshotError::Stalled {
                topic: topic.to_owned(),
                offset,
            });
        }
        offset = resp.next_offset;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{encode_index, FORMAT_VERSION};
    use crate::layout::per_id::keys::index_key;

    fn rec(offset: i64, seq: u64, value: Option<Bytes>) -> ConsumedRecord {
        ConsumedRecord {
            offset,
            timestamp: 0,
            key: Some(index_key(seq)),
            value,
            headers: Vec::new(),
        }
    }

    fn value(seq: u64, ts: i64, generation: Option<u64>) -> Bytes {
        encode_index(&IndexRecord {
            version: FORMAT_VERSION,
            persistence_id: "p".into(),
            sequence_nr: seq,
            timestamp: ts,
            metadata: None,
            inline_payload: generation.is_none().then(|| Bytes::from_static(b"x")),
            manifest: generation.map(|g| Manifest {
                generation: g,
                partition: 1,
                offsets: vec![0],
                total_length: 1,
                crc32c: 0,
            }),
        })
    }

    #[test]
    fn later_records_win_and_tombstones_delete() {
        let mut ix = Index::default();
        ix.apply(rec(0, 11, Some(value(11, 100, None))));
        ix.apply(rec(1, 12, Some(value(12, 200, None))));
        ix.apply(rec(2, 11, Some(value(11, 300, None))));
        ix.apply(rec(3, 12, None));
        assert_eq!(ix.entries.keys().copied().collect::<Vec<_>>(), vec![11]);
        assert_eq!(ix.max_timestamp(), Some(300));
        assert!(ix.superseded.is_empty());
    }

    #[test]
    fn overwritten_and_deleted_manifests_are_superseded() {
        let mut ix = Index::default();
        ix.apply(rec(0, 5, Some(value(5, 1, Some(1)))));
        ix.apply(rec(1, 5, Some(value(5, 2, Some(2)))));
        ix.apply(rec(2, 6, Some(value(6, 3, Some(3)))));
        ix.apply(rec(3, 6, None));
        let gens: Vec<_> = ix
            .superseded
            .iter()
            .map(|(s, m)| (*s, m.generation))
            .collect();
        assert_eq!(gens, vec![(5, 1), (6, 3)]);
        assert_eq!(ix.entries[&5].manifest().map(|m| m.generation), Some(2));
    }

    #[test]
    fn undecodable_values_are_kept_as_corrupt_entries_and_foreign_keys_ignored() {
        let mut ix = Index::default();
        ix.apply(rec(0, 7, Some(Bytes::from_static(b"\x0a\xff"))));
        ix.apply(ConsumedRecord {
            offset: 1,
            timestamp: 0,
            key: Some(Bytes::from_static(b"static")),
            value: Some(Bytes::from_static(b"x")),
            headers: Vec::new(),
        });
        assert_eq!(ix.entries.len(), 1);
        assert!(matches!(ix.entries[&7], Entry::Corrupt { offset: 0, .. }));
        assert_eq!(ix.max_timestamp(), None);
    }
}

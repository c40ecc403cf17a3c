//! Layout v2's in-memory index of one index partition: persistence id -> its live snapshots
//! (sequence number, timestamp, the offset of the index record, and whether the payload is
//! inline, chunked, or the record does not decode).
//!
//! It is changed only by applying the partition's records in offset order ([`PartitionIndex::apply`]),
//! from the store's position up to the high watermark, so it is exactly the compacted state
//! of the partition below [`PartitionIndex::position`]. The store's own writes are learnt the
//! same way (the catch-up before each call reads them), which keeps one order for all.
//!
//! Memory: per id, its key (`Box<str>`, 16 bytes plus the id) and a boxed slice of 32-byte
//! entries (16 bytes plus 32 per live snapshot), in a hash map.

use std::collections::HashMap;

use kafka_persistence_wire::ConsumedRecord;
use tracing::debug;

use crate::format::{decode_index, Payload};
use crate::layout::shared::keys::parse_index_key;

/// Where a snapshot's payload is, as far as the index needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// In the index record.
    Inline,
    /// In chunk records named by the index record's manifest.
    Chunked,
    /// The index record does not decode (its timestamp is unknown).
    Corrupt,
}

/// One live snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The sequence number.
    pub(crate) sequence_nr: u64,
    /// The timestamp (meaningless for [`Kind::Corrupt`]).
    pub(crate) timestamp: i64,
    /// The offset of the index record.
    pub(crate) offset: i64,
    /// Where the payload is.
    pub(crate) kind: Kind,
}

impl Entry {
    /// The timestamp if the record decodes.
    pub(crate) fn decoded_timestamp(&self) -> Option<i64> {
        (self.kind != Kind::Corrupt).then_some(self.timestamp)
    }
}

/// The index of one partition.
#[derive(Debug, Default)]
pub(crate) struct PartitionIndex {
    /// The next offset to apply.
    position: i64,
    /// Live snapshots per id, sorted by sequence number, never empty.
    ids: HashMap<Box<str>, Box<[Entry]>>,
}

impl PartitionIndex {
    /// The next offset to apply.
    pub(crate) fn position(&self) -> i64 {
        self.position
    }

    /// Moves the position forward to `offset` (records below it were read, or are gone).
    pub(crate) fn advance_to(&mut self, offset: i64) {
        self.position = self.position.max(offset);
    }

    /// Forgets everything (the partition was truncated or recreated) and restarts at `offset`.
    pub(crate) fn reset(&mut self, offset: i64) {
        self.ids = HashMap::new();
        self.position = offset;
    }

    /// The number of ids with live snapshots.
    pub(crate) fn id_count(&self) -> usize {
        self.ids.len()
    }

    /// The live snapshots of `persistence_id`, by sequence number.
    pub(crate) fn snapshots(&self, persistence_id: &str) -> Vec<Entry> {
        self.ids
            .get(persistence_id)
            .map(|e| e.to_vec())
            .unwrap_or_default()
    }

    /// Applies one record of the partition (records come in offset order; one below the
    /// position was applied before and is ignored).
    pub(crate) fn apply(&mut self, record: &ConsumedRecord) {
        if record.offset < self.position {
            return;
        }
        self.position = record.offset + 1;
        let Some((id, seq)) = record.key.as_deref().and_then(parse_index_key) else {
            debug!(
                offset = record.offset,
                reason = "not an index key",
                "ignoring a foreign record in a snapshot index partition"
            );
            return;
        };
        match &record.value {
            None => self.remove(id, seq),
            Some(value) => {
                let entry = match decode_index(seq, value.clone()) {
                    Ok((rec, _)) if rec.persistence_id != id => Entry {
                        sequence_nr: seq,
                        timestamp: 0,
                        offset: record.offset,
                        kind: Kind::Corrupt,
                    },
                    Ok((rec, payload)) => Entry {
                        sequence_nr: seq,
                        timestamp: rec.timestamp,
                        offset: record.offset,
                        kind: match payload {
                            Payload::Inline(_) => Kind::Inline,
                            Payload::Chunked(_) => Kind::Chunked,
                        },
                    },
                    Err(_) => Entry {
                        sequence_nr: seq,
                        timestamp: 0,
                        offset: record.offset,
                        kind: Kind::Corrupt,
                    },
                };
                self.upsert(id, entry);
            }
        }
    }

    fn upsert(&mut self, id: &str, entry: Entry) {
        match self.ids.get_mut(id) {
            None => {
                self.ids.insert(id.into(), Box::new([entry]));
            }
            Some(entries) => {
                match entries.binary_search_by_key(&entry.sequence_nr, |e| e.sequence_nr) {
                    Ok(i) => entries[i] = entry,
                    Err(i) => {
                        let mut v = Vec::with_capacity(entries.len() + 1);
                        v.extend_from_slice(&entries[..i]);
                        v.push(entry);
                        v.extend_from_slice(&entries[i..]);
                        *entries = v.into_boxed_slice();
                    }
                }
            }
        }
    }

    fn remove(&mut self, id: &str, seq: u64) {
        let Some(entries) = self.ids.get_mut(id) else {
            return;
        };
        let Ok(i) = entries.binary_search_by_key(&seq, |e| e.sequence_nr) else {
            return;
        };
        if entries.len() == 1 {
            self.ids.remove(id);
        } else {
            let mut v = entries.to_vec();
            v.remove(i);
            *entries = v.into_boxed_slice();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{encode_index, IndexRecord, Manifest, FORMAT_VERSION};
    use crate::layout::shared::keys::index_key;
    use bytes::Bytes;

    fn value(id: &str, seq: u64, ts: i64, chunked: bool) -> Bytes {
        encode_index(&IndexRecord {
            version: FORMAT_VERSION,
            persistence_id: id.into(),
            sequence_nr: seq,
            timestamp: ts,
            metadata: None,
            inline_payload: (!chunked).then(|| Bytes::from_static(b"x")),
            manifest: chunked.then(|| Manifest {
                generation: 1,
                partition: 17,
                offsets: vec![3],
                total_length: 1,
                crc32c: 0,
            }),
        })
    }

    fn rec(offset: i64, key: Bytes, value: Option<Bytes>) -> ConsumedRecord {
        ConsumedRecord {
            offset,
            timestamp: 0,
            key: Some(key),
            value,
            headers: Vec::new(),
        }
    }

    #[test]
    fn records_apply_in_order_per_id_and_tombstones_delete() {
        let mut ix = PartitionIndex::default();
        ix.apply(&rec(
            0,
            index_key("a", 12),
            Some(value("a", 12, 200, false)),
        ));
        ix.apply(&rec(1, index_key("a", 11), Some(value("a", 11, 100, true))));
        ix.apply(&rec(2, index_key("b", 11), Some(value("b", 11, 50, false))));
        ix.apply(&rec(
            3,
            index_key("a", 12),
            Some(value("a", 12, 300, false)),
        ));
        let a = ix.snapshots("a");
        assert_eq!(
            a.iter()
                .map(|e| (e.sequence_nr, e.timestamp, e.offset, e.kind))
                .collect::<Vec<_>>(),
            vec![(11, 100, 1, Kind::Chunked), (12, 300, 3, Kind::Inline)]
        );
        ix.apply(&rec(4, index_key("a", 11), None));
        ix.apply(&rec(5, index_key("b", 11), None));
        ix.apply(&rec(6, index_key("c", 1), None));
        assert_eq!(ix.snapshots("a").len(), 1);
        assert!(ix.snapshots("b").is_empty());
        assert_eq!(ix.id_count(), 1, "ids without snapshots are forgotten");
        assert_eq!(ix.position(), 7);
        // Records below the position were applied already.
        ix.apply(&rec(2, index_key("b", 11), Some(value("b", 11, 50, false))));
        assert!(ix.snapshots("b").is_empty());
    }

    #[test]
    fn undecodable_or_misattributed_values_are_corrupt_and_foreign_keys_ignored() {
        let mut ix = PartitionIndex::default();
        ix.apply(&rec(
            0,
            index_key("a", 7),
            Some(Bytes::from_static(b"\x0a\xff")),
        ));
        ix.apply(&rec(
            1,
            index_key("a", 8),
            Some(value("other", 8, 1, false)),
        ));
        ix.apply(&rec(2, index_key("a", 9), Some(value("a", 10, 1, false))));
        ix.apply(&rec(
            3,
            Bytes::from_static(b"static"),
            Some(Bytes::from_static(b"x")),
        ));
        let kinds: Vec<_> = ix
            .snapshots("a")
            .iter()
            .map(|e| (e.sequence_nr, e.kind, e.decoded_timestamp()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (7, Kind::Corrupt, None),
                (8, Kind::Corrupt, None),
                (9, Kind::Corrupt, None)
            ]
        );
        assert_eq!(ix.id_count(), 1);
        assert_eq!(ix.position(), 4);
        ix.reset(10);
        assert_eq!((ix.id_count(), ix.position()), (0, 10));
    }

    proptest::proptest! {
        /// Any sequence of saves, overwrites and tombstones over a few ids and sequence
        /// numbers leaves exactly the live (newest, not deleted) record per key, as a map
        /// from key to its last record says.
        #[test]
        fn the_index_is_the_compacted_partition(ops in proptest::collection::vec((0usize..3, 1u64..5, proptest::bool::ANY, proptest::bool::ANY), 0..60)) {
            let ids = ["a", "b/ä", ""];
            let mut ix = PartitionIndex::default();
            let mut model: std::collections::BTreeMap<(&str, u64), (i64, i64, Kind)> = Default::default();
            for (offset, (id, seq, delete, chunked)) in ops.into_iter().enumerate() {
                let offset = offset as i64;
                let id = ids[id];
                let ts = 1_000 + offset;
                let value = (!delete).then(|| value(id, seq, ts, chunked));
                ix.apply(&rec(offset, index_key(id, seq), value));
                if delete {
                    model.remove(&(id, seq));
                } else {
                    let kind = if chunked { Kind::Chunked } else { Kind::Inline };
                    model.insert((id, seq), (ts, offset, kind));
                }
            }
            for id in ids {
                let got: Vec<_> = ix.snapshots(id).iter().map(|e| (e.sequence_nr, e.timestamp, e.offset, e.kind)).collect();
                let want: Vec<_> = model.iter().filter(|((i, _), _)| *i == id).map(|((_, s), (t, o, k))| (*s, *t, *o, *k)).collect();
                proptest::prop_assert_eq!(got, want);
            }
            let live_ids = ids.iter().filter(|id| model.keys().any(|(i, _)| i == *id)).count();
            proptest::prop_assert_eq!(ix.id_count(), live_ids);
        }

        #[test]
        fn arbitrary_records_never_panic(key in proptest::collection::vec(proptest::num::u8::ANY, 0..40), value in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..80))) {
            let mut ix = PartitionIndex::default();
            ix.apply(&rec(0, key.into(), value.map(Bytes::from)));
            proptest::prop_assert_eq!(ix.position(), 1);
        }
    }
}

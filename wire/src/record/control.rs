//! Control records: the transaction markers a transaction coordinator writes into each
//! partition of a transaction when it ends (KIP-98).
//!
//! A control batch has the transactional and control attribute bits set, the producer id and
//! epoch of the transaction, no sequence, and one record:
//! - key: version `i16` (0), type `i16` (0 = abort, 1 = commit);
//! - value: version `i16` (0), coordinator epoch `i32`.
//!
//! Readers must never deliver control records as data. Unknown types are ignored by readers
//! (Kafka defines more types for KRaft's own log; they never appear in a data partition).

use bytes::{BufMut, Bytes, BytesMut};

use super::{encode_batch, EncodeOptions, Record, RecordError};

/// The two markers that end a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    /// The transaction's records are discarded by `read_committed` readers.
    Abort,
    /// The transaction's records become visible to `read_committed` readers.
    Commit,
}

impl ControlType {
    /// The type field of the control record key.
    pub fn id(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        }
    }

    /// The marker type named by a control record `key`, if it is a well-formed abort or
    /// commit key (version 0, at least 4 bytes).
    pub fn from_key(key: &[u8]) -> Option<ControlType> {
        let version = i16::from_be_bytes([*key.first()?, *key.get(1)?]);
        let kind = i16::from_be_bytes([*key.get(2)?, *key.get(3)?]);
        match (version, kind) {
            (0, 0) => Some(ControlType::Abort),
            (0, 1) => Some(ControlType::Commit),
            _ => None,
        }
    }
}

/// The control record of a `kind` marker.
pub fn control_record(kind: ControlType, coordinator_epoch: i32, timestamp: i64) -> Record {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(0);
    key.put_i16(kind.id());
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(0);
    value.put_i32(coordinator_epoch);
    Record {
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: Vec::new(),
        timestamp,
    }
}

/// A whole control batch (base offset 0, as a producer would send it) ending the
/// transaction of `producer_id`/`producer_epoch`.
pub fn encode_marker(
    kind: ControlType,
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Result<Bytes, RecordError> {
    let opts = EncodeOptions {
        producer_id,
        producer_epoch,
        is_transactional: true,
        is_control: true,
        ..Default::default()
    };
    let mut out = BytesMut::with_capacity(96);
    encode_batch(
        &[control_record(kind, coordinator_epoch, timestamp)],
        &opts,
        &mut out,
    )?;
    Ok(out.freeze())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::record::{decode_batch, DecodeLimits};

    #[test]
    fn marker_round_trips() {
        for kind in [ControlType::Abort, ControlType::Commit] {
            let mut b = encode_marker(kind, 7, 3, 0, 1_000).unwrap();
            let d = decode_batch(&mut b, &DecodeLimits::default()).unwrap();
            assert!(d.header.is_control() && d.header.is_transactional());
            assert_eq!((d.header.producer_id, d.header.producer_epoch), (7, 3));
            assert_eq!(d.header.base_sequence, -1);
            let key = d.records[0].key.as_ref().unwrap();
            assert_eq!(ControlType::from_key(key), Some(kind));
        }
    }

    #[test]
    fn malformed_keys_are_no_marker() {
        assert_eq!(ControlType::from_key(&[]), None);
        assert_eq!(ControlType::from_key(&[0, 0, 0]), None);
        assert_eq!(ControlType::from_key(&[0, 1, 0, 0]), None);
        assert_eq!(ControlType::from_key(&[0, 0, 0, 2]), None);
        assert_eq!(
            ControlType::from_key(&[0, 0, 0, 1, 9]),
            Some(ControlType::Commit)
        );
    }
}

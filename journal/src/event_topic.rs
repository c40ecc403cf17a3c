//! Event topics: every written event is also published to user topics chosen by an
//! [`EventTopicMapper`], keyed by persistence id, with a value wire-compatible with the Scala
//! plugin's `EventFormat` protobuf, so existing external consumers keep working.

use bytes::{Bytes, BytesMut};
use prost::Message;

use crate::repr::PersistentRepr;

/// Chooses the user topics an event is published to (zero or more).
pub trait EventTopicMapper: Send + Sync {
    /// The topics `event` is published to.
    fn topics_for(&self, event: &PersistentRepr) -> Vec<String>;
}

/// Publishes every event to the topic `events`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultEventTopicMapper;

impl EventTopicMapper for DefaultEventTopicMapper {
    fn topics_for(&self, _event: &PersistentRepr) -> Vec<String> {
        vec!["events".to_string()]
    }
}

/// Publishes nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmptyEventTopicMapper;

impl EventTopicMapper for EmptyEventTopicMapper {
    fn topics_for(&self, _event: &PersistentRepr) -> Vec<String> {
        Vec::new()
    }
}

impl<F> EventTopicMapper for F
where
    F: Fn(&PersistentRepr) -> Vec<String> + Send + Sync,
{
    fn topics_for(&self, event: &PersistentRepr) -> Vec<String> {
        self(event)
    }
}

/// `EventFormat` of the Scala plugin (`EventFormats.proto`, proto2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct EventFormat {
    /// `optional string persistenceId = 1`.
    #[prost(string, optional, tag = "1")]
    pub persistence_id: Option<String>,
    /// `optional int64 sequenceNr = 2`.
    #[prost(int64, optional, tag = "2")]
    pub sequence_nr: Option<i64>,
    /// `optional EventDataFormat data = 3`.
    #[prost(message, optional, tag = "3")]
    pub data: Option<EventDataFormat>,
}

/// `EventDataFormat` of the Scala plugin.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EventDataFormat {
    /// `optional int32 serializerId = 1`.
    #[prost(int32, optional, tag = "1")]
    pub serializer_id: Option<i32>,
    /// `optional bytes data = 2`: the payload.
    #[prost(bytes = "bytes", optional, tag = "2")]
    pub data: Option<Bytes>,
    /// `optional bytes dataManifest = 3`: the manifest, if any.
    #[prost(bytes = "bytes", optional, tag = "3")]
    pub data_manifest: Option<Bytes>,
}

/// An event as published to an event topic, decoded.
///
/// ```
/// use kafka_persistence_journal::{Event, PersistentRepr};
/// let repr = PersistentRepr::new("cart-1", 3, &b"added"[..]).with_manifest("Added");
/// let bytes = Event::from_repr(&repr, Some(7)).encode_to_bytes();
/// let event = Event::decode(&bytes).unwrap();
/// assert_eq!(event.persistence_id, "cart-1");
/// assert_eq!(event.sequence_nr, 3);
/// assert_eq!(&event.payload[..], b"added");
/// assert_eq!(event.manifest.as_deref(), Some(&b"Added"[..]));
/// assert_eq!(event.serializer_id, Some(7));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The persistence id.
    pub persistence_id: String,
    /// The sequence number.
    pub sequence_nr: u64,
    /// The payload.
    pub payload: Bytes,
    /// The manifest bytes, if the producer set one.
    pub manifest: Option<Bytes>,
    /// The serializer id, if the producer set one.
    pub serializer_id: Option<i32>,
}

/// Why an event-topic value could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventDecodeError {
    /// Not a valid protobuf `EventFormat`.
    #[error("invalid EventFormat protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A required field is missing or out of range.
    #[error("invalid event: {0}")]
    Invalid(&'static str),
}

impl Event {
    /// The published form of `repr`.
    pub fn from_repr(repr: &PersistentRepr, serializer_id: Option<i32>) -> Self {
        Event {
            persistence_id: repr.persistence_id.clone(),
            sequence_nr: repr.sequence_nr,
            payload: repr.payload.clone(),
            manifest: (!repr.manifest.is_empty())
                .then(|| Bytes::copy_from_slice(repr.manifest.as_bytes())),
            serializer_id,
        }
    }

    /// Decodes an event-topic record value (`EventFormat`).
    pub fn decode(value: &[u8]) -> Result<Event, EventDecodeError> {
        let f = EventFormat::decode(value)?;
        let persistence_id = f
            .persistence_id
            .ok_or(EventDecodeError::Invalid("persistenceId missing"))?;
        let sequence_nr = f
            .sequence_nr
            .ok_or(EventDecodeError::Invalid("sequenceNr missing"))?;
        let sequence_nr = u64::try_from(sequence_nr)
            .map_err(|_| EventDecodeError::Invalid("negative sequenceNr"))?;
        let data = f.data.unwrap_or_default();
        Ok(Event {
            persistence_id,
            sequence_nr,
            payload: data.data.unwrap_or_default(),
            manifest: data.data_manifest,
            serializer_id: data.serializer_id,
        })
    }

    /// The `EventFormat` protobuf of this event.
    pub fn to_format(&self) -> EventFormat {
        EventFormat {
            persistence_id: Some(self.persistence_id.clone()),
            sequence_nr: Some(i64::try_from(self.sequence_nr).unwrap_or(i64::MAX)),
            data: Some(EventDataFormat {
                serializer_id: self.serializer_id,
                data: Some(self.payload.clone()),
                data_manifest: self.manifest.clone(),
            }),
        }
    }

    /// [`Event::from_repr`] and [`Event::encode_to_bytes`] in one step, without copying the
    /// id or the payload into an `Event` first (the publish path of every write).
    pub(crate) fn encode_repr(repr: &PersistentRepr, serializer_id: Option<i32>) -> Bytes {
        let manifest = (!repr.manifest.is_empty()).then_some(repr.manifest.as_bytes());
        encode_event(
            &repr.persistence_id,
            repr.sequence_nr,
            &repr.payload,
            manifest,
            serializer_id,
        )
    }

    /// Encodes this event as an event-topic record value.
    pub fn encode_to_bytes(&self) -> Bytes {
        encode_event(
            &self.persistence_id,
            self.sequence_nr,
            &self.payload,
            self.manifest.as_deref(),
            self.serializer_id,
        )
    }
}

/// The `EventFormat` protobuf of an event, written directly (the same bytes as prost's
/// encoding of [`Event::to_format`], without building the message).
fn encode_event(
    persistence_id: &str,
    sequence_nr: u64,
    payload: &[u8],
    manifest: Option<&[u8]>,
    serializer_id: Option<i32>,
) -> Bytes {
    use prost::encoding::{self, encode_key, encode_varint, encoded_len_varint, key_len, WireType};
    let bytes_len =
        |tag: u32, b: &[u8]| key_len(tag) + encoded_len_varint(b.len() as u64) + b.len();
    let put_bytes = |tag: u32, b: &[u8], buf: &mut BytesMut| {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(b.len() as u64, buf);
        buf.extend_from_slice(b);
    };
    let sequence_nr = i64::try_from(sequence_nr).unwrap_or(i64::MAX);
    let data_len = serializer_id.map_or(0, |id| encoding::int32::encoded_len(1, &id))
        + bytes_len(2, payload)
        + manifest.map_or(0, |m| bytes_len(3, m));
    let len = bytes_len(1, persistence_id.as_bytes())
        + encoding::int64::encoded_len(2, &sequence_nr)
        + key_len(3)
        + encoded_len_varint(data_len as u64)
        + data_len;
    let mut buf = BytesMut::with_capacity(len);
    put_bytes(1, persistence_id.as_bytes(), &mut buf);
    encoding::int64::encode(2, &sequence_nr, &mut buf);
    encode_key(3, WireType::LengthDelimited, &mut buf);
    encode_varint(data_len as u64, &mut buf);
    if let Some(id) = serializer_id {
        encoding::int32::encode(1, &id, &mut buf);
    }
    put_bytes(2, payload, &mut buf);
    if let Some(m) = manifest {
        put_bytes(3, m, &mut buf);
    }
    buf.freeze()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_encoding_is_prosts_byte_for_byte() {
        let cases = [
            (PersistentRepr::new("cart-1", 3, &b"added"[..]), None),
            (
                PersistentRepr::new("ö-id", u64::MAX, vec![7u8; 300]).with_manifest("Added"),
                Some(-5),
            ),
            (PersistentRepr::new("", 0, Vec::new()), Some(0)),
        ];
        for (repr, serializer_id) in cases {
            let event = Event::from_repr(&repr, serializer_id);
            let via_prost = Bytes::from(event.to_format().encode_to_vec());
            assert_eq!(event.encode_to_bytes(), via_prost, "{repr:?}");
            assert_eq!(
                Event::encode_repr(&repr, serializer_id),
                via_prost,
                "{repr:?}"
            );
        }
    }

    #[test]
    fn wire_layout_matches_scala_event_format() {
        let e = Event {
            persistence_id: "a".into(),
            sequence_nr: 2,
            payload: Bytes::from_static(b"x"),
            manifest: Some(Bytes::from_static(b"M")),
            serializer_id: Some(5),
        };
        // field 1 (len) "a", field 2 (varint) 2, field 3 (len) { 1: 5, 2: "x", 3: "M" }
        let expected: &[u8] = &[
            0x0a, 1, b'a', 0x10, 2, 0x1a, 8, 0x08, 5, 0x12, 1, b'x', 0x1a, 1, b'M',
        ];
        assert_eq!(&e.encode_to_bytes()[..], expected);
        assert_eq!(Event::decode(expected).unwrap(), e);
    }

    #[test]
    fn missing_fields_are_errors_not_panics() {
        assert!(Event::decode(&[]).is_err());
        assert!(Event::decode(&[0x0a, 1, b'a']).is_err());
        assert!(Event::decode(&[0xff, 0xff]).is_err());
        assert!(Event::decode(&[0x0a, 1, b'a', 0x10, 0x7f]).is_ok());
    }

    #[test]
    fn mappers() {
        let r = PersistentRepr::new("a", 1, &b""[..]);
        assert_eq!(DefaultEventTopicMapper.topics_for(&r), vec!["events"]);
        assert!(EmptyEventTopicMapper.topics_for(&r).is_empty());
        let custom = |e: &PersistentRepr| vec![format!("t-{}", e.persistence_id)];
        assert_eq!(custom.topics_for(&r), vec!["t-a"]);
    }
}

//! The behaviour a persistent stage runs per input partition: the user's [`Behavior`] with
//! each event tagged with the offset of the input record that produced it, and the state
//! carrying the next input offset to apply. Both are stored by prefixing the user's encoding
//! with the offset (8 bytes, big-endian):
//!
//! - event payload: `input offset` ++ the user's event payload (the manifest is the user's);
//! - snapshot: `next input offset` ++ the user's state.
//!
//! Applying an event (while handling or while recovering) also keeps a copy of it when the
//! stage sends outputs, so the stage can send the outputs of what it just persisted, and
//! after recovery those of the replayed events whose input was not committed.

use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};

use crate::entity::{Behavior, CodecError};
use crate::snapshot_policy::SnapshotPolicy;
use crate::wire::sync::lock;
use crate::wire::ConsumerRecord;

/// The state of one input partition.
#[derive(Debug, Default)]
pub(super) struct TaggedState<S> {
    /// The user's state.
    pub(super) inner: S,
    /// The offset after the last input record whose events were persisted (0: none yet).
    pub(super) next_offset: i64,
}

/// An event with its input record's offset.
#[derive(Debug, Clone)]
pub(super) struct TaggedEvent<E> {
    pub(super) offset: i64,
    pub(super) event: E,
}

/// See the module docs.
pub(super) struct Tagged<B: Behavior> {
    inner: Arc<B>,
    /// Copies of the applied events, when the stage has outputs.
    applied: Option<Mutex<Vec<TaggedEvent<B::Event>>>>,
}

impl<B: Behavior> std::fmt::Debug for Tagged<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tagged")
            .field("keeps_applied", &self.applied.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Behavior> Tagged<B> {
    pub(super) fn new(inner: Arc<B>, keep_applied: bool) -> Self {
        Tagged {
            inner,
            applied: keep_applied.then(|| Mutex::new(Vec::new())),
        }
    }

    /// The events applied since the last call (empty without outputs).
    pub(super) fn take_applied(&self) -> Vec<TaggedEvent<B::Event>> {
        self.applied
            .as_ref()
            .map(|a| std::mem::take(&mut *lock(a)))
            .unwrap_or_default()
    }
}

const OFFSET_LEN: usize = 8;

fn framed(offset: i64, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(OFFSET_LEN + payload.len());
    b.put_i64(offset);
    b.put_slice(payload);
    b.freeze()
}

fn unframed(what: &str, bytes: &Bytes) -> Result<(i64, Bytes), CodecError> {
    if bytes.len() < OFFSET_LEN {
        return Err(CodecError::new(format!(
            "a persistent stage's {what} of {} bytes has no input offset (8 bytes)",
            bytes.len()
        )));
    }
    let mut raw = [0u8; OFFSET_LEN];
    raw.copy_from_slice(&bytes[..OFFSET_LEN]);
    Ok((i64::from_be_bytes(raw), bytes.slice(OFFSET_LEN..)))
}

impl<B> Behavior for Tagged<B>
where
    B: Behavior<Command = ConsumerRecord>,
    B::Event: Clone,
{
    type State = TaggedState<B::State>;
    type Command = ConsumerRecord;
    type Event = TaggedEvent<B::Event>;
    type Rejection = B::Rejection;

    fn handle(
        &self,
        state: &Self::State,
        record: ConsumerRecord,
    ) -> Result<Vec<Self::Event>, Self::Rejection> {
        let offset = record.offset();
        let events = self.inner.handle(&state.inner, record)?;
        Ok(events
            .into_iter()
            .map(|event| TaggedEvent { offset, event })
            .collect())
    }

    fn apply(&self, state: &mut Self::State, event: &Self::Event) {
        self.inner.apply(&mut state.inner, &event.event);
        state.next_offset = state.next_offset.max(event.offset + 1);
        if let Some(a) = &self.applied {
            lock(a).push(event.clone());
        }
    }

    fn encode_event(&self, event: &Self::Event) -> Result<(String, Bytes), CodecError> {
        let (manifest, payload) = self.inner.encode_event(&event.event)?;
        Ok((manifest, framed(event.offset, &payload)))
    }

    fn decode_event(&self, manifest: &str, payload: &Bytes) -> Result<Self::Event, CodecError> {
        let (offset, payload) = unframed("event", payload)?;
        let event = self.inner.decode_event(manifest, &payload)?;
        Ok(TaggedEvent { offset, event })
    }

    fn encode_state(&self, state: &Self::State) -> Result<Bytes, CodecError> {
        let inner = self.inner.encode_state(&state.inner)?;
        Ok(framed(state.next_offset, &inner))
    }

    fn decode_state(&self, snapshot: &Bytes) -> Result<Self::State, CodecError> {
        let (next_offset, inner) = unframed("snapshot", snapshot)?;
        Ok(TaggedState {
            inner: self.inner.decode_state(&inner)?,
            next_offset,
        })
    }

    /// The user's policy without the automatic snapshots: the stage saves them itself, only
    /// after the offsets they cover are committed (see the stage's docs).
    fn snapshot_policy(&self) -> SnapshotPolicy {
        SnapshotPolicy {
            every: None,
            ..self.inner.snapshot_policy()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_short_ones_are_refused() {
        let f = framed(42, b"abc");
        assert_eq!(f.len(), 11);
        assert_eq!(
            unframed("event", &f).expect("framed"),
            (42, Bytes::from_static(b"abc"))
        );
        assert_eq!(unframed("event", &framed(-1, b"")).expect("framed").0, -1);
        let e = match unframed("snapshot", &Bytes::from_static(b"1234567")) {
            Err(e) => e,
            Ok(v) => panic!("7 bytes were read as {v:?}"),
        };
        assert!(e.to_string().contains("snapshot of 7 bytes"), "{e}");
    }
}

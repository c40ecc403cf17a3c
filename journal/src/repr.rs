//! The journal's data types: [`PersistentRepr`] and [`AtomicWrite`].

use bytes::Bytes;

/// One persisted event of a persistence id.
///
/// Every field is stored and replayed exactly as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistentRepr {
    /// The entity's persistence id.
    pub persistence_id: String,
    /// The sequence number, starting at 1, contiguous per persistence id.
    pub sequence_nr: u64,
    /// The serialized event.
    pub payload: Bytes,
    /// The payload's manifest (type hint for deserialization); empty by default.
    pub manifest: String,
    /// The id of the writing incarnation; empty by default.
    pub writer_uuid: String,
    /// Milliseconds since the Unix epoch; 0 by default.
    pub timestamp: i64,
    /// Optional metadata; `Some(empty)` is distinct from `None`.
    pub metadata: Option<Bytes>,
    /// Tags of the event.
    pub tags: Vec<String>,
}

impl PersistentRepr {
    /// A new event with empty manifest, writer uuid, metadata and tags and timestamp 0.
    pub fn new(
        persistence_id: impl Into<String>,
        sequence_nr: u64,
        payload: impl Into<Bytes>,
    ) -> Self {
        PersistentRepr {
            persistence_id: persistence_id.into(),
            sequence_nr,
            payload: payload.into(),
            manifest: String::new(),
            writer_uuid: String::new(),
            timestamp: 0,
            metadata: None,
            tags: Vec::new(),
        }
    }

    /// Sets the manifest.
    pub fn with_manifest(mut self, manifest: impl Into<String>) -> Self {
        self.manifest = manifest.into();
        self
    }

    /// Sets the writer uuid.
    pub fn with_writer_uuid(mut self, writer_uuid: impl Into<String>) -> Self {
        self.writer_uuid = writer_uuid.into();
        self
    }

    /// Sets the timestamp (ms since the Unix epoch).
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: impl Into<Bytes>) -> Self {
        self.metadata = Some(metadata.into());
        self
    }

    /// Sets the tags.
    pub fn with_tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }
}

/// The events of one persistence id that are stored together or not at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AtomicWrite {
    /// The events, with contiguous ascending sequence numbers of one persistence id.
    pub events: Vec<PersistentRepr>,
}

impl AtomicWrite {
    /// An atomic write of `events` (one persistence id, contiguous sequence numbers).
    pub fn new(events: Vec<PersistentRepr>) -> Self {
        AtomicWrite { events }
    }

    /// The persistence id of the events (empty string if there are none).
    pub fn persistence_id(&self) -> &str {
        self.events
            .first()
            .map(|e| e.persistence_id.as_str())
            .unwrap_or("")
    }

    /// The first sequence number (0 if there are no events).
    pub fn lowest_sequence_nr(&self) -> u64 {
        self.events.first().map(|e| e.sequence_nr).unwrap_or(0)
    }

    /// The last sequence number (0 if there are no events).
    pub fn highest_sequence_nr(&self) -> u64 {
        self.events.last().map(|e| e.sequence_nr).unwrap_or(0)
    }

    /// Checks that the write is non-empty, of one id, with contiguous sequence numbers >= 1.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let first = self
            .events
            .first()
            .ok_or_else(|| "an atomic write needs at least one event".to_string())?;
        if first.sequence_nr == 0 {
            return Err("sequence numbers start at 1".into());
        }
        let mut expected = first.sequence_nr;
        for e in &self.events {
            if e.persistence_id != first.persistence_id {
                return Err(format!(
                    "mixed persistence ids `{}` and `{}`",
                    first.persistence_id, e.persistence_id
                ));
            }
            if e.sequence_nr != expected {
                return Err(format!(
                    "sequence numbers not contiguous: expected {expected}, got {}",
                    e.sequence_nr
                ));
            }
            expected = expected.saturating_add(1);
        }
        Ok(())
    }
}

impl From<PersistentRepr> for AtomicWrite {
    fn from(event: PersistentRepr) -> Self {
        AtomicWrite::new(vec![event])
    }
}

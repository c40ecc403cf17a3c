//! The serde codec, JSON via `serde_json`.

use std::marker::PhantomData;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{decode_versioned, Manifest, Upcaster};
use crate::entity::CodecError;

/// A serde JSON codec for events (with a manifest and an upcaster, see the module docs) and
/// for state (snapshots carry no manifest: evolve the state type with serde defaults, or let
/// recovery fall back to an older snapshot or a full replay when it no longer decodes).
pub struct JsonCodec<T> {
    manifest: Manifest,
    upcaster: Option<Upcaster<T>>,
    _type: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for JsonCodec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonCodec")
            .field("manifest", &self.manifest)
            .field("upcaster", &self.upcaster.is_some())
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> JsonCodec<T> {
    /// A codec writing the manifest `"<type_name>@<version>"`.
    pub fn new(type_name: impl Into<String>, version: u32) -> Self {
        JsonCodec {
            manifest: Manifest::new(type_name, version),
            upcaster: None,
            _type: PhantomData,
        }
    }

    /// Sets the upcaster for events of any other manifest.
    pub fn with_upcaster(
        mut self,
        upcaster: impl Fn(&Manifest, &Bytes) -> Result<T, CodecError> + Send + Sync + 'static,
    ) -> Self {
        self.upcaster = Some(Box::new(upcaster));
        self
    }

    /// The manifest this codec writes.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Encodes an event: its manifest and JSON payload.
    pub fn encode(&self, value: &T) -> Result<(String, Bytes), CodecError> {
        Ok((self.manifest.to_string(), self.encode_state(value)?))
    }

    /// Decodes an event of `manifest` (upcasting other manifests).
    pub fn decode(&self, manifest: &str, payload: &Bytes) -> Result<T, CodecError> {
        decode_versioned(
            &self.manifest,
            self.upcaster.as_ref(),
            manifest,
            payload,
            Self::parse,
        )
    }

    /// Encodes a value without a manifest (for state in snapshots).
    pub fn encode_state(&self, value: &T) -> Result<Bytes, CodecError> {
        serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|e| CodecError::new(format!("JSON encoding of {}: {e}", self.manifest)))
    }

    /// Decodes a value written by [`JsonCodec::encode_state`].
    pub fn decode_state(&self, payload: &Bytes) -> Result<T, CodecError> {
        Self::parse(payload)
    }
}

impl<T: DeserializeOwned> JsonCodec<T> {
    /// Parses JSON `payload` as `T` (also useful inside an upcaster for an old type).
    pub fn parse(payload: &Bytes) -> Result<T, CodecError> {
        serde_json::from_slice(payload).map_err(|e| {
            CodecError::new(format!(
                "JSON decoding as {}: {e}",
                std::any::type_name::<T>()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Deposited {
        amount: u64,
    }

    #[test]
    fn events_round_trip_with_their_manifest() {
        let codec = JsonCodec::<Deposited>::new("Deposited", 1);
        let (manifest, payload) = codec.encode(&Deposited { amount: 3 }).expect("encode");
        assert_eq!(manifest, "Deposited@1");
        assert_eq!(&payload[..], br#"{"amount":3}"#);
        assert_eq!(
            codec.decode(&manifest, &payload).expect("decode"),
            Deposited { amount: 3 }
        );
    }

    #[test]
    fn another_manifest_without_an_upcaster_is_an_error_naming_both() {
        let codec = JsonCodec::<Deposited>::new("Deposited", 2);
        let err = codec
            .decode("Deposited@1", &Bytes::from_static(br#"{"amount":3}"#))
            .expect_err("version 1 without upcaster");
        assert!(err.to_string().contains("Deposited@1"), "{err}");
        assert!(err.to_string().contains("Deposited@2"), "{err}");
    }

    #[test]
    fn garbage_is_a_codec_error() {
        let codec = JsonCodec::<Deposited>::new("Deposited", 1);
        assert!(codec
            .decode("Deposited@1", &Bytes::from_static(b"\xff not json"))
            .is_err());
        assert!(codec.decode_state(&Bytes::new()).is_err());
    }
}

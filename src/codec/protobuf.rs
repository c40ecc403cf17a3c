//! The protobuf codec (`prost`), behind the cargo feature `prost`.

use std::marker::PhantomData;

use bytes::Bytes;

use super::{decode_versioned, Manifest, Upcaster};
use crate::entity::CodecError;

/// A protobuf codec for `prost` messages: the same manifest and upcasting rules as
/// [`super::JsonCodec`].
pub struct ProstCodec<T> {
    manifest: Manifest,
    upcaster: Option<Upcaster<T>>,
    _type: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for ProstCodec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProstCodec")
            .field("manifest", &self.manifest)
            .field("upcaster", &self.upcaster.is_some())
            .finish()
    }
}

impl<T: prost::Message + Default> ProstCodec<T> {
    /// A codec writing the manifest `"<type_name>@<version>"`.
    pub fn new(type_name: impl Into<String>, version: u32) -> Self {
        ProstCodec {
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

    /// Encodes an event: its manifest and protobuf payload.
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
        Ok(Bytes::from(value.encode_to_vec()))
    }

    /// Decodes a value written by [`ProstCodec::encode_state`].
    pub fn decode_state(&self, payload: &Bytes) -> Result<T, CodecError> {
        Self::parse(payload)
    }

    /// Parses protobuf `payload` as `T`.
    pub fn parse(payload: &Bytes) -> Result<T, CodecError> {
        T::decode(payload.clone()).map_err(|e| {
            CodecError::new(format!(
                "protobuf decoding as {}: {e}",
                std::any::type_name::<T>()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, PartialEq, prost::Message)]
    struct DepositedV1 {
        #[prost(uint64, tag = "1")]
        amount: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct Deposited {
        #[prost(uint64, tag = "1")]
        amount: u64,
        #[prost(string, tag = "2")]
        currency: String,
    }

    #[test]
    fn round_trip_and_upcast() {
        let v1 = ProstCodec::<DepositedV1>::new("Deposited", 1);
        let (old_manifest, old) = v1.encode(&DepositedV1 { amount: 4 }).expect("encode v1");
        let v2 = ProstCodec::<Deposited>::new("Deposited", 2).with_upcaster(|m, payload| {
            if m.version != 1 {
                return Err(CodecError::new("unknown version"));
            }
            let old = ProstCodec::<DepositedV1>::parse(payload)?;
            Ok(Deposited {
                amount: old.amount,
                currency: "EUR".into(),
            })
        });
        let up = v2.decode(&old_manifest, &old).expect("upcast");
        assert_eq!(up.currency, "EUR");
        assert_eq!(up.amount, 4);
        let (m, p) = v2.encode(&up).expect("encode v2");
        assert_eq!(m, "Deposited@2");
        assert_eq!(v2.decode(&m, &p).expect("decode v2"), up);
        assert!(v2.decode("Deposited@3", &p).is_err());
    }
}

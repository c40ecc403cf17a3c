//! Codecs for events and state: serde (JSON by default via `serde_json`) and protobuf
//! (`prost`, behind the cargo feature `prost`).
//!
//! An event's manifest names its type and schema version, `"<type name>@<version>"` (for
//! example `"AccountEvent@2"`). Decoding an event of the current name and version uses the
//! codec; any other manifest (an older version, a renamed type, or an event written before
//! the codec, with a manifest without `@`, read as version 0) goes to the **upcaster**: a
//! function from the old manifest and payload to the current event. Without an upcaster such
//! an event is a [`CodecError`] naming both manifests.
//!
//! ```
//! use bytes::Bytes;
//! use kafka_persistence::codec::{JsonCodec, Manifest};
//!
//! #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
//! enum AccountEvent {
//!     Deposited { amount: u64, currency: String },
//! }
//!
//! // Version 1 had no currency: `{"Deposited":{"amount":5}}`.
//! #[derive(serde::Deserialize)]
//! enum AccountEventV1 {
//!     Deposited { amount: u64 },
//! }
//!
//! let codec = JsonCodec::<AccountEvent>::new("AccountEvent", 2).with_upcaster(
//!     |manifest: &Manifest, payload: &Bytes| match manifest.version {
//!         1 => {
//!             let AccountEventV1::Deposited { amount } = JsonCodec::<AccountEventV1>::parse(payload)?;
//!             Ok(AccountEvent::Deposited { amount, currency: "EUR".into() })
//!         }
//!         v => Err(kafka_persistence::entity::CodecError::new(format!("no upcast from version {v}"))),
//!     },
//! );
//! let old = Bytes::from_static(br#"{"Deposited":{"amount":5}}"#);
//! assert_eq!(
//!     codec.decode("AccountEvent@1", &old)?,
//!     AccountEvent::Deposited { amount: 5, currency: "EUR".into() }
//! );
//! let (manifest, payload) = codec.encode(&AccountEvent::Deposited { amount: 7, currency: "USD".into() })?;
//! assert_eq!(manifest, "AccountEvent@2");
//! assert_eq!(codec.decode(&manifest, &payload)?, AccountEvent::Deposited { amount: 7, currency: "USD".into() });
//! # Ok::<(), kafka_persistence::entity::CodecError>(())
//! ```

mod json;
mod manifest;
#[cfg(feature = "prost")]
mod protobuf;

pub use json::JsonCodec;
pub use manifest::Manifest;
#[cfg(feature = "prost")]
pub use protobuf::ProstCodec;

use bytes::Bytes;

use crate::entity::CodecError;

/// An upcaster: an event of an older manifest (name and version) and its payload in, the
/// current event out.
pub type Upcaster<E> = Box<dyn Fn(&Manifest, &Bytes) -> Result<E, CodecError> + Send + Sync>;

/// Decodes `payload` of `manifest` with `current` when the manifest is the codec's own,
/// otherwise with the upcaster.
pub(crate) fn decode_versioned<E>(
    own: &Manifest,
    upcaster: Option<&Upcaster<E>>,
    manifest: &str,
    payload: &Bytes,
    current: impl FnOnce(&Bytes) -> Result<E, CodecError>,
) -> Result<E, CodecError> {
    let found = Manifest::parse(manifest);
    if found == *own {
        return current(payload);
    }
    match upcaster {
        Some(upcast) => upcast(&found, payload),
        None => Err(CodecError::new(format!(
            "event manifest `{manifest}` is not `{own}` and no upcaster is set"
        ))),
    }
}

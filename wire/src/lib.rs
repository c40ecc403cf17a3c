//! `kafka-persistence-wire`: a pure-Rust async Kafka client.
//!
//! Layout (one concern per module):
//! - [`record`]: the record batch v2 codec (ours, with `crc32c`), and [`compression`].
//! - [`protocol`]: framing and hostile-input guards around the `kafka-protocol` schemas.
//! - [`error`]: the one table that classifies every Kafka error code.
//! - [`conn`]: one multiplexed connection per broker, ApiVersions negotiation.
//! - [`metadata`]: the metadata cache.
//! - [`producer`], [`fetch`], [`admin`]: the client's three faces.
//! - [`client`]: [`Client`] ties them together.
#![cfg_attr(not(test), warn(missing_docs))]

pub mod compression;
pub mod record;
pub mod protocol;
pub mod error;

#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), warn(missing_docs))]

pub use kafka_persistence_journal as journal;
pub use kafka_persistence_snapshot as snapshot;
#[cfg(feature = "testserver")]
pub use kafka_persistence_testserver as testserver;
pub use kafka_persistence_wire as wire;

pub mod codec;
#[cfg(feature = "cqrs-es")]
pub mod cqrs;
pub mod entities;
pub mod entity;
pub mod recovery;
pub mod snapshot_policy;
pub mod stream;

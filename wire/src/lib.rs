#![doc = include_str!("../README.md")]
//!
//! Layout (one concern per module):
//! - [`record`]: the record batch v2 codec (ours, with `crc32c`), and [`compression`].
//! - [`protocol`]: framing and hostile-input guards around the `kafka-protocol` schemas.
//! - [`error`]: the one table that classifies every Kafka error code, and [`Error`].
//! - `conn`: one multiplexed connection per broker, ApiVersions negotiation; `transport`
//!   opens its stream (TCP, [`tls`], [`sasl`]) under the [`security`] settings; `reauth`
//!   re-authenticates it before its SASL session expires (KIP-368).
//! - [`metadata`]: the metadata cache.
//! - [`producer`], [`fetch`], [`admin`]: the client's three faces; [`consumer`]: consumer
//!   groups (classic protocol) and manual assignment on top of the fetcher.
//! - [`client`]: [`Client`] ties them together; [`config`] holds the builders.
//! - [`partitioner`]: the Java client's murmur2 partitioner.
//! - [`properties`]: Java-style `key=value` properties text.
//! - `backoff` and [`sync`]: the one retry backoff and the one poison-recovering lock helper.
//! - [`layout`]: [`Layout`], the journal's and snapshot store's topic layout setting.
#![cfg_attr(not(test), warn(missing_docs))]

pub mod admin;
mod backoff;
pub mod client;
pub mod compression;
pub mod config;
mod conn;
pub mod consumer;
mod coordinator;
pub mod error;
pub mod fetch;
mod fetch_many;
#[doc(hidden)]
pub mod frame;
pub mod group_admin;
pub mod layout;
pub mod leaders;
pub mod metadata;
pub mod naming;
pub mod partitioner;
pub mod producer;
pub mod properties;
pub mod protocol;
mod reauth;
pub mod record;
pub mod sasl;
pub mod security;
pub mod sync;
pub mod tls;
mod transport;

pub use admin::{NewTopic, OffsetSpec};
pub use client::{Client, ConnectionStats};
pub use config::{Acks, ClientConfig, ProducerConfig};
pub use consumer::{
    Assignor, Consumer, ConsumerConfig, ConsumerRecord, GroupProtocol, OffsetAndMetadata,
    OffsetReset, RebalanceContext, RebalanceListener, TopicPartition,
};
pub use coordinator::CoordinatorKind;
pub use error::{Error, ErrorCode, ErrorInfo};
pub use fetch::{FetchRequest, FetchResponse, IsolationLevel};
pub use group_admin::{
    ConsumerGroupDescription, ConsumerGroupMemberDescription, GroupDescription,
    GroupMemberDescription, ListedGroup,
};
pub use layout::Layout;
pub use metadata::{PartitionMetadata, TopicMetadata};
pub use partitioner::{murmur2_partition, DefaultPartitioner, Partitioner};
pub use producer::{
    ConsumerGroupMetadata, DeliveryFuture, Producer, RecordMetadata, TransactionalProducer,
    TxnDelivery,
};
pub use record::{Compression, ConsumedRecord, Header, Record};
pub use security::{OAuthBearerToken, SaslMechanism, Secret, SecurityProtocol};

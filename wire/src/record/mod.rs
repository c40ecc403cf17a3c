//! Record batch v2 codec (`magic = 2`), written for this crate with `crc32c`.
//!
//! Layout of one batch (all integers big endian):
//!
//! | bytes  | field                  | notes                                     |
//! |--------|------------------------|-------------------------------------------|
//! | 0..8   | base_offset            | not covered by the CRC (broker rewrites)  |
//! | 8..12  | batch_length           | bytes after this field                    |
//! | 12..16 | partition_leader_epoch | not covered by the CRC (broker rewrites)  |
//! | 16     | magic                  | 2                                         |
//! | 17..21 | crc                    | CRC-32C of bytes 21..end                  |
//! | 21..23 | attributes             | codec 0-2, timestamp type 3, txn 4, control 5 |
//! | 23..27 | last_offset_delta      |                                           |
//! | 27..35 | base_timestamp         |                                           |
//! | 35..43 | max_timestamp          |                                           |
//! | 43..51 | producer_id            |                                           |
//! | 51..53 | producer_epoch         |                                           |
//! | 53..57 | base_sequence          |                                           |
//! | 57..61 | record_count           |                                           |
//! | 61..   | records                | compressed as a whole when codec != 0     |
//!
//! Each record: `length: varint`, `attributes: i8`, `timestamp_delta: varlong`,
//! `offset_delta: varint`, `key: varint length + bytes (-1 = null)`, `value` likewise,
//! `header_count: varint`, then per header `key: varint length + UTF-8`, `value` (-1 = null).
//!
//! Two facts the `kafka-protocol` crate gets wrong and this codec gets right: the timestamp
//! delta is a *varlong* (deltas over ~24.8 days must survive), and headers are an ordered
//! list keeping duplicate keys (KIP-82). Every length read off the wire is checked against the
//! bytes that remain before anything is allocated, decompression is capped by
//! [`DecodeLimits`], and no input makes this module panic.

use bytes::Bytes;

use crate::compression::CompressionError;

mod control;
mod decode;
mod encode;
pub mod varint;

pub use control::{control_record, encode_marker, ControlType};
pub use decode::{decode_batch, decode_batches, Batches};
pub use encode::{encode_batch, encode_batch_with_offsets};

/// The record batch format version this codec speaks.
pub const MAGIC: i8 = 2;
/// `producer_id` of a batch written without an idempotent producer.
pub const NO_PRODUCER_ID: i64 = -1;
/// `producer_epoch` of a batch written without an idempotent producer.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// `base_sequence` of a batch written without an idempotent producer.
pub const NO_SEQUENCE: i32 = -1;
/// `partition_leader_epoch` a producer sends (the broker fills it in).
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

pub(crate) const CRC_OFFSET: usize = 17;
pub(crate) const ATTRIBUTES_OFFSET: usize = 21;
pub(crate) const MAX_TIMESTAMP_OFFSET: usize = 35;
pub(crate) const LENGTH_OFFSET: usize = 8;
/// Bytes before the `batch_length` field counts from (base_offset + batch_length).
pub(crate) const LOG_OVERHEAD: usize = 12;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// One record header (KIP-82). A record keeps its headers in order, duplicates included.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// Header key (never null on the wire).
    pub key: String,
    /// Header value; `None` is a null value (length -1), distinct from an empty value.
    pub value: Option<Bytes>,
}

impl Header {
    /// A header with a value.
    pub fn new(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Header {
            key: key.into(),
            value: Some(value.into()),
        }
    }
}

/// A record to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Record key; `None` is a null key.
    pub key: Option<Bytes>,
    /// Record value; `None` is a null value (a tombstone on a compacted topic).
    pub value: Option<Bytes>,
    /// Headers, in order, duplicates kept.
    pub headers: Vec<Header>,
    /// Create time in milliseconds since the Unix epoch.
    pub timestamp: i64,
}

impl Record {
    /// A record with a value, no key, no headers.
    pub fn new(value: impl Into<Bytes>, timestamp: i64) -> Self {
        Record {
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp,
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Appends a header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header::new(key, value));
        self
    }
}

/// Compression codec of a batch (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression (0).
    #[default]
    None,
    /// gzip (1).
    Gzip,
    /// Snappy with Java's xerial framing (2).
    Snappy,
    /// LZ4 frame format (3).
    Lz4,
    /// Zstandard (4).
    Zstd,
}

impl Compression {
    /// The codec id stored in attribute bits 0-2.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec for an id in attribute bits 0-2.
    pub fn from_id(id: i16) -> Result<Compression, RecordError> {
        match id {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(RecordError::UnknownCompression(other)),
        }
    }

    /// Kafka's name for the codec (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// What a batch's timestamps mean (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// The producer's create time (per record).
    #[default]
    CreateTime,
    /// The broker's append time: every record's timestamp is the batch's `max_timestamp`.
    LogAppendTime,
}

/// Batch-level fields for [`encode_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Offset of the first record (a producer sends 0; the broker assigns).
    pub base_offset: i64,
    /// Leader epoch (a producer sends -1; the broker assigns).
    pub partition_leader_epoch: i32,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Codec for the records section.
    pub compression: Compression,
    /// Part of a transaction (attribute bit 4).
    pub is_transactional: bool,
    /// A control batch (attribute bit 5): commit/abort markers.
    pub is_control: bool,
    /// Timestamp type (attribute bit 3).
    pub timestamp_type: TimestampType,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            base_offset: 0,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            compression: Compression::None,
            is_transactional: false,
            is_control: false,
            timestamp_type: TimestampType::CreateTime,
        }
    }
}

impl EncodeOptions {
    /// The attributes field these options produce.
    pub fn attributes(&self) -> i16 {
        let mut a = self.compression.id();
        if self.timestamp_type == TimestampType::LogAppendTime {
            a |= TIMESTAMP_TYPE_BIT;
        }
        if self.is_transactional {
            a |= TRANSACTIONAL_BIT;
        }
        if self.is_control {
            a |= CONTROL_BIT;
        }
        a
    }
}

/// The fixed 61-byte batch header, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the length field (total size minus 12).
    pub batch_length: i32,
    /// Leader epoch of the broker that appended the batch.
    pub partition_leader_epoch: i32,
    /// Format version (2).
    pub magic: i8,
    /// CRC-32C of bytes 21..end, as stored.
    pub crc: u32,
    /// Codec, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// Offset delta of the last record (the batch spans base..=base+delta).
    pub last_offset_delta: i32,
    /// Timestamp the record deltas count from.
    pub base_timestamp: i64,
    /// Largest record timestamp (or the append time for `LogAppendTime`).
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub record_count: i32,
}

#[inline]
fn be_i16(b: &[u8], at: usize) -> i16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[at..at + 2]);
    i16::from_be_bytes(a)
}
#[inline]
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
#[inline]
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl BatchHeader {
    /// Size of the fixed header.
    pub const SIZE: usize = 61;

    /// Parses the fixed header from the front of `buf` (needs at least 61 bytes). Checks
    /// nothing but the size: see [`validate_batch`] for magic, length and CRC.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, RecordError> {
        if buf.len() < Self::SIZE {
            return Err(RecordError::Truncated {
                needed: Self::SIZE,
                available: buf.len(),
            });
        }
        let b = &buf[..Self::SIZE];
        Ok(BatchHeader {
            base_offset: be_i64(b, 0),
            batch_length: be_i32(b, 8),
            partition_leader_epoch: be_i32(b, 12),
            magic: b[16] as i8,
            crc: be_i32(b, 17) as u32,
            attributes: be_i16(b, 21),
            last_offset_delta: be_i32(b, 23),
            base_timestamp: be_i64(b, 27),
            max_timestamp: be_i64(b, 35),
            producer_id: be_i64(b, 43),
            producer_epoch: be_i16(b, 51),
            base_sequence: be_i32(b, 53),
            record_count: be_i32(b, 57),
        })
    }

    /// Size of the whole batch on the wire: `12 + batch_length` (0 for a negative length).
    pub fn total_size(&self) -> usize {
        usize::try_from(self.batch_length)
            .map(|l| l + LOG_OVERHEAD)
            .unwrap_or(0)
    }

    /// The codec of the records section.
    pub fn compression(&self) -> Result<Compression, RecordError> {
        Compression::from_id(self.attributes & COMPRESSION_MASK)
    }

    /// The timestamp type (attribute bit 3).
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Attribute bit 4.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Attribute bit 5.
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Offset of the last record: `base_offset + last_offset_delta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }
}

/// Smallest legal `batch_length`: the fixed header minus the 12 bytes before the CRC region.
pub(crate) const MIN_BATCH_LENGTH: i32 = (BatchHeader::SIZE - LOG_OVERHEAD) as i32;

/// Checks magic 2, the length and the CRC of one whole batch: `buf` must be exactly one
/// batch. Records are not decoded.
pub fn validate_batch(buf: &[u8]) -> Result<BatchHeader, RecordError> {
    let header = BatchHeader::parse(buf)?;
    if header.magic != MAGIC {
        return Err(RecordError::UnsupportedMagic(header.magic));
    }
    if header.batch_length < MIN_BATCH_LENGTH {
        return Err(RecordError::InvalidBatchLength(header.batch_length));
    }
    let total = header.total_size();
    if total != buf.len() {
        if total > buf.len() {
            return Err(RecordError::Truncated {
                needed: total,
                available: buf.len(),
            });
        }
        return Err(RecordError::TrailingBytes(buf.len() - total));
    }
    let computed = crc32c::crc32c(&buf[ATTRIBUTES_OFFSET..]);
    if computed != header.crc {
        return Err(RecordError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    if header.record_count < 0 {
        return Err(RecordError::InvalidRecordCount(header.record_count));
    }
    header.compression()?;
    Ok(header)
}

/// Rewrites `base_offset` (bytes 0..8) in place; the CRC does not cover it.
/// A buffer shorter than 8 bytes is left unchanged.
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) {
    if let Some(dst) = buf.get_mut(0..8) {
        dst.copy_from_slice(&base_offset.to_be_bytes());
    }
}

/// Rewrites `partition_leader_epoch` (bytes 12..16) in place; the CRC does not cover it.
/// A buffer shorter than 16 bytes is left unchanged.
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) {
    if let Some(dst) = buf.get_mut(12..16) {
        dst.copy_from_slice(&epoch.to_be_bytes());
    }
}

/// Marks the batch `LogAppendTime` with the broker's append `timestamp`: rewrites
/// `max_timestamp`, sets attribute bit 3 and recomputes the CRC over `buf[21..]` (so `buf`
/// must be exactly one batch). A buffer shorter than the fixed header is left unchanged.
pub fn set_log_append_time(buf: &mut [u8], timestamp: i64) {
    if buf.len() < BatchHeader::SIZE {
        return;
    }
    buf[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&timestamp.to_be_bytes());
    let attributes = be_i16(buf, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_BIT;
    buf[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    write_crc(buf);
}

/// Recomputes and stores the CRC of a whole batch (`buf.len() >= 61`).
pub(crate) fn write_crc(buf: &mut [u8]) {
    let crc = crc32c::crc32c(&buf[ATTRIBUTES_OFFSET..]);
    buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Absolute offset: `base_offset + offset_delta`.
    pub offset: i64,
    /// Create time, or the batch's `max_timestamp` for `LogAppendTime` batches.
    pub timestamp: i64,
    /// Key (`None` = null). A zero-copy slice of the input when uncompressed.
    pub key: Option<Bytes>,
    /// Value (`None` = null). A zero-copy slice of the input when uncompressed.
    pub value: Option<Bytes>,
    /// Headers in wire order, duplicates kept.
    pub headers: Vec<Header>,
}

/// One decoded batch. Control batches are decoded too (their records are the markers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch {
    /// The fixed header.
    pub header: BatchHeader,
    /// The records, in order.
    pub records: Vec<ConsumedRecord>,
}

/// Bounds applied while decoding hostile input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Maximum size of one batch's decompressed records section. Default 64 MiB.
    pub max_decompressed_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_decompressed_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Why a batch could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Fewer bytes than the structure needs.
    #[error("record batch truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// `batch_length` below the fixed header's size (or negative).
    #[error("invalid batch length {0}")]
    InvalidBatchLength(i32),
    /// Not a v2 batch.
    #[error("unsupported record batch magic {0} (only 2 is supported)")]
    UnsupportedMagic(i8),
    /// The stored CRC does not match the bytes.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// Attribute bits 0-2 name no codec.
    #[error("unknown compression codec id {0}")]
    UnknownCompression(i16),
    /// `record_count` negative or larger than the bytes could hold.
    #[error("invalid record count {0}")]
    InvalidRecordCount(i32),
    /// A length field is negative (other than -1 where null is allowed) or exceeds the
    /// remaining bytes.
    #[error("invalid {field} length {length} ({remaining} bytes remain)")]
    InvalidLength {
        /// Which field.
        field: &'static str,
        /// The length read.
        length: i64,
        /// Bytes remaining where it was read.
        remaining: usize,
    },
    /// A varint field is malformed.
    #[error("malformed {field}: {source}")]
    Varint {
        /// Which field.
        field: &'static str,
        /// What was wrong.
        source: varint::VarintError,
    },
    /// A header key is not UTF-8.
    #[error("header key is not valid UTF-8")]
    InvalidHeaderKey,
    /// A record's declared length does not match its content.
    #[error("record length {declared} does not match its content ({used} bytes)")]
    RecordLengthMismatch {
        /// The length prefix.
        declared: usize,
        /// Bytes the fields used.
        used: usize,
    },
    /// Bytes left over after the declared records (or after the one batch expected).
    #[error("{0} unexpected trailing bytes")]
    TrailingBytes(usize),
    /// Compression or decompression failed.
    #[error(transparent)]
    Compression(#[from] CompressionError),
    /// [`encode_batch`] was given no records.
    #[error("a record batch needs at least one record")]
    EmptyBatch,
    /// Explicit offset deltas are negative, not strictly increasing, or beyond
    /// `last_offset_delta`.
    #[error("invalid offset delta {offset_delta} (previous {previous}, last_offset_delta {last_offset_delta})")]
    InvalidOffsetDelta {
        /// The offending delta.
        offset_delta: i32,
        /// The delta before it (-1 for the first).
        previous: i32,
        /// The batch's last offset delta.
        last_offset_delta: i32,
    },
    /// A record's timestamp is so far from the first one that the delta overflows `i64`.
    #[error("timestamp {timestamp} too far from base timestamp {base}")]
    TimestampOverflow {
        /// The record's timestamp.
        timestamp: i64,
        /// The batch's base timestamp.
        base: i64,
    },
    /// A field or the whole batch is larger than the format can express (`i32::MAX`).
    #[error("{field} of {size} bytes is too large for a record batch")]
    TooLarge {
        /// Which field.
        field: &'static str,
        /// Its size.
        size: usize,
    },
}

//! Decoding: bounds-checked, zero-copy for uncompressed batches.

use bytes::Bytes;

use super::varint::{decode_varint, decode_varlong};
use super::{
    BatchHeader, Compression, ConsumedRecord, DecodeLimits, DecodedBatch, Header, RecordError,
    TimestampType, ATTRIBUTES_OFFSET, LOG_OVERHEAD, MAGIC, MIN_BATCH_LENGTH,
};

/// Smallest possible encoded record: length, attributes, timestamp delta, offset delta,
/// key length, value length and header count, one byte each.
const MIN_RECORD_SIZE: usize = 7;
/// Smallest possible encoded header: key length and value length, one byte each.
const MIN_HEADER_SIZE: usize = 2;

/// Decodes one batch from the front of `buf` and advances `buf` past it. The CRC is
/// checked. On error `buf` is left unchanged.
///
/// Keys, values and header values are zero-copy slices of `buf` when the batch is not
/// compressed. For `LogAppendTime` batches every record's timestamp is `max_timestamp`.
pub fn decode_batch(buf: &mut Bytes, limits: &DecodeLimits) -> Result<DecodedBatch, RecordError> {
    let total = peek_batch_size(buf)?;
    if total > buf.len() {
        return Err(RecordError::Truncated {
            needed: total,
            available: buf.len(),
        });
    }
    let batch = buf.slice(..total);
    let decoded = decode_whole_batch(batch, limits)?;
    bytes::Buf::advance(buf, total);
    Ok(decoded)
}

/// Reads `batch_length` and returns the batch's total size; errors if fewer than 61 bytes
/// remain or the length is impossible.
fn peek_batch_size(buf: &[u8]) -> Result<usize, RecordError> {
    if buf.len() < BatchHeader::SIZE {
        return Err(RecordError::Truncated {
            needed: BatchHeader::SIZE,
            available: buf.len(),
        });
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&buf[8..12]);
    let batch_length = i32::from_be_bytes(len);
    if batch_length < MIN_BATCH_LENGTH {
        return Err(RecordError::InvalidBatchLength(batch_length));
    }
    Ok(batch_length as usize + LOG_OVERHEAD)
}

fn decode_whole_batch(batch: Bytes, limits: &DecodeLimits) -> Result<DecodedBatch, RecordError> {
    let header = BatchHeader::parse(&batch)?;
    if header.magic != MAGIC {
        return Err(RecordError::UnsupportedMagic(header.magic));
    }
    let computed = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    if computed != header.crc {
        return Err(RecordError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    let compression = header.compression()?;
    if header.record_count < 0 {
        return Err(RecordError::InvalidRecordCount(header.record_count));
    }
    let body = batch.slice(BatchHeader::SIZE..);
    let body = match compression {
        Compression::None => body,
        codec => Bytes::from(crate::compression::decompress(
            codec,
            &body,
            limits.max_decompressed_bytes,
        )?),
    };
    let count = header.record_count as usize;
    if count > body.len() / MIN_RECORD_SIZE {
        return Err(RecordError::InvalidRecordCount(header.record_count));
    }
    let mut records = Vec::with_capacity(count);
    let mut reader = Reader {
        buf: &body,
        pos: 0,
        end: body.len(),
    };
    let log_append_time = header.timestamp_type() == TimestampType::LogAppendTime;
    for _ in 0..count {
        records.push(reader.record(&header, log_append_time)?);
    }
    if reader.pos != body.len() {
        return Err(RecordError::TrailingBytes(body.len() - reader.pos));
    }
    Ok(DecodedBatch { header, records })
}

/// A cursor over `buf[pos..end]` that hands out zero-copy slices of `buf`.
struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    /// Nothing at or past `end` is read (a record's declared length bounds its fields).
    end: usize,
}

impl Reader<'_> {
    #[inline]
    fn remaining(&self) -> usize {
        self.end - self.pos
    }

    #[inline]
    fn varint(&mut self, field: &'static str) -> Result<i32, RecordError> {
        let (v, n) = decode_varint(&self.buf[self.pos..self.end])
            .map_err(|source| RecordError::Varint { field, source })?;
        self.pos += n;
        Ok(v)
    }

    #[inline]
    fn varlong(&mut self, field: &'static str) -> Result<i64, RecordError> {
        let (v, n) = decode_varlong(&self.buf[self.pos..self.end])
            .map_err(|source| RecordError::Varint { field, source })?;
        self.pos += n;
        Ok(v)
    }

    #[inline]
    fn u8(&mut self, field: &'static str) -> Result<u8, RecordError> {
        if self.pos >= self.end {
            return Err(RecordError::InvalidLength {
                field,
                length: 1,
                remaining: 0,
            });
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(b)
    }

    /// A length followed by that many bytes; `allow_null` maps -1 to `None`.
    #[inline]
    fn length(
        &mut self,
        field: &'static str,
        allow_null: bool,
    ) -> Result<Option<usize>, RecordError> {
        let len = self.varint(field)?;
        if len == -1 && allow_null {
            return Ok(None);
        }
        let remaining = self.remaining();
        match usize::try_from(len) {
            Ok(l) if l <= remaining => Ok(Some(l)),
            _ => Err(RecordError::InvalidLength {
                field,
                length: i64::from(len),
                remaining,
            }),
        }
    }

    #[inline]
    fn nullable_bytes(&mut self, field: &'static str) -> Result<Option<Bytes>, RecordError> {
        match self.length(field, true)? {
            None => Ok(None),
            Some(len) => {
                let b = self.buf.slice(self.pos..self.pos + len);
                self.pos += len;
                Ok(Some(b))
            }
        }
    }

    fn record(
        &mut self,
        header: &BatchHeader,
        log_append_time: bool,
    ) -> Result<ConsumedRecord, RecordError> {
        let declared = self.length("record", false)?.unwrap_or_default();
        let start = self.pos;
        let end = start + declared;
        // Parse inside a window of exactly `declared` bytes so a lying length cannot make a
        // record borrow its neighbour's bytes.
        let mut r = Reader {
            buf: self.buf,
            pos: start,
            end,
        };
        let _attributes = r.u8("record attributes")?;
        let ts_delta = r.varlong("timestamp delta")?;
        let offset_delta = r.varint("offset delta")?;
        let key = r.nullable_bytes("key")?;
        let value = r.nullable_bytes("value")?;
        let header_count = r.varint("header count")?;
        let headers = match usize::try_from(header_count) {
            Ok(0) => Vec::new(),
            Ok(n) if n <= r.remaining() / MIN_HEADER_SIZE => {
                let mut headers = Vec::with_capacity(n);
                for _ in 0..n {
                    let key_len = r.length("header key", false)?.unwrap_or_default();
                    let key = std::str::from_utf8(&r.buf[r.pos..r.pos + key_len])
                        .map_err(|_| RecordError::InvalidHeaderKey)?
                        .to_owned();
                    r.pos += key_len;
                    let value = r.nullable_bytes("header value")?;
                    headers.push(Header { key, value });
                }
                headers
            }
            _ => {
                return Err(RecordError::InvalidLength {
                    field: "header count",
                    length: i64::from(header_count),
                    remaining: r.remaining(),
                })
            }
        };
        if r.pos != end {
            return Err(RecordError::RecordLengthMismatch {
                declared,
                used: r.pos - start,
            });
        }
        self.pos = end;
        let timestamp = if log_append_time {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(ts_delta)
        };
        Ok(ConsumedRecord {
            offset: header.base_offset.wrapping_add(i64::from(offset_delta)),
            timestamp,
            key,
            value,
            headers,
        })
    }
}

/// Iterates the batches of a fetch response's `records` bytes. A truncated last batch (a
/// broker cuts the response at `max_bytes`) ends the iteration cleanly; any other problem
/// yields one `Err` and ends the iteration.
pub fn decode_batches(buf: Bytes, limits: DecodeLimits) -> Batches {
    Batches {
        buf,
        limits,
        done: false,
    }
}

/// Iterator returned by [`decode_batches`].
#[derive(Debug)]
pub struct Batches {
    buf: Bytes,
    limits: DecodeLimits,
    done: bool,
}

impl Batches {
    /// Bytes not yet consumed (after the iteration ends: the truncated tail, if any).
    pub fn remaining(&self) -> &Bytes {
        &self.buf
    }
}

impl Iterator for Batches {
    type Item = Result<DecodedBatch, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        // Fewer than 12 bytes: not even a length, so a truncated tail.
        if self.buf.len() < LOG_OVERHEAD {
            self.done = true;
            return None;
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&self.buf[8..12]);
        let batch_length = i32::from_be_bytes(len);
        if batch_length < MIN_BATCH_LENGTH {
            self.done = true;
            return Some(Err(RecordError::InvalidBatchLength(batch_length)));
        }
        if batch_length as usize + LOG_OVERHEAD > self.buf.len() {
            self.done = true;
            return None;
        }
        match decode_batch(&mut self.buf, &self.limits) {
            Ok(batch) => Some(Ok(batch)),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

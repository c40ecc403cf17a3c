//! Encoding: one pass straight into the caller's `BytesMut`; the length and CRC are patched
//! once the records are written.

use bytes::{BufMut, Bytes, BytesMut};

use super::varint::{encode_varint, encode_varlong, varint_len, varlong_len};
use super::{
    write_crc, BatchHeader, Compression, EncodeOptions, Record, RecordError, LENGTH_OFFSET,
    LOG_OVERHEAD, MAGIC,
};

/// Timestamp Kafka uses for "none" (an empty batch's base and max timestamp).
const NO_TIMESTAMP: i64 = -1;

/// Appends one complete batch to `out`: the 61-byte header, the records (compressed as
/// `opts.compression` says), the batch length and the CRC-32C over attributes..end.
/// Offset deltas are 0..n-1. `records` must not be empty.
///
/// On error `out` is left as it was.
pub fn encode_batch(
    records: &[Record],
    opts: &EncodeOptions,
    out: &mut BytesMut,
) -> Result<(), RecordError> {
    if records.is_empty() {
        return Err(RecordError::EmptyBatch);
    }
    let last_offset_delta =
        i32::try_from(records.len() - 1).map_err(|_| RecordError::TooLarge {
            field: "record count",
            size: records.len(),
        })?;
    // Offsets deltas fit i32 because the count does.
    let iter = records.iter().enumerate().map(|(i, r)| (i as i32, r));
    encode_inner(iter, records.len(), last_offset_delta, opts, out)
}

/// Like [`encode_batch`] but with explicit offset deltas, as a compacted log keeps them:
/// deltas must be `>= 0`, strictly increasing and `<= last_offset_delta`. An empty
/// `records` is allowed here (compaction may empty a batch but keeps it for its producer
/// state); its timestamps are -1.
pub fn encode_batch_with_offsets(
    records: &[(i32, Record)],
    last_offset_delta: i32,
    opts: &EncodeOptions,
    out: &mut BytesMut,
) -> Result<(), RecordError> {
    let mut previous = -1i32;
    for &(offset_delta, _) in records {
        if offset_delta <= previous || offset_delta > last_offset_delta {
            return Err(RecordError::InvalidOffsetDelta {
                offset_delta,
                previous,
                last_offset_delta,
            });
        }
        previous = offset_delta;
    }
    if last_offset_delta < 0 {
        return Err(RecordError::InvalidOffsetDelta {
            offset_delta: last_offset_delta,
            previous,
            last_offset_delta,
        });
    }
    let iter = records.iter().map(|(d, r)| (*d, r));
    encode_inner(iter, records.len(), last_offset_delta, opts, out)
}

fn too_large(field: &'static str, size: usize) -> RecordError {
    RecordError::TooLarge { field, size }
}

#[inline]
fn len_i32(field: &'static str, len: usize) -> Result<i32, RecordError> {
    i32::try_from(len).map_err(|_| too_large(field, len))
}

#[inline]
fn nullable_size(field: &'static str, b: &Option<Bytes>) -> Result<usize, RecordError> {
    match b {
        None => Ok(1),
        Some(b) => Ok(varint_len(len_i32(field, b.len())?) + b.len()),
    }
}

/// Size of a record's body (everything after its length prefix).
#[inline]
fn body_size(r: &Record, ts_delta: i64, offset_delta: i32) -> Result<usize, RecordError> {
    let mut size = 1 + varlong_len(ts_delta) + varint_len(offset_delta);
    size += nullable_size("key", &r.key)?;
    size += nullable_size("value", &r.value)?;
    size += varint_len(len_i32("header count", r.headers.len())?);
    for h in &r.headers {
        size += varint_len(len_i32("header key", h.key.len())?) + h.key.len();
        size += nullable_size("header value", &h.value)?;
    }
    if size > i32::MAX as usize {
        return Err(too_large("record", size));
    }
    Ok(size)
}

#[inline]
fn put_nullable(b: &Option<Bytes>, out: &mut BytesMut) {
    match b {
        None => encode_varint(-1, out),
        Some(b) => {
            // Lengths were checked by `body_size`.
            encode_varint(b.len() as i32, out);
            out.put_slice(b);
        }
    }
}

#[inline]
fn put_record(r: &Record, ts_delta: i64, offset_delta: i32, body: usize, out: &mut BytesMut) {
    encode_varint(body as i32, out);
    out.put_u8(0); // record attributes: unused
    encode_varlong(ts_delta, out);
    encode_varint(offset_delta, out);
    put_nullable(&r.key, out);
    put_nullable(&r.value, out);
    encode_varint(r.headers.len() as i32, out);
    for h in &r.headers {
        encode_varint(h.key.len() as i32, out);
        out.put_slice(h.key.as_bytes());
        put_nullable(&h.value, out);
    }
}

fn encode_inner<'a, I>(
    records: I,
    count: usize,
    last_offset_delta: i32,
    opts: &EncodeOptions,
    out: &mut BytesMut,
) -> Result<(), RecordError>
where
    I: Iterator<Item = (i32, &'a Record)> + Clone,
{
    let record_count = len_i32("record count", count)?;
    let mut base_timestamp = NO_TIMESTAMP;
    let mut max_timestamp = NO_TIMESTAMP;
    let mut records_size = 0usize;
    for (i, (offset_delta, r)) in records.clone().enumerate() {
        if i == 0 {
            base_timestamp = r.timestamp;
            max_timestamp = r.timestamp;
        } else {
            max_timestamp = max_timestamp.max(r.timestamp);
        }
        let ts_delta = ts_delta(r.timestamp, base_timestamp)?;
        let body = body_size(r, ts_delta, offset_delta)?;
        records_size = records_size
            .checked_add(varint_len(body as i32) + body)
            .ok_or_else(|| too_large("records", usize::MAX))?;
    }
    if records_size > i32::MAX as usize - BatchHeader::SIZE {
        return Err(too_large("records", records_size));
    }

    let start = out.len();
    let reserve = match opts.compression {
        Compression::None => BatchHeader::SIZE + records_size,
        _ => BatchHeader::SIZE + records_size / 2 + 64,
    };
    out.reserve(reserve);
    out.put_i64(opts.base_offset);
    out.put_i32(0); // batch_length, patched below
    out.put_i32(opts.partition_leader_epoch);
    out.put_i8(MAGIC);
    out.put_u32(0); // crc, patched below
    out.put_i16(opts.attributes());
    out.put_i32(last_offset_delta);
    out.put_i64(base_timestamp);
    out.put_i64(max_timestamp);
    out.put_i64(opts.producer_id);
    out.put_i16(opts.producer_epoch);
    out.put_i32(opts.base_sequence);
    out.put_i32(record_count);

    // Sizes and deltas were all validated by the pass above, so the writes cannot fail.
    let write_all = |dst: &mut BytesMut| {
        for (offset_delta, r) in records {
            let ts_delta = r.timestamp.wrapping_sub(base_timestamp);
            let body = body_size(r, ts_delta, offset_delta).unwrap_or(0);
            put_record(r, ts_delta, offset_delta, body, dst);
        }
    };
    match opts.compression {
        Compression::None => write_all(out),
        codec => {
            let mut plain = BytesMut::with_capacity(records_size);
            write_all(&mut plain);
            if let Err(e) = crate::compression::compress(codec, &plain, out) {
                out.truncate(start);
                return Err(e.into());
            }
        }
    }

    let total = out.len() - start;
    let Ok(batch_length) = i32::try_from(total - LOG_OVERHEAD) else {
        out.truncate(start);
        return Err(too_large("batch", total));
    };
    let batch = &mut out[start..];
    batch[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&batch_length.to_be_bytes());
    write_crc(batch);
    Ok(())
}

#[inline]
fn ts_delta(timestamp: i64, base: i64) -> Result<i64, RecordError> {
    timestamp
        .checked_sub(base)
        .ok_or(RecordError::TimestampOverflow { timestamp, base })
}

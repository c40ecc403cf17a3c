//! Zigzag variable-length integers, as used inside record batch v2 records.
//!
//! Kafka encodes record fields as zigzag varints (`i32`, at most 5 bytes) and varlongs
//! (`i64`, at most 10 bytes), the protobuf scheme: `(n << 1) ^ (n >> 31)` then 7 bits per
//! byte, least significant group first, high bit set on every byte but the last.

use bytes::BufMut;

/// A varint could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VarintError {
    /// The input ended before the last byte of the varint.
    #[error("varint truncated")]
    Truncated,
    /// More bytes than the type allows (5 for a varint, 10 for a varlong).
    #[error("varint longer than {max} bytes")]
    TooLong {
        /// The maximum number of bytes for the type.
        max: usize,
    },
}

/// Maximum encoded size of a zigzag varint (`i32`).
pub const MAX_VARINT_LEN: usize = 5;
/// Maximum encoded size of a zigzag varlong (`i64`).
pub const MAX_VARLONG_LEN: usize = 10;

#[inline]
fn zigzag32(n: i32) -> u32 {
    ((n << 1) ^ (n >> 31)) as u32
}

#[inline]
fn zigzag64(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

#[inline]
fn unzigzag32(n: u32) -> i32 {
    ((n >> 1) as i32) ^ -((n & 1) as i32)
}

#[inline]
fn unzigzag64(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

#[inline]
fn unsigned_len(mut v: u64) -> usize {
    let mut len = 1;
    while v >= 0x80 {
        v >>= 7;
        len += 1;
    }
    len
}

/// Number of bytes `encode_varint(n)` writes.
#[inline]
pub fn varint_len(n: i32) -> usize {
    unsigned_len(u64::from(zigzag32(n)))
}

/// Number of bytes `encode_varlong(n)` writes.
#[inline]
pub fn varlong_len(n: i64) -> usize {
    unsigned_len(zigzag64(n))
}

#[inline]
fn put_unsigned<B: BufMut>(mut v: u64, out: &mut B) {
    let mut tmp = [0u8; MAX_VARLONG_LEN];
    let mut i = 0;
    while v >= 0x80 {
        tmp[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    tmp[i] = v as u8;
    out.put_slice(&tmp[..=i]);
}

/// Appends the zigzag varint encoding of `n`.
#[inline]
pub fn encode_varint<B: BufMut>(n: i32, out: &mut B) {
    let z = zigzag32(n);
    if z < 0x80 {
        out.put_u8(z as u8);
    } else {
        put_unsigned(u64::from(z), out);
    }
}

/// Appends the zigzag varlong encoding of `n`.
#[inline]
pub fn encode_varlong<B: BufMut>(n: i64, out: &mut B) {
    let z = zigzag64(n);
    if z < 0x80 {
        out.put_u8(z as u8);
    } else {
        put_unsigned(z, out);
    }
}

#[inline]
fn decode_unsigned(buf: &[u8], max: usize) -> Result<(u64, usize), VarintError> {
    let mut value: u64 = 0;
    for i in 0..max {
        let Some(&b) = buf.get(i) else {
            return Err(VarintError::Truncated);
        };
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(VarintError::TooLong { max })
}

/// Decodes a zigzag varint from the front of `buf`: `(value, bytes consumed)`.
///
/// Bits beyond 32 in the fifth byte are ignored, as the Java client does.
#[inline]
pub fn decode_varint(buf: &[u8]) -> Result<(i32, usize), VarintError> {
    if let Some(&b) = buf.first() {
        if b < 0x80 {
            return Ok((unzigzag32(u32::from(b)), 1));
        }
    }
    let (v, n) = decode_unsigned(buf, MAX_VARINT_LEN)?;
    Ok((unzigzag32(v as u32), n))
}

/// Decodes a zigzag varlong from the front of `buf`: `(value, bytes consumed)`.
#[inline]
pub fn decode_varlong(buf: &[u8]) -> Result<(i64, usize), VarintError> {
    if let Some(&b) = buf.first() {
        if b < 0x80 {
            return Ok((unzigzag64(u64::from(b)), 1));
        }
    }
    let (v, n) = decode_unsigned(buf, MAX_VARLONG_LEN)?;
    Ok((unzigzag64(v), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (300, &[0xd8, 0x04]),
        ];
        for &(n, bytes) in cases {
            let mut v = Vec::new();
            encode_varlong(n, &mut v);
            assert_eq!(v, bytes, "varlong {n}");
            assert_eq!(decode_varlong(bytes), Ok((n, bytes.len())));
            let mut v = Vec::new();
            encode_varint(n as i32, &mut v);
            assert_eq!(v, bytes, "varint {n}");
            assert_eq!(decode_varint(bytes), Ok((n as i32, bytes.len())));
        }
    }

    #[test]
    fn extremes_round_trip() {
        for n in [i32::MIN, i32::MAX, i32::MIN + 1, 0, -1] {
            let mut v = Vec::new();
            encode_varint(n, &mut v);
            assert_eq!(v.len(), varint_len(n));
            assert!(v.len() <= MAX_VARINT_LEN);
            assert_eq!(decode_varint(&v), Ok((n, v.len())));
        }
        for n in [i64::MIN, i64::MAX, i64::MIN + 1, 0, -1] {
            let mut v = Vec::new();
            encode_varlong(n, &mut v);
            assert_eq!(v.len(), varlong_len(n));
            assert!(v.len() <= MAX_VARLONG_LEN);
            assert_eq!(decode_varlong(&v), Ok((n, v.len())));
        }
    }

    #[test]
    fn malformed() {
        assert_eq!(decode_varint(&[]), Err(VarintError::Truncated));
        assert_eq!(decode_varint(&[0x80, 0x80]), Err(VarintError::Truncated));
        assert_eq!(
            decode_varint(&[0x80; 6]),
            Err(VarintError::TooLong { max: 5 })
        );
        assert_eq!(
            decode_varlong(&[0xff; 11]),
            Err(VarintError::TooLong { max: 10 })
        );
    }
}

//! Compression codecs of the records section of a batch, each behind a crate feature:
//!
//! | codec  | feature  | crate                   | encode | decode | notes |
//! |--------|----------|-------------------------|--------|--------|-------|
//! | gzip   | `gzip`   | `flate2` (Rust backend) | yes    | yes    | multi-member streams accepted |
//! | snappy | `snappy` | `snap`                  | yes    | yes    | Java xerial framing written (32 KiB blocks); framed or raw accepted |
//! | lz4    | `lz4`    | `lz4_flex`              | yes    | yes    | LZ4 frame format, 64 KiB independent blocks |
//! | zstd   | `zstd`   | `ruzstd`                | yes    | yes    | written at ruzstd's `Fastest` level (about zstd level 1), one frame; concatenated frames accepted |
//!
//! Every decoder is capped: output beyond `max_output` bytes is an error, checked while
//! decoding (a small hostile input cannot make us allocate more than about the cap).

use bytes::BytesMut;

use crate::record::Compression;

/// Why compressing or decompressing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompressionError {
    /// The codec's crate feature is not enabled in this build.
    #[error("compression codec {0} is not enabled in this build (cargo feature)")]
    NotEnabled(&'static str),
    /// The codec can be decoded but not encoded by this build. No codec returns it at
    /// present (zstd did until ruzstd 0.9 brought an encoder); kept for API compatibility.
    #[error("encoding with {0} is not supported (decode only)")]
    EncodeUnsupported(&'static str),
    /// The decompressed output exceeds the cap.
    #[error("{codec} output exceeds the limit of {limit} bytes")]
    OutputTooLarge {
        /// The codec.
        codec: &'static str,
        /// The cap.
        limit: usize,
    },
    /// The compressed input is malformed.
    #[error("{codec} data is malformed: {reason}")]
    Malformed {
        /// The codec.
        codec: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// The encoder failed.
    #[error("{codec} encoding failed: {reason}")]
    Encode {
        /// The codec.
        codec: &'static str,
        /// What the encoder said.
        reason: String,
    },
}

/// Compresses `input` with `codec` and appends the result to `out`. `Compression::None`
/// appends `input` unchanged.
pub fn compress(
    codec: Compression,
    input: &[u8],
    out: &mut BytesMut,
) -> Result<(), CompressionError> {
    match codec {
        Compression::None => {
            out.extend_from_slice(input);
            Ok(())
        }
        Compression::Gzip => gzip::compress(input, out),
        Compression::Snappy => snappy::compress(input, out),
        Compression::Lz4 => lz4::compress(input, out),
        Compression::Zstd => zstd::compress(input, out),
    }
}

/// Decompresses `input`, producing at most `max_output` bytes (more is an error).
/// `Compression::None` copies `input` (subject to the same cap).
pub fn decompress(
    codec: Compression,
    input: &[u8],
    max_output: usize,
) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Compression::None => {
            if input.len() > max_output {
                return Err(CompressionError::OutputTooLarge {
                    codec: "none",
                    limit: max_output,
                });
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => gzip::decompress(input, max_output),
        Compression::Snappy => snappy::decompress(input, max_output),
        Compression::Lz4 => lz4::decompress(input, max_output),
        Compression::Zstd => zstd::decompress(input, max_output),
    }
}

/// Whether this build can encode `codec`.
pub fn can_encode(codec: Compression) -> bool {
    match codec {
        Compression::None => true,
        Compression::Gzip => cfg!(feature = "gzip"),
        Compression::Snappy => cfg!(feature = "snappy"),
        Compression::Lz4 => cfg!(feature = "lz4"),
        Compression::Zstd => cfg!(feature = "zstd"),
    }
}

/// Whether this build can decode `codec`.
pub fn can_decode(codec: Compression) -> bool {
    match codec {
        Compression::None => true,
        Compression::Gzip => cfg!(feature = "gzip"),
        Compression::Snappy => cfg!(feature = "snappy"),
        Compression::Lz4 => cfg!(feature = "lz4"),
        Compression::Zstd => cfg!(feature = "zstd"),
    }
}

#[allow(dead_code)] // unused when every codec feature is off
fn malformed(codec: &'static str, e: impl std::fmt::Display) -> CompressionError {
    CompressionError::Malformed {
        codec,
        reason: e.to_string(),
    }
}

/// Reads `reader` to the end, failing once more than `max` bytes come out.
#[allow(dead_code)] // unused when every codec feature is off
fn read_capped(
    codec: &'static str,
    reader: impl std::io::Read,
    max: usize,
    size_hint: usize,
) -> Result<Vec<u8>, CompressionError> {
    use std::io::Read;
    let mut out = Vec::with_capacity(size_hint.min(max));
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| malformed(codec, e))?;
    if out.len() > max {
        return Err(CompressionError::OutputTooLarge { codec, limit: max });
    }
    Ok(out)
}

#[cfg(feature = "gzip")]
mod gzip {
    use super::{malformed, read_capped, CompressionError};
    use bytes::{BufMut, BytesMut};
    use std::io::Write;

    pub(super) fn compress(input: &[u8], out: &mut BytesMut) -> Result<(), CompressionError> {
        let mut enc = flate2::write::GzEncoder::new(out.writer(), flate2::Compression::default());
        enc.write_all(input)
            .and_then(|()| enc.finish().map(drop))
            .map_err(|e| CompressionError::Encode {
                codec: "gzip",
                reason: e.to_string(),
            })
    }

    pub(super) fn decompress(input: &[u8], max: usize) -> Result<Vec<u8>, CompressionError> {
        if input.is_empty() {
            return Err(malformed("gzip", "empty input"));
        }
        read_capped(
            "gzip",
            flate2::read::MultiGzDecoder::new(input),
            max,
            input.len() * 4,
        )
    }
}

#[cfg(not(feature = "gzip"))]
mod gzip {
    use super::CompressionError;
    use bytes::BytesMut;

    pub(super) fn compress(_: &[u8], _: &mut BytesMut) -> Result<(), CompressionError> {
        Err(CompressionError::NotEnabled("gzip"))
    }

    pub(super) fn decompress(_: &[u8], _: usize) -> Result<Vec<u8>, CompressionError> {
        Err(CompressionError::NotEnabled("gzip"))
    }
}

#[cfg(feature = "snappy")]
mod snappy {
    //! Java's snappy-java ("xerial") stream framing, which Kafka's Java client writes:
    //! a 16-byte header (magic `\x82SNAPPY\0`, version 1, compatible version 1, both i32
    //! big endian), then blocks of `i32 big-endian compressed length` + raw snappy.
    //! librdkafka and some others write a bare raw snappy block; both are accepted.
    use super::{malformed, CompressionError};
    use bytes::{BufMut, BytesMut};

    const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
    const XERIAL_HEADER_LEN: usize = 16;
    /// snappy-java's default block size.
    const BLOCK_SIZE: usize = 32 * 1024;

    pub(super) fn compress(input: &[u8], out: &mut BytesMut) -> Result<(), CompressionError> {
        let mut enc = snap::raw::Encoder::new();
        out.reserve(XERIAL_HEADER_LEN + input.len() / 2 + 16);
        out.put_slice(&XERIAL_MAGIC);
        out.put_i32(1);
        out.put_i32(1);
        let mut scratch = vec![0u8; snap::raw::max_compress_len(BLOCK_SIZE.min(input.len()))];
        for block in input.chunks(BLOCK_SIZE) {
            let n = enc
                .compress(block, &mut scratch)
                .map_err(|e| CompressionError::Encode {
                    codec: "snappy",
                    reason: e.to_string(),
                })?;
            // n <= max_compress_len(32 KiB), far below i32::MAX.
            out.put_i32(n as i32);
            out.put_slice(&scratch[..n]);
        }
        Ok(())
    }

    pub(super) fn decompress(input: &[u8], max: usize) -> Result<Vec<u8>, CompressionError> {
        let mut dec = snap::raw::Decoder::new();
        let mut out = Vec::new();
        if input.len() >= XERIAL_HEADER_LEN && input[..8] == XERIAL_MAGIC {
            let mut rest = &input[XERIAL_HEADER_LEN..];
            while !rest.is_empty() {
                if rest.len() < 4 {
                    return Err(malformed("snappy", "truncated xerial block length"));
                }
                let len = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
                rest = &rest[4..];
                let len = usize::try_from(len)
                    .ok()
                    .filter(|l| *l <= rest.len())
                    .ok_or_else(|| malformed("snappy", format!("xerial block length {len}")))?;
                raw_block(&mut dec, &rest[..len], max, &mut out)?;
                rest = &rest[len..];
            }
            Ok(out)
        } else {
            raw_block(&mut dec, input, max, &mut out)?;
            Ok(out)
        }
    }

    fn raw_block(
        dec: &mut snap::raw::Decoder,
        block: &[u8],
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), CompressionError> {
        let len = snap::raw::decompress_len(block).map_err(|e| malformed("snappy", e))?;
        let start = out.len();
        if len > max - start {
            return Err(CompressionError::OutputTooLarge {
                codec: "snappy",
                limit: max,
            });
        }
        out.resize(start + len, 0);
        let n = dec
            .decompress(block, &mut out[start..])
            .map_err(|e| malformed("snappy", e))?;
        out.truncate(start + n);
        Ok(())
    }
}

#[cfg(not(feature = "snappy"))]
mod snappy {
    use super::CompressionError;
    use bytes::BytesMut;

    pub(super) fn compress(_: &[u8], _: &mut BytesMut) -> Result<(), CompressionError> {
        Err(CompressionError::NotEnabled("snappy"))
    }

    pub(super) fn decompress(_: &[u8], _: usize) -> Result<Vec<u8>, CompressionError> {
        Err(CompressionError::NotEnabled("snappy"))
    }
}

#[cfg(feature = "lz4")]
mod lz4 {
    use super::{read_capped, CompressionError};
    use bytes::{BufMut, BytesMut};
    use lz4_flex::frame::{BlockMode, BlockSize, FrameDecoder, FrameEncoder, FrameInfo};
    use std::io::Write;

    pub(super) fn compress(input: &[u8], out: &mut BytesMut) -> Result<(), CompressionError> {
        // Kafka's Java reader (KafkaLZ4BlockInputStream) expects independent blocks.
        let info = FrameInfo::new()
            .block_size(BlockSize::Max64KB)
            .block_mode(BlockMode::Independent);
        let mut enc = FrameEncoder::with_frame_info(info, out.writer());
        enc.write_all(input)
            .map_err(|e| e.to_string())
            .and_then(|()| enc.finish().map(drop).map_err(|e| e.to_string()))
            .map_err(|reason| CompressionError::Encode {
                codec: "lz4",
                reason,
            })
    }

    pub(super) fn decompress(input: &[u8], max: usize) -> Result<Vec<u8>, CompressionError> {
        // lz4_flex reads an empty stream as zero frames; a batch always has one frame.
        if input.is_empty() {
            return Err(super::malformed("lz4", "empty input"));
        }
        read_capped("lz4", FrameDecoder::new(input), max, input.len() * 2)
    }
}

#[cfg(not(feature = "lz4"))]
mod lz4 {
    use super::CompressionError;
    use bytes::BytesMut;

    pub(super) fn compress(_: &[u8], _: &mut BytesMut) -> Result<(), CompressionError> {
        Err(CompressionError::NotEnabled("lz4"))
    }

    pub(super) fn decompress(_: &[u8], _: usize) -> Result<Vec<u8>, CompressionError> {
        Err(CompressionError::NotEnabled("lz4"))
    }
}

#[cfg(feature = "zstd")]
mod zstd {
    use super::{malformed, CompressionError};
    use bytes::{BufMut, BytesMut};
    use ruzstd::encoding::CompressionLevel;
    use std::io::Read;

    /// Windows up to this size are always accepted, whatever the output cap (zstd's
    /// default streaming window at level 3 is 2-8 MiB).
    const MIN_WINDOW_ALLOWANCE: u64 = 8 * 1024 * 1024;

    pub(super) fn compress(input: &[u8], out: &mut BytesMut) -> Result<(), CompressionError> {
        // One frame (128 KiB window, content checksum), written block by block into `out`.
        // ruzstd's encoder cannot fail on a slice source and a `BytesMut` drain, but it
        // panics rather than returning errors: contain a panic as an encoding error (the
        // caller truncates `out` on error).
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ruzstd::encoding::compress(input, out.writer(), CompressionLevel::Fastest);
        }))
        .map_err(|panic| CompressionError::Encode {
            codec: "zstd",
            reason: panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "encoder panicked".to_string()),
        })
    }

    pub(super) fn decompress(input: &[u8], max: usize) -> Result<Vec<u8>, CompressionError> {
        let mut out = Vec::with_capacity((input.len() * 4).min(max));
        let mut rest = input;
        // ruzstd reserves the frame's declared window up front: have it refuse, before
        // allocating, windows beyond the output cap (8 MiB always allowed, never more than
        // ruzstd's default limit of 128 MiB).
        let window_cap = u64::try_from(max).unwrap_or(u64::MAX).clamp(
            MIN_WINDOW_ALLOWANCE,
            ruzstd::decoding::DEFAULT_MAX_WINDOW_SIZE,
        );
        // A record set may hold several concatenated frames (zstd-jni reads them all).
        loop {
            let before = rest.len();
            let mut dec =
                ruzstd::decoding::StreamingDecoder::new_with_max_window_size(&mut rest, window_cap)
                    .map_err(|e| malformed("zstd", e))?;
            let room = max - out.len();
            let cap = u64::try_from(room).unwrap_or(u64::MAX).saturating_add(1);
            (&mut dec)
                .take(cap)
                .read_to_end(&mut out)
                .map_err(|e| malformed("zstd", e))?;
            if out.len() > max {
                return Err(CompressionError::OutputTooLarge {
                    codec: "zstd",
                    limit: max,
                });
            }
            if !dec.decoder.is_finished() {
                return Err(malformed("zstd", "truncated frame"));
            }
            drop(dec);
            if rest.is_empty() {
                return Ok(out);
            }
            if rest.len() == before {
                return Err(malformed("zstd", "no progress"));
            }
        }
    }
}

#[cfg(not(feature = "zstd"))]
mod zstd {
    use super::CompressionError;
    use bytes::BytesMut;

    pub(super) fn compress(_: &[u8], _: &mut BytesMut) -> Result<(), CompressionError> {
        Err(CompressionError::NotEnabled("zstd"))
    }

    pub(super) fn decompress(_: &[u8], _: usize) -> Result<Vec<u8>, CompressionError> {
        Err(CompressionError::NotEnabled("zstd"))
    }
}

#[cfg(all(test, feature = "zstd"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

    /// About `len` bytes of repetitive JSON-like text.
    fn json_like(len: usize) -> Vec<u8> {
        let mut s = String::with_capacity(len + 200);
        let mut i = 0u64;
        while s.len() < len {
            s.push_str(&format!(
                r#"{{"id":{i},"type":"OrderPlaced","entity":"order-{}","amount":{}.{:02},"currency":"EUR","tags":["a","b"]}}"#,
                i % 977,
                i * 37 % 10_000,
                i % 100
            ));
            s.push('\n');
            i += 1;
        }
        s.truncate(len);
        s.into_bytes()
    }

    /// `len` pseudo-random (incompressible) bytes, xorshift64.
    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn zstd(input: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        compress(Compression::Zstd, input, &mut out).unwrap();
        out
    }

    #[test]
    fn zstd_can_encode_and_decode() {
        assert!(can_encode(Compression::Zstd));
        assert!(can_decode(Compression::Zstd));
    }

    #[test]
    fn zstd_round_trips_compressible_data() {
        // Over 128 KiB: several blocks in the frame.
        let data = json_like(1 << 20);
        let out = zstd(&data);
        assert_eq!(out[..4], ZSTD_MAGIC);
        assert!(
            out.len() < data.len() / 4,
            "real compression expected: {} -> {}",
            data.len(),
            out.len()
        );
        assert_eq!(
            decompress(Compression::Zstd, &out, data.len()).unwrap(),
            data
        );
        let err = decompress(Compression::Zstd, &out, data.len() - 1).unwrap_err();
        assert!(
            matches!(err, CompressionError::OutputTooLarge { codec: "zstd", limit } if limit == data.len() - 1),
            "{err}"
        );
    }

    #[test]
    fn zstd_round_trips_incompressible_data() {
        let data = noise(300_000);
        let out = zstd(&data);
        // Stored (raw) blocks: a few bytes of frame and block headers, plus the checksum.
        assert!(out.len() <= data.len() + 64, "{}", out.len());
        assert_eq!(
            decompress(Compression::Zstd, &out, data.len()).unwrap(),
            data
        );
    }

    #[test]
    fn zstd_round_trips_empty_and_tiny_inputs() {
        let out = zstd(b"");
        assert_eq!(out[..4], ZSTD_MAGIC);
        assert!(decompress(Compression::Zstd, &out, 0).unwrap().is_empty());
        for data in [&b"x"[..], b"ab", &[0u8; 17][..], b"kafka kafka kafka kafka"] {
            let out = zstd(data);
            assert_eq!(
                decompress(Compression::Zstd, &out, data.len()).unwrap(),
                data
            );
        }
    }

    #[test]
    fn zstd_appends_to_out_and_frames_concatenate() {
        let (a, b) = (json_like(50_000), noise(1000));
        let mut out = BytesMut::from(&b"prefix"[..]);
        compress(Compression::Zstd, &a, &mut out).unwrap();
        assert_eq!(&out[..6], b"prefix");
        let split = out.len();
        compress(Compression::Zstd, &b, &mut out).unwrap();
        assert_eq!(out[split..split + 4], ZSTD_MAGIC);
        let back = decompress(Compression::Zstd, &out[6..], 1 << 20).unwrap();
        assert_eq!(back, [a, b].concat());
    }

    #[test]
    fn zstd_bomb_is_capped() {
        let zeros = vec![0u8; 16 << 20];
        let out = zstd(&zeros);
        assert!(out.len() < 100_000, "{}", out.len());
        let err = decompress(Compression::Zstd, &out, 1 << 20).unwrap_err();
        assert!(
            matches!(err, CompressionError::OutputTooLarge { limit, .. } if limit == 1 << 20),
            "{err}"
        );
    }

    /// A frame header (no content size, no checksum) with `window_descriptor`, then one
    /// empty last raw block.
    fn frame_with_window(window_descriptor: u8) -> Vec<u8> {
        let mut f = ZSTD_MAGIC.to_vec();
        f.extend_from_slice(&[0x00, window_descriptor, 0x01, 0x00, 0x00]);
        f
    }

    #[test]
    fn zstd_refuses_windows_beyond_the_cap() {
        // 2 MiB window: accepted whatever the output cap.
        assert!(decompress(Compression::Zstd, &frame_with_window(0x58), 10)
            .unwrap()
            .is_empty());
        // 128 MiB (exponent 17) and 2 TiB (exponent 31) windows, 1 MiB cap: refused before
        // anything is allocated.
        for wd in [0x88, 0xf8] {
            let err = decompress(Compression::Zstd, &frame_with_window(wd), 1 << 20).unwrap_err();
            assert!(matches!(err, CompressionError::Malformed { .. }), "{err}");
        }
        // Even with a huge output cap, ruzstd's own limit (128 MiB) holds.
        let err = decompress(Compression::Zstd, &frame_with_window(0xf8), usize::MAX).unwrap_err();
        assert!(matches!(err, CompressionError::Malformed { .. }), "{err}");
    }

    #[test]
    fn zstd_garbage_is_an_error() {
        let good = zstd(&json_like(10_000));
        for bad in [
            &b""[..],
            &b"\x00"[..],
            &ZSTD_MAGIC[..],
            &[0xffu8; 64][..],
            &good[..good.len() / 2],
            &good[..good.len() - 1],
        ] {
            assert!(
                decompress(Compression::Zstd, bad, 1 << 20).is_err(),
                "accepted {bad:?}"
            );
        }
    }
}

//! Compression codecs of the records section of a batch, each behind a crate feature:
//!
//! | codec  | feature  | crate                   | encode | decode | notes |
//! |--------|----------|-------------------------|--------|--------|-------|
//! | gzip   | `gzip`   | `flate2` (Rust backend) | yes    | yes    | multi-member streams accepted |
//! | snappy | `snappy` | `snap`                  | yes    | yes    | Java xerial framing written (32 KiB blocks); framed or raw accepted |
//! | lz4    | `lz4`    | `lz4_flex`              | yes    | yes    | LZ4 frame format, 64 KiB independent blocks |
//! | zstd   | `zstd`   | `ruzstd`                | **no** | yes    | ruzstd 0.7 has no encoder: [`compress`] returns [`CompressionError::EncodeUnsupported`] |
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
    /// The codec can be decoded but not encoded by this build (zstd: ruzstd 0.7 has no
    /// encoder).
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
        Compression::Zstd => {
            let _ = (input, out);
            if cfg!(feature = "zstd") {
                Err(CompressionError::EncodeUnsupported("zstd"))
            } else {
                Err(CompressionError::NotEnabled("zstd"))
            }
        }
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
        Compression::Zstd => false,
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
    use std::io::Read;

    /// Windows up to this size are always accepted, whatever the output cap (zstd's
    /// default streaming window at level 3 is 2-8 MiB).
    const MIN_WINDOW_ALLOWANCE: u64 = 8 * 1024 * 1024;

    pub(super) fn decompress(input: &[u8], max: usize) -> Result<Vec<u8>, CompressionError> {
        let mut out = Vec::with_capacity((input.len() * 4).min(max));
        let mut rest = input;
        let window_cap = u64::try_from(max)
            .unwrap_or(u64::MAX)
            .max(MIN_WINDOW_ALLOWANCE);
        // A record set may hold several concatenated frames (zstd-jni reads them all).
        loop {
            // ruzstd reserves the frame's declared window up front (up to 100 MiB): refuse
            // windows beyond the cap before it allocates.
            let (frame, _) =
                ruzstd::frame::read_frame_header(rest).map_err(|e| malformed("zstd", e))?;
            let window = frame
                .header
                .window_size()
                .map_err(|e| malformed("zstd", e))?;
            if window > window_cap {
                return Err(malformed(
                    "zstd",
                    format!("window size {window} exceeds {window_cap}"),
                ));
            }
            let before = rest.len();
            let mut dec =
                ruzstd::StreamingDecoder::new(&mut rest).map_err(|e| malformed("zstd", e))?;
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

    pub(super) fn decompress(_: &[u8], _: usize) -> Result<Vec<u8>, CompressionError> {
        Err(CompressionError::NotEnabled("zstd"))
    }
}

//! Record batch v2 codec: round trips (proptest), a known-answer batch, truncation, and every
//! corrupt-length case returning an error instead of panicking or allocating.

// A test fails by panicking: unwrapping here is the assertion.
#![allow(clippy::unwrap_used)]

use bytes::{BufMut, Bytes, BytesMut};
use kafka_persistence_wire::compression::{self, CompressionError};
use kafka_persistence_wire::record::{
    decode_batch, decode_batches, encode_batch, encode_batch_with_offsets, set_base_offset,
    set_log_append_time, set_partition_leader_epoch, validate_batch, varint, BatchHeader,
    Compression, DecodeLimits, EncodeOptions, Header, Record, RecordError, TimestampType,
};
use proptest::prelude::*;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn encode(records: &[Record], opts: &EncodeOptions) -> Bytes {
    let mut out = BytesMut::new();
    encode_batch(records, opts, &mut out).unwrap();
    out.freeze()
}

fn decode_one(buf: &Bytes) -> Result<kafka_persistence_wire::record::DecodedBatch, RecordError> {
    let mut b = buf.clone();
    let r = decode_batch(&mut b, &DecodeLimits::default());
    if r.is_ok() {
        assert!(b.is_empty(), "decode_batch must consume exactly one batch");
    }
    r
}

/// The codecs this build can encode.
fn encodable_codecs() -> Vec<Compression> {
    [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .filter(|c| compression::can_encode(*c))
    .collect()
}

// ---------------------------------------------------------------------------------------
// Known answer
// ---------------------------------------------------------------------------------------

/// A bitwise CRC-32C (Castagnoli, reflected 0x82F63B78), independent of the `crc32c` crate.
fn crc32c_bitwise(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn known_answer_single_record_batch() {
    assert_eq!(crc32c_bitwise(b"123456789"), 0xE306_9283); // the CRC-32C check value

    let batch = encode(&[Record::new(&b"a"[..], 1000)], &EncodeOptions::default());
    #[rustfmt::skip]
    let expected: Vec<u8> = [
        &[0u8, 0, 0, 0, 0, 0, 0, 0][..],        // base_offset 0
        &[0, 0, 0, 0x39],                        // batch_length 57 = 69 - 12
        &[0xff, 0xff, 0xff, 0xff],               // partition_leader_epoch -1
        &[2],                                    // magic
        &[0xeb, 0xf1, 0x88, 0x4b],               // crc (computed by hand, see below)
        &[0, 0],                                 // attributes
        &[0, 0, 0, 0],                           // last_offset_delta 0
        &[0, 0, 0, 0, 0, 0, 0x03, 0xe8],         // base_timestamp 1000
        &[0, 0, 0, 0, 0, 0, 0x03, 0xe8],         // max_timestamp 1000
        &[0xff; 8],                              // producer_id -1
        &[0xff, 0xff],                           // producer_epoch -1
        &[0xff, 0xff, 0xff, 0xff],               // base_sequence -1
        &[0, 0, 0, 1],                           // record count 1
        // record: length 7 (zigzag 14), attributes, ts delta 0, offset delta 0,
        // key null (-1 -> 1), value length 1 (-> 2), 'a', 0 headers
        &[0x0e, 0x00, 0x00, 0x00, 0x01, 0x02, 0x61, 0x00],
    ]
    .concat();
    assert_eq!(batch.as_ref(), expected.as_slice());
    assert_eq!(crc32c_bitwise(&expected[21..]), 0xebf1_884b);

    let header = validate_batch(&batch).unwrap();
    assert_eq!(header.crc, 0xebf1_884b);
    assert_eq!(header.total_size(), 69);
    assert_eq!(header.record_count, 1);
    let decoded = decode_one(&batch).unwrap();
    assert_eq!(decoded.records.len(), 1);
    let r = &decoded.records[0];
    assert_eq!((r.offset, r.timestamp), (0, 1000));
    assert_eq!(r.key, None);
    assert_eq!(r.value.as_deref(), Some(&b"a"[..]));
    assert!(r.headers.is_empty());
}

#[test]
fn header_accessors_reflect_attributes() {
    let opts = EncodeOptions {
        base_offset: 40,
        partition_leader_epoch: 3,
        producer_id: 9,
        producer_epoch: 2,
        base_sequence: 17,
        is_transactional: true,
        is_control: true,
        compression: Compression::None,
        timestamp_type: TimestampType::LogAppendTime,
    };
    let records: Vec<Record> = (0..3).map(|i| Record::new(vec![i as u8], 5 + i)).collect();
    let batch = encode(&records, &opts);
    let h = BatchHeader::parse(&batch).unwrap();
    assert_eq!(h.attributes, 0x08 | 0x10 | 0x20);
    assert!(h.is_transactional() && h.is_control());
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(h.compression().unwrap(), Compression::None);
    assert_eq!(h.last_offset(), 42);
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (9, 2, 17)
    );
    assert_eq!(h.partition_leader_epoch, 3);
    assert_eq!((h.base_timestamp, h.max_timestamp), (5, 7));
    // LogAppendTime: every record carries max_timestamp.
    let d = decode_one(&batch).unwrap();
    assert!(d.records.iter().all(|r| r.timestamp == 7));
    assert_eq!(
        d.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![40, 41, 42]
    );
}

#[test]
fn in_place_rewrites_keep_the_batch_valid() {
    let records = vec![Record::new(&b"x"[..], 100), Record::new(&b"y"[..], 50)];
    let mut buf = BytesMut::new();
    encode_batch(&records, &EncodeOptions::default(), &mut buf).unwrap();
    let crc_before = validate_batch(&buf).unwrap().crc;

    set_base_offset(&mut buf, 1_000_000);
    set_partition_leader_epoch(&mut buf, 12);
    let h = validate_batch(&buf).unwrap();
    assert_eq!(
        h.crc, crc_before,
        "base offset and epoch are outside the CRC"
    );
    assert_eq!((h.base_offset, h.partition_leader_epoch), (1_000_000, 12));

    set_log_append_time(&mut buf, 777);
    let h = validate_batch(&buf).unwrap();
    assert_ne!(h.crc, crc_before);
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(h.max_timestamp, 777);
    let d = decode_one(&buf.freeze()).unwrap();
    assert_eq!(
        d.records
            .iter()
            .map(|r| (r.offset, r.timestamp))
            .collect::<Vec<_>>(),
        vec![(1_000_000, 777), (1_000_001, 777)]
    );

    // Short buffers are left alone instead of panicking.
    let mut short = [1u8; 7];
    set_base_offset(&mut short, 5);
    set_partition_leader_epoch(&mut short, 5);
    set_log_append_time(&mut short, 5);
    assert_eq!(short, [1u8; 7]);
}

#[test]
fn explicit_offsets_survive_compaction_gaps() {
    let recs = vec![
        (0, Record::new(&b"a"[..], 1)),
        (3, Record::new(&b"b"[..], 2)),
        (9, Record::new(&b"c"[..], 3)),
    ];
    let opts = EncodeOptions {
        base_offset: 100,
        ..EncodeOptions::default()
    };
    let mut out = BytesMut::new();
    encode_batch_with_offsets(&recs, 12, &opts, &mut out).unwrap();
    let d = decode_one(&out.freeze()).unwrap();
    assert_eq!(d.header.last_offset(), 112);
    assert_eq!(
        d.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![100, 103, 109]
    );

    // An empty batch (compaction removed every record) is still a valid batch.
    let mut out = BytesMut::new();
    encode_batch_with_offsets(&[], 4, &opts, &mut out).unwrap();
    let d = decode_one(&out.freeze()).unwrap();
    assert!(d.records.is_empty());
    assert_eq!(d.header.last_offset(), 104);
    assert_eq!(d.header.base_timestamp, -1);

    for (recs, last) in [
        (vec![(2, Record::default()), (2, Record::default())], 5), // not increasing
        (vec![(3, Record::default()), (1, Record::default())], 5), // decreasing
        (vec![(-1, Record::default())], 5),                        // negative
        (vec![(6, Record::default())], 5),                         // beyond last
        (vec![], -1),                                              // negative last
    ] {
        let mut out = BytesMut::new();
        let err = encode_batch_with_offsets(&recs, last, &opts, &mut out).unwrap_err();
        assert!(
            matches!(err, RecordError::InvalidOffsetDelta { .. }),
            "{err}"
        );
        assert!(out.is_empty(), "nothing appended on error");
    }
}

#[test]
fn encode_errors_leave_output_untouched() {
    let mut out = BytesMut::from(&b"prefix"[..]);
    assert!(matches!(
        encode_batch(&[], &EncodeOptions::default(), &mut out),
        Err(RecordError::EmptyBatch)
    ));
    let records = vec![
        Record::new(&b"a"[..], i64::MAX),
        Record::new(&b"b"[..], i64::MIN),
    ];
    assert!(matches!(
        encode_batch(&records, &EncodeOptions::default(), &mut out),
        Err(RecordError::TimestampOverflow { .. })
    ));
    assert_eq!(out.as_ref(), b"prefix");
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_batch_encodes_and_decodes() {
    let records: Vec<Record> = (0..50)
        .map(|i| {
            Record::new(format!("zstd-value-{i}").repeat(20).into_bytes(), 1_000 + i)
                .with_key(format!("k{i}").into_bytes())
                .with_header("h", "v")
        })
        .collect();
    let opts = EncodeOptions {
        compression: Compression::Zstd,
        ..EncodeOptions::default()
    };
    let batch = encode(&records, &opts);
    let plain = encode(&records, &EncodeOptions::default());
    assert!(
        batch.len() < plain.len() / 2,
        "{} vs {}",
        batch.len(),
        plain.len()
    );
    // The records section is one zstd frame.
    assert_eq!(
        &batch[BatchHeader::SIZE..BatchHeader::SIZE + 4],
        &[0x28, 0xb5, 0x2f, 0xfd]
    );
    let d = decode_one(&batch).unwrap();
    assert_eq!(d.header.compression().unwrap(), Compression::Zstd);
    assert_eq!(d.records.len(), records.len());
    for (i, (r, src)) in d.records.iter().zip(&records).enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.key, src.key);
        assert_eq!(r.value, src.value);
        assert_eq!(r.headers, src.headers);
        assert_eq!(r.timestamp, src.timestamp);
    }
}

#[test]
fn uncompressed_values_are_zero_copy_slices() {
    let batch = encode(
        &[Record::new(vec![7u8; 100], 1).with_key(&b"k"[..])],
        &EncodeOptions::default(),
    );
    let range = batch.as_ptr() as usize..batch.as_ptr() as usize + batch.len();
    let d = decode_one(&batch).unwrap();
    let v = d.records[0].value.as_ref().unwrap();
    assert!(
        range.contains(&(v.as_ptr() as usize)),
        "value must point into the input"
    );
    let k = d.records[0].key.as_ref().unwrap();
    assert!(
        range.contains(&(k.as_ptr() as usize)),
        "key must point into the input"
    );
}

// ---------------------------------------------------------------------------------------
// zstd decode (ruzstd): a frame made by the zstd CLI, and a batch in a raw-block frame
// ---------------------------------------------------------------------------------------

/// `zstd -19` of [`zstd_fixture_payload`], made with the zstd 1.5 CLI.
const ZSTD_FIXTURE_HEX: &str = "28b52ffd64d804450900f4116b61666b612d70657273697374656e6365207a737464206669787475726520000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0100db227ee504b7049ad9";

fn zstd_fixture_payload() -> Vec<u8> {
    let mut p = b"kafka-persistence zstd fixture ".repeat(40);
    p.extend(0..=255u8);
    p
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A valid zstd frame holding `data` in raw (stored) blocks.
fn zstd_raw_frame(data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd];
    f.push(0x00); // frame header descriptor: no content size, not single segment, no checksum
    f.push(0x58); // window descriptor: exponent 11 -> 2^21 = 2 MiB window
    let chunks: Vec<&[u8]> = data.chunks(100_000).collect();
    if chunks.is_empty() {
        f.extend_from_slice(&[0x01, 0x00, 0x00]); // last, raw, size 0
    }
    for (i, c) in chunks.iter().enumerate() {
        let last = u32::from(i + 1 == chunks.len());
        let h = last | ((c.len() as u32) << 3);
        f.extend_from_slice(&h.to_le_bytes()[..3]);
        f.extend_from_slice(c);
    }
    f
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_decodes_a_cli_made_frame() {
    let frame = unhex(ZSTD_FIXTURE_HEX);
    let out = compression::decompress(Compression::Zstd, &frame, 1 << 20).unwrap();
    assert_eq!(out, zstd_fixture_payload());
    // Two concatenated frames decode to both payloads.
    let two = [frame.clone(), frame.clone()].concat();
    let out = compression::decompress(Compression::Zstd, &two, 1 << 20).unwrap();
    assert_eq!(out.len(), 2 * zstd_fixture_payload().len());
    // The output cap applies.
    let err = compression::decompress(Compression::Zstd, &frame, 1000).unwrap_err();
    assert!(
        matches!(err, CompressionError::OutputTooLarge { .. }),
        "{err}"
    );
    // A truncated frame is an error.
    assert!(
        compression::decompress(Compression::Zstd, &frame[..frame.len() - 20], 1 << 20).is_err()
    );
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_batch_decodes() {
    let records: Vec<Record> = (0..20)
        .map(|i| Record::new(format!("value-{i}").into_bytes(), 1_000 + i).with_header("h", "v"))
        .collect();
    let plain = encode(&records, &EncodeOptions::default());
    let mut batch = BytesMut::from(&plain[..BatchHeader::SIZE]);
    batch.put_slice(&zstd_raw_frame(&plain[BatchHeader::SIZE..]));
    let len = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&len.to_be_bytes());
    batch[21..23].copy_from_slice(&4i16.to_be_bytes());
    let crc = crc32c_bitwise(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    let d = decode_one(&batch.freeze()).unwrap();
    assert_eq!(d.header.compression().unwrap(), Compression::Zstd);
    assert_eq!(d.records.len(), 20);
    for (i, (r, src)) in d.records.iter().zip(&records).enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.value, src.value);
        assert_eq!(r.headers, src.headers);
        assert_eq!(r.timestamp, src.timestamp);
    }
}

// ---------------------------------------------------------------------------------------
// Compression
// ---------------------------------------------------------------------------------------

#[test]
fn every_codec_round_trips_and_caps_output() {
    let data: Vec<u8> = (0..200_000u32)
        .map(|i| (i % 251) as u8 ^ (i / 1000) as u8)
        .collect();
    for codec in encodable_codecs() {
        let mut out = BytesMut::new();
        compression::compress(codec, &data, &mut out).unwrap();
        let back = compression::decompress(codec, &out, data.len()).unwrap();
        assert_eq!(back, data, "{codec:?}");
        let err = compression::decompress(codec, &out, data.len() - 1).unwrap_err();
        assert!(
            matches!(err, CompressionError::OutputTooLarge { .. }),
            "{codec:?}: {err}"
        );
        // Garbage never panics and is an error.
        for garbage in [
            &b""[..],
            &b"\x00"[..],
            &[0xffu8; 64][..],
            &out[..out.len() / 2],
        ] {
            // `None` copies anything; a single 0 byte is a valid empty raw snappy block.
            if codec == Compression::None || (codec == Compression::Snappy && garbage == b"\x00") {
                continue;
            }
            assert!(
                compression::decompress(codec, garbage, 1 << 20).is_err(),
                "{codec:?} accepted garbage {garbage:?}"
            );
        }
    }
}

#[cfg(feature = "snappy")]
#[test]
fn snappy_writes_xerial_framing_and_reads_raw_blocks() {
    let data = b"snappy snappy snappy snappy".repeat(3000);
    let mut out = BytesMut::new();
    compression::compress(Compression::Snappy, &data, &mut out).unwrap();
    assert_eq!(&out[..8], b"\x82SNAPPY\x00");
    assert_eq!(&out[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
    // A bare raw snappy block (as librdkafka writes) decodes too.
    let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
    assert_eq!(
        compression::decompress(Compression::Snappy, &raw, data.len()).unwrap(),
        data
    );
    // xerial block length pointing past the end is an error.
    let mut bad = out.to_vec();
    bad[16..20].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(compression::decompress(Compression::Snappy, &bad, 1 << 30).is_err());
}

#[cfg(feature = "gzip")]
#[test]
fn gzip_bomb_is_capped() {
    let zeros = vec![0u8; 8 << 20];
    let mut out = BytesMut::new();
    compression::compress(Compression::Gzip, &zeros, &mut out).unwrap();
    assert!(out.len() < 100_000);
    let err = compression::decompress(Compression::Gzip, &out, 1 << 20).unwrap_err();
    assert!(matches!(err, CompressionError::OutputTooLarge { limit, .. } if limit == 1 << 20));
}

#[test]
fn compressed_batch_over_the_limit_is_rejected() {
    let records: Vec<Record> = (0..100)
        .map(|i| Record::new(vec![0u8; 10_000], i))
        .collect();
    for codec in encodable_codecs()
        .into_iter()
        .filter(|c| *c != Compression::None)
    {
        let opts = EncodeOptions {
            compression: codec,
            ..EncodeOptions::default()
        };
        let batch = encode(&records, &opts);
        let mut b = batch.clone();
        let limits = DecodeLimits {
            max_decompressed_bytes: 100_000,
        };
        let err = decode_batch(&mut b, &limits).unwrap_err();
        assert!(
            matches!(
                err,
                RecordError::Compression(CompressionError::OutputTooLarge { .. })
            ),
            "{codec:?}: {err}"
        );
        assert_eq!(b.len(), batch.len(), "buf untouched on error");
        assert_eq!(decode_one(&batch).unwrap().records.len(), 100);
    }
}

// ---------------------------------------------------------------------------------------
// Truncation
// ---------------------------------------------------------------------------------------

fn sample_batches() -> Vec<Bytes> {
    (0..3)
        .map(|b| {
            let records: Vec<Record> = (0..5)
                .map(|i| {
                    Record::new(format!("b{b}r{i}").into_bytes(), 10 * b + i)
                        .with_key(format!("k{i}").into_bytes())
                        .with_header("h", "x")
                })
                .collect();
            let opts = EncodeOptions {
                base_offset: 5 * b,
                ..EncodeOptions::default()
            };
            encode(&records, &opts)
        })
        .collect()
}

#[test]
fn every_truncation_of_a_batch_is_an_error_for_decode_batch() {
    let batch = sample_batches().remove(0);
    for cut in 0..batch.len() {
        let mut b = batch.slice(..cut);
        let err = decode_batch(&mut b, &DecodeLimits::default()).unwrap_err();
        assert!(
            matches!(err, RecordError::Truncated { .. }),
            "cut {cut}: {err}"
        );
        assert_eq!(b.len(), cut);
        assert!(validate_batch(&batch[..cut]).is_err());
    }
}

#[test]
fn decode_batches_stops_cleanly_at_a_truncated_tail() {
    let batches = sample_batches();
    let all: Vec<u8> = batches.concat();
    let full = Bytes::from(all);
    let decoded: Vec<_> = decode_batches(full.clone(), DecodeLimits::default())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(decoded.len(), 3);
    let offsets: Vec<i64> = decoded
        .iter()
        .flat_map(|d| d.records.iter().map(|r| r.offset))
        .collect();
    assert_eq!(offsets, (0..15).collect::<Vec<_>>());

    let two = batches[0].len() + batches[1].len();
    for cut in two..full.len() {
        let got: Vec<_> = decode_batches(full.slice(..cut), DecodeLimits::default())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got.len(), 2, "cut {cut}");
    }
    assert_eq!(
        decode_batches(Bytes::new(), DecodeLimits::default()).count(),
        0
    );
}

#[test]
fn decode_batches_reports_corruption_once_and_stops() {
    let batches = sample_batches();
    let mut all = batches.concat();
    let second = batches[0].len();
    all[second + 30] ^= 0xff; // inside the CRC-covered region of batch 2
    let items: Vec<_> = decode_batches(Bytes::from(all), DecodeLimits::default()).collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert!(matches!(items[1], Err(RecordError::CrcMismatch { .. })));
}

// ---------------------------------------------------------------------------------------
// Corrupt lengths, built by hand with a valid CRC so that record parsing is reached
// ---------------------------------------------------------------------------------------

fn raw_batch(record_count: i32, attributes: i16, records: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i64(0);
    b.put_i32((BatchHeader::SIZE - 12 + records.len()) as i32);
    b.put_i32(-1);
    b.put_i8(2);
    b.put_u32(0);
    b.put_i16(attributes);
    b.put_i32(record_count.max(1) - 1);
    b.put_i64(0);
    b.put_i64(0);
    b.put_i64(-1);
    b.put_i16(-1);
    b.put_i32(-1);
    b.put_i32(record_count);
    b.put_slice(records);
    let crc = crc32c_bitwise(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

fn vi(n: i64) -> Vec<u8> {
    let mut v = Vec::new();
    varint::encode_varlong(n, &mut v);
    v
}

/// A record body from pieces (each already encoded); the length prefix is computed.
fn rec(parts: &[&[u8]]) -> Vec<u8> {
    let body = parts.concat();
    [vi(body.len() as i64), body].concat()
}

#[test]
fn hand_built_valid_record_decodes() {
    // sanity check of the helpers: key "k", value "v", one header h=null
    let r = rec(&[
        &[0],
        &vi(5),
        &vi(0),
        &vi(1),
        b"k",
        &vi(1),
        b"v",
        &vi(1),
        &vi(1),
        b"h",
        &vi(-1),
    ]);
    let d = decode_one(&raw_batch(1, 0, &r)).unwrap();
    assert_eq!(d.records[0].timestamp, 5);
    assert_eq!(d.records[0].key.as_deref(), Some(&b"k"[..]));
    assert_eq!(
        d.records[0].headers,
        vec![Header {
            key: "h".into(),
            value: None
        }]
    );
}

#[test]
fn every_corrupt_length_is_an_error() {
    let ok_tail: &[&[u8]] = &[&[0], &vi(0), &vi(0)]; // attributes, ts delta, offset delta
    type Case = (&'static str, Bytes, fn(&RecordError) -> bool);
    let cases: Vec<Case> = vec![
        ("negative record count", raw_batch(-1, 0, &[]), |e| {
            matches!(e, RecordError::InvalidRecordCount(-1))
        }),
        ("huge record count", raw_batch(i32::MAX, 0, &[0; 20]), |e| {
            matches!(e, RecordError::InvalidRecordCount(_))
        }),
        (
            "count above records present",
            raw_batch(
                2,
                0,
                &rec(&[ok_tail.concat().as_slice(), &vi(-1), &vi(-1), &vi(0)]),
            ),
            |e| {
                matches!(
                    e,
                    RecordError::InvalidRecordCount(_)
                        | RecordError::Varint { .. }
                        | RecordError::InvalidLength { .. }
                )
            },
        ),
        (
            "negative record length",
            raw_batch(1, 0, &[vi(-5), vec![0; 10]].concat()),
            |e| {
                matches!(
                    e,
                    RecordError::InvalidLength {
                        field: "record",
                        ..
                    }
                )
            },
        ),
        (
            "record length past the end",
            raw_batch(1, 0, &[vi(1000), vec![0; 10]].concat()),
            |e| {
                matches!(
                    e,
                    RecordError::InvalidLength {
                        field: "record",
                        ..
                    }
                )
            },
        ),
        (
            "key length -2",
            raw_batch(1, 0, &rec(&[&ok_tail.concat(), &vi(-2), &vi(-1), &vi(0)])),
            |e| {
                matches!(
                    e,
                    RecordError::InvalidLength {
                        field: "key",
                        length: -2,
                        ..
                    }
                )
            },
        ),
        (
            "key length past the record",
            raw_batch(1, 0, &rec(&[&ok_tail.concat(), &vi(50), &vi(-1), &vi(0)])),
            |e| matches!(e, RecordError::InvalidLength { field: "key", .. }),
        ),
        (
            "value length i32::MIN",
            raw_batch(
                1,
                0,
                &rec(&[&ok_tail.concat(), &vi(-1), &vi(i64::from(i32::MIN)), &vi(0)]),
            ),
            |e| matches!(e, RecordError::InvalidLength { field: "value", .. }),
        ),
        (
            "value length past the record",
            raw_batch(
                1,
                0,
                &rec(&[&ok_tail.concat(), &vi(-1), &vi(3), b"ab", &vi(0)]),
            ),
            |e| {
                // 3 bytes claimed, "ab" + header count available: reads into the header count,
                // then finds no header count
                matches!(
                    e,
                    RecordError::InvalidLength { .. } | RecordError::Varint { .. }
                )
            },
        ),
        (
            "negative header count",
            raw_batch(1, 0, &rec(&[&ok_tail.concat(), &vi(-1), &vi(-1), &vi(-1)])),
            |e| {
                matches!(
                    e,
                    RecordError::InvalidLength {
                        field: "header count",
                        ..
                    }
                )
            },
        ),
        (
            "huge header count",
            raw_batch(
                1,
                0,
                &rec(&[
                    &ok_tail.concat(),
                    &vi(-1),
                    &vi(-1),
                    &vi(i64::from(i32::MAX)),
                    &[0; 8],
                ]),
            ),
            |e| {
                matches!(
                    e,
                    RecordError::InvalidLength {
                        field: "header count",
                        ..
                    }
                )
            },
        ),
        (
            "null header key",
            raw_batch(
                1,
                0,
                &rec(&[
                    &ok_tail.concat(),
                    &vi(-1),
                    &vi(-1),
                    &vi(1),
                    &vi(-1),
                    &vi(-1),
                ]),
            ),
            |e| {
                matches!(
                    e,
                    RecordError::InvalidLength {
                        field: "header key",
                        length: -1,
                        ..
                    }
                )
            },
        ),
        (
            "header key past the record",
            raw_batch(
                1,
                0,
                &rec(&[
                    &ok_tail.concat(),
                    &vi(-1),
                    &vi(-1),
                    &vi(1),
                    &vi(40),
                    &vi(-1),
                ]),
            ),
            |e| {
                matches!(
                    e,
                    RecordError::InvalidLength {
                        field: "header key",
                        ..
                    }
                )
            },
        ),
        (
            "header key not UTF-8",
            raw_batch(
                1,
                0,
                &rec(&[
                    &ok_tail.concat(),
                    &vi(-1),
                    &vi(-1),
                    &vi(1),
                    &vi(2),
                    &[0xc3, 0x28],
                    &vi(-1),
                ]),
            ),
            |e| matches!(e, RecordError::InvalidHeaderKey),
        ),
        (
            "header value length -7",
            raw_batch(
                1,
                0,
                &rec(&[
                    &ok_tail.concat(),
                    &vi(-1),
                    &vi(-1),
                    &vi(1),
                    &vi(1),
                    b"h",
                    &vi(-7),
                ]),
            ),
            |e| {
                matches!(
                    e,
                    RecordError::InvalidLength {
                        field: "header value",
                        ..
                    }
                )
            },
        ),
        (
            "record length longer than its fields",
            raw_batch(
                1,
                0,
                &rec(&[&ok_tail.concat(), &vi(-1), &vi(-1), &vi(0), &[0, 0]]),
            ),
            |e| {
                matches!(
                    e,
                    RecordError::RecordLengthMismatch {
                        declared: 8,
                        used: 6
                    }
                )
            },
        ),
        (
            "trailing bytes after the records",
            raw_batch(
                1,
                0,
                &[
                    rec(&[&ok_tail.concat(), &vi(-1), &vi(-1), &vi(0)]),
                    vec![0; 3],
                ]
                .concat(),
            ),
            |e| matches!(e, RecordError::TrailingBytes(3)),
        ),
        (
            "overlong varint",
            raw_batch(1, 0, &[vec![0x80; 12]].concat()),
            |e| matches!(e, RecordError::Varint { .. }),
        ),
        (
            "timestamp varlong overlong",
            raw_batch(1, 0, &rec(&[&[0], &[0xff; 11]])),
            |e| {
                matches!(
                    e,
                    RecordError::Varint {
                        field: "timestamp delta",
                        ..
                    }
                )
            },
        ),
        (
            "unknown codec 5",
            raw_batch(1, 5, &rec(&[&ok_tail.concat(), &vi(-1), &vi(-1), &vi(0)])),
            |e| matches!(e, RecordError::UnknownCompression(5)),
        ),
        (
            "gzip garbage",
            raw_batch(1, 1, &[1, 2, 3, 4, 5, 6, 7, 8]),
            |e| matches!(e, RecordError::Compression(_)),
        ),
    ];
    for (name, batch, check) in cases {
        let err = decode_one(&batch).expect_err(name);
        assert!(check(&err), "{name}: unexpected error {err:?}");
        // The CRC is valid, so validate_batch (which does not parse records) accepts all but
        // the header-level cases.
        let v = validate_batch(&batch);
        if !matches!(err, RecordError::InvalidRecordCount(c) if c < 0)
            && !matches!(err, RecordError::UnknownCompression(_))
        {
            assert!(v.is_ok(), "{name}: {v:?}");
        } else {
            assert!(v.is_err(), "{name}");
        }
    }
}

#[test]
fn corrupt_batch_headers_are_errors() {
    let good = sample_batches().remove(0);
    let mutate = |f: &dyn Fn(&mut BytesMut)| {
        let mut b = BytesMut::from(&good[..]);
        f(&mut b);
        b.freeze()
    };
    // batch_length below the header size, negative, and past the input
    for len in [0i32, 48, -1, i32::MIN] {
        let b = mutate(&|b| b[8..12].copy_from_slice(&len.to_be_bytes()));
        assert!(matches!(decode_one(&b), Err(RecordError::InvalidBatchLength(l)) if l == len));
        assert!(matches!(
            validate_batch(&b),
            Err(RecordError::InvalidBatchLength(_))
        ));
        let items: Vec<_> = decode_batches(b, DecodeLimits::default()).collect();
        assert!(matches!(
            items.as_slice(),
            [Err(RecordError::InvalidBatchLength(_))]
        ));
    }
    let b = mutate(&|b| b[8..12].copy_from_slice(&i32::MAX.to_be_bytes()));
    assert!(matches!(decode_one(&b), Err(RecordError::Truncated { .. })));
    assert_eq!(decode_batches(b, DecodeLimits::default()).count(), 0);
    // magic 1
    let b = mutate(&|b| b[16] = 1);
    assert!(matches!(
        decode_one(&b),
        Err(RecordError::UnsupportedMagic(1))
    ));
    assert!(matches!(
        validate_batch(&b),
        Err(RecordError::UnsupportedMagic(1))
    ));
    // a flipped bit anywhere in the CRC-covered region
    for at in [21, 40, 60, good.len() - 1] {
        let b = mutate(&|b| b[at] ^= 0x01);
        assert!(
            matches!(decode_one(&b), Err(RecordError::CrcMismatch { .. })),
            "byte {at}"
        );
        assert!(matches!(
            validate_batch(&b),
            Err(RecordError::CrcMismatch { .. })
        ));
    }
    // validate_batch wants exactly one batch
    let mut longer = good.to_vec();
    longer.push(0);
    assert!(matches!(
        validate_batch(&longer),
        Err(RecordError::TrailingBytes(1))
    ));
    assert!(BatchHeader::parse(&good[..60]).is_err());
}

// ---------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------

fn arb_bytes(max: usize) -> impl Strategy<Value = Option<Bytes>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Bytes::new())),
        4 => proptest::collection::vec(any::<u8>(), 0..max).prop_map(|v| Some(Bytes::from(v))),
    ]
}

fn arb_header() -> impl Strategy<Value = Header> {
    // A tiny key alphabet so duplicate keys are common; empty keys and non-ASCII included.
    (
        prop::sample::select(vec!["", "a", "a", "trace-id", "ключ", "日本"]),
        arb_bytes(16),
    )
        .prop_map(|(k, v)| Header {
            key: k.to_string(),
            value: v,
        })
}

fn arb_record(base: i64) -> impl Strategy<Value = Record> {
    (
        arb_bytes(24),
        arb_bytes(200),
        proptest::collection::vec(arb_header(), 0..5),
        // up to +-60 days from the batch's base: beyond the 24.8-day i32 millisecond range
        -60 * DAY_MS..60 * DAY_MS,
    )
        .prop_map(move |(key, value, headers, delta)| Record {
            key,
            value,
            headers,
            timestamp: base + delta,
        })
}

fn arb_records() -> impl Strategy<Value = Vec<Record>> {
    (0i64..4_000_000_000_000)
        .prop_flat_map(|base| proptest::collection::vec(arb_record(base), 1..20))
}

fn arb_opts() -> impl Strategy<Value = EncodeOptions> {
    (
        (
            any::<i64>(),
            any::<i32>(),
            any::<i64>(),
            any::<i16>(),
            any::<i32>(),
        ),
        prop::sample::select(encodable_codecs()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |((bo, ple, pid, pe, seq), compression, txn, control)| EncodeOptions {
                base_offset: bo >> 2, // room for the offset deltas
                partition_leader_epoch: ple,
                producer_id: pid,
                producer_epoch: pe,
                base_sequence: seq,
                compression,
                is_transactional: txn,
                is_control: control,
                timestamp_type: TimestampType::CreateTime,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip(records in arb_records(), opts in arb_opts()) {
        let batch = encode(&records, &opts);
        let h = validate_batch(&batch).unwrap();
        prop_assert_eq!(h.total_size(), batch.len());
        prop_assert_eq!(h.compression().unwrap(), opts.compression);
        prop_assert_eq!(h.is_transactional(), opts.is_transactional);
        prop_assert_eq!(h.is_control(), opts.is_control);
        prop_assert_eq!(h.record_count as usize, records.len());
        prop_assert_eq!(h.producer_id, opts.producer_id);
        prop_assert_eq!(h.producer_epoch, opts.producer_epoch);
        prop_assert_eq!(h.base_sequence, opts.base_sequence);
        prop_assert_eq!(h.partition_leader_epoch, opts.partition_leader_epoch);
        prop_assert_eq!(h.base_timestamp, records[0].timestamp);
        prop_assert_eq!(h.max_timestamp, records.iter().map(|r| r.timestamp).max().unwrap());
        prop_assert_eq!(h.last_offset(), opts.base_offset + records.len() as i64 - 1);

        let d = decode_one(&batch).unwrap();
        prop_assert_eq!(d.header, h);
        prop_assert_eq!(d.records.len(), records.len());
        for (i, (got, want)) in d.records.iter().zip(&records).enumerate() {
            prop_assert_eq!(got.offset, opts.base_offset + i as i64);
            prop_assert_eq!(got.timestamp, want.timestamp);
            prop_assert_eq!(&got.key, &want.key);
            prop_assert_eq!(&got.value, &want.value);
            prop_assert_eq!(&got.headers, &want.headers);
        }
    }

    #[test]
    fn round_trip_explicit_offsets(
        records in arb_records(),
        gaps in proptest::collection::vec(1i32..1000, 20),
        tail in 0i32..50,
        codec in prop::sample::select(encodable_codecs()),
    ) {
        let mut delta = -1;
        let with_offsets: Vec<(i32, Record)> = records
            .into_iter()
            .zip(&gaps)
            .map(|(r, g)| { delta += g; (delta, r) })
            .collect();
        let last = delta + tail;
        let opts = EncodeOptions { base_offset: 1 << 40, compression: codec, ..EncodeOptions::default() };
        let mut out = BytesMut::new();
        encode_batch_with_offsets(&with_offsets, last, &opts, &mut out).unwrap();
        let d = decode_one(&out.freeze()).unwrap();
        prop_assert_eq!(d.header.last_offset(), (1i64 << 40) + i64::from(last));
        let got: Vec<i64> = d.records.iter().map(|r| r.offset).collect();
        let want: Vec<i64> = with_offsets.iter().map(|(o, _)| (1i64 << 40) + i64::from(*o)).collect();
        prop_assert_eq!(got, want);
        for (got, (_, want)) in d.records.iter().zip(&with_offsets) {
            prop_assert_eq!(&got.value, &want.value);
            prop_assert_eq!(&got.headers, &want.headers);
            prop_assert_eq!(got.timestamp, want.timestamp);
        }
    }

    #[test]
    fn batches_concatenate(batches in proptest::collection::vec((arb_records(), arb_opts()), 1..4), cut in any::<prop::sample::Index>()) {
        let encoded: Vec<Bytes> = batches.iter().map(|(r, o)| encode(r, o)).collect();
        let all = Bytes::from(encoded.concat());
        let decoded: Vec<_> = decode_batches(all.clone(), DecodeLimits::default()).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(decoded.len(), batches.len());
        // Any cut inside the last batch yields exactly the batches before it.
        let before: usize = encoded[..encoded.len() - 1].iter().map(|b| b.len()).sum();
        let at = before + cut.index(encoded[encoded.len() - 1].len());
        let partial: Vec<_> = decode_batches(all.slice(..at), DecodeLimits::default()).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(partial.len(), batches.len() - 1);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut b = Bytes::from(data.clone());
        let _ = decode_batch(&mut b, &DecodeLimits::default());
        for item in decode_batches(Bytes::from(data.clone()), DecodeLimits::default()) {
            let _ = item;
        }
        let _ = validate_batch(&data);
        let _ = BatchHeader::parse(&data);
    }

    #[test]
    fn mutated_batches_never_panic(records in arb_records(), opts in arb_opts(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let batch = encode(&records, &opts);
        let mut bytes = batch.to_vec();
        for (i, x) in flips {
            let at = i.index(bytes.len());
            bytes[at] = x;
        }
        // Fix the CRC so record parsing is reached.
        if bytes.len() >= 21 {
            let crc = crc32c_bitwise(&bytes[21..]);
            bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        }
        let mut b = Bytes::from(bytes);
        let _ = decode_batch(&mut b, &DecodeLimits { max_decompressed_bytes: 1 << 20 });
    }

    #[test]
    fn varints_round_trip(n in any::<i64>(), m in any::<i32>()) {
        let mut v = Vec::new();
        varint::encode_varlong(n, &mut v);
        prop_assert_eq!(v.len(), varint::varlong_len(n));
        prop_assert_eq!(varint::decode_varlong(&v), Ok((n, v.len())));
        let mut v = Vec::new();
        varint::encode_varint(m, &mut v);
        prop_assert_eq!(v.len(), varint::varint_len(m));
        prop_assert_eq!(varint::decode_varint(&v), Ok((m, v.len())));
    }
}

//! Record batch v2 decoding (`wire::record`): `decode_batch`, `decode_batches`,
//! `validate_batch` on arbitrary bytes must never panic, never allocate beyond the limits,
//! and whatever decodes must re-encode and decode to the same records. The key of a control
//! batch's record goes through `ControlType::from_key`, as the fetch path reads markers.
#![no_main]

use bytes::{Bytes, BytesMut};
use kafka_persistence_wire::record::{
    decode_batch, decode_batches, encode_batch_with_offsets, validate_batch, ControlType,
    DecodeLimits, DecodedBatch, EncodeOptions, Record, TimestampType,
};
use libfuzzer_sys::fuzz_target;

const LIMITS: DecodeLimits = DecodeLimits {
    max_decompressed_bytes: 4 << 20,
};

fn check_round_trip(batch: &DecodedBatch) {
    let h = &batch.header;
    let mut records = Vec::with_capacity(batch.records.len());
    for r in &batch.records {
        let delta = r.offset.wrapping_sub(h.base_offset) as i32;
        records.push((
            delta,
            Record {
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r.headers.clone(),
                timestamp: r.timestamp,
            },
        ));
    }
    let opts = EncodeOptions {
        base_offset: h.base_offset,
        partition_leader_epoch: h.partition_leader_epoch,
        producer_id: h.producer_id,
        producer_epoch: h.producer_epoch,
        base_sequence: h.base_sequence,
        is_transactional: h.is_transactional(),
        is_control: h.is_control(),
        timestamp_type: TimestampType::CreateTime,
        ..EncodeOptions::default()
    };
    let mut out = BytesMut::new();
    // Hostile offsets (not increasing) or timestamps (overflowing deltas) cannot be
    // re-encoded; that is a clean error, not a bug.
    if encode_batch_with_offsets(&records, h.last_offset_delta, &opts, &mut out).is_err() {
        return;
    }
    let mut again = out.freeze();
    let decoded = match decode_batch(&mut again, &LIMITS) {
        Ok(d) => d,
        Err(e) => panic!("re-encoded batch does not decode: {e}"),
    };
    assert_eq!(decoded.records.len(), records.len());
    for (got, (_, want)) in decoded.records.iter().zip(&records) {
        assert_eq!(got.key, want.key);
        assert_eq!(got.value, want.value);
        assert_eq!(got.headers, want.headers);
        assert_eq!(got.timestamp, want.timestamp);
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = ControlType::from_key(data);
    let input = Bytes::copy_from_slice(data);
    let _ = validate_batch(data);
    let mut buf = input.clone();
    if let Ok(batch) = decode_batch(&mut buf, &LIMITS) {
        assert_eq!(
            buf.len() + batch.header.total_size(),
            input.len(),
            "decode_batch must consume exactly one batch"
        );
        assert!(validate_batch(&input[..batch.header.total_size()]).is_ok());
        if batch.header.is_control() {
            for r in &batch.records {
                let _ = r.key.as_deref().and_then(ControlType::from_key);
            }
        }
        check_round_trip(&batch);
    } else {
        assert_eq!(buf.len(), input.len(), "buf untouched on error");
    }
    for item in decode_batches(input, LIMITS).take(1000) {
        if item.is_err() {
            break;
        }
    }
});

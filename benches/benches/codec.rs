//! Record batch codec: encode and decode one batch of 1,000 records of 100 bytes, without
//! compression and with each codec this build can encode.
//!
//! `cargo bench -p kafka-persistence-benches --bench codec`

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_persistence_wire::compression::can_encode;
use kafka_persistence_wire::record::{
    decode_batch, encode_batch, Compression, DecodeLimits, EncodeOptions, Record,
};

const RECORDS: usize = 1_000;
const VALUE_SIZE: usize = 100;

fn records() -> Vec<Record> {
    (0..RECORDS)
        .map(|i| {
            // Not all-equal bytes, so the compressed cases are not trivially small.
            let value: Vec<u8> = (0..VALUE_SIZE)
                .map(|j| ((i * 31 + j * 7) % 251) as u8)
                .collect();
            Record::new(value, 1_700_000_000_000 + i as i64)
        })
        .collect()
}

fn codecs() -> Vec<Compression> {
    [
        Compression::None,
        Compression::Lz4,
        Compression::Snappy,
        Compression::Gzip,
        Compression::Zstd,
    ]
    .into_iter()
    .filter(|c| can_encode(*c))
    .collect()
}

fn bench_encode(c: &mut Criterion) {
    let records = records();
    let mut group = c.benchmark_group("encode_1000x100B");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for codec in codecs() {
        let opts = EncodeOptions {
            compression: codec,
            producer_id: 1,
            producer_epoch: 0,
            base_sequence: 0,
            ..EncodeOptions::default()
        };
        let mut out = BytesMut::with_capacity(256 * 1024);
        group.bench_with_input(
            BenchmarkId::from_parameter(codec.name()),
            &opts,
            |b, opts| {
                b.iter(|| {
                    out.clear();
                    if let Err(e) = encode_batch(black_box(&records), opts, &mut out) {
                        panic!("encode failed: {e}");
                    }
                    black_box(out.len())
                })
            },
        );
    }
    group.finish();
}

fn bench_decode(c: &mut Criterion) {
    let records = records();
    let mut group = c.benchmark_group("decode_1000x100B");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for codec in codecs() {
        let opts = EncodeOptions {
            compression: codec,
            ..EncodeOptions::default()
        };
        let mut out = BytesMut::new();
        if let Err(e) = encode_batch(&records, &opts, &mut out) {
            panic!("encode failed: {e}");
        }
        let batch: Bytes = out.freeze();
        let limits = DecodeLimits::default();
        group.bench_with_input(
            BenchmarkId::from_parameter(codec.name()),
            &batch,
            |b, batch| {
                b.iter(|| {
                    let mut buf = batch.clone();
                    match decode_batch(&mut buf, &limits) {
                        Ok(d) => black_box(d.records.len()),
                        Err(e) => panic!("decode failed: {e}"),
                    }
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_encode, bench_decode);
criterion_main!(benches);

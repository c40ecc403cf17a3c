//! Broker side: the testserver's request decoder on arbitrary frames (without the length
//! prefix). It must reject, never panic or over-allocate. Produce requests' record sets are
//! validated and decoded as the broker does.
#![no_main]

use bytes::Bytes;
use kafka_persistence_testserver::protocol::decode_request;
use kafka_persistence_wire::record::{decode_batches, validate_batch, DecodeLimits};
use kafka_protocol::messages::RequestKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((_header, body)) = decode_request(Bytes::copy_from_slice(data)) else {
        return;
    };
    if let RequestKind::Produce(req) = body {
        for topic in &req.topic_data {
            for p in &topic.partition_data {
                if let Some(records) = &p.records {
                    let _ = validate_batch(records);
                    let limits = DecodeLimits {
                        max_decompressed_bytes: 4 << 20,
                    };
                    for batch in decode_batches(records.clone(), limits).take(1000) {
                        if batch.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    }
});

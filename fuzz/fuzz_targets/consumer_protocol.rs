//! Client side: the consumer protocol's embedded formats, which a group leader reads from
//! every member's JoinGroup metadata and every member from its SyncGroup assignment
//! (`wire::consumer::{decode_subscription, decode_assignment}`). Byte 0 picks the decoder.
//! Oracle besides "no panic / no OOM": whatever decodes re-encodes and decodes to the same.
#![no_main]

use bytes::Bytes;
use kafka_persistence_wire::consumer::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let bytes = Bytes::copy_from_slice(rest);
    if selector % 2 == 0 {
        if let Ok(s) = decode_subscription("member", None, bytes) {
            if let Ok(again) = encode_subscription(&s.topics, &s.owned, s.generation) {
                let back = decode_subscription("member", None, again).expect("re-decodes");
                assert_eq!(back.topics, s.topics);
                assert_eq!(back.owned, s.owned);
            }
        }
    } else if let Ok(a) = decode_assignment(bytes) {
        if let Ok(again) = encode_assignment(&a) {
            assert_eq!(decode_assignment(again).expect("re-decodes"), a);
        }
    }
});

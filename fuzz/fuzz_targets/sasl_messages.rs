//! SASL message parsers (`wire::sasl`): the SCRAM client-first, server-first, client-final
//! and server-final messages, PLAIN and the OAUTHBEARER initial response, on arbitrary bytes.
//! Byte 0 picks the parser. Oracle besides "no panic": whatever parses re-encodes to a
//! message that parses to the same fields.
#![no_main]

use kafka_persistence_wire::sasl::scram::{ClientFinal, ClientFirst, ServerFinal, ServerFirst};
use kafka_persistence_wire::sasl::{oauthbearer, plain};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, input)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => {
            if let Ok(m) = ClientFirst::parse(input) {
                let again = ClientFirst::parse(&ClientFirst::new(&m.username, &m.nonce).to_bytes())
                    .expect("re-encoded client-first parses");
                assert_eq!((again.username, again.nonce), (m.username, m.nonce));
            }
        }
        1 => {
            if let Ok(m) = ServerFirst::parse(input) {
                let again = ServerFirst::parse(
                    ServerFirst::new(&m.nonce, &m.salt, m.iterations)
                        .raw
                        .as_bytes(),
                )
                .expect("re-encoded server-first parses");
                assert_eq!(
                    (again.nonce, again.salt, again.iterations),
                    (m.nonce, m.salt, m.iterations)
                );
            }
        }
        2 => {
            let _ = ClientFinal::parse(input);
        }
        3 => {
            if let Ok(m) = ServerFinal::parse(input) {
                if let ServerFinal::Verifier(_) = &m {
                    assert_eq!(ServerFinal::parse(&m.to_bytes()).expect("re-encoded"), m);
                }
            }
        }
        4 => {
            if let Ok(m) = plain::parse(input) {
                let again = plain::parse(&plain::client_message(&m.username, &m.password))
                    .expect("re-encoded PLAIN parses");
                assert_eq!((again.username, again.password), (m.username, m.password));
            }
        }
        _ => {
            if let Ok(m) = oauthbearer::parse(input) {
                let again =
                    oauthbearer::parse(&oauthbearer::client_message(&m.token, &m.extensions))
                        .expect("re-encoded OAUTHBEARER parses");
                assert_eq!(again, m);
            }
        }
    }
});

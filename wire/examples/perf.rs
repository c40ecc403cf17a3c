//! Rough producer numbers against the in-process test server (or `KP_EXTERNAL_BOOTSTRAP`):
//! throughput of N x 100-byte records (acks=all, idempotent, one partition) and the round
//! trip of single awaited sends. Run with `cargo run --release -p kafka-persistence-wire
//! --example perf -- [records] [window]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use kafka_persistence_testserver::TestServer;
use kafka_persistence_wire::{Client, ClientConfig, NewTopic, ProducerConfig, Record};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let window: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let per_send: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1).max(1);
    let (bootstrap, _server) = match std::env::var("KP_EXTERNAL_BOOTSTRAP") {
        Ok(b) => (b, None),
        Err(_) => {
            let s = TestServer::start().await.expect("server");
            (s.bootstrap_servers(), Some(s))
        }
    };
    let client = Client::connect(ClientConfig::new(&bootstrap))
        .await
        .expect("connect");
    let topic = format!("perf-{}", std::process::id());
    client
        .create_topics(vec![NewTopic::new(&topic, 1, 1)])
        .await
        .expect("create");
    let producer = client.producer(ProducerConfig::default());
    let value = bytes::Bytes::from(vec![b'x'; 100]);

    // Throughput: `window` sends outstanding at a time, one record each.
    let start = Instant::now();
    stream::iter(0..n / per_send)
        .map(|_| {
            let recs = (0..per_send)
                .map(|_| Record {
                    key: None,
                    value: Some(value.clone()),
                    headers: Vec::new(),
                    timestamp: 1,
                })
                .collect();
            producer.send(&topic, 0, recs)
        })
        .buffer_unordered(window)
        .for_each(|r| {
            r.expect("send");
            async {}
        })
        .await;
    let took = start.elapsed();
    println!(
        "throughput: {n} x 100 B, {per_send} per send, acks=all, idempotent, 1 partition, window {window}: {:.3} s, {:.0} rec/s, {:.1} MB/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        n as f64 * 100.0 / took.as_secs_f64() / 1e6
    );

    // Round trip: one send awaited at a time.
    let rounds = 10_000;
    let mut lat: Vec<Duration> = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let rec = Record {
            key: None,
            value: Some(value.clone()),
            headers: Vec::new(),
            timestamp: 1,
        };
        let t = Instant::now();
        producer.send(&topic, 0, vec![rec]).await.expect("send");
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "round trip: {rounds} single awaited sends: p50 {:?}, p99 {:?}, max {:?}",
        lat[rounds / 2],
        lat[rounds * 99 / 100],
        lat[rounds - 1]
    );
}

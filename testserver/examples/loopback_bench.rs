//! Quick loopback numbers for the in-process broker (not a criterion bench; the real benches
//! live in `benches/`): startup time, sequential produce round-trip latency, pipelined
//! produce ingest and fetch serving, over raw kafka-protocol requests.
//!
//! `cargo run -p kafka-persistence-testserver --example loopback_bench --release`; with
//! `KP_BENCH_BOOTSTRAP=host:port` the same client measures that broker instead (e.g. Apache
//! Kafka, for the comparison).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_persistence_testserver::TestServer;
use kafka_persistence_wire::record::{encode_batch, EncodeOptions, Record};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, FetchRequest, FetchResponse, ProduceRequest,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn frame<R: Encodable + HeaderVersion>(key: ApiKey, version: i16, corr: i32, req: &R) -> Bytes {
    let mut h = RequestHeader::default();
    h.request_api_key = key as i16;
    h.request_api_version = version;
    h.correlation_id = corr;
    let mut body = BytesMut::new();
    h.encode(&mut body, R::header_version(version)).unwrap();
    req.encode(&mut body, version).unwrap();
    let mut out = BytesMut::with_capacity(body.len() + 4);
    out.put_i32(body.len() as i32);
    out.extend_from_slice(&body);
    out.freeze()
}

async fn read_frame(s: &mut TcpStream) -> Bytes {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await.unwrap();
    Bytes::from(buf)
}

fn produce_req(topic: &str, batch: Bytes) -> ProduceRequest {
    let mut p = PartitionProduceData::default();
    p.records = Some(batch);
    let mut t = TopicProduceData::default();
    t.name = TopicName(StrBytes::from_string(topic.to_string()));
    t.partition_data.push(p);
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 30_000;
    req.topic_data.push(t);
    req
}

fn batch(n: usize, size: usize) -> Bytes {
    let records: Vec<Record> = (0..n).map(|_| Record::new(vec![b'x'; size], 1)).collect();
    let mut out = BytesMut::new();
    encode_batch(&records, &EncodeOptions::default(), &mut out).unwrap();
    out.freeze()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let external = std::env::var("KP_BENCH_BOOTSTRAP")
        .ok()
        .filter(|s| !s.is_empty());
    let (server, addr) = match external {
        Some(b) => (None, b.split(',').next().unwrap_or_default().to_string()),
        None => {
            let t0 = Instant::now();
            let server = TestServer::start().await.unwrap();
            println!("startup: {:?}", t0.elapsed());
            let addr = server.bootstrap_servers();
            (Some(server), addr)
        }
    };
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let lat_topic = format!("bench-lat-{suffix}");
    let tput_topic = format!("bench-tput-{suffix}");
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    for t in [&lat_topic, &tput_topic] {
        let mut ct = CreatableTopic::default();
        ct.name = TopicName(StrBytes::from_string(t.clone()));
        ct.num_partitions = 1;
        ct.replication_factor = 1;
        let mut req = CreateTopicsRequest::default();
        req.topics.push(ct);
        req.timeout_ms = 30_000;
        s.write_all(&frame(ApiKey::CreateTopics, 5, 0, &req))
            .await
            .unwrap();
        let _ = read_frame(&mut s).await;
    }
    // Let an external broker elect the leaders.
    if server.is_none() {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }

    // 1. Sequential produce round trips: 1 record of 100 bytes, acks=all.
    let one = batch(1, 100);
    let n = 20_000;
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let f = frame(
            ApiKey::Produce,
            9,
            i as i32,
            &produce_req(&lat_topic, one.clone()),
        );
        let start = Instant::now();
        s.write_all(&f).await.unwrap();
        let _ = read_frame(&mut s).await;
        lat.push(start.elapsed());
    }
    lat.sort();
    println!(
        "produce round trip (1 x 100 B, acks=all, sequential, n={n}): p50 {:?}  p99 {:?}  max {:?}",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat[n - 1]
    );

    // 2. Pipelined produce: batches of 1000 x 100 B, 5 requests in flight.
    let big = batch(1000, 100);
    let reqs = 2_000;
    let f = frame(
        ApiKey::Produce,
        9,
        0,
        &produce_req(&tput_topic, big.clone()),
    );
    let start = Instant::now();
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        for _ in 0..reqs {
            wr.write_all(&f).await.unwrap();
        }
        wr
    });
    for _ in 0..reqs {
        let mut len = [0u8; 4];
        rd.read_exact(&mut len).await.unwrap();
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        rd.read_exact(&mut buf).await.unwrap();
    }
    let wr = writer.await.unwrap();
    let el = start.elapsed().as_secs_f64();
    let recs = (reqs * 1000) as f64;
    println!(
        "produce ingest (batches of 1000 x 100 B, pipelined): {:.0} rec/s, {:.1} MB/s of batches",
        recs / el,
        (reqs * big.len()) as f64 / el / 1e6
    );
    let mut s = rd.reunite(wr).unwrap();

    // 3. Fetch serving: read the whole 'tput' log from 0, 1 MiB per partition per request.
    let start = Instant::now();
    let mut high_watermark = i64::MAX;
    let mut offset = 0i64;
    let mut bytes = 0usize;
    let mut corr = 0;
    while offset < high_watermark {
        let mut p = FetchPartition::default();
        p.fetch_offset = offset;
        p.partition_max_bytes = 1024 * 1024;
        let mut t = FetchTopic::default();
        t.topic = TopicName(StrBytes::from_string(tput_topic.clone()));
        t.partitions.push(p);
        let mut req = FetchRequest::default();
        req.replica_id = BrokerId(-1);
        req.max_bytes = 50 * 1024 * 1024;
        req.min_bytes = 1;
        req.topics.push(t);
        corr += 1;
        s.write_all(&frame(ApiKey::Fetch, 12, corr, &req))
            .await
            .unwrap();
        let mut resp = read_frame(&mut s).await;
        let _ = ResponseHeader::decode(&mut resp, 1).unwrap();
        let r = FetchResponse::decode(&mut resp, 12).unwrap();
        let part = &r.responses[0].partitions[0];
        assert_eq!(part.error_code, 0, "fetch error");
        high_watermark = part.high_watermark;
        let recs = part.records.clone().unwrap_or_default();
        bytes += recs.len();
        // Advance past the last whole batch.
        let mut pos = 0;
        while pos + 61 <= recs.len() {
            let h = kafka_persistence_wire::record::BatchHeader::parse(&recs[pos..]).unwrap();
            if pos + h.total_size() > recs.len() {
                break;
            }
            offset = h.last_offset() + 1;
            pos += h.total_size();
        }
    }
    let el = start.elapsed().as_secs_f64();
    println!(
        "fetch serving (1 MiB per request, sequential): {:.1} MB/s, {:.0} rec/s",
        bytes as f64 / el / 1e6,
        high_watermark as f64 / el
    );
    if let Some(server) = server {
        server.shutdown().await;
    }
}

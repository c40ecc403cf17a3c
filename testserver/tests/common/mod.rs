//! Shared helpers for the testserver's integration tests: a broker (external or in-process),
//! a minimal raw Kafka connection built on kafka-protocol, and record batch builders.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_persistence_testserver::TestServer;
use kafka_persistence_wire::record::{encode_batch, EncodeOptions, Record};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A broker for a test: `KP_EXTERNAL_BOOTSTRAP` if set, else a fresh in-process one.
pub struct Broker {
    pub server: Option<TestServer>,
    pub bootstrap: String,
}

impl Broker {
    /// The first bootstrap address.
    pub fn addr(&self) -> String {
        self.bootstrap.split(',').next().unwrap().to_string()
    }
}

pub async fn broker() -> Broker {
    if let Ok(b) = std::env::var("KP_EXTERNAL_BOOTSTRAP") {
        if !b.is_empty() {
            return Broker {
                server: None,
                bootstrap: b,
            };
        }
    }
    let server = TestServer::start().await.unwrap();
    let bootstrap = server.bootstrap_servers();
    Broker {
        server: Some(server),
        bootstrap,
    }
}

/// A unique topic name for this test run.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{t}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn tn(s: &str) -> TopicName {
    TopicName(sb(s))
}

/// A raw connection: one request at a time.
pub struct Raw {
    pub stream: TcpStream,
    corr: i32,
}

impl Raw {
    pub async fn connect(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Raw { stream, corr: 0 }
    }

    /// Sends one request; returns its correlation id.
    pub async fn send<R: Encodable + HeaderVersion + Sync>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> i32 {
        self.corr += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = self.corr;
        header.client_id = Some(sb("testserver-tests"));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).await.unwrap();
        self.corr
    }

    /// Reads one frame (without the length prefix); `None` on EOF.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await.ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf).await.ok()?;
        Some(Bytes::from(buf))
    }

    /// Reads one response of type `T` and checks the correlation id.
    pub async fn recv<T: Decodable + HeaderVersion>(&mut self, version: i16, corr: i32) -> T {
        let mut frame = self.read_frame().await.expect("connection closed");
        let header = ResponseHeader::decode(&mut frame, T::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, corr);
        let resp = T::decode(&mut frame, version).unwrap();
        assert_eq!(frame.remaining(), 0, "trailing bytes in response");
        resp
    }

    /// Sends a request and reads its response.
    pub async fn call<R: Encodable + HeaderVersion + Sync, T: Decodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> T {
        let corr = self.send(key, version, req).await;
        self.recv(version, corr).await
    }

    /// True when the peer closed the connection (EOF or reset) within a second.
    pub async fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        match tokio::time::timeout(std::time::Duration::from_secs(1), self.stream.read(&mut b))
            .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) | Err(_) => false,
        }
    }
}

/// Creates a topic over the wire (works against any broker); returns the error code.
pub async fn create_topic(
    raw: &mut Raw,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> i16 {
    let mut t = CreatableTopic::default();
    t.name = tn(name);
    t.num_partitions = partitions;
    t.replication_factor = 1;
    for (k, v) in configs {
        let mut c = CreatableTopicConfig::default();
        c.name = sb(k);
        c.value = Some(sb(v));
        t.configs.push(c);
    }
    let mut req = CreateTopicsRequest::default();
    req.topics.push(t);
    req.timeout_ms = 10_000;
    let resp: CreateTopicsResponse = raw.call(ApiKey::CreateTopics, 7, &req).await;
    resp.topics[0].error_code
}

/// Every committed offset of `group` (OffsetFetch v7, all topics), sorted:
/// (topic, partition, offset, leader epoch, metadata).
pub async fn committed_offsets(raw: &mut Raw, group: &str) -> Vec<(String, i32, i64, i32, String)> {
    use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse};
    let mut req = OffsetFetchRequest::default();
    req.group_id = GroupId(sb(group));
    req.topics = None;
    let r: OffsetFetchResponse = raw.call(ApiKey::OffsetFetch, 7, &req).await;
    assert_eq!(r.error_code, 0, "OffsetFetch of {group}");
    let mut out: Vec<_> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                assert_eq!(p.error_code, 0, "OffsetFetch of {group}");
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.metadata.as_deref().unwrap_or_default().to_string(),
                )
            })
        })
        .collect();
    out.sort();
    out
}

/// A fresh directory for a `data_dir` test (removed by the test when it passes).
pub fn temp_data_dir(prefix: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(unique(prefix))
}

/// Value-only records `prefix-0..n` with the current time.
pub fn records(prefix: &str, n: usize) -> Vec<Record> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (0..n)
        .map(|i| Record::new(Bytes::from(format!("{prefix}-{i}")), now))
        .collect()
}

/// One encoded batch.
pub fn batch(records: &[Record], opts: &EncodeOptions) -> Bytes {
    let mut out = BytesMut::new();
    encode_batch(records, opts, &mut out).unwrap();
    out.freeze()
}

/// An idempotent batch.
pub fn idempotent_batch(records: &[Record], pid: i64, epoch: i16, seq: i32) -> Bytes {
    let opts = EncodeOptions {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        ..Default::default()
    };
    batch(records, &opts)
}

/// Produces one batch to one partition (acks=-1); returns the partition response.
pub async fn produce(
    raw: &mut Raw,
    version: i16,
    topic: &str,
    partition: i32,
    batch: Bytes,
) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
    let mut p = PartitionProduceData::default();
    p.index = partition;
    p.records = Some(batch);
    let mut t = TopicProduceData::default();
    t.name = tn(topic);
    t.partition_data.push(p);
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 10_000;
    req.topic_data.push(t);
    let mut resp: ProduceResponse = raw.call(ApiKey::Produce, version, &req).await;
    resp.responses.remove(0).partition_responses.remove(0)
}

/// Fetch parameters.
pub struct FetchArgs {
    pub version: i16,
    pub offset: i64,
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
}

impl Default for FetchArgs {
    fn default() -> Self {
        FetchArgs {
            version: 12,
            offset: 0,
            max_wait_ms: 0,
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
        }
    }
}

/// Fetches one partition by name (versions below 13).
pub async fn fetch(
    raw: &mut Raw,
    topic: &str,
    partition: i32,
    args: FetchArgs,
) -> kafka_protocol::messages::fetch_response::PartitionData {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
    let mut p = FetchPartition::default();
    p.partition = partition;
    p.fetch_offset = args.offset;
    p.partition_max_bytes = args.partition_max_bytes;
    let mut t = FetchTopic::default();
    t.topic = tn(topic);
    t.partitions.push(p);
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_wait_ms = args.max_wait_ms;
    req.min_bytes = args.min_bytes;
    req.max_bytes = args.max_bytes;
    req.session_epoch = -1;
    req.topics.push(t);
    let mut resp: FetchResponse = raw.call(ApiKey::Fetch, args.version, &req).await;
    resp.responses.remove(0).partitions.remove(0)
}

/// Decodes every record of a fetch response's records bytes: (offset, value).
pub fn decode_values(records: &Option<Bytes>) -> Vec<(i64, String)> {
    use kafka_persistence_wire::record::{decode_batches, DecodeLimits};
    let Some(bytes) = records.clone() else {
        return Vec::new();
    };
    decode_batches(bytes, DecodeLimits::default())
        .flat_map(|b| b.unwrap().records)
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.value.map(|v| v.to_vec()).unwrap_or_default()).unwrap(),
            )
        })
        .collect()
}

//! Raw-protocol tests of the admin-side apis: ApiVersions, Metadata, CreateTopics,
//! DeleteTopics, DescribeConfigs, ListOffsets, DeleteRecords, InitProducerId.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use kafka_persistence_wire::record::{EncodeOptions, Record};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;

#[tokio::test]
async fn api_versions_advertises_produce_and_fetch() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    for version in 0..=3i16 {
        let r: ApiVersionsResponse = raw
            .call(ApiKey::ApiVersions, version, &ApiVersionsRequest::default())
            .await;
        assert_eq!(r.error_code, 0);
        let produce = r.api_keys.iter().find(|k| k.api_key == 0).unwrap();
        assert!(produce.min_version <= 3 && produce.max_version >= 9);
        let fetch = r.api_keys.iter().find(|k| k.api_key == 1).unwrap();
        assert!(fetch.max_version >= 12);
    }
}

#[tokio::test]
async fn fault_api_versions_unknown_version_answers_v0_unsupported() {
    // Uses a version no broker knows: only meaningful against our own broker's exact range.
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    // v4 of the request encoding, which we do not advertise (max 3).
    let corr = raw
        .send(ApiKey::ApiVersions, 4, &ApiVersionsRequest::default())
        .await;
    let r: ApiVersionsResponse = raw.recv(0, corr).await;
    assert_eq!(r.error_code, 35);
    assert_eq!(r.api_keys.len(), 1);
    assert_eq!(r.api_keys[0].api_key, 18);
    assert_eq!(r.api_keys[0].max_version, 3);
}

fn metadata_req(topics: Option<Vec<&str>>, allow_create: bool) -> MetadataRequest {
    let mut req = MetadataRequest::default();
    req.topics = topics.map(|ts| {
        ts.into_iter()
            .map(|t| {
                let mut m = MetadataRequestTopic::default();
                m.name = Some(tn(t));
                m
            })
            .collect()
    });
    req.allow_auto_topic_creation = allow_create;
    req
}

#[tokio::test]
async fn metadata_lists_topics_and_never_creates_by_default() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("md");
    assert_eq!(create_topic(&mut raw, &topic, 3, &[]).await, 0);
    let missing = unique("missing");
    let r: MetadataResponse = raw
        .call(
            ApiKey::Metadata,
            12,
            &metadata_req(Some(vec![&topic, &missing]), false),
        )
        .await;
    assert!(!r.brokers.is_empty());
    let t = r
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.to_string()) == Some(topic.clone()))
        .unwrap();
    assert_eq!(t.error_code, 0);
    assert_eq!(t.partitions.len(), 3);
    assert!(t
        .partitions
        .iter()
        .all(|p| p.leader_id.0 >= 0 && p.leader_epoch >= 0));
    let m = r
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.to_string()) == Some(missing.clone()))
        .unwrap();
    assert_eq!(m.error_code, 3);
    // Still not there.
    let r: MetadataResponse = raw
        .call(
            ApiKey::Metadata,
            12,
            &metadata_req(Some(vec![&missing]), false),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 3);
    // Null = all topics.
    let r: MetadataResponse = raw
        .call(ApiKey::Metadata, 1, &metadata_req(None, true))
        .await;
    assert!(r
        .topics
        .iter()
        .any(|t| t.name.as_ref().map(|n| n.0.to_string()) == Some(topic.clone())));
}

#[tokio::test]
async fn fault_metadata_auto_creates_only_when_enabled_and_allowed() {
    let server = kafka_persistence_testserver::TestServer::builder()
        .auto_create_topics(true)
        .start()
        .await
        .unwrap();
    let addr = server.bootstrap_servers();
    let mut raw = Raw::connect(&addr).await;
    let topic = unique("auto");
    let r: MetadataResponse = raw
        .call(
            ApiKey::Metadata,
            9,
            &metadata_req(Some(vec![&topic]), false),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 3, "request did not allow creation");
    let r: MetadataResponse = raw
        .call(ApiKey::Metadata, 9, &metadata_req(Some(vec![&topic]), true))
        .await;
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[0].partitions.len(), 1);
    assert!(server.partition_info(&topic, 0).await.is_some());
}

#[tokio::test]
async fn create_topics_validates_like_kafka() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("ct");
    assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
    assert_eq!(
        create_topic(&mut raw, &topic, 1, &[]).await,
        36,
        "TOPIC_ALREADY_EXISTS"
    );
    assert_eq!(
        create_topic(&mut raw, &"x".repeat(250), 1, &[]).await,
        17,
        "too long"
    );
    assert_eq!(
        create_topic(&mut raw, "a/b", 1, &[]).await,
        17,
        "illegal character"
    );
    let dotted = unique("c.t");
    assert_eq!(create_topic(&mut raw, &dotted, 1, &[]).await, 0);
    assert_eq!(
        create_topic(&mut raw, &dotted.replace('.', "_"), 1, &[]).await,
        17,
        "collision"
    );
    assert_eq!(
        create_topic(&mut raw, &unique("cfg"), 1, &[("cleanup.policy", "bogus")]).await,
        40
    );
    assert_eq!(
        create_topic(&mut raw, &unique("cfg"), 1, &[("no.such.config", "1")]).await,
        40
    );
    assert_eq!(create_topic(&mut raw, &unique("parts"), 0, &[]).await, 37);
}

#[tokio::test]
async fn create_topics_validate_only_creates_nothing() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("vo");
    let mut t = CreatableTopic::default();
    t.name = tn(&topic);
    t.num_partitions = 2;
    t.replication_factor = 1;
    let mut req = CreateTopicsRequest::default();
    req.topics.push(t);
    req.validate_only = true;
    let r: CreateTopicsResponse = raw.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[0].num_partitions, 2);
    let r: MetadataResponse = raw
        .call(
            ApiKey::Metadata,
            12,
            &metadata_req(Some(vec![&topic]), false),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 3);
}

#[tokio::test]
async fn describe_configs_reports_overrides_and_defaults() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("dc");
    assert_eq!(
        create_topic(
            &mut raw,
            &topic,
            1,
            &[("cleanup.policy", "compact"), ("retention.ms", "1000")]
        )
        .await,
        0
    );
    let mut res = DescribeConfigsResource::default();
    res.resource_type = 2;
    res.resource_name = sb(&topic);
    let mut req = DescribeConfigsRequest::default();
    req.resources.push(res);
    for version in 1..=4i16 {
        let r: DescribeConfigsResponse = raw.call(ApiKey::DescribeConfigs, version, &req).await;
        let cfg = &r.results[0];
        assert_eq!(cfg.error_code, 0);
        let get = |k: &str| {
            cfg.configs
                .iter()
                .find(|c| &*c.name == k)
                .and_then(|c| c.value.as_ref().map(|v| v.to_string()))
        };
        assert_eq!(get("cleanup.policy").as_deref(), Some("compact"));
        assert_eq!(get("retention.ms").as_deref(), Some("1000"));
        assert_eq!(get("max.message.bytes").as_deref(), Some("1048588"));
    }
}

#[tokio::test]
async fn delete_topics_removes_the_topic() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("del");
    assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
    let mut req = DeleteTopicsRequest::default();
    req.topic_names.push(tn(&topic));
    req.timeout_ms = 10_000;
    let r: DeleteTopicsResponse = raw.call(ApiKey::DeleteTopics, 4, &req).await;
    assert_eq!(r.responses[0].error_code, 0);
    let r: DeleteTopicsResponse = raw.call(ApiKey::DeleteTopics, 4, &req).await;
    assert_eq!(r.responses[0].error_code, 3);
}

async fn list_offset(raw: &mut Raw, topic: &str, ts: i64) -> (i16, i64) {
    let mut p = ListOffsetsPartition::default();
    p.partition_index = 0;
    p.timestamp = ts;
    p.current_leader_epoch = -1;
    let mut t = ListOffsetsTopic::default();
    t.name = tn(topic);
    t.partitions.push(p);
    let mut req = ListOffsetsRequest::default();
    req.replica_id = BrokerId(-1);
    req.topics.push(t);
    let r: ListOffsetsResponse = raw.call(ApiKey::ListOffsets, 7, &req).await;
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset)
}

#[tokio::test]
async fn list_offsets_earliest_latest_and_by_timestamp() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("lo");
    assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
    let base = 1_700_000_000_000i64;
    for i in 0..3 {
        let rs: Vec<Record> = (0..2)
            .map(|j| Record::new(vec![1u8], base + i * 100 + j * 10))
            .collect();
        assert_eq!(
            produce(
                &mut raw,
                9,
                &topic,
                0,
                batch(&rs, &EncodeOptions::default())
            )
            .await
            .error_code,
            0
        );
    }
    assert_eq!(list_offset(&mut raw, &topic, -2).await, (0, 0));
    assert_eq!(list_offset(&mut raw, &topic, -1).await, (0, 6));
    assert_eq!(list_offset(&mut raw, &topic, base + 105).await, (0, 3));
    assert_eq!(list_offset(&mut raw, &topic, base + 200).await, (0, 4));
    assert_eq!(list_offset(&mut raw, &topic, base + 10_000).await, (0, -1));
}

#[tokio::test]
async fn delete_records_moves_log_start() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("dr");
    assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
    for _ in 0..3 {
        produce(
            &mut raw,
            9,
            &topic,
            0,
            batch(&records("x", 2), &EncodeOptions::default()),
        )
        .await;
    }
    let mut p = DeleteRecordsPartition::default();
    p.partition_index = 0;
    p.offset = 3;
    let mut t = DeleteRecordsTopic::default();
    t.name = tn(&topic);
    t.partitions.push(p);
    let mut req = DeleteRecordsRequest::default();
    req.topics.push(t);
    req.timeout_ms = 10_000;
    let r: DeleteRecordsResponse = raw.call(ApiKey::DeleteRecords, 2, &req).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(r.topics[0].partitions[0].low_watermark, 3);
    assert_eq!(list_offset(&mut raw, &topic, -2).await, (0, 3));
    let a = FetchArgs {
        offset: 1,
        ..Default::default()
    };
    assert_eq!(
        fetch(&mut raw, &topic, 0, a).await.error_code,
        1,
        "below log start"
    );
    let a = FetchArgs {
        offset: 3,
        ..Default::default()
    };
    let f = fetch(&mut raw, &topic, 0, a).await;
    assert_eq!(f.log_start_offset, 3);
    let offsets: Vec<i64> = decode_values(&f.records)
        .into_iter()
        .map(|(o, _)| o)
        .filter(|o| *o >= 3)
        .collect();
    assert_eq!(offsets, vec![3, 4, 5]);
    req.topics[0].partitions[0].offset = 100;
    let r: DeleteRecordsResponse = raw.call(ApiKey::DeleteRecords, 2, &req).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 1);
}

#[tokio::test]
async fn init_producer_id_hands_out_distinct_ids_and_bumps_transactional_epochs() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = None;
    req.transaction_timeout_ms = 60_000;
    req.producer_id = ProducerId(-1);
    req.producer_epoch = -1;
    let a: InitProducerIdResponse = raw.call(ApiKey::InitProducerId, 4, &req).await;
    let c: InitProducerIdResponse = raw.call(ApiKey::InitProducerId, 4, &req).await;
    assert_eq!((a.error_code, c.error_code), (0, 0));
    assert_ne!(a.producer_id, c.producer_id);
}

#[tokio::test]
async fn fault_transactional_id_epoch_is_bumped() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = Some(TransactionalId(sb(&unique("tx"))));
    req.transaction_timeout_ms = 60_000;
    req.producer_id = ProducerId(-1);
    req.producer_epoch = -1;
    let a: InitProducerIdResponse = raw.call(ApiKey::InitProducerId, 4, &req).await;
    let c: InitProducerIdResponse = raw.call(ApiKey::InitProducerId, 4, &req).await;
    assert_eq!(a.producer_id, c.producer_id);
    assert_eq!(c.producer_epoch, a.producer_epoch + 1);
}

#[tokio::test]
async fn describe_cluster_lists_the_brokers() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let r: DescribeClusterResponse = raw
        .call(
            ApiKey::DescribeCluster,
            0,
            &DescribeClusterRequest::default(),
        )
        .await;
    assert_eq!(r.error_code, 0);
    assert!(!r.brokers.is_empty());
    assert!(!r.cluster_id.is_empty());
    assert!(r.brokers.iter().any(|x| x.broker_id == r.controller_id));
}

#[tokio::test]
async fn metadata_and_fetch_by_topic_id() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("tid");
    assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
    produce(
        &mut raw,
        9,
        &topic,
        0,
        batch(&records("id", 2), &EncodeOptions::default()),
    )
    .await;
    let r: MetadataResponse = raw
        .call(
            ApiKey::Metadata,
            12,
            &metadata_req(Some(vec![&topic]), false),
        )
        .await;
    let id = r.topics[0].topic_id;
    assert!(!id.is_nil());
    let mut p = FetchPartition::default();
    p.partition = 0;
    p.fetch_offset = 0;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic_id = id;
    t.partitions.push(p);
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_bytes = 1 << 20;
    req.min_bytes = 1;
    req.topics.push(t);
    let r: FetchResponse = raw.call(ApiKey::Fetch, 13, &req).await;
    assert_eq!(r.responses[0].topic_id, id);
    let part = &r.responses[0].partitions[0];
    assert_eq!(part.error_code, 0);
    assert_eq!(decode_values(&part.records).len(), 2);
    req.topics[0].topic_id = uuid::Uuid::from_bytes(id.as_bytes().map(|x| !x));
    let r: FetchResponse = raw.call(ApiKey::Fetch, 13, &req).await;
    assert_eq!(
        r.responses[0].partitions[0].error_code, 100,
        "UNKNOWN_TOPIC_ID"
    );
}

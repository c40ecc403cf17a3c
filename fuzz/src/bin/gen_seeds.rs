//! Writes the seed corpora: `cargo run --release --bin gen_seeds` (from `fuzz/`) fills
//! `corpus/record_batch`, `corpus/response_decode`, `corpus/request_decode` and
//! `corpus/sasl_messages` with valid inputs (record batches in every codec; responses and
//! requests of every fuzzed API at every version; one message per SASL parser, from the
//! RFC 7677 example exchange), so the fuzzer starts from deep inside the decoders.

use std::fs;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use kafka_persistence_wire::protocol::{encode_request, encode_response};
use kafka_persistence_wire::record::{encode_batch, Compression, EncodeOptions, Record};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn write(dir: &Path, name: &str, data: &[u8]) {
    if let Err(e) = fs::write(dir.join(name), data) {
        eprintln!("cannot write {name}: {e}");
    }
}

fn batches() -> Vec<(String, Bytes)> {
    let mut out = Vec::new();
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        for (n, txn) in [(1usize, false), (5, true)] {
            let records: Vec<Record> = (0..n)
                .map(|i| {
                    let mut r = Record::new(
                        vec![b'v'; 10 + i],
                        1_700_000_000_000 + i as i64 * 86_400_000 * 30,
                    );
                    if i % 2 == 0 {
                        r = r.with_key(format!("key-{i}").into_bytes());
                    }
                    r.with_header("h", "1").with_header("h", "2")
                })
                .collect();
            let opts = EncodeOptions {
                compression: codec,
                is_transactional: txn,
                producer_id: if txn { 7 } else { -1 },
                producer_epoch: if txn { 0 } else { -1 },
                base_sequence: if txn { 0 } else { -1 },
                ..EncodeOptions::default()
            };
            let mut buf = BytesMut::new();
            if encode_batch(&records, &opts, &mut buf).is_ok() {
                out.push((format!("{}-{n}", codec.name()), buf.freeze()));
            }
        }
    }
    out
}

fn response_seed(dir: &Path, idx: u8, api: ApiKey, body: &ResponseKind) {
    let range = api.valid_versions();
    for v in range.min..=range.max {
        let mut out = BytesMut::new();
        if encode_response(api, v, 1, body, &mut out).is_ok() {
            let mut data = vec![idx, (v - range.min) as u8];
            data.extend_from_slice(&out[4..]);
            write(dir, &format!("{api:?}-v{v}"), &data);
        }
    }
}

macro_rules! request_seeds {
    ($dir:expr, $api:expr, $req:expr) => {{
        let api: ApiKey = $api;
        let req = $req;
        let range = api.valid_versions();
        for v in range.min..=range.max {
            let mut out = BytesMut::new();
            if encode_request(api, v, 1, Some("fuzz"), &req, &mut out).is_ok() {
                write($dir, &format!("{api:?}-v{v}"), &out[4..]);
            }
        }
    }};
}

fn main() {
    let root = Path::new("corpus");
    let rb = root.join("record_batch");
    let resp = root.join("response_decode");
    let reqd = root.join("request_decode");
    for d in [&rb, &resp, &reqd] {
        if let Err(e) = fs::create_dir_all(d) {
            eprintln!("cannot create {}: {e}", d.display());
            return;
        }
    }
    let batches = batches();
    for (name, b) in &batches {
        write(&rb, name, b);
    }
    let all: Vec<u8> = batches.iter().flat_map(|(_, b)| b.to_vec()).collect();
    write(&rb, "concatenated", &all);
    let first = batches.first().map(|(_, b)| b.clone()).unwrap_or_default();

    let topic = TopicName(StrBytes::from_static_str("events"));
    let fetch = FetchResponse::default().with_responses(vec![
        fetch_response::FetchableTopicResponse::default()
            .with_topic(topic.clone())
            .with_partitions(vec![fetch_response::PartitionData::default()
                .with_high_watermark(5)
                .with_records(Some(Bytes::from(all.clone())))]),
    ]);
    let metadata = MetadataResponse::default()
        .with_brokers(vec![metadata_response::MetadataResponseBroker::default()
            .with_host(StrBytes::from_static_str("localhost"))
            .with_port(9092)])
        .with_topics(vec![metadata_response::MetadataResponseTopic::default()
            .with_name(Some(topic.clone()))
            .with_partitions(vec![
                metadata_response::MetadataResponsePartition::default()
                    .with_replica_nodes(vec![BrokerId(0)]),
            ])]);
    let api_versions = ApiVersionsResponse::default().with_api_keys(vec![
        api_versions_response::ApiVersion::default()
            .with_api_key(0)
            .with_max_version(11),
    ]);
    let produce = ProduceResponse::default().with_responses(vec![
        produce_response::TopicProduceResponse::default()
            .with_name(topic.clone())
            .with_partition_responses(vec![
                produce_response::PartitionProduceResponse::default().with_base_offset(3)
            ]),
    ]);
    let list_offsets = ListOffsetsResponse::default().with_topics(vec![
        list_offsets_response::ListOffsetsTopicResponse::default()
            .with_name(topic.clone())
            .with_partitions(vec![
                list_offsets_response::ListOffsetsPartitionResponse::default().with_offset(9),
            ]),
    ]);
    let create = CreateTopicsResponse::default().with_topics(vec![
        create_topics_response::CreatableTopicResult::default().with_name(topic.clone()),
    ]);
    let delete_records = DeleteRecordsResponse::default().with_topics(vec![
        delete_records_response::DeleteRecordsTopicResult::default()
            .with_name(topic.clone())
            .with_partitions(vec![
                delete_records_response::DeleteRecordsPartitionResult::default()
                    .with_low_watermark(2),
            ]),
    ]);
    let init = InitProducerIdResponse::default().with_producer_id(ProducerId(42));
    let describe = DescribeConfigsResponse::default().with_results(vec![
        describe_configs_response::DescribeConfigsResult::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("events"))
            .with_configs(vec![
                describe_configs_response::DescribeConfigsResourceResult::default()
                    .with_name(StrBytes::from_static_str("cleanup.policy"))
                    .with_value(Some(StrBytes::from_static_str("compact"))),
            ]),
    ]);
    // Selector order matches fuzz_targets/response_decode.rs.
    response_seed(&resp, 0, ApiKey::Produce, &ResponseKind::Produce(produce));
    response_seed(&resp, 1, ApiKey::Fetch, &ResponseKind::Fetch(fetch));
    response_seed(
        &resp,
        2,
        ApiKey::Metadata,
        &ResponseKind::Metadata(metadata),
    );
    response_seed(
        &resp,
        3,
        ApiKey::ApiVersions,
        &ResponseKind::ApiVersions(api_versions),
    );
    response_seed(
        &resp,
        4,
        ApiKey::ListOffsets,
        &ResponseKind::ListOffsets(list_offsets),
    );
    response_seed(
        &resp,
        5,
        ApiKey::CreateTopics,
        &ResponseKind::CreateTopics(create),
    );
    response_seed(
        &resp,
        6,
        ApiKey::DeleteRecords,
        &ResponseKind::DeleteRecords(delete_records),
    );
    response_seed(
        &resp,
        7,
        ApiKey::InitProducerId,
        &ResponseKind::InitProducerId(init),
    );
    response_seed(
        &resp,
        8,
        ApiKey::DescribeConfigs,
        &ResponseKind::DescribeConfigs(describe),
    );
    // The consumer group protocol (KIP-848): an assignment by topic id.
    let topic_id = uuid::Uuid::from_bytes([7; 16]);
    response_seed(
        &resp,
        18,
        ApiKey::ConsumerGroupHeartbeat,
        &ResponseKind::ConsumerGroupHeartbeat(
            ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(StrBytes::from_static_str("member-1")))
                .with_member_epoch(3)
                .with_heartbeat_interval_ms(250)
                .with_assignment(Some(
                    consumer_group_heartbeat_response::Assignment::default().with_topic_partitions(
                        vec![
                            consumer_group_heartbeat_response::TopicPartitions::default()
                                .with_topic_id(topic_id)
                                .with_partitions(vec![0, 1]),
                        ],
                    ),
                )),
        ),
    );
    // The group-inspection apis (wire's group_admin).
    response_seed(
        &resp,
        19,
        ApiKey::DescribeGroups,
        &ResponseKind::DescribeGroups(DescribeGroupsResponse::default().with_groups(vec![
            describe_groups_response::DescribedGroup::default()
                .with_group_id(GroupId(StrBytes::from_static_str("group")))
                .with_group_state(StrBytes::from_static_str("Stable"))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocol_data(StrBytes::from_static_str("range"))
                .with_members(vec![describe_groups_response::DescribedGroupMember::default()
                    .with_member_id(StrBytes::from_static_str("member-1"))
                    .with_client_id(StrBytes::from_static_str("client"))
                    .with_client_host(StrBytes::from_static_str("/127.0.0.1"))
                    .with_member_metadata(bytes::Bytes::from_static(b"meta"))
                    .with_member_assignment(bytes::Bytes::from_static(b"assignment"))]),
        ])),
    );
    response_seed(
        &resp,
        20,
        ApiKey::ListGroups,
        &ResponseKind::ListGroups(ListGroupsResponse::default().with_groups(vec![
            list_groups_response::ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_static_str("group")))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_group_state(StrBytes::from_static_str("Stable"))
                .with_group_type(StrBytes::from_static_str("classic")),
        ])),
    );
    let described_partitions = consumer_group_describe_response::Assignment::default()
        .with_topic_partitions(vec![
            consumer_group_describe_response::TopicPartitions::default()
                .with_topic_id(topic_id)
                .with_topic_name(topic.clone())
                .with_partitions(vec![0, 1]),
        ]);
    response_seed(
        &resp,
        21,
        ApiKey::ConsumerGroupDescribe,
        &ResponseKind::ConsumerGroupDescribe(ConsumerGroupDescribeResponse::default().with_groups(
            vec![consumer_group_describe_response::DescribedGroup::default()
                .with_group_id(GroupId(StrBytes::from_static_str("group")))
                .with_group_state(StrBytes::from_static_str("Stable"))
                .with_group_epoch(2)
                .with_assignment_epoch(2)
                .with_assignor_name(StrBytes::from_static_str("uniform"))
                .with_members(vec![consumer_group_describe_response::Member::default()
                    .with_member_id(StrBytes::from_static_str("member-1"))
                    .with_member_epoch(2)
                    .with_subscribed_topic_names(vec![topic.clone()])
                    .with_assignment(described_partitions.clone())
                    .with_target_assignment(described_partitions)])],
        )),
    );

    request_seeds!(
        &reqd,
        ApiKey::Produce,
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(topic.clone())
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_records(Some(first.clone()))
                ])])
    );
    request_seeds!(
        &reqd,
        ApiKey::Fetch,
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(topic.clone())
                .with_partitions(vec![
                    fetch_request::FetchPartition::default().with_partition_max_bytes(1 << 20)
                ])])
    );
    request_seeds!(
        &reqd,
        ApiKey::Metadata,
        MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(topic.clone()))
        ]))
    );
    request_seeds!(
        &reqd,
        ApiKey::ApiVersions,
        ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("fuzz"))
            .with_client_software_version(StrBytes::from_static_str("1"))
    );
    request_seeds!(
        &reqd,
        ApiKey::ListOffsets,
        ListOffsetsRequest::default().with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(topic.clone())
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1)
                ])
        ])
    );
    request_seeds!(
        &reqd,
        ApiKey::CreateTopics,
        CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(topic.clone())
                .with_num_partitions(1)
                .with_replication_factor(1)
        ])
    );
    request_seeds!(
        &reqd,
        ApiKey::DeleteRecords,
        DeleteRecordsRequest::default().with_topics(vec![
            delete_records_request::DeleteRecordsTopic::default()
                .with_name(topic.clone())
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default().with_offset(1)
                ])
        ])
    );
    request_seeds!(
        &reqd,
        ApiKey::InitProducerId,
        InitProducerIdRequest::default().with_transaction_timeout_ms(60_000)
    );
    request_seeds!(
        &reqd,
        ApiKey::DescribeConfigs,
        DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("events"))
        ])
    );
    request_seeds!(
        &reqd,
        ApiKey::DescribeGroups,
        DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_static_str("group"))])
    );
    request_seeds!(
        &reqd,
        ApiKey::ListGroups,
        ListGroupsRequest::default()
            .with_states_filter(vec![StrBytes::from_static_str("Stable")])
            .with_types_filter(vec![StrBytes::from_static_str("classic")])
    );
    request_seeds!(
        &reqd,
        ApiKey::ConsumerGroupDescribe,
        ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(StrBytes::from_static_str("group"))])
    );
    request_seeds!(
        &reqd,
        ApiKey::DeleteTopics,
        DeleteTopicsRequest::default().with_topic_names(vec![topic.clone()])
    );
    request_seeds!(
        &reqd,
        ApiKey::FindCoordinator,
        FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("group"))
    );
    request_seeds!(
        &reqd,
        ApiKey::ConsumerGroupHeartbeat,
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("group")))
            .with_member_id(StrBytes::from_static_str("member-1"))
            .with_subscribed_topic_names(Some(vec![topic.clone()]))
            .with_topic_partitions(Some(vec![
                consumer_group_heartbeat_request::TopicPartitions::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![0])
            ]))
    );
    sasl_seeds(&root.join("sasl_messages"));
    println!("seeds written under {}", root.display());
}

/// One message per `sasl_messages` parser (byte 0 picks it): the RFC 7677 exchange, PLAIN and
/// OAUTHBEARER with an extension.
fn sasl_seeds(dir: &Path) {
    use kafka_persistence_wire::sasl::{oauthbearer, plain};
    if let Err(e) = fs::create_dir_all(dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        return;
    }
    let messages: [(&str, u8, Vec<u8>); 6] = [
        ("client_first", 0, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO".to_vec()),
        (
            "server_first",
            1,
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                .to_vec(),
        ),
        (
            "client_final",
            2,
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
                .to_vec(),
        ),
        (
            "server_final",
            3,
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
        ),
        ("plain", 4, plain::client_message("alice", "secret")),
        (
            "oauthbearer",
            5,
            oauthbearer::client_message("token", &[("traceId".to_owned(), "1".to_owned())]),
        ),
    ];
    for (name, selector, body) in messages {
        let mut data = vec![selector];
        data.extend_from_slice(&body);
        write(dir, name, &data);
    }
}

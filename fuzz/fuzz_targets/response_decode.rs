//! Client side: `wire::protocol::decode_response` for every API the client uses (the consumer
//! group APIs included, with the embedded subscription and assignment), at every
//! version `kafka-protocol` knows. Byte 0 picks the API, byte 1 the version, the rest is the
//! response frame (without its length prefix). Fetch responses' record sets go through
//! `decode_batches` too, as the client does.
#![no_main]

use bytes::Bytes;
use kafka_persistence_wire::protocol::decode_response;
use kafka_persistence_wire::record::{decode_batches, DecodeLimits};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsResponse, ApiKey, ApiVersionsResponse,
    ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatResponse, CreateTopicsResponse,
    DeleteRecordsResponse, DescribeConfigsResponse, DescribeGroupsResponse, ElectLeadersResponse,
    FetchResponse, FindCoordinatorResponse, HeartbeatResponse, InitProducerIdResponse,
    JoinGroupResponse, LeaveGroupResponse, ListGroupsResponse, ListOffsetsResponse,
    MetadataResponse, OffsetCommitResponse, OffsetFetchResponse, ProduceResponse,
    SyncGroupResponse,
};
use libfuzzer_sys::fuzz_target;

/// The APIs the client decodes responses of, in selector order (byte 0 modulo the count).
const APIS: [ApiKey; 22] = [
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::Metadata,
    ApiKey::ApiVersions,
    ApiKey::ListOffsets,
    ApiKey::CreateTopics,
    ApiKey::DeleteRecords,
    ApiKey::InitProducerId,
    ApiKey::DescribeConfigs,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::ElectLeaders,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ConsumerGroupHeartbeat,
    ApiKey::DescribeGroups,
    ApiKey::ListGroups,
    ApiKey::ConsumerGroupDescribe,
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let api = APIS[usize::from(data[0]) % APIS.len()];
    let range = api.valid_versions();
    let span = (range.max - range.min + 1) as u8;
    let version = range.min + i16::from(data[1] % span);
    let frame = Bytes::copy_from_slice(&data[2..]);
    match api {
        ApiKey::Produce => {
            let _ = decode_response::<ProduceResponse>(api, version, frame);
        }
        ApiKey::Fetch => {
            if let Ok((_, resp)) = decode_response::<FetchResponse>(api, version, frame) {
                for topic in &resp.responses {
                    for p in &topic.partitions {
                        if let Some(records) = &p.records {
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
        }
        ApiKey::Metadata => {
            let _ = decode_response::<MetadataResponse>(api, version, frame);
        }
        ApiKey::ApiVersions => {
            let _ = decode_response::<ApiVersionsResponse>(api, version, frame);
        }
        ApiKey::ListOffsets => {
            let _ = decode_response::<ListOffsetsResponse>(api, version, frame);
        }
        ApiKey::CreateTopics => {
            let _ = decode_response::<CreateTopicsResponse>(api, version, frame);
        }
        ApiKey::DeleteRecords => {
            let _ = decode_response::<DeleteRecordsResponse>(api, version, frame);
        }
        ApiKey::InitProducerId => {
            let _ = decode_response::<InitProducerIdResponse>(api, version, frame);
        }
        ApiKey::DescribeConfigs => {
            let _ = decode_response::<DescribeConfigsResponse>(api, version, frame);
        }
        ApiKey::FindCoordinator => {
            let _ = decode_response::<FindCoordinatorResponse>(api, version, frame);
        }
        ApiKey::JoinGroup => {
            // The leader also decodes every member's embedded subscription.
            if let Ok((_, resp)) = decode_response::<JoinGroupResponse>(api, version, frame) {
                for m in resp.members.iter().take(100) {
                    let _ = kafka_persistence_wire::consumer::decode_subscription(
                        &m.member_id,
                        None,
                        m.metadata.clone(),
                    );
                }
            }
        }
        ApiKey::SyncGroup => {
            if let Ok((_, resp)) = decode_response::<SyncGroupResponse>(api, version, frame) {
                let _ = kafka_persistence_wire::consumer::decode_assignment(resp.assignment);
            }
        }
        ApiKey::DescribeGroups => {
            let _ = decode_response::<DescribeGroupsResponse>(api, version, frame);
        }
        ApiKey::ListGroups => {
            let _ = decode_response::<ListGroupsResponse>(api, version, frame);
        }
        ApiKey::ConsumerGroupDescribe => {
            let _ = decode_response::<ConsumerGroupDescribeResponse>(api, version, frame);
        }
        ApiKey::Heartbeat => {
            let _ = decode_response::<HeartbeatResponse>(api, version, frame);
        }
        ApiKey::LeaveGroup => {
            let _ = decode_response::<LeaveGroupResponse>(api, version, frame);
        }
        ApiKey::OffsetCommit => {
            let _ = decode_response::<OffsetCommitResponse>(api, version, frame);
        }
        ApiKey::OffsetFetch => {
            let _ = decode_response::<OffsetFetchResponse>(api, version, frame);
        }
        ApiKey::ElectLeaders => {
            let _ = decode_response::<ElectLeadersResponse>(api, version, frame);
        }
        ApiKey::AlterPartitionReassignments => {
            let _ = decode_response::<AlterPartitionReassignmentsResponse>(api, version, frame);
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let _ = decode_response::<ConsumerGroupHeartbeatResponse>(api, version, frame);
        }
        _ => {}
    }
});

//! The transaction coordinator, over the raw protocol: markers, the last stable offset, the
//! aborted-transaction index, read_committed fetches, fencing, timeouts, transactional
//! offsets (KIP-447 checks) and a restart on the data directory.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use kafka_persistence_testserver::TestServer;
use kafka_persistence_wire::record::{decode_batches, DecodeLimits, EncodeOptions};
use kafka_persistence_wire::ErrorCode;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, ApiKey, EndTxnRequest, EndTxnResponse, GroupId,
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, TransactionalId,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};

async fn init(raw: &mut Raw, tid: &str, timeout_ms: i32) -> InitProducerIdResponse {
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = Some(TransactionalId(sb(tid)));
    req.transaction_timeout_ms = timeout_ms;
    req.producer_id = ProducerId(-1);
    req.producer_epoch = -1;
    raw.call(ApiKey::InitProducerId, 4, &req).await
}

async fn add_partitions(
    raw: &mut Raw,
    tid: &str,
    pid: (i64, i16),
    topic: &str,
    ps: &[i32],
) -> Vec<i16> {
    let mut t = AddPartitionsToTxnTopic::default();
    t.name = tn(topic);
    t.partitions = ps.to_vec();
    let mut req = AddPartitionsToTxnRequest::default();
    req.v3_and_below_transactional_id = TransactionalId(sb(tid));
    req.v3_and_below_producer_id = ProducerId(pid.0);
    req.v3_and_below_producer_epoch = pid.1;
    req.v3_and_below_topics.push(t);
    let r: AddPartitionsToTxnResponse = raw.call(ApiKey::AddPartitionsToTxn, 3, &req).await;
    r.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect()
}

async fn end(raw: &mut Raw, tid: &str, pid: (i64, i16), commit: bool) -> i16 {
    let mut req = EndTxnRequest::default();
    req.transactional_id = TransactionalId(sb(tid));
    req.producer_id = ProducerId(pid.0);
    req.producer_epoch = pid.1;
    req.committed = commit;
    let r: EndTxnResponse = raw.call(ApiKey::EndTxn, 3, &req).await;
    r.error_code
}

fn txn_batch(prefix: &str, n: usize, pid: (i64, i16), seq: i32) -> Bytes {
    let opts = EncodeOptions {
        producer_id: pid.0,
        producer_epoch: pid.1,
        base_sequence: seq,
        is_transactional: true,
        ..Default::default()
    };
    batch(&records(prefix, n), &opts)
}

async fn txn_produce(raw: &mut Raw, tid: &str, topic: &str, p: i32, b: Bytes) -> i16 {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
    let mut pd = PartitionProduceData::default();
    pd.index = p;
    pd.records = Some(b);
    let mut t = TopicProduceData::default();
    t.name = tn(topic);
    t.partition_data.push(pd);
    let mut req = ProduceRequest::default();
    req.transactional_id = Some(TransactionalId(sb(tid)));
    req.acks = -1;
    req.timeout_ms = 10_000;
    req.topic_data.push(t);
    let resp: ProduceResponse = raw.call(ApiKey::Produce, 9, &req).await;
    resp.responses[0].partition_responses[0].error_code
}

/// A read_committed (or uncommitted) fetch from offset 0.
async fn fetch_iso(raw: &mut Raw, topic: &str, committed: bool) -> PartitionData {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
    let mut p = FetchPartition::default();
    p.partition = 0;
    p.fetch_offset = 0;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic = tn(topic);
    t.partitions.push(p);
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_bytes = 1 << 20;
    req.session_epoch = -1;
    req.isolation_level = i8::from(committed);
    req.topics.push(t);
    let mut resp: FetchResponse = raw.call(ApiKey::Fetch, 11, &req).await;
    resp.responses.remove(0).partitions.remove(0)
}

/// Values of the data records, dropping control batches and, for read_committed, the
/// batches of the aborted transactions the response names (a producer's batches count as
/// aborted from the first offset of its aborted transaction to its abort marker).
fn visible(p: &PartitionData) -> Vec<String> {
    let mut aborted: Vec<(i64, i64)> = p
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| (a.first_offset, a.producer_id.0))
        .collect();
    aborted.sort_unstable();
    let Some(bytes) = p.records.clone() else {
        return vec![];
    };
    let mut active = std::collections::HashSet::new();
    let mut out = Vec::new();
    for b in decode_batches(bytes, DecodeLimits::default()) {
        let b = b.unwrap();
        let h = b.header;
        for (first, pid) in &aborted {
            if *first <= h.last_offset() && *first >= h.base_offset {
                active.insert(*pid);
            }
        }
        if h.is_control() {
            active.remove(&h.producer_id);
            continue;
        }
        if h.is_transactional() && active.contains(&h.producer_id) {
            continue;
        }
        out.extend(
            b.records
                .into_iter()
                .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap()),
        );
    }
    out
}

fn pair(r: &InitProducerIdResponse) -> (i64, i16) {
    assert_eq!(r.error_code, 0);
    (r.producer_id.0, r.producer_epoch)
}

#[tokio::test]
async fn txn_commit_and_abort_markers_lso_and_read_committed() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("txn-ca");
    assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
    let tid = unique("tid");
    let id = pair(&init(&mut raw, &tid, 60_000).await);
    // A batch for a partition not in the transaction is refused.
    assert_eq!(
        txn_produce(&mut raw, &tid, &topic, 0, txn_batch("x", 1, id, 0)).await,
        ErrorCode::INVALID_TXN_STATE
    );
    // Transaction 1: aborted.
    assert_eq!(
        add_partitions(&mut raw, &tid, id, &topic, &[0]).await,
        vec![0]
    );
    assert_eq!(
        txn_produce(&mut raw, &tid, &topic, 0, txn_batch("a", 2, id, 0)).await,
        0
    );
    let open = fetch_iso(&mut raw, &topic, true).await;
    assert_eq!((open.high_watermark, open.last_stable_offset), (2, 0));
    assert!(visible(&open).is_empty(), "nothing below the LSO yet");
    assert_eq!(visible(&fetch_iso(&mut raw, &topic, false).await).len(), 2);
    assert_eq!(end(&mut raw, &tid, id, false).await, 0);
    assert_eq!(
        end(&mut raw, &tid, id, false).await,
        0,
        "a retried EndTxn is answered"
    );
    assert_eq!(
        end(&mut raw, &tid, id, true).await,
        ErrorCode::INVALID_TXN_STATE
    );
    // Transaction 2: committed.
    assert_eq!(
        add_partitions(&mut raw, &tid, id, &topic, &[0]).await,
        vec![0]
    );
    assert_eq!(
        txn_produce(&mut raw, &tid, &topic, 0, txn_batch("c", 3, id, 2)).await,
        0
    );
    assert_eq!(end(&mut raw, &tid, id, true).await, 0);
    let rc = fetch_iso(&mut raw, &topic, true).await;
    // 2 aborted + marker + 3 committed + marker.
    assert_eq!((rc.high_watermark, rc.last_stable_offset), (7, 7));
    let aborted = rc.aborted_transactions.clone().unwrap();
    assert_eq!(aborted.len(), 1);
    assert_eq!(
        (aborted[0].producer_id.0, aborted[0].first_offset),
        (id.0, 0)
    );
    assert_eq!(visible(&rc), vec!["c-0", "c-1", "c-2"]);
    let ru = fetch_iso(&mut raw, &topic, false).await;
    assert!(ru.aborted_transactions.is_none());
    assert_eq!(
        visible(&ru).len(),
        5,
        "read_uncommitted sees the aborted records too"
    );
    let markers = decode_batches(ru.records.clone().unwrap(), DecodeLimits::default())
        .filter(|b| b.as_ref().unwrap().header.is_control())
        .count();
    assert_eq!(markers, 2);
}

#[tokio::test]
async fn txn_new_instance_fences_the_old_and_aborts_its_transaction() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("txn-fence");
    assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
    let tid = unique("tid");
    let old = pair(&init(&mut raw, &tid, 60_000).await);
    assert_eq!(
        add_partitions(&mut raw, &tid, old, &topic, &[0]).await,
        vec![0]
    );
    assert_eq!(
        txn_produce(&mut raw, &tid, &topic, 0, txn_batch("zombie", 2, old, 0)).await,
        0
    );
    let new = pair(&init(&mut raw, &tid, 60_000).await);
    assert_eq!((new.0, new.1), (old.0, old.1 + 1));
    // The old instance's transaction is aborted, and it is fenced everywhere.
    let rc = fetch_iso(&mut raw, &topic, true).await;
    assert_eq!(rc.last_stable_offset, rc.high_watermark);
    assert!(visible(&rc).is_empty());
    assert_eq!(
        txn_produce(&mut raw, &tid, &topic, 0, txn_batch("zombie", 1, old, 2)).await,
        ErrorCode::INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        end(&mut raw, &tid, old, true).await,
        ErrorCode::PRODUCER_FENCED
    );
    assert_eq!(
        add_partitions(&mut raw, &tid, old, &topic, &[0]).await,
        vec![ErrorCode::PRODUCER_FENCED]
    );
    // KIP-360: re-initialising with a stale pair is fenced, with the current one bumps.
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = Some(TransactionalId(sb(&tid)));
    req.transaction_timeout_ms = 60_000;
    req.producer_id = ProducerId(old.0);
    req.producer_epoch = old.1;
    let r: InitProducerIdResponse = raw.call(ApiKey::InitProducerId, 4, &req).await;
    assert_eq!(r.error_code, ErrorCode::PRODUCER_FENCED);
    let r: InitProducerIdResponse = raw.call(ApiKey::InitProducerId, 3, &req).await;
    assert_eq!(
        r.error_code,
        ErrorCode::INVALID_PRODUCER_EPOCH,
        "v3 knows no PRODUCER_FENCED"
    );
    // The new instance works.
    assert_eq!(
        add_partitions(&mut raw, &tid, new, &topic, &[0]).await,
        vec![0]
    );
    assert_eq!(
        txn_produce(&mut raw, &tid, &topic, 0, txn_batch("new", 1, new, 0)).await,
        0
    );
    assert_eq!(end(&mut raw, &tid, new, true).await, 0);
    assert_eq!(
        visible(&fetch_iso(&mut raw, &topic, true).await),
        vec!["new-0"]
    );
    // Bad arguments.
    assert_eq!(
        init(&mut raw, &tid, 0).await.error_code,
        ErrorCode::INVALID_TRANSACTION_TIMEOUT
    );
    assert_eq!(
        add_partitions(&mut raw, &tid, new, "no-such-topic", &[0]).await,
        vec![ErrorCode::UNKNOWN_TOPIC_OR_PARTITION]
    );
    assert_eq!(
        add_partitions(&mut raw, &unique("unknown"), new, &topic, &[0]).await,
        vec![ErrorCode::INVALID_PRODUCER_ID_MAPPING]
    );
}

#[tokio::test]
async fn txn_timeout_aborts_and_fences() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("txn-timeout");
    assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
    let tid = unique("tid");
    let id = pair(&init(&mut raw, &tid, 300).await);
    assert_eq!(
        add_partitions(&mut raw, &tid, id, &topic, &[0]).await,
        vec![0]
    );
    assert_eq!(
        txn_produce(&mut raw, &tid, &topic, 0, txn_batch("late", 2, id, 0)).await,
        0
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rc = fetch_iso(&mut raw, &topic, true).await;
        if rc.last_stable_offset == rc.high_watermark {
            assert!(rc.high_watermark >= 3, "an abort marker was written");
            assert!(visible(&rc).is_empty());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "transaction never timed out"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        end(&mut raw, &tid, id, true).await,
        ErrorCode::PRODUCER_FENCED
    );
}

#[tokio::test]
async fn txn_offsets_are_checked_and_stored_only_on_commit() {
    let b = broker().await;
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("txn-offsets");
    assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
    let tid = unique("tid");
    let group = unique("group");
    let id = pair(&init(&mut raw, &tid, 60_000).await);
    let commit_offset = |generation: i32, member: &str, offset: i64| {
        let mut p = TxnOffsetCommitRequestPartition::default();
        p.partition_index = 0;
        p.committed_offset = offset;
        p.committed_leader_epoch = -1;
        let mut t = TxnOffsetCommitRequestTopic::default();
        t.name = tn(&topic);
        t.partitions.push(p);
        let mut req = TxnOffsetCommitRequest::default();
        req.transactional_id = TransactionalId(sb(&tid));
        req.group_id = GroupId(sb(&group));
        req.producer_id = ProducerId(id.0);
        req.producer_epoch = id.1;
        req.generation_id = generation;
        req.member_id = sb(member);
        req.topics.push(t);
        req
    };
    let add_offsets = |raw_group: &str| {
        let mut req = AddOffsetsToTxnRequest::default();
        req.transactional_id = TransactionalId(sb(&tid));
        req.producer_id = ProducerId(id.0);
        req.producer_epoch = id.1;
        req.group_id = GroupId(sb(raw_group));
        req
    };
    // Before AddOffsetsToTxn the group is not part of the transaction.
    let r: TxnOffsetCommitResponse = raw
        .call(ApiKey::TxnOffsetCommit, 3, &commit_offset(-1, "", 5))
        .await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ErrorCode::INVALID_TXN_STATE
    );
    let r: AddOffsetsToTxnResponse = raw
        .call(ApiKey::AddOffsetsToTxn, 3, &add_offsets(&group))
        .await;
    assert_eq!(r.error_code, 0);
    // KIP-447: a member id the group does not know is refused.
    let r: TxnOffsetCommitResponse = raw
        .call(ApiKey::TxnOffsetCommit, 3, &commit_offset(3, "stranger", 5))
        .await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ErrorCode::UNKNOWN_MEMBER_ID
    );
    let r: TxnOffsetCommitResponse = raw
        .call(ApiKey::TxnOffsetCommit, 3, &commit_offset(-1, "", 5))
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(
        offset_of(&mut raw, &group, &topic).await,
        -1,
        "pending until the commit"
    );
    assert_eq!(end(&mut raw, &tid, id, false).await, 0);
    assert_eq!(
        offset_of(&mut raw, &group, &topic).await,
        -1,
        "an abort drops them"
    );
    let r: AddOffsetsToTxnResponse = raw
        .call(ApiKey::AddOffsetsToTxn, 3, &add_offsets(&group))
        .await;
    assert_eq!(r.error_code, 0);
    let r: TxnOffsetCommitResponse = raw
        .call(ApiKey::TxnOffsetCommit, 3, &commit_offset(-1, "", 9))
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(end(&mut raw, &tid, id, true).await, 0);
    assert_eq!(offset_of(&mut raw, &group, &topic).await, 9);
}

async fn offset_of(raw: &mut Raw, group: &str, topic: &str) -> i64 {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};
    let mut t = OffsetFetchRequestTopic::default();
    t.name = tn(topic);
    t.partition_indexes = vec![0];
    let mut req = OffsetFetchRequest::default();
    req.group_id = GroupId(sb(group));
    req.topics = Some(vec![t]);
    let r: OffsetFetchResponse = raw.call(ApiKey::OffsetFetch, 7, &req).await;
    r.topics[0].partitions[0].committed_offset
}

#[tokio::test]
async fn txn_state_survives_a_restart_and_open_transactions_are_aborted() {
    let dir = std::env::temp_dir().join(unique("kp-txn-restart"));
    let topic = unique("txn-restart");
    let tid = unique("tid");
    let before = {
        let server = TestServer::builder().data_dir(&dir).start().await.unwrap();
        let mut raw = Raw::connect(&server.bootstrap_servers()).await;
        assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
        let id = pair(&init(&mut raw, &tid, 60_000).await);
        assert_eq!(
            add_partitions(&mut raw, &tid, id, &topic, &[0]).await,
            vec![0]
        );
        assert_eq!(
            txn_produce(&mut raw, &tid, &topic, 0, txn_batch("ok", 2, id, 0)).await,
            0
        );
        assert_eq!(end(&mut raw, &tid, id, true).await, 0);
        assert_eq!(
            add_partitions(&mut raw, &tid, id, &topic, &[0]).await,
            vec![0]
        );
        assert_eq!(
            txn_produce(&mut raw, &tid, &topic, 0, txn_batch("open", 2, id, 2)).await,
            0
        );
        server.shutdown().await;
        id
    };
    let server = TestServer::builder().data_dir(&dir).start().await.unwrap();
    let mut raw = Raw::connect(&server.bootstrap_servers()).await;
    let rc = fetch_iso(&mut raw, &topic, true).await;
    assert_eq!(
        rc.last_stable_offset, rc.high_watermark,
        "the open transaction was aborted"
    );
    assert_eq!(visible(&rc), vec!["ok-0", "ok-1"]);
    assert_eq!(
        end(&mut raw, &tid, before, true).await,
        ErrorCode::PRODUCER_FENCED
    );
    let after = pair(&init(&mut raw, &tid, 60_000).await);
    assert_eq!(
        after.0, before.0,
        "the transactional id keeps its producer id"
    );
    assert!(
        after.1 > before.1 + 1,
        "epochs continue past the restart's bump"
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// AddOffsetsToTxn of `group`, then TxnOffsetCommit of `offset` with `metadata` for
/// partition 0 of `topic`; returns both error codes.
async fn txn_commit_offset(
    raw: &mut Raw,
    tid: &str,
    pid: (i64, i16),
    group: &str,
    topic: &str,
    offset: i64,
    metadata: &str,
) -> (i16, i16) {
    let mut req = AddOffsetsToTxnRequest::default();
    req.transactional_id = TransactionalId(sb(tid));
    req.producer_id = ProducerId(pid.0);
    req.producer_epoch = pid.1;
    req.group_id = GroupId(sb(group));
    let added: AddOffsetsToTxnResponse = raw.call(ApiKey::AddOffsetsToTxn, 3, &req).await;
    let mut p = TxnOffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = offset;
    p.committed_leader_epoch = -1;
    p.committed_metadata = Some(sb(metadata));
    let mut t = TxnOffsetCommitRequestTopic::default();
    t.name = tn(topic);
    t.partitions.push(p);
    let mut req = TxnOffsetCommitRequest::default();
    req.transactional_id = TransactionalId(sb(tid));
    req.group_id = GroupId(sb(group));
    req.producer_id = ProducerId(pid.0);
    req.producer_epoch = pid.1;
    req.generation_id = -1;
    req.member_id = sb("");
    req.topics.push(t);
    let r: TxnOffsetCommitResponse = raw.call(ApiKey::TxnOffsetCommit, 3, &req).await;
    (added.error_code, r.topics[0].partitions[0].error_code)
}

#[tokio::test]
async fn txn_committed_offsets_survive_a_restart_and_aborted_or_open_ones_do_not() {
    let dir = temp_data_dir("kp-txn-offsets-restart");
    let topic = unique("txn-offsets-restart");
    let (tid, group) = (unique("tid"), unique("group"));
    let start = || TestServer::builder().data_dir(&dir).start();
    {
        let server = start().await.unwrap();
        let mut raw = Raw::connect(&server.bootstrap_servers()).await;
        assert_eq!(create_topic(&mut raw, &topic, 1, &[]).await, 0);
        let id = pair(&init(&mut raw, &tid, 60_000).await);
        let r = txn_commit_offset(&mut raw, &tid, id, &group, &topic, 9, "committed").await;
        assert_eq!(r, (0, 0));
        assert_eq!(end(&mut raw, &tid, id, true).await, 0);
        let r = txn_commit_offset(&mut raw, &tid, id, &group, &topic, 20, "aborted").await;
        assert_eq!(r, (0, 0));
        assert_eq!(end(&mut raw, &tid, id, false).await, 0);
        // Left open: the restart aborts it.
        let r = txn_commit_offset(&mut raw, &tid, id, &group, &topic, 30, "open").await;
        assert_eq!(r, (0, 0));
        server.shutdown().await;
    }
    let server = start().await.unwrap();
    let mut raw = Raw::connect(&server.bootstrap_servers()).await;
    let only_committed = vec![(topic.clone(), 0, 9, -1, "committed".to_string())];
    assert_eq!(committed_offsets(&mut raw, &group).await, only_committed);
    // The next instance commits on top of the reloaded offsets.
    let id = pair(&init(&mut raw, &tid, 60_000).await);
    let r = txn_commit_offset(&mut raw, &tid, id, &group, &topic, 40, "next").await;
    assert_eq!(r, (0, 0));
    assert_eq!(
        committed_offsets(&mut raw, &group).await,
        only_committed,
        "pending until the commit"
    );
    assert_eq!(end(&mut raw, &tid, id, true).await, 0);
    server.shutdown().await;
    let server = start().await.unwrap();
    let mut raw = Raw::connect(&server.bootstrap_servers()).await;
    assert_eq!(
        committed_offsets(&mut raw, &group).await,
        vec![(topic.clone(), 0, 40, -1, "next".to_string())]
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn txn_aborted_records_do_not_shadow_committed_ones_in_compaction() {
    use kafka_persistence_wire::record::Record;
    let b = broker().await;
    let Some(server) = b.server.as_ref() else {
        return; // compaction on demand is the in-process broker's
    };
    let mut raw = Raw::connect(&b.addr()).await;
    let topic = unique("txn-compact");
    assert_eq!(
        create_topic(&mut raw, &topic, 1, &[("cleanup.policy", "compact")]).await,
        0
    );
    let keyed = |v: &str| vec![Record::new(v.to_owned(), 1).with_key("k")];
    let r = produce(
        &mut raw,
        9,
        &topic,
        0,
        batch(&keyed("committed"), &EncodeOptions::default()),
    )
    .await;
    assert_eq!(r.error_code, 0);
    let tid = unique("tid");
    let id = pair(&init(&mut raw, &tid, 60_000).await);
    assert_eq!(
        add_partitions(&mut raw, &tid, id, &topic, &[0]).await,
        vec![0]
    );
    let opts = EncodeOptions {
        producer_id: id.0,
        producer_epoch: id.1,
        base_sequence: 0,
        is_transactional: true,
        ..Default::default()
    };
    assert_eq!(
        txn_produce(&mut raw, &tid, &topic, 0, batch(&keyed("aborted"), &opts)).await,
        0
    );
    assert_eq!(end(&mut raw, &tid, id, false).await, 0);
    // One more plain batch, so the aborted one is not in the active segment.
    let r = produce(
        &mut raw,
        9,
        &topic,
        0,
        batch(
            &[Record::new("other", 1).with_key("j")],
            &EncodeOptions::default(),
        ),
    )
    .await;
    assert_eq!(r.error_code, 0);
    server.compact(&topic).await.unwrap();
    let rc = fetch_iso(&mut raw, &topic, true).await;
    assert_eq!(visible(&rc), vec!["committed", "other"]);
}

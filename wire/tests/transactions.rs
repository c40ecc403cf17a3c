//! The transactional producer and `read_committed` consumers, on the in-process broker or,
//! with `KP_EXTERNAL_BOOTSTRAP`, on Apache Kafka: commit visible, abort invisible to
//! read_committed (visible to read_uncommitted), a crash mid-transaction leaves no visible
//! partial output, a zombie with the old epoch is fenced, offsets committed in a transaction
//! (with the group's generation, KIP-447) only when it commits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{broker, now_ms, test_server, unique};
use kafka_persistence_wire::{
    Client, ConsumerConfig, ConsumerGroupMetadata, Error, IsolationLevel, NewTopic, OffsetReset,
    ProducerConfig, Record, TopicPartition, TransactionalProducer,
};

async fn topic(client: &Client, partitions: i32) -> String {
    let t = unique("txn");
    client
        .create_topics(vec![NewTopic::new(&t, partitions, 1)])
        .await
        .unwrap();
    t
}

fn txn_config(tid: &str) -> ProducerConfig {
    ProducerConfig::default()
        .with_transactional_id(tid)
        .with_transaction_timeout(Duration::from_secs(30))
}

async fn txn_producer(client: &Client, tid: &str) -> TransactionalProducer {
    client
        .transactional_producer(txn_config(tid))
        .await
        .unwrap()
}

fn rec(v: &str) -> Vec<Record> {
    vec![Record::new(v.to_owned(), now_ms())]
}

/// Every value readable at `isolation` from `partitions` of `topic`: polls until nothing new
/// arrived for a while.
async fn read_all(
    client: &Client,
    topic: &str,
    partitions: i32,
    isolation: IsolationLevel,
) -> Vec<String> {
    let mut c = client
        .consumer(
            ConsumerConfig::default()
                .with_isolation(isolation)
                .with_auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap();
    c.assign(
        (0..partitions)
            .map(|p| TopicPartition::new(topic, p))
            .collect(),
    )
    .unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_millis(1500) {
        let batch = c.poll(Duration::from_millis(200)).await.unwrap();
        if !batch.is_empty() {
            quiet_since = Instant::now();
        }
        out.extend(
            batch
                .into_iter()
                .map(|r| String::from_utf8(r.record.value.unwrap().to_vec()).unwrap()),
        );
    }
    out.sort();
    out
}

#[tokio::test]
async fn txn_commit_is_visible_abort_is_not() {
    let b = broker().await;
    let client = b.client().await;
    let t = topic(&client, 2).await;
    let p = txn_producer(&client, &unique("tid")).await;
    p.begin_transaction().await.unwrap();
    p.send(&t, 0, rec("aborted-0")).await.unwrap();
    p.send(&t, 1, rec("aborted-1")).await.unwrap();
    p.abort_transaction().await.unwrap();
    p.begin_transaction().await.unwrap();
    p.send(&t, 0, rec("committed-0")).await.unwrap();
    p.send(&t, 1, rec("committed-1")).await.unwrap();
    p.commit_transaction().await.unwrap();
    assert_eq!(
        read_all(&client, &t, 2, IsolationLevel::ReadCommitted).await,
        vec!["committed-0", "committed-1"]
    );
    assert_eq!(
        read_all(&client, &t, 2, IsolationLevel::ReadUncommitted).await,
        vec!["aborted-0", "aborted-1", "committed-0", "committed-1"]
    );
    // State errors are reported, not sent.
    assert!(matches!(
        p.commit_transaction().await,
        Err(Error::Transaction(_))
    ));
    assert!(matches!(
        p.send(&t, 0, rec("outside")).await,
        Err(Error::Transaction(_))
    ));
    p.begin_transaction().await.unwrap();
    assert!(matches!(
        p.begin_transaction().await,
        Err(Error::Transaction(_))
    ));
    p.commit_transaction().await.unwrap();
}

#[tokio::test]
async fn txn_open_transaction_blocks_read_committed_until_it_ends() {
    let b = broker().await;
    let client = b.client().await;
    let t = topic(&client, 1).await;
    let other = client.producer(ProducerConfig::default());
    let p = txn_producer(&client, &unique("tid")).await;
    p.begin_transaction().await.unwrap();
    p.send(&t, 0, rec("in-txn")).await.unwrap();
    other.send(&t, 0, rec("after-open-txn")).await.unwrap();
    // The LSO stops at the open transaction: the plain record after it is not readable yet.
    assert!(read_all(&client, &t, 1, IsolationLevel::ReadCommitted)
        .await
        .is_empty());
    p.commit_transaction().await.unwrap();
    assert_eq!(
        read_all(&client, &t, 1, IsolationLevel::ReadCommitted).await,
        vec!["after-open-txn", "in-txn"]
    );
}

#[tokio::test]
async fn txn_crash_mid_transaction_leaves_no_visible_partial_output() {
    let b = broker().await;
    let client = b.client().await;
    let t = topic(&client, 3).await;
    let tid = unique("tid");
    {
        let crashed = txn_producer(&client, &tid).await;
        crashed.begin_transaction().await.unwrap();
        for p in 0..3 {
            crashed
                .send(&t, p, rec(&format!("partial-{p}")))
                .await
                .unwrap();
        }
        // Dropped without commit or abort: the process "crashed".
    }
    let next = txn_producer(&client, &tid).await;
    next.begin_transaction().await.unwrap();
    next.send(&t, 0, rec("whole")).await.unwrap();
    next.commit_transaction().await.unwrap();
    assert_eq!(
        read_all(&client, &t, 3, IsolationLevel::ReadCommitted).await,
        vec!["whole"]
    );
    assert_eq!(
        read_all(&client, &t, 3, IsolationLevel::ReadUncommitted)
            .await
            .len(),
        4
    );
}

#[tokio::test]
async fn txn_zombie_with_the_old_epoch_is_fenced() {
    let b = broker().await;
    let client = b.client().await;
    let t = topic(&client, 1).await;
    let tid = unique("tid");
    let zombie = txn_producer(&client, &tid).await;
    zombie.begin_transaction().await.unwrap();
    zombie.send(&t, 0, rec("zombie-before")).await.unwrap();
    let (_, old_epoch) = zombie.producer_id_and_epoch().await;
    let fresh = txn_producer(&client, &tid).await;
    let (_, new_epoch) = fresh.producer_id_and_epoch().await;
    assert!(new_epoch > old_epoch);
    // The zombie's next send (its partition is already in its transaction) and its commit
    // are refused as fenced, never retried.
    let e = zombie.send(&t, 0, rec("zombie-after")).await.unwrap_err();
    assert!(matches!(e, Error::ProducerFenced { .. }), "{e}");
    assert!(!e.is_retriable());
    let e = zombie.commit_transaction().await.unwrap_err();
    assert!(matches!(e, Error::ProducerFenced { .. }), "{e}");
    fresh.begin_transaction().await.unwrap();
    fresh.send(&t, 0, rec("fresh")).await.unwrap();
    fresh.commit_transaction().await.unwrap();
    assert_eq!(
        read_all(&client, &t, 1, IsolationLevel::ReadCommitted).await,
        vec!["fresh"]
    );
    // A fenced instance stays fenced.
    for e in [
        zombie.begin_transaction().await.unwrap_err(),
        zombie.abort_transaction().await.unwrap_err(),
        zombie.init_transactions().await.unwrap_err(),
    ] {
        assert!(matches!(e, Error::ProducerFenced { .. }), "{e}");
    }
}

#[tokio::test]
async fn txn_offsets_commit_with_the_transaction_and_need_the_current_generation() {
    let b = broker().await;
    let client = b.client().await;
    let input = topic(&client, 1).await;
    let output = topic(&client, 1).await;
    let group = unique("txn-group");
    let plain = client.producer(ProducerConfig::default());
    for i in 0..4 {
        plain
            .send(&input, 0, rec(&format!("in-{i}")))
            .await
            .unwrap();
    }
    let mut consumer = client
        .consumer(
            ConsumerConfig::new(&group)
                .with_isolation(IsolationLevel::ReadCommitted)
                .with_auto_offset_reset(OffsetReset::Earliest)
                .with_heartbeat_interval(Duration::from_millis(200)),
        )
        .unwrap();
    consumer.subscribe(vec![input.clone()], None).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 4 && Instant::now() < deadline {
        got.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    assert_eq!(got.len(), 4);
    let meta = ConsumerGroupMetadata::of(&consumer).unwrap();
    assert!(meta.generation_id >= 0 && !meta.member_id.is_empty());
    let tp = TopicPartition::new(&input, 0);
    let p = txn_producer(&client, &unique("tid")).await;
    // Aborted: neither the output nor the offsets.
    p.begin_transaction().await.unwrap();
    p.send(&output, 0, rec("out-aborted")).await.unwrap();
    p.send_offsets_to_transaction(&[(tp.clone(), 2)], &meta)
        .await
        .unwrap();
    p.abort_transaction().await.unwrap();
    let committed = consumer.committed(std::slice::from_ref(&tp)).await.unwrap();
    assert_eq!(committed[&tp], None);
    // A member id the group does not know is refused (KIP-447).
    let stranger = ConsumerGroupMetadata {
        member_id: "stranger".to_owned(),
        ..meta.clone()
    };
    p.begin_transaction().await.unwrap();
    let e = p
        .send_offsets_to_transaction(&[(tp.clone(), 4)], &stranger)
        .await
        .unwrap_err();
    assert!(e.code().is_some(), "{e}");
    p.abort_transaction().await.unwrap();
    // Committed: both.
    p.begin_transaction().await.unwrap();
    p.send(&output, 0, rec("out-committed")).await.unwrap();
    p.send_offsets_to_transaction(&[(tp.clone(), 4)], &meta)
        .await
        .unwrap();
    p.commit_transaction().await.unwrap();
    // Apache Kafka writes the offsets' marker after EndTxn returns: they appear shortly after.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let committed = consumer.committed(std::slice::from_ref(&tp)).await.unwrap();
        match committed[&tp].as_ref().map(|o| o.offset) {
            Some(4) => break,
            other => assert!(Instant::now() < deadline, "committed offset {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        read_all(&client, &output, 1, IsolationLevel::ReadCommitted).await,
        vec!["out-committed"]
    );
    consumer.close().await.unwrap();
}

#[tokio::test]
async fn fault_a_coordinator_unavailable_for_longer_than_the_request_timeout_is_waited_out() {
    // As on a cluster whose transaction coordinator's broker died: the coordinator answers
    // NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE for longer than one request timeout
    // (the failover takes the broker session timeout), then serves again.
    let b = common::test_server(1).await;
    let client = Client::connect(
        b.config()
            .with_request_timeout(Duration::from_millis(300))
            .with_delivery_timeout(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    let t = topic(&client, 1).await;
    let p = txn_producer(&client, &unique("tid")).await;
    let (not_coordinator, not_available) = (16, 15);
    // Retries pause at most 100 ms: 12 refusals outlast the 300 ms request timeout.
    b.server().inject_error(24, not_coordinator, 12).await;
    p.begin_transaction().await.unwrap();
    p.send(&t, 0, rec("through-a-failover")).await.unwrap();
    b.server().inject_error(26, not_available, 12).await;
    p.commit_transaction().await.unwrap();
    assert!(b.server().request_count(24).await >= 13);
    assert!(b.server().request_count(26).await >= 13);
    assert_eq!(
        read_all(&client, &t, 1, IsolationLevel::ReadCommitted).await,
        vec!["through-a-failover".to_owned()]
    );
}

/// AddPartitionsToTxn is the API key 24.
const ADD_PARTITIONS_TO_TXN: i16 = 24;

#[tokio::test]
async fn fault_partitions_new_to_a_transaction_are_added_in_one_request() {
    let b = test_server(1).await;
    let client = b.client().await;
    let t = topic(&client, 6).await;
    let p = txn_producer(&client, &unique("tid")).await;
    for round in 0..2 {
        let before = b.server().request_count(ADD_PARTITIONS_TO_TXN).await;
        p.begin_transaction().await.unwrap();
        // Entered without a pause: the single-threaded test runtime runs the task that sends
        // AddPartitionsToTxn only after all six, so they go in one request.
        p.enqueue_all((0..6).map(|i| (t.as_str(), i, rec(&format!("r{round}-p{i}")))))
            .await
            .unwrap();
        p.commit_transaction().await.unwrap();
        assert_eq!(
            b.server().request_count(ADD_PARTITIONS_TO_TXN).await - before,
            1,
            "round {round}: one AddPartitionsToTxn for the six partitions"
        );
    }
    let mut want: Vec<String> = (0..2)
        .flat_map(|r| (0..6).map(move |i| format!("r{r}-p{i}")))
        .collect();
    want.sort();
    assert_eq!(
        read_all(&client, &t, 6, IsolationLevel::ReadCommitted).await,
        want
    );
}

#[tokio::test]
async fn fault_a_partition_refused_by_add_partitions_never_receives_its_records() {
    let b = test_server(1).await;
    let client = b.client().await;
    let t = topic(&client, 1).await;
    let p = txn_producer(&client, &unique("tid")).await;
    // TOPIC_AUTHORIZATION_FAILED (29): final, not retried.
    b.server().inject_error(ADD_PARTITIONS_TO_TXN, 29, 1).await;
    p.begin_transaction().await.unwrap();
    let send = p.enqueue(&t, 0, rec("refused")).await.unwrap();
    assert!(send.await.is_err(), "the send of a refused partition fails");
    assert!(matches!(
        p.commit_transaction().await,
        Err(Error::Transaction(_))
    ));
    p.abort_transaction().await.unwrap();
    p.begin_transaction().await.unwrap();
    p.send(&t, 0, rec("committed")).await.unwrap();
    p.commit_transaction().await.unwrap();
    assert_eq!(
        read_all(&client, &t, 1, IsolationLevel::ReadCommitted).await,
        vec!["committed"]
    );
    // The refused record was held back, never written, not even as aborted data.
    assert_eq!(
        read_all(&client, &t, 1, IsolationLevel::ReadUncommitted).await,
        vec!["committed"]
    );
}

#[tokio::test]
async fn fault_the_transaction_coordinator_node_stops_mid_transaction() {
    // The coordinator of every transactional id is the lowest running node and the
    // transaction state is the cluster's: stopping node 0 moves the coordinator to node 1,
    // which takes the open transaction over. The producer must find it and end the
    // transaction whole; a read_committed reader sees each committed record once.
    let b = common::test_server(3).await;
    let client = Client::connect(
        b.config()
            .with_request_timeout(Duration::from_secs(2))
            .with_delivery_timeout(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    let t = topic(&client, 6).await;
    let mut parts = Vec::new();
    for p in 0..6 {
        if b.server().leader_of(&t, p).await.unwrap() != 0 {
            parts.push(p);
        }
    }
    assert!(parts.len() >= 2, "partitions led off node 0: {parts:?}");
    let tid = unique("tid");
    let coordinator = client
        .find_coordinator(kafka_persistence_wire::CoordinatorKind::Transaction, &tid)
        .await
        .unwrap();
    assert_eq!(coordinator, 0);
    let p = txn_producer(&client, &tid).await;
    let mut committed = Vec::new();
    p.begin_transaction().await.unwrap();
    for &q in &parts {
        let v = format!("before-{q}");
        p.send(&t, q, rec(&v)).await.unwrap();
        committed.push(v);
    }
    p.commit_transaction().await.unwrap();

    p.begin_transaction().await.unwrap();
    let first = parts[0];
    p.send(&t, first, rec("during-0")).await.unwrap();
    b.server().stop_node(coordinator).await.unwrap();
    // A partition new to the transaction (AddPartitionsToTxn to the new coordinator), and
    // one already in it.
    let mut during = vec!["during-0".to_owned()];
    for &q in &parts[1..] {
        let v = format!("during-{q}");
        tokio::time::timeout(Duration::from_secs(40), p.send(&t, q, rec(&v)))
            .await
            .expect("send hangs after the coordinator moved")
            .unwrap();
        during.push(v);
    }
    tokio::time::timeout(Duration::from_secs(40), p.commit_transaction())
        .await
        .expect("commit hangs after the coordinator moved")
        .unwrap();
    committed.extend(during);
    let moved = client
        .find_coordinator(kafka_persistence_wire::CoordinatorKind::Transaction, &tid)
        .await
        .unwrap();
    assert_eq!(moved, 1, "the next running node coordinates");

    // The producer goes on with the new coordinator: an abort stays invisible.
    p.begin_transaction().await.unwrap();
    p.send(&t, first, rec("aborted")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(40), p.abort_transaction())
        .await
        .expect("abort hangs")
        .unwrap();
    p.begin_transaction().await.unwrap();
    p.send(&t, first, rec("after")).await.unwrap();
    p.commit_transaction().await.unwrap();
    committed.push("after".to_owned());

    committed.sort();
    let mut seen = Vec::new();
    for &q in &parts {
        seen.extend(read_partition(&client, &t, q).await);
    }
    seen.sort();
    assert_eq!(
        seen, committed,
        "each committed record once, no aborted one"
    );
}

/// The read_committed values of one partition.
async fn read_partition(client: &Client, topic: &str, partition: i32) -> Vec<String> {
    let mut c = client
        .consumer(
            ConsumerConfig::default()
                .with_isolation(IsolationLevel::ReadCommitted)
                .with_auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap();
    c.assign(vec![TopicPartition::new(topic, partition)])
        .unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_millis(1000) {
        let batch = c.poll(Duration::from_millis(200)).await.unwrap();
        if !batch.is_empty() {
            quiet_since = Instant::now();
        }
        out.extend(
            batch
                .into_iter()
                .map(|r| String::from_utf8(r.record.value.unwrap().to_vec()).unwrap()),
        );
    }
    out
}

#[tokio::test]
async fn fault_the_transaction_coordinator_stops_between_the_last_send_and_the_commit() {
    // Nothing but EndTxn (and then the next transaction's AddPartitionsToTxn) meets the
    // moved coordinator: the commit itself must find node 1.
    let b = common::test_server(2).await;
    let client = Client::connect(
        b.config()
            .with_request_timeout(Duration::from_secs(2))
            .with_delivery_timeout(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    let t = topic(&client, 4).await;
    let mut parts = Vec::new();
    for p in 0..4 {
        if b.server().leader_of(&t, p).await.unwrap() == 1 {
            parts.push(p);
        }
    }
    assert!(!parts.is_empty(), "no partition led by node 1");
    let q = parts[0];
    let p = txn_producer(&client, &unique("tid")).await;
    p.begin_transaction().await.unwrap();
    p.send(&t, q, rec("kept")).await.unwrap();
    b.server().stop_node(0).await.unwrap();
    tokio::time::timeout(Duration::from_secs(40), p.commit_transaction())
        .await
        .expect("commit hangs after the coordinator moved")
        .unwrap();
    p.begin_transaction().await.unwrap();
    p.send(&t, q, rec("dropped")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(40), p.abort_transaction())
        .await
        .expect("abort hangs")
        .unwrap();
    assert_eq!(
        read_partition(&client, &t, q).await,
        vec!["kept".to_owned()]
    );
}

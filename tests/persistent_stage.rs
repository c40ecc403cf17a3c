//! The persistent stateful stage: a crash after persisting but before committing does not
//! apply an input twice, recovery starts from a snapshot, and partitions moving between two
//! instances keep their state, against `TestServer` or `KP_EXTERNAL_BOOTSTRAP`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::broker;
use common::stream::{
    all_committed, client, committed_at, partitioned_topic, produce_each, unique,
};
use kafka_persistence::entity::{Behavior, CodecError};
use kafka_persistence::snapshot_policy::SnapshotPolicy;
use kafka_persistence::stream::{
    recover_stage_state, stage_persistence_id, PersistentStage, PersistentStageControl,
    PersistentStageStats, ProducerMessage,
};
use kafka_persistence::wire::{
    Client, Consumer, ConsumerConfig, FetchRequest, OffsetReset, ProducerConfig, Record,
    TopicPartition,
};

/// The state of a partition: the values applied, in order (a value applied twice shows).
#[derive(Clone)]
struct Log {
    /// Panics (the stage's task dies) on this partition and offset: a crash after the
    /// earlier records' events were persisted, before their offsets were committed.
    crash_at: Option<(i32, i64)>,
    policy: SnapshotPolicy,
}

impl Log {
    fn new() -> Self {
        Log {
            crash_at: None,
            policy: SnapshotPolicy::on_demand(),
        }
    }
}

impl Behavior for Log {
    type State = Vec<String>;
    type Command = kafka_persistence::wire::ConsumerRecord;
    type Event = String;
    type Rejection = String;

    fn handle(
        &self,
        _state: &Vec<String>,
        r: kafka_persistence::wire::ConsumerRecord,
    ) -> Result<Vec<String>, String> {
        if self.crash_at == Some((r.partition, r.offset())) {
            panic!("crash at {}/{}", r.partition, r.offset());
        }
        let v = String::from_utf8(r.record.value.clone().unwrap_or_default().to_vec())
            .map_err(|e| e.to_string())?;
        Ok(vec![v])
    }
    fn apply(&self, state: &mut Vec<String>, event: &String) {
        state.push(event.clone());
    }
    fn encode_event(&self, event: &String) -> Result<(String, Bytes), CodecError> {
        Ok((String::new(), Bytes::from(event.clone())))
    }
    fn decode_event(&self, _manifest: &str, payload: &Bytes) -> Result<String, CodecError> {
        String::from_utf8(payload.to_vec()).map_err(|e| CodecError::new(e.to_string()))
    }
    fn encode_state(&self, state: &Vec<String>) -> Result<Bytes, CodecError> {
        Ok(Bytes::from(state.join("\n")))
    }
    fn decode_state(&self, snapshot: &Bytes) -> Result<Vec<String>, CodecError> {
        let s = String::from_utf8(snapshot.to_vec()).map_err(|e| CodecError::new(e.to_string()))?;
        Ok(if s.is_empty() {
            Vec::new()
        } else {
            s.split('\n').map(str::to_owned).collect()
        })
    }
    fn snapshot_policy(&self) -> SnapshotPolicy {
        self.policy
    }
}

/// A stage member; the session is short so that a crashed member leaves the group soon
/// (6 s is Apache Kafka's minimum).
fn member(client: &Client, group: &str) -> Consumer {
    client
        .consumer(
            ConsumerConfig::new(group)
                .with_heartbeat_interval(Duration::from_millis(200))
                .with_session_timeout(Duration::from_secs(6))
                .with_max_poll_interval(Duration::from_secs(8))
                .with_auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap()
}

/// The values produced to `partition` of `topic` by `produce_each`, in order.
fn values(tags: &[(&str, usize)], partition: i32) -> Vec<String> {
    tags.iter()
        .flat_map(|(tag, n)| (0..*n).map(move |i| format!("{tag}-{partition}-{i}")))
        .collect()
}

struct Running {
    control: PersistentStageControl,
    task: tokio::task::JoinHandle<
        Result<PersistentStageStats, kafka_persistence::stream::StageError>,
    >,
}

impl Running {
    async fn stop(self) -> PersistentStageStats {
        self.control.stop();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the stage stopped")
            .unwrap()
            .unwrap()
    }
}

fn start(stage: PersistentStage<Log>, consumer: Consumer, topic: &str) -> Running {
    let control = PersistentStageControl::default();
    let task = tokio::spawn(stage.run(consumer, vec![topic.to_owned()], control.clone()));
    Running { control, task }
}

async fn state_of(b: &common::Broker, stage_id: &str, topic: &str, p: i32) -> (Vec<String>, i64) {
    let (journal, store) = b.parts().await;
    recover_stage_state(
        journal,
        store,
        stage_id,
        &TopicPartition::new(topic, p),
        Log::new(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_persisting_before_committing_applies_each_input_once() {
    let b = broker().await;
    let client = client(&b.bootstrap).await;
    let input = partitioned_topic(&client, 2).await;
    let output = partitioned_topic(&client, 1).await;
    produce_each(&client, &input, 2, 20, "v").await;
    let group = unique("g");
    let stage_id = unique("stage");
    let (journal, store) = b.parts().await;
    let out = output.clone();
    let outputs = move |e: &String| {
        vec![ProducerMessage::single(
            out.clone(),
            0,
            Record::new(e.clone(), 0),
            (),
        )]
    };

    // Crashes at partition 0, offset 12: its records 0..12 are persisted, not committed.
    let crashing = Log {
        crash_at: Some((0, 12)),
        ..Log::new()
    };
    let stage = PersistentStage::new(
        &stage_id,
        Arc::clone(&journal),
        Arc::clone(&store),
        crashing,
    )
    .with_outputs(client.producer(ProducerConfig::default()), outputs.clone());
    let crashed = start(stage, member(&client, &group), &input);
    let died = tokio::time::timeout(Duration::from_secs(30), crashed.task)
        .await
        .expect("the stage crashed");
    assert!(died.unwrap_err().is_panic());
    let persisted: Vec<u64> = {
        let mut v = Vec::new();
        for p in 0..2 {
            let pid = stage_persistence_id(&stage_id, &TopicPartition::new(&input, p));
            v.push(journal.highest_sequence_nr(&pid).await.unwrap());
        }
        v
    };
    assert_eq!(persisted[0], 12, "the crash came after 12 persisted inputs");
    let mut uncommitted = 0;
    for p in 0..2 {
        let c = committed_at(&client, &group, &input, p).await.unwrap_or(0);
        assert!(c as u64 <= persisted[p as usize]);
        uncommitted += persisted[p as usize] - c as u64;
    }
    let c0 = committed_at(&client, &group, &input, 0).await.unwrap_or(0);
    assert!(
        c0 < 12,
        "partition 0's last inputs were persisted, not committed"
    );

    // Restarted (the crashed member's session expires meanwhile): skips what was applied.
    let stage = PersistentStage::new(
        &stage_id,
        Arc::clone(&journal),
        Arc::clone(&store),
        Log::new(),
    )
    .with_outputs(client.producer(ProducerConfig::default()), outputs);
    let running = start(stage, member(&client, &group), &input);
    all_committed(&client, &group, &input, 2, 20).await;
    let stats = running.stop().await;
    // The inputs persisted but not committed are consumed again and skipped.
    assert_eq!(stats.records_skipped, uncommitted);
    assert_eq!(stats.records_applied, 40 - persisted.iter().sum::<u64>());
    assert_eq!(
        stats.outputs_resent, uncommitted,
        "the uncommitted inputs' outputs again"
    );
    for p in 0..2 {
        let (state, next) = state_of(&b, &stage_id, &input, p).await;
        assert_eq!(state, values(&[("v", 20)], p), "partition {p}");
        assert_eq!(next, 20);
    }
    // Outputs are at least once: every input's value is there, those before the crash
    // possibly twice.
    let out = client
        .fetch(FetchRequest::new(&output, 0, 0))
        .await
        .unwrap();
    let got: Vec<String> = out
        .records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    for p in 0..2 {
        for v in values(&[("v", 20)], p) {
            assert!(got.contains(&v), "output {v} missing");
        }
    }
    assert!(got.len() as u64 >= 40 && got.len() as u64 <= 40 + uncommitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_recovers_from_the_snapshot() {
    let b = broker().await;
    let client = client(&b.bootstrap).await;
    let input = partitioned_topic(&client, 1).await;
    produce_each(&client, &input, 1, 23, "a").await;
    let group = unique("g");
    let stage_id = unique("stage");
    let (journal, store) = b.parts().await;
    // The events a snapshot covers are deleted: only the snapshot can give them back.
    let log = Log {
        policy: SnapshotPolicy::every(5)
            .keep_snapshots(1)
            .delete_events(true),
        ..Log::new()
    };
    let stage = PersistentStage::new(
        &stage_id,
        Arc::clone(&journal),
        Arc::clone(&store),
        log.clone(),
    );
    let running = start(stage, member(&client, &group), &input);
    all_committed(&client, &group, &input, 1, 23).await;
    let first = running.stop().await;
    assert!(first.snapshots >= 1, "{first:?}");

    produce_each(&client, &input, 1, 7, "b").await;
    let stage = PersistentStage::new(&stage_id, Arc::clone(&journal), Arc::clone(&store), log);
    let running = start(stage, member(&client, &group), &input);
    all_committed(&client, &group, &input, 1, 30).await;
    let second = running.stop().await;
    assert_eq!(second.recoveries, 1);
    assert_eq!(second.recoveries_from_snapshot, 1, "{second:?}");
    assert!(second.events_replayed < 23, "{second:?}");
    assert_eq!(second.records_applied, 7);
    let (state, _) = state_of(&b, &stage_id, &input, 0).await;
    assert_eq!(state, values(&[("a", 23), ("b", 7)], 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_moving_between_two_instances_keep_their_state() {
    let b = broker().await;
    let client = client(&b.bootstrap).await;
    let input = partitioned_topic(&client, 4).await;
    let group = unique("g");
    let stage_id = unique("stage");
    let (journal, store) = b.parts().await;
    let new_stage = || {
        PersistentStage::new(
            &stage_id,
            Arc::clone(&journal),
            Arc::clone(&store),
            Log::new(),
        )
    };

    let a = start(new_stage(), member(&client, &group), &input);
    produce_each(&client, &input, 4, 10, "one").await;
    all_committed(&client, &group, &input, 4, 10).await;
    // B joins: some partitions move to it, with A's state.
    let b2 = start(new_stage(), member(&client, &group), &input);
    tokio::time::sleep(Duration::from_millis(500)).await;
    produce_each(&client, &input, 4, 10, "two").await;
    all_committed(&client, &group, &input, 4, 20).await;
    // A leaves: everything moves to B.
    let sa = a.stop().await;
    produce_each(&client, &input, 4, 10, "three").await;
    all_committed(&client, &group, &input, 4, 30).await;
    let sb = b2.stop().await;
    assert_eq!(
        sa.records_applied + sb.records_applied,
        120,
        "{sa:?} {sb:?}"
    );
    assert!(sb.recoveries >= 4, "B took over every partition: {sb:?}");
    for p in 0..4 {
        let (state, next) = state_of(&b, &stage_id, &input, p).await;
        assert_eq!(state, values(&[("one", 10), ("two", 10), ("three", 10)], p));
        assert_eq!(next, 30);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_stage_id_is_refused() {
    let b = broker().await;
    let client = client(&b.bootstrap).await;
    let (journal, store) = b.parts().await;
    let stage = PersistentStage::new("", journal, store, Log::new());
    let e = stage
        .run(
            member(&client, &unique("g")),
            vec!["t".into()],
            Default::default(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("stage id is empty"), "{e}");
}

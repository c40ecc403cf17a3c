//! The operator commands, run as the real binary against the test broker: `inspect`, `ids`,
//! `tail`, each with its errors (unreachable broker, unknown id, unknown topic, a topic that
//! is not an event topic) and exit codes.

mod common;

use common::{broker, unique_pid, Broker};

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_persistence::journal::{AtomicWrite, Journal, JournalConfig, PersistentRepr, WriteError};
use kafka_persistence::snapshot::SnapshotMetadata;
use kafka_persistence::wire::{Client, ClientConfig, NewTopic, ProducerConfig, Record};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_kafka-persistence");

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `args` (60 s at most).
async fn run(args: &[&str]) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the binary");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the command finishes within 60 s")
        .expect("wait for the binary");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json(out: &Output) -> serde_json::Value {
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    serde_json::from_str(&out.stdout).expect("stdout is JSON")
}

fn unique(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{tag}-{nanos:x}-{}", std::process::id())
}

/// A journal under its own topic prefix (so `ids` sees only this test's ids), and the JSON
/// configuration file that tells the CLI the same.
async fn own_journal(broker: &Broker, config: JournalConfig) -> (Journal, tempfile_path::Path) {
    let prefix = format!("{}-", unique("cli"));
    let config = config
        .with_topic_prefix(prefix.clone())
        .with_timeout(Duration::from_secs(30));
    let journal = Journal::connect(config).await.expect("journal");
    let path = tempfile_path::Path::new(&format!(
        r#"{{"bootstrap_servers": "{}", "topic_prefix": "{prefix}"}}"#,
        broker.bootstrap
    ));
    (journal, path)
}

/// A configuration file removed when dropped.
mod tempfile_path {
    pub(crate) struct Path(pub(crate) std::path::PathBuf);

    impl Path {
        pub(crate) fn new(contents: &str) -> Self {
            let path = std::env::temp_dir().join(format!("{}.json", super::unique("kp-cli")));
            std::fs::write(&path, contents).expect("write config file");
            Path(path)
        }

        pub(crate) fn as_str(&self) -> &str {
            self.0.to_str().expect("utf-8 temp path")
        }
    }

    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn event(pid: &str, seq: u64, payload: impl Into<bytes::Bytes>) -> AtomicWrite {
    AtomicWrite::new(vec![PersistentRepr::new(pid, seq, payload)
        .with_manifest(format!("Ev@{seq}"))
        .with_writer_uuid("writer-a")
        .with_timestamp(1_764_547_200_000 + seq as i64)])
}

#[tokio::test]
async fn inspect_shows_events_gaps_the_deletion_mark_and_snapshots() {
    let broker = broker().await;
    // A small maximum message size: the 10 KB event 3 is rejected, leaving a gap.
    let (journal, config) = own_journal(
        &broker,
        JournalConfig::new(&broker.bootstrap).with_max_message_bytes(4096),
    )
    .await;
    let store = broker.store().await;
    let pid = unique_pid("inspect");
    let results = journal
        .write(vec![
            event(&pid, 1, "one"),
            event(&pid, 2, "two"),
            event(&pid, 3, vec![b'x'; 10_000]),
            event(&pid, 4, "four"),
            event(&pid, 5, "five"),
        ])
        .await
        .expect("write");
    assert!(
        matches!(results[2], Err(WriteError::Rejected { .. })),
        "{results:?}"
    );
    journal.delete_messages_to(&pid, 1).await.expect("delete");
    let saved = store
        .save(
            SnapshotMetadata::new(&pid, 4, 0).with_metadata("meta"),
            "state-at-4",
        )
        .await
        .expect("snapshot");

    let args = [
        "inspect",
        &pid,
        "--bootstrap",
        &broker.bootstrap,
        "--journal-config",
        config.as_str(),
    ];
    let doc = json(&run(&[&args[..], &["--json"]].concat()).await);
    assert_eq!(doc["persistence_id"], pid.as_str());
    assert_eq!(doc["highest_sequence_nr"], 5);
    assert_eq!(doc["deleted_to"], 1);
    assert_eq!(doc["gaps"], serde_json::json!([3]));
    let events = doc["events"].as_array().expect("events");
    let seqs: Vec<u64> = events
        .iter()
        .filter_map(|e| e["sequence_nr"].as_u64())
        .collect();
    assert_eq!(seqs, vec![2, 4, 5]);
    assert_eq!(events[0]["manifest"], "Ev@2");
    assert_eq!(events[0]["writer_uuid"], "writer-a");
    assert_eq!(events[0]["timestamp"], 1_764_547_200_002i64);
    assert_eq!(events[0]["size"], 3);
    assert_eq!(events[1]["size"], 4);
    let snapshots = doc["snapshots"].as_array().expect("snapshots");
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0]["sequence_nr"], 4);
    assert_eq!(snapshots[0]["timestamp"], saved.timestamp);
    assert_eq!(snapshots[0]["size"], 10);
    assert_eq!(snapshots[0]["metadata_size"], 4);

    let table = run(&args).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        table.stdout.contains("highest sequence nr  5"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("deleted to           1"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("gaps                 3\n"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("2025-12-01T00:00:00.004Z"),
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains("snapshots (1)"), "{}", table.stdout);
}

#[tokio::test]
async fn inspect_of_an_unknown_id_fails_with_exit_code_4() {
    let broker = broker().await;
    let pid = unique_pid("nobody");
    let out = run(&["inspect", &pid, "--bootstrap", &broker.bootstrap]).await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("unknown persistence id"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn every_command_reports_an_unreachable_broker_with_exit_code_3() {
    for command in [
        vec!["inspect", "some-id"],
        vec!["ids"],
        vec!["tail", "events"],
    ] {
        let args = [
            &command[..],
            &["--bootstrap", "127.0.0.1:1", "--timeout", "2s"],
        ]
        .concat();
        let out = run(&args).await;
        assert_eq!(out.code, 3, "{command:?}: {}", out.stderr);
        assert!(
            out.stderr
                .contains("cannot reach the Kafka cluster at 127.0.0.1:1"),
            "{command:?}: {}",
            out.stderr
        );
    }
}

#[tokio::test]
async fn ids_lists_every_persistence_id_with_counts() {
    let broker = broker().await;
    let (journal, config) = own_journal(&broker, JournalConfig::new(&broker.bootstrap)).await;
    let (a, b) = (unique_pid("ids-a"), unique_pid("ids-b"));
    let results = journal
        .write(vec![
            event(&a, 1, "x"),
            event(&a, 2, "y"),
            event(&a, 3, "z"),
            event(&b, 1, "x"),
        ])
        .await
        .expect("write");
    assert!(results.iter().all(|r| r.is_ok()));
    journal.delete_messages_to(&a, 1).await.expect("delete");
    let args = [
        "ids",
        "--bootstrap",
        &broker.bootstrap,
        "--journal-config",
        config.as_str(),
    ];
    let doc = json(&run(&[&args[..], &["--json"]].concat()).await);
    let mut expected = vec![
        serde_json::json!({"persistence_id": a, "highest_sequence_nr": 3, "deleted_to": 1, "events": 2}),
        serde_json::json!({"persistence_id": b, "highest_sequence_nr": 1, "deleted_to": 0, "events": 1}),
    ];
    expected.sort_by_key(|v| v["persistence_id"].as_str().map(str::to_string));
    assert_eq!(doc, serde_json::Value::Array(expected));
    let table = run(&args).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        table.stdout.starts_with("PERSISTENCE ID"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("2 persistence id(s)"),
        "{}",
        table.stdout
    );
    let no_count = json(&run(&[&args[..], &["--json", "--no-count"]].concat()).await);
    assert_eq!(no_count[0]["events"], serde_json::Value::Null);
}

/// The values of JSON lines.
fn lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[tokio::test]
async fn tail_decodes_an_event_topic_from_the_beginning_and_live() {
    let broker = broker().await;
    let topic = unique("tail-events");
    let mapped = topic.clone();
    let journal = Journal::connect(
        JournalConfig::new(&broker.bootstrap)
            .with_timeout(Duration::from_secs(30))
            .with_event_topic_mapper(move |_: &PersistentRepr| vec![mapped.clone()]),
    )
    .await
    .expect("journal");
    let pid = unique_pid("tailed");
    for seq in 1..=3 {
        assert_eq!(
            journal
                .write(vec![event(&pid, seq, format!("e{seq}"))])
                .await
                .expect("write"),
            vec![Ok(())]
        );
    }
    let out = run(&[
        "tail",
        &topic,
        "--from-beginning",
        "--max-events",
        "3",
        "--json",
        "--bootstrap",
        &broker.bootstrap,
    ])
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let got = lines(&out.stdout);
    let seqs: Vec<u64> = got
        .iter()
        .filter_map(|v| v["sequence_nr"].as_u64())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert!(got.iter().all(|v| v["persistence_id"] == pid.as_str()));
    assert_eq!(got[0]["manifest"], "Ev@1");
    assert_eq!(got[0]["payload"], "e1");

    // From the end: only what is written after it started.
    let mut child = Command::new(BIN)
        .args([
            "tail",
            &topic,
            "--max-events",
            "2",
            "--json",
            "--bootstrap",
            &broker.bootstrap,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn tail");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let started = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = stderr.next_line().await.expect("read stderr") {
            if line.contains("tailing") {
                return true;
            }
        }
        false
    })
    .await
    .expect("tail starts within 30 s");
    assert!(started, "tail ended before it started tailing");
    for seq in 4..=5 {
        assert_eq!(
            journal
                .write(vec![event(&pid, seq, format!("e{seq}"))])
                .await
                .expect("write"),
            vec![Ok(())]
        );
    }
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("tail ends after two events")
        .expect("wait");
    assert!(out.status.success());
    let seqs: Vec<u64> = lines(&String::from_utf8_lossy(&out.stdout))
        .iter()
        .filter_map(|v| v["sequence_nr"].as_u64())
        .collect();
    assert_eq!(seqs, vec![4, 5]);
}

#[tokio::test]
async fn tail_refuses_an_unknown_topic_and_a_topic_that_is_not_an_event_topic() {
    let broker = broker().await;
    let missing = unique("no-such-topic");
    let out = run(&["tail", &missing, "--bootstrap", &broker.bootstrap]).await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);

    let topic = unique("plain-text");
    let client = Client::connect(ClientConfig::new(broker.bootstrap.clone()))
        .await
        .expect("client");
    client
        .create_topics(vec![NewTopic::new(topic.clone(), 1, 1)])
        .await
        .expect("create topic");
    client
        .producer(ProducerConfig::default())
        .send(&topic, 0, vec![Record::new("this is not an event", 0)])
        .await
        .expect("produce");
    let out = run(&[
        "tail",
        &topic,
        "--from-beginning",
        "--bootstrap",
        &broker.bootstrap,
    ])
    .await;
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stderr.contains("is not an event topic"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn bench_json_keeps_the_p1_to_p4_keys_and_adds_the_entity_figure() {
    let out = run(&[
        "bench",
        "--p5-ids",
        "300",
        "--p5-recover",
        "20",
        "--iterations",
        "1",
        "--events",
        "50",
        "--p4-ids",
        "5",
        "--p4-events",
        "2",
        "--entities",
        "20",
        "--entity-asks",
        "3",
        "--json",
        "--quiet",
    ])
    .await;
    let doc = json(&out);
    for key in [
        "p1_events_per_s",
        "p2_p50_us",
        "p2_p99_us",
        "p2_events_per_s",
        "p3_recovery_ms",
        "p4_ok",
        "p4_ids",
        "p4_events_per_s",
        "p4_seconds",
        "p5_ids_per_s",
        "p5_recover_p50_ms",
        "p5_recover_p99_ms",
        "p5_restore_s",
        "p5_rss_mb",
    ] {
        assert!(doc.get(key).is_some(), "missing {key}: {doc}");
    }
    assert_eq!(doc["p5_ok"], true);
    assert_eq!(doc["p5_ids"], 300);
    assert_eq!(doc["layout"], "shared");
    let entities = &doc["entities"];
    assert_eq!(entities["entities"], 20);
    assert_eq!(entities["asks_per_entity"], 3);
    assert_eq!(entities["ok"], true);
    assert!(entities["ask_p99_us"].as_f64() >= entities["ask_p50_us"].as_f64());
    let skipped = json(
        &run(&[
            "bench",
            "--iterations",
            "1",
            "--events",
            "10",
            "--p4-ids",
            "2",
            "--p4-events",
            "1",
            "--entities",
            "0",
            "--p5-ids",
            "0",
            "--json",
            "--quiet",
        ])
        .await,
    );
    assert_eq!(skipped["entities"], serde_json::Value::Null);
}

/// `migrate`: a layout v1 journal with a deletion (space freed below it), a rejection gap, an
/// id deleted entirely, and snapshots is copied into layout v2; every id replays identically,
/// and a second run writes nothing.
#[tokio::test]
async fn migrate_copies_layout_v1_into_v2_identically_and_a_second_run_is_a_no_op() {
    use futures::TryStreamExt;
    use kafka_persistence::journal::Layout;
    use kafka_persistence::snapshot::{SnapshotConfig, SnapshotSelectionCriteria, SnapshotStore};
    let broker = broker().await;
    let (v1, config) = own_journal(
        &broker,
        JournalConfig::new(&broker.bootstrap)
            .with_layout(Layout::PerId)
            .with_max_message_bytes(4_096),
    )
    .await;
    let prefix = v1.config().topic_prefix.clone();
    let snap_prefix = format!("{}-", unique("snap"));
    let snap_config = tempfile_path::Path::new(&format!(
        r#"{{"bootstrap_servers": "{}", "topic_prefix": "{snap_prefix}"}}"#,
        broker.bootstrap
    ));
    let v1_store = SnapshotStore::connect(
        SnapshotConfig::new(&broker.bootstrap)
            .with_topic_prefix(snap_prefix.clone())
            .with_layout(Layout::PerId),
    )
    .await
    .expect("v1 store");
    let a = unique("a");
    let b = unique("b");
    let c = unique("c");
    for seq in 1..=5 {
        assert_eq!(
            v1.write(vec![event(&a, seq, format!("a-{seq}"))])
                .await
                .expect("migration test step"),
            vec![Ok(())]
        );
    }
    v1.delete_messages_to(&a, 2)
        .await
        .expect("migration test step");
    let r = v1
        .write(vec![
            event(&b, 1, "b-1"),
            event(&b, 2, vec![b'x'; 10_000]),
            event(&b, 3, "b-3"),
        ])
        .await
        .expect("migration test step");
    assert!(matches!(r[1], Err(WriteError::Rejected { .. })), "{r:?}");
    v1.write(vec![event(&c, 1, "c-1")])
        .await
        .expect("migration test step");
    v1.delete_messages_to(&c, u64::MAX)
        .await
        .expect("migration test step");
    for seq in [3, 5] {
        v1_store
            .save(
                SnapshotMetadata::new(a.clone(), seq, 1_000 + seq as i64),
                format!("s-{seq}"),
            )
            .await
            .expect("migration test step");
    }
    let args = [
        "migrate",
        "--from-layout",
        "per-id",
        "--bootstrap",
        broker.bootstrap.as_str(),
        "--journal-config",
        config.as_str(),
        "--snapshot-config",
        snap_config.as_str(),
        "--partitions",
        "4",
        "--json",
    ];
    let first = json(&run(&args).await);
    assert_eq!(first["ids"], 3, "{first}");
    assert_eq!(first["copied"], 3, "{first}");
    assert_eq!(first["snapshots_copied"], 2, "{first}");
    assert_eq!(first["failed"].as_array().map(Vec::len), Some(0), "{first}");
    let again = json(&run(&args).await);
    assert_eq!(again["already_complete"], 3, "{again}");
    assert_eq!(again["records_written"], 0, "{again}");

    let v2 = Journal::connect(
        JournalConfig::new(&broker.bootstrap)
            .with_topic_prefix(prefix)
            .with_partitions(4),
    )
    .await
    .expect("migration test step");
    for id in [&a, &b, &c] {
        let old: Vec<PersistentRepr> = v1
            .replay(id, 0, u64::MAX, u64::MAX)
            .try_collect()
            .await
            .expect("migration test step");
        let new: Vec<PersistentRepr> = v2
            .replay(id, 0, u64::MAX, u64::MAX)
            .try_collect()
            .await
            .expect("migration test step");
        assert_eq!(new, old, "{id}");
        assert_eq!(
            v2.highest_sequence_nr(id)
                .await
                .expect("migration test step"),
            v1.highest_sequence_nr(id)
                .await
                .expect("migration test step"),
            "{id}"
        );
        assert_eq!(
            v2.deleted_to(id).await.expect("migration test step"),
            v1.deleted_to(id).await.expect("migration test step"),
            "{id}"
        );
    }
    assert_eq!(
        v2.replay(&a, 0, u64::MAX, u64::MAX)
            .try_collect::<Vec<_>>()
            .await
            .expect("migration test step")
            .len(),
        3
    );
    // The gap at b:2 survives: v2 goes on at 4.
    assert_eq!(
        v2.write(vec![event(&b, 4, "b-4")])
            .await
            .expect("migration test step"),
        vec![Ok(())]
    );
    let v2_store = SnapshotStore::connect(
        SnapshotConfig::new(&broker.bootstrap).with_topic_prefix(snap_prefix),
    )
    .await
    .expect("migration test step");
    let latest = v2_store
        .load(&a, SnapshotSelectionCriteria::latest())
        .await
        .expect("migration test step")
        .expect("migration test step");
    assert_eq!(
        (latest.metadata.sequence_nr, latest.metadata.timestamp),
        (5, 1_005)
    );
    assert_eq!(&latest.snapshot[..], b"s-5");
    let older = v2_store
        .load(
            &a,
            SnapshotSelectionCriteria::latest().with_max_sequence_nr(4),
        )
        .await
        .expect("migration test step")
        .expect("migration test step");
    assert_eq!(&older.snapshot[..], b"s-3");
    // Migrating from v2 is refused with a usage error.
    let wrong = run(&[
        "migrate",
        "--from-layout",
        "shared",
        "--bootstrap",
        broker.bootstrap.as_str(),
    ])
    .await;
    assert_ne!(wrong.code, 0);
    assert!(wrong.stderr.contains("per-id"), "{}", wrong.stderr);
}

//! The journal in layout v2 (`Layout::Shared`, replication factor 3) on a 3-node Apache Kafka
//! cluster (KRaft) while P5-style writes run (many ids, one event each per round, many write
//! calls in flight): leaders of some journal partitions are moved (AlterPartitionReassignments
//! and a preferred-leader election), then the node leading the most journal partitions is
//! killed (SIGKILL) and started again, and at last the writing instance is dropped in the
//! middle of its writes. A fresh instance must then restore its index and replay every
//! acknowledged event exactly once with its sequence number (a write whose outcome was
//! unknown may be there or not, never twice), `highest_sequence_nr` agreeing, and go on
//! writing.
//!
//! Needs a cluster started by `.ci/kafka/kafka-cluster start 3 DIR` (`.ci/test-all` step c),
//! found through the environment described in `common/cluster.rs`.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kafka_persistence_journal::{
    AtomicWrite, Journal, JournalConfig, JournalRecordView, Layout, PersistentRepr, RecordKind,
};
use kafka_persistence_wire::{Client, ClientConfig, FetchRequest};

use common::cluster::Cluster;
use common::{fail, unique, TestResult};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Ids written, one event each per round.
const IDS: usize = 20_000;
/// Ids per write call.
const PER_CALL: usize = 250;
/// Write calls in flight at once.
const IN_FLIGHT: usize = 16;
/// Journal partitions.
const PARTITIONS: i32 = 16;
/// Journal partitions whose leader is moved.
const MOVED: i32 = 6;
/// How long any one phase may wait for progress.
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);

/// Partition -> leader of `topic` (fresh metadata).
async fn leaders(client: &Client, topic: &str) -> Result<HashMap<i32, i32>, BoxError> {
    let md = client
        .topic_metadata(topic)
        .await?
        .ok_or_else(|| fail(format!("topic {topic} not in metadata")))?;
    Ok(md
        .partitions
        .iter()
        .map(|p| (p.partition, p.leader))
        .collect())
}

/// Per id: the highest sequence number acknowledged, the highest attempted, and whether the
/// id stopped being written (a write of it failed: its outcome is unknown).
struct Book {
    acked: Vec<AtomicU64>,
    attempted: Vec<AtomicU64>,
    stopped: Vec<AtomicBool>,
    /// Events acknowledged, over all ids.
    total_acked: AtomicU64,
    /// Write calls that failed (outcome unknown) / ids whose write was refused.
    failed_calls: AtomicUsize,
    refused: AtomicUsize,
    /// Write calls in flight now.
    in_flight: AtomicUsize,
}

impl Book {
    fn new(n: usize) -> Self {
        Book {
            acked: (0..n).map(|_| AtomicU64::new(0)).collect(),
            attempted: (0..n).map(|_| AtomicU64::new(0)).collect(),
            stopped: (0..n).map(|_| AtomicBool::new(false)).collect(),
            total_acked: AtomicU64::new(0),
            failed_calls: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn total(&self) -> u64 {
        self.total_acked.load(Ordering::SeqCst)
    }
}

fn payload(id: &str, seq: u64) -> String {
    format!("{id}#{seq}")
}

/// Writes round after round (sequence number 1, 2, ... for every id still written), each
/// round as calls of [`PER_CALL`] ids, [`IN_FLIGHT`] calls at once; never ends by itself.
async fn write_rounds(
    journal: Journal,
    ids: Arc<Vec<String>>,
    book: Arc<Book>,
    rounds: Arc<AtomicU64>,
) {
    for seq in 1u64.. {
        rounds.store(seq, Ordering::SeqCst);
        let calls = (0..ids.len()).step_by(PER_CALL).map(|start| {
            let journal = journal.clone();
            let ids = Arc::clone(&ids);
            let book = Arc::clone(&book);
            async move {
                let members: Vec<usize> = (start..(start + PER_CALL).min(ids.len()))
                    .filter(|&i| !book.stopped[i].load(Ordering::SeqCst))
                    .collect();
                if members.is_empty() {
                    return;
                }
                let writes: Vec<AtomicWrite> = members
                    .iter()
                    .map(|&i| {
                        book.attempted[i].store(seq, Ordering::SeqCst);
                        AtomicWrite::new(vec![PersistentRepr::new(
                            ids[i].clone(),
                            seq,
                            payload(&ids[i], seq),
                        )])
                    })
                    .collect();
                book.in_flight.fetch_add(1, Ordering::SeqCst);
                let result = journal.write(writes).await;
                book.in_flight.fetch_sub(1, Ordering::SeqCst);
                match result {
                    Ok(results) => {
                        for (&i, r) in members.iter().zip(results) {
                            if r.is_ok() {
                                book.acked[i].store(seq, Ordering::SeqCst);
                                book.total_acked.fetch_add(1, Ordering::SeqCst);
                            } else {
                                eprintln!("{} #{seq} refused: {r:?}", ids[i]);
                                book.refused.fetch_add(1, Ordering::SeqCst);
                                book.stopped[i].store(true, Ordering::SeqCst);
                            }
                        }
                    }
                    Err(e) => {
                        // Outcome unknown for these ids: stop writing them (an entity would
                        // restart and recover).
                        if book.failed_calls.fetch_add(1, Ordering::SeqCst) < 5 {
                            eprintln!("a write call failed (outcome unknown): {e}");
                        }
                        for &i in &members {
                            book.stopped[i].store(true, Ordering::SeqCst);
                        }
                    }
                }
            }
        });
        futures::stream::iter(calls)
            .buffer_unordered(IN_FLIGHT)
            .collect::<Vec<()>>()
            .await;
    }
}

/// Waits until `book` acknowledged at least `more` events beyond `from`.
async fn progress(book: &Book, from: u64, more: u64, what: &str) -> Result<Duration, BoxError> {
    let start = Instant::now();
    while book.total() < from + more {
        if start.elapsed() > PHASE_TIMEOUT {
            return Err(fail(format!(
                "{what}: only {} of {more} more events acknowledged after {PHASE_TIMEOUT:?} \
                 ({} calls failed)",
                book.total().saturating_sub(from),
                book.failed_calls.load(Ordering::SeqCst)
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(start.elapsed())
}

/// Reads every partition of the journal topic to its end and counts the event records per
/// (id, sequence number) seen more than once: duplicates in the log itself, which replays
/// (and any consumer applying the acceptance rule) would hide.
async fn raw_duplicates(client: &Client, topic: &str) -> Result<(u64, u64), BoxError> {
    let mut seen: std::collections::HashSet<(String, u64)> = std::collections::HashSet::new();
    let (mut records, mut duplicates) = (0u64, 0u64);
    for p in 0..PARTITIONS {
        let mut offset = 0;
        let deadline = Instant::now() + PHASE_TIMEOUT;
        loop {
            let resp = client
                .fetch(FetchRequest::new(topic, p, offset).with_max_wait(Duration::from_millis(50)))
                .await?;
            for r in &resp.records {
                let (Some(key), Some(value)) = (&r.key, &r.value) else {
                    continue;
                };
                let view = JournalRecordView::decode(key, value)
                    .map_err(|e| fail(format!("{topic}/{p}@{}: {e}", r.offset)))?;
                if view.kind == RecordKind::Event {
                    records += 1;
                    if !seen.insert((view.persistence_id.clone(), view.sequence_nr)) {
                        duplicates += 1;
                        if duplicates <= 5 {
                            eprintln!(
                                "{topic}/{p}@{}: {} #{} again",
                                r.offset, view.persistence_id, view.sequence_nr
                            );
                        }
                    }
                }
            }
            offset = resp.next_offset.max(offset);
            if offset >= resp.high_watermark {
                break;
            }
            if Instant::now() > deadline {
                return Err(fail(format!(
                    "reading {topic}/{p}: stuck at {offset}, high watermark {}",
                    resp.high_watermark
                )));
            }
        }
    }
    Ok((records, duplicates))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs peers: run .ci/test-all"]
async fn apache_kafka_cluster_journal_v2_survives_moved_leaders_a_killed_node_and_a_restart(
) -> TestResult {
    let t0 = Instant::now();
    let cluster = Cluster::from_env()?;
    cluster.all_up()?;
    let admin = Client::connect(
        ClientConfig::new(&cluster.bootstrap)
            .with_client_id("interop-cluster-journal")
            .with_request_timeout(Duration::from_secs(10))
            .with_delivery_timeout(Duration::from_secs(60)),
    )
    .await?;
    let cfg = JournalConfig::new(&cluster.bootstrap)
        .with_layout(Layout::Shared)
        .with_topic_prefix(unique("cj"))
        .with_partitions(PARTITIONS)
        .with_replication_factor(3)
        // Calls wait out a killed leader (fenced after broker.session.timeout.ms) rather than
        // fail.
        .with_timeout(Duration::from_secs(60));
    let topic = cfg.shared_journal_topic();
    let journal = Journal::connect(cfg.clone()).await?;
    let run = unique("id");
    let ids: Arc<Vec<String>> = Arc::new((0..IDS).map(|i| format!("{run}-{i}")).collect());
    let book = Arc::new(Book::new(IDS));
    let rounds = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(write_rounds(
        journal.clone(),
        Arc::clone(&ids),
        Arc::clone(&book),
        Arc::clone(&rounds),
    ));
    drop(journal);
    let setup = t0.elapsed();
    let t_write = Instant::now();
    progress(&book, 0, IDS as u64 / 4, "before the faults").await?;

    // (a) Move the leaders of some journal partitions: make another node the first replica,
    // then elect the preferred leaders.
    let before = leaders(&admin, &topic).await?;
    let nodes: Vec<i32> = {
        let mut n: Vec<i32> = cluster.nodes.keys().copied().collect();
        n.sort_unstable();
        n
    };
    let mut targets = Vec::new();
    for p in 0..MOVED {
        let leader = *before
            .get(&p)
            .ok_or_else(|| fail(format!("{topic} has no partition {p}")))?;
        let target = nodes
            .iter()
            .copied()
            .find(|&n| n != leader && (n + p) % 2 == 0)
            .or_else(|| nodes.iter().copied().find(|&n| n != leader))
            .ok_or_else(|| fail("no other node"))?;
        let mut replicas = vec![target];
        replicas.extend(nodes.iter().copied().filter(|&n| n != target));
        targets.push((p, replicas));
    }
    let t_move = Instant::now();
    let acked_at_move = book.total();
    admin
        .alter_partition_reassignments(&topic, &targets)
        .await?;
    let moved: Vec<i32> = targets.iter().map(|(p, _)| *p).collect();
    admin.elect_preferred_leaders(&topic, &moved).await?;
    loop {
        let now = leaders(&admin, &topic).await?;
        if targets.iter().all(|(p, r)| now.get(p) == Some(&r[0])) {
            break;
        }
        if t_move.elapsed() > PHASE_TIMEOUT {
            return Err(fail(format!(
                "leaders did not move: before {before:?}, wanted {targets:?}, now {now:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let move_took = t_move.elapsed();
    progress(&book, acked_at_move, 2_000, "after the leader move").await?;

    // (b) Kill the node leading the most journal partitions, wait for writes to go on
    // without it, start it again.
    let now = leaders(&admin, &topic).await?;
    let mut led: HashMap<i32, usize> = HashMap::new();
    for l in now.values() {
        *led.entry(*l).or_default() += 1;
    }
    let (victim, victim_led) = led
        .iter()
        .max_by_key(|(n, c)| (**c, -**n))
        .map(|(n, c)| (*n, *c))
        .ok_or_else(|| fail("no leaders"))?;
    let acked_at_kill = book.total();
    cluster.kill(victim)?;
    let t_kill = Instant::now();
    let resumed = progress(&book, acked_at_kill, 2_000, "after the kill").await?;
    let t_restart = Instant::now();
    cluster.restart(victim)?;
    let restart_took = t_restart.elapsed();
    let down = t_kill.elapsed();
    progress(&book, book.total(), 1_000, "after the restart").await?;

    // (c) Drop the writing instance in the middle of its writes.
    let in_flight_at_drop = book.in_flight.load(Ordering::SeqCst);
    writer.abort();
    let _ = writer.await;
    let write_s = t_write.elapsed();
    let acked_total = book.total();
    let failed_calls = book.failed_calls.load(Ordering::SeqCst);
    let refused = book.refused.load(Ordering::SeqCst);

    // A fresh instance restores the index and replays every id.
    let t_restore = Instant::now();
    let fresh = Journal::connect(cfg.clone()).await?;
    let restore = t_restore.elapsed();
    let t_verify = Instant::now();
    let checks = (0..IDS).map(|i| {
        let fresh = fresh.clone();
        let ids = Arc::clone(&ids);
        let book = Arc::clone(&book);
        async move {
            let id = &ids[i];
            let highest = fresh.highest_sequence_nr(id).await?;
            let events: Vec<PersistentRepr> = fresh
                .replay(id, 1, u64::MAX, u64::MAX)
                .try_collect()
                .await?;
            let seqs: Vec<u64> = events.iter().map(|e| e.sequence_nr).collect();
            let n = seqs.len() as u64;
            if seqs != (1..=n).collect::<Vec<_>>() {
                return Err(fail(format!(
                    "{id}: replays {seqs:?}: not each sequence number once"
                )));
            }
            for e in &events {
                if e.payload.as_ref() != payload(id, e.sequence_nr).as_bytes() {
                    return Err(fail(format!(
                        "{id}: #{} has payload {:?}",
                        e.sequence_nr, e.payload
                    )));
                }
            }
            let (acked, attempted) = (
                book.acked[i].load(Ordering::SeqCst),
                book.attempted[i].load(Ordering::SeqCst),
            );
            if n < acked || n > attempted {
                return Err(fail(format!(
                    "{id}: replays 1..={n}, acknowledged 1..={acked}, attempted up to {attempted}"
                )));
            }
            if highest != n {
                return Err(fail(format!(
                    "{id}: highest_sequence_nr {highest}, replays 1..={n}"
                )));
            }
            Ok::<(usize, u64), BoxError>((i, n))
        }
    });
    let mut replayed = vec![0u64; IDS];
    let mut results = futures::stream::iter(checks).buffer_unordered(32);
    while let Some(r) = results.next().await {
        let (i, n) = r?;
        replayed[i] = n;
    }
    drop(results);
    let verify = t_verify.elapsed();
    let replayed_total: u64 = replayed.iter().sum();
    // Nor does the log itself hold an event twice (the idempotent producer across the leader
    // changes).
    let (raw_events, raw_dups) = raw_duplicates(&admin, &topic).await?;
    if raw_dups > 0 {
        return Err(fail(format!(
            "{raw_dups} of {raw_events} event records in {topic} are duplicates"
        )));
    }
    if raw_events < replayed_total {
        return Err(fail(format!(
            "{topic} holds {raw_events} event records, replays show {replayed_total}"
        )));
    }
    // And the fresh instance goes on writing where each id stands.
    let sample: Vec<AtomicWrite> = (0..IDS)
        .step_by(IDS / 200)
        .map(|i| {
            let next = replayed[i] + 1;
            AtomicWrite::new(vec![PersistentRepr::new(
                ids[i].clone(),
                next,
                payload(&ids[i], next),
            )])
        })
        .collect();
    let results = fresh.write(sample).await?;
    if let Some(r) = results.iter().find(|r| r.is_err()) {
        return Err(fail(format!(
            "a write after the recovery was refused: {r:?}"
        )));
    }
    eprintln!(
        "journal v2 on 3 nodes, {PARTITIONS} partitions, rf 3: setup {setup:?}; {IDS} ids \
         written for {write_s:?} ({} rounds begun, {acked_total} events acknowledged, \
         {:.0} events/s), {failed_calls} calls failed, {refused} refused; leaders of {MOVED} \
         partitions moved in {move_took:?}; node {victim} (leader of {victim_led}) killed, \
         writes resumed {resumed:?} later, restarted in {restart_took:?}, {down:?} after the kill; \
         instance dropped with {in_flight_at_drop} calls in flight; fresh instance restored \
         in {restore:?}, replayed {replayed_total} events of {IDS} ids in {verify:?}, the log \
         holds {raw_events} event records; total \
         {:?}",
        rounds.load(Ordering::SeqCst),
        acked_total as f64 / write_s.as_secs_f64(),
        t0.elapsed()
    );
    if refused > 0 {
        return Err(fail(format!(
            "{refused} writes refused with a single writer per id"
        )));
    }
    if replayed_total < acked_total {
        return Err(fail(format!(
            "replayed {replayed_total} < acknowledged {acked_total}"
        )));
    }
    Ok(())
}

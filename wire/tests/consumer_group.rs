//! Consumer groups against the in-process broker's coordinator: rebalances with commits on
//! revoke, committed offsets across restarts, static membership, `max.poll.interval.ms`,
//! and the consumer's positions (seek, pause/resume, auto.offset.reset).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{broker, now_ms, unique};
use futures::future::BoxFuture;
use kafka_persistence_wire::{
    Assignor, Client, Consumer, ConsumerConfig, Error, GroupProtocol, NewTopic, OffsetAndMetadata,
    OffsetReset, ProducerConfig, RebalanceContext, RebalanceListener, Record, TopicPartition,
};

fn group_config(group: &str) -> ConsumerConfig {
    ConsumerConfig::new(group)
        .with_heartbeat_interval(Duration::from_millis(100))
        .with_session_timeout(Duration::from_secs(10))
        .with_max_poll_interval(Duration::from_secs(10))
        .with_auto_offset_reset(OffsetReset::Earliest)
}

async fn produce(client: &Client, topic: &str, partitions: i32, per_partition: usize, tag: &str) {
    let p = client.producer(ProducerConfig::default());
    let mut futs = Vec::new();
    for i in 0..per_partition {
        for part in 0..partitions {
            futs.push(p.enqueue(
                topic,
                part,
                vec![Record::new(format!("{tag}-{part}-{i}"), now_ms())],
            ));
        }
    }
    for f in futs {
        f.await.expect("produced");
    }
}

async fn topic(client: &Client, partitions: i32) -> String {
    let t = unique("group");
    client
        .create_topics(vec![NewTopic::new(&t, partitions, 1)])
        .await
        .unwrap();
    t
}

/// Commits the positions of revoked partitions; records what happened.
#[derive(Clone, Default)]
struct CommitOnRevoke {
    events: Arc<Mutex<Vec<String>>>,
    commits_ok: Arc<Mutex<usize>>,
}

impl RebalanceListener for CommitOnRevoke {
    fn on_partitions_revoked<'a>(
        &'a mut self,
        ctx: &'a mut RebalanceContext<'_>,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let r = ctx.commit_positions(partitions).await;
            if r.is_ok() {
                *self.commits_ok.lock().unwrap() += 1;
            }
            self.events.lock().unwrap().push(format!(
                "revoked {} commit {:?}",
                partitions.len(),
                r.err()
            ));
        })
    }

    fn on_partitions_assigned<'a>(
        &'a mut self,
        _ctx: &'a mut RebalanceContext<'_>,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.events
                .lock()
                .unwrap()
                .push(format!("assigned {}", partitions.len()));
        })
    }

    fn on_partitions_lost<'a>(
        &'a mut self,
        _ctx: &'a mut RebalanceContext<'_>,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.events
                .lock()
                .unwrap()
                .push(format!("lost {}", partitions.len()));
        })
    }
}

type Seen = Arc<Mutex<Vec<(i32, i64)>>>;

/// Polls until `total` records were seen by all members together, then closes.
async fn member_loop(
    mut c: Consumer,
    seen: Seen,
    total: usize,
    (stop, leave): (Arc<AtomicBool>, Arc<AtomicBool>),
    mine: Arc<Mutex<usize>>,
    assigned: Arc<Mutex<usize>>,
) {
    loop {
        if stop.load(Ordering::Acquire) || leave.load(Ordering::Acquire) {
            break;
        }
        let recs = c.poll(Duration::from_millis(200)).await.expect("poll");
        let n = recs.len();
        {
            let mut s = seen.lock().unwrap();
            s.extend(recs.iter().map(|r| (r.partition, r.offset())));
            if s.len() >= total {
                stop.store(true, Ordering::Release);
            }
        }
        *mine.lock().unwrap() += n;
        *assigned.lock().unwrap() = c.assignment().len();
    }
    c.close().await.ok();
}

/// Three members over six partitions (joining one by one; with `leave_midway`, the third
/// leaves before the second batch): every record exactly once, commits on revoke.
async fn every_record_exactly_once_across_a_rebalance(
    configure: impl Fn(ConsumerConfig) -> ConsumerConfig + Send + Sync,
    leave_midway: bool,
) {
    let b = broker().await;
    let admin = b.client().await;
    let t = topic(&admin, 6).await;
    let group = unique("g");
    produce(&admin, &t, 6, 50, "first").await;
    let total = 2 * 6 * 50;
    let seen: Seen = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let listener_a = CommitOnRevoke::default();
    let mut a = b
        .client()
        .await
        .consumer(configure(group_config(&group)))
        .unwrap();
    a.subscribe(vec![t.clone()], Some(Box::new(listener_a.clone())))
        .unwrap();
    // A alone: everything is A's; consume some of it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().len() < 100 {
        assert!(Instant::now() < deadline, "A consumed nothing");
        let recs = a.poll(Duration::from_millis(200)).await.unwrap();
        seen.lock()
            .unwrap()
            .extend(recs.iter().map(|r| (r.partition, r.offset())));
    }
    assert_eq!(a.assignment().len(), 6);
    let counts: Vec<Arc<Mutex<usize>>> = (0..3).map(|_| Arc::default()).collect();
    let assigned: Vec<Arc<Mutex<usize>>> = (0..3).map(|_| Arc::default()).collect();
    let stops: Vec<Arc<AtomicBool>> = (0..3).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let mut tasks = vec![tokio::spawn(member_loop(
        a,
        Arc::clone(&seen),
        total,
        (Arc::clone(&stop), Arc::clone(&stops[0])),
        Arc::clone(&counts[0]),
        Arc::clone(&assigned[0]),
    ))];
    let mut listeners = vec![listener_a];
    for i in 1..3 {
        let l = CommitOnRevoke::default();
        let mut c = b
            .client()
            .await
            .consumer(configure(group_config(&group)))
            .unwrap();
        c.subscribe(vec![t.clone()], Some(Box::new(l.clone())))
            .unwrap();
        listeners.push(l);
        tasks.push(tokio::spawn(member_loop(
            c,
            Arc::clone(&seen),
            total,
            (Arc::clone(&stop), Arc::clone(&stops[i])),
            Arc::clone(&counts[i]),
            Arc::clone(&assigned[i]),
        )));
    }
    // Once the three share the partitions, more records.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sizes: Vec<usize> = assigned.iter().map(|a| *a.lock().unwrap()).collect();
        if sizes.iter().all(|n| *n >= 1) && sizes.iter().sum::<usize>() == 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no rebalance to three members: {sizes:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if leave_midway {
        // The third member leaves (revoking and committing everything it holds); the other
        // two take its partitions over.
        stops[2].store(true, Ordering::Release);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let sizes: Vec<usize> = assigned.iter().map(|a| *a.lock().unwrap()).collect();
            if sizes[0] + sizes[1] == 6 && sizes[0] >= 1 && sizes[1] >= 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no rebalance after the leave: {sizes:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            *listeners[2].commits_ok.lock().unwrap() >= 1,
            "the leaving member did not commit on revoke: {:?}",
            listeners[2].events.lock().unwrap()
        );
    }
    produce(&admin, &t, 6, 50, "second").await;
    let all = async {
        for t in tasks {
            t.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("members finished");
    let seen = seen.lock().unwrap().clone();
    let unique_seen: HashSet<(i32, i64)> = seen.iter().copied().collect();
    assert_eq!(
        unique_seen.len(),
        seen.len(),
        "a record was delivered twice"
    );
    let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (p, o) in &seen {
        per_partition.entry(*p).or_default().push(*o);
    }
    for (p, mut offsets) in per_partition.clone() {
        offsets.sort();
        assert_eq!(offsets, (0..100).collect::<Vec<i64>>(), "partition {p}");
    }
    assert_eq!(per_partition.len(), 6);
    // The joiners really got partitions, and A committed on revoke.
    let joiners = *counts[1].lock().unwrap() + *counts[2].lock().unwrap();
    assert!(joiners > 0, "the new members consumed nothing");
    assert!(
        *listeners[0].commits_ok.lock().unwrap() >= 1,
        "A never committed on revoke: {:?}",
        listeners[0].events.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_consumers_range_every_record_exactly_once_with_commit_on_revoke() {
    every_record_exactly_once_across_a_rebalance(
        |c| c.with_assignors(vec![Assignor::Range]),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_consumers_cooperative_sticky_every_record_exactly_once() {
    every_record_exactly_once_across_a_rebalance(
        |c| c.with_assignors(vec![Assignor::CooperativeSticky]),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_consumers_round_robin_every_record_exactly_once() {
    every_record_exactly_once_across_a_rebalance(
        |c| c.with_assignors(vec![Assignor::RoundRobin]),
        false,
    )
    .await;
}

fn consumer_protocol(c: ConsumerConfig, assignor: &str) -> ConsumerConfig {
    c.with_group_protocol(GroupProtocol::Consumer)
        .with_remote_assignor(assignor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_consumers_consumer_protocol_uniform_join_and_leave_every_record_exactly_once() {
    every_record_exactly_once_across_a_rebalance(|c| consumer_protocol(c, "uniform"), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_consumers_consumer_protocol_range_join_and_leave_every_record_exactly_once() {
    every_record_exactly_once_across_a_rebalance(|c| consumer_protocol(c, "range"), true).await;
}

async fn poll_until(c: &mut Consumer, n: usize) -> Vec<kafka_persistence_wire::ConsumerRecord> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} records",
            out.len()
        );
        out.extend(c.poll(Duration::from_millis(200)).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_and_metadata_resume_after_restart() {
    let b = broker().await;
    let admin = b.client().await;
    let t = topic(&admin, 1).await;
    let group = unique("g");
    produce(&admin, &t, 1, 10, "a").await;
    let tp = TopicPartition::new(t.clone(), 0);
    let mut c = b.client().await.consumer(group_config(&group)).unwrap();
    c.subscribe(vec![t.clone()], None).unwrap();
    let got = poll_until(&mut c, 10).await;
    assert_eq!(got.len(), 10);
    assert_eq!(c.position(&tp).await.unwrap(), 10);
    c.commit(&[(
        tp.clone(),
        OffsetAndMetadata::with_metadata(10, "after ten"),
    )])
    .await
    .unwrap();
    c.close().await.unwrap();
    produce(&admin, &t, 1, 5, "b").await;
    let mut c = b.client().await.consumer(group_config(&group)).unwrap();
    c.subscribe(vec![t.clone()], None).unwrap();
    let got = poll_until(&mut c, 5).await;
    assert_eq!(got.first().map(|r| r.offset()), Some(10));
    assert_eq!(got.len(), 5);
    let committed = c.committed(std::slice::from_ref(&tp)).await.unwrap();
    assert_eq!(
        committed.get(&tp).cloned().flatten(),
        Some(OffsetAndMetadata::with_metadata(10, "after ten"))
    );
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_seek_with_assigned_partitions() {
    let b = broker().await;
    let client = b.client().await;
    let t = topic(&client, 2).await;
    produce(&client, &t, 2, 10, "x").await;
    let p0 = TopicPartition::new(t.clone(), 0);
    let p1 = TopicPartition::new(t.clone(), 1);
    let mut c = client
        .consumer(ConsumerConfig::default().with_auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    c.assign(vec![p0.clone(), p1.clone()]).unwrap();
    c.pause(std::slice::from_ref(&p1)).unwrap();
    assert_eq!(c.paused(), vec![p1.clone()]);
    let got = poll_until(&mut c, 10).await;
    assert!(
        got.iter().all(|r| r.partition == 0),
        "a paused partition was fetched"
    );
    assert!(c.poll(Duration::from_millis(300)).await.unwrap().is_empty());
    c.resume(std::slice::from_ref(&p1)).unwrap();
    let got = poll_until(&mut c, 10).await;
    assert!(got.iter().all(|r| r.partition == 1));
    assert_eq!(got.first().map(|r| r.offset()), Some(0));
    // seek
    c.seek(&p0, 7).unwrap();
    assert_eq!(c.position(&p0).await.unwrap(), 7);
    c.pause(std::slice::from_ref(&p1)).unwrap();
    let got = poll_until(&mut c, 3).await;
    assert_eq!(
        got.iter().map(|r| r.offset()).collect::<Vec<_>>(),
        vec![7, 8, 9]
    );
    c.seek_to_beginning(std::slice::from_ref(&p0))
        .await
        .unwrap();
    assert_eq!(c.position(&p0).await.unwrap(), 0);
    c.seek_to_end(std::slice::from_ref(&p0)).await.unwrap();
    assert_eq!(c.position(&p0).await.unwrap(), 10);
    let unassigned = TopicPartition::new(t.clone(), 5);
    assert!(matches!(c.seek(&unassigned, 0), Err(Error::Config(_))));
}

/// Fetch's API key, and NOT_LEADER_OR_FOLLOWER.
const FETCH: i16 = 1;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

/// Six partitions on one broker are fetched with one Fetch request per round (one per
/// leader, as the Java client does), not one per partition; when the shared request fails,
/// each partition is fetched again alone and nothing is lost or read twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_of_one_leader_share_a_fetch_request() {
    let b = common::test_server(1).await;
    let client = b.client().await;
    let t = topic(&client, 6).await;
    produce(&client, &t, 6, 10, "f").await;
    let all: Vec<TopicPartition> = (0..6).map(|p| TopicPartition::new(t.clone(), p)).collect();
    let mut c = client
        .consumer(ConsumerConfig::default().with_auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    c.assign(all.clone()).unwrap();
    let before = b.server().request_count(FETCH).await;
    let mut first: Vec<String> = poll_until(&mut c, 60)
        .await
        .iter()
        .map(|r| {
            String::from_utf8_lossy(r.record.value.as_deref().unwrap_or_default()).into_owned()
        })
        .collect();
    let fetches = b.server().request_count(FETCH).await - before;
    assert!(
        fetches <= 2,
        "{fetches} Fetch requests to read 6 partitions that all have records"
    );
    first.sort();
    let mut want: Vec<String> = (0..6)
        .flat_map(|p| (0..10).map(move |i| format!("f-{p}-{i}")))
        .collect();
    want.sort();
    assert_eq!(first, want);
    c.seek_to_beginning(&all).await.unwrap();
    b.server()
        .inject_error(FETCH, NOT_LEADER_OR_FOLLOWER, 1)
        .await;
    let mut again: Vec<String> = poll_until(&mut c, 60)
        .await
        .iter()
        .map(|r| {
            String::from_utf8_lossy(r.record.value.as_deref().unwrap_or_default()).into_owned()
        })
        .collect();
    again.sort();
    assert_eq!(
        again, want,
        "every record once after the shared fetch failed"
    );
    assert!(c.poll(Duration::from_millis(300)).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_offset_reset_earliest_latest_none() {
    let b = broker().await;
    let client = b.client().await;
    let t = topic(&client, 1).await;
    produce(&client, &t, 1, 5, "old").await;
    let tp = TopicPartition::new(t.clone(), 0);
    let mut none = client
        .consumer(group_config(&unique("g")).with_auto_offset_reset(OffsetReset::None))
        .unwrap();
    none.assign(vec![tp.clone()]).unwrap();
    assert!(matches!(
        none.poll(Duration::from_millis(100)).await,
        Err(Error::NoOffset { .. })
    ));
    let mut latest = client
        .consumer(group_config(&unique("g")).with_auto_offset_reset(OffsetReset::Latest))
        .unwrap();
    latest.assign(vec![tp.clone()]).unwrap();
    assert_eq!(latest.position(&tp).await.unwrap(), 5);
    let mut earliest = client
        .consumer(group_config(&unique("g")).with_auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    earliest.assign(vec![tp.clone()]).unwrap();
    assert_eq!(earliest.position(&tp).await.unwrap(), 0);
    produce(&client, &t, 1, 1, "new").await;
    let got = poll_until(&mut latest, 1).await;
    assert_eq!(got[0].offset(), 5);
    assert_eq!(poll_until(&mut earliest, 6).await.len(), 6);
}

/// A consumer polling on its own task (a rebalance needs every member to poll), with its
/// assignment and generation visible to the test.
struct Poller {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<Consumer>,
    assigned: Arc<Mutex<Vec<TopicPartition>>>,
    generation: Arc<Mutex<Option<i32>>>,
    /// Every record polled: (topic, partition, offset).
    records: Arc<Mutex<Vec<(String, i32, i64)>>>,
}

fn spawn_poller(mut c: Consumer) -> Poller {
    let stop = Arc::new(AtomicBool::new(false));
    let assigned: Arc<Mutex<Vec<TopicPartition>>> = Arc::default();
    let generation: Arc<Mutex<Option<i32>>> = Arc::default();
    let records: Arc<Mutex<Vec<(String, i32, i64)>>> = Arc::default();
    let (s, a, g, r) = (
        Arc::clone(&stop),
        Arc::clone(&assigned),
        Arc::clone(&generation),
        Arc::clone(&records),
    );
    let handle = tokio::spawn(async move {
        while !s.load(Ordering::Acquire) {
            let polled = c.poll(Duration::from_millis(100)).await.expect("poll");
            r.lock().unwrap().extend(
                polled
                    .iter()
                    .map(|x| (x.topic.to_string(), x.partition, x.offset())),
            );
            *a.lock().unwrap() = c.assignment();
            *g.lock().unwrap() = c.group_generation().map(|x| x.0);
        }
        c
    });
    Poller {
        stop,
        handle,
        assigned,
        generation,
        records,
    }
}

impl Poller {
    fn assigned(&self) -> Vec<TopicPartition> {
        self.assigned.lock().unwrap().clone()
    }

    fn records(&self) -> Vec<(String, i32, i64)> {
        self.records.lock().unwrap().clone()
    }

    fn generation(&self) -> Option<i32> {
        *self.generation.lock().unwrap()
    }

    async fn stop(self) -> Consumer {
        self.stop.store(true, Ordering::Release);
        self.handle.await.unwrap()
    }
}

async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_polling_leaves_and_its_partitions_move() {
    stops_polling(|c| c.with_assignors(vec![Assignor::Range])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_protocol_a_member_that_stops_polling_leaves_and_its_partitions_move() {
    stops_polling(|c| consumer_protocol(c, "range")).await;
}

async fn stops_polling(configure: impl Fn(ConsumerConfig) -> ConsumerConfig + Send + Sync) {
    let b = broker().await;
    let admin = b.client().await;
    let t = topic(&admin, 2).await;
    let group = unique("g");
    let cfg = configure(group_config(&group).with_max_poll_interval(Duration::from_millis(1500)));
    let lb = CommitOnRevoke::default();
    let mut a = b.client().await.consumer(cfg.clone()).unwrap();
    let mut bb = b.client().await.consumer(cfg).unwrap();
    a.subscribe(vec![t.clone()], None).unwrap();
    bb.subscribe(vec![t.clone()], Some(Box::new(lb.clone())))
        .unwrap();
    let pa = spawn_poller(a);
    let pb = spawn_poller(bb);
    wait_until("one partition each", || {
        pa.assigned().len() == 1 && pb.assigned().len() == 1
    })
    .await;
    // B stops polling; after max.poll.interval it leaves, and A gets both partitions.
    let bb = pb.stop().await;
    wait_until("A holds both", || pa.assigned().len() == 2).await;
    // B's next poll notices it lost its membership and rejoins.
    let pb = spawn_poller(bb);
    wait_until("one partition each again", || {
        pa.assigned().len() == 1 && pb.assigned().len() == 1
    })
    .await;
    pb.stop().await;
    pa.stop().await;
    let events = lb.events.lock().unwrap().clone();
    assert!(events.iter().any(|e| e == "lost 1"), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_restarting_keeps_its_partitions_without_a_rebalance() {
    static_restart(|c| c.with_assignors(vec![Assignor::Range])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_protocol_a_static_member_restarting_keeps_its_partitions_without_a_rebalance() {
    static_restart(|c| consumer_protocol(c, "range")).await;
}

async fn static_restart(configure: impl Fn(ConsumerConfig) -> ConsumerConfig + Send + Sync) {
    let b = broker().await;
    let admin = b.client().await;
    let t = topic(&admin, 2).await;
    let group = unique("g");
    let cfg = |inst: &str| configure(group_config(&group).with_instance_id(inst));
    let la = CommitOnRevoke::default();
    let mut a = b.client().await.consumer(cfg("a")).unwrap();
    let mut s = b.client().await.consumer(cfg("s")).unwrap();
    a.subscribe(vec![t.clone()], Some(Box::new(la.clone())))
        .unwrap();
    s.subscribe(vec![t.clone()], None).unwrap();
    let pa = spawn_poller(a);
    let ps = spawn_poller(s);
    // Settled: both in the same generation (member epochs reach the group's once stable).
    wait_until("one partition each", || {
        pa.assigned().len() == 1
            && ps.assigned().len() == 1
            && pa.generation().is_some()
            && pa.generation() == ps.generation()
    })
    .await;
    let before = ps.assigned();
    let generation = pa.generation();
    let revocations = la
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.starts_with("revoked"))
        .count();
    // A static member's close does not leave the group; the restarted member takes its slot.
    ps.stop().await.close().await.unwrap();
    let mut s = b.client().await.consumer(cfg("s")).unwrap();
    s.subscribe(vec![t.clone()], None).unwrap();
    let ps = spawn_poller(s);
    wait_until("the restarted member's assignment", || {
        !ps.assigned().is_empty()
    })
    .await;
    assert_eq!(ps.assigned(), before);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A kept its partition all along: no revocation, same generation.
    assert_eq!(pa.generation(), generation);
    let events = la.events.lock().unwrap().clone();
    assert_eq!(
        events.iter().filter(|e| e.starts_with("revoked")).count(),
        revocations,
        "{events:?}"
    );
    ps.stop().await;
    pa.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_revokes_and_leaves_then_assign_is_allowed() {
    let b = broker().await;
    let admin = b.client().await;
    let t = topic(&admin, 2).await;
    produce(&admin, &t, 2, 3, "u").await;
    let group = unique("g");
    let l = CommitOnRevoke::default();
    let mut c = b.client().await.consumer(group_config(&group)).unwrap();
    c.subscribe(vec![t.clone()], Some(Box::new(l.clone())))
        .unwrap();
    poll_until(&mut c, 6).await;
    assert_eq!(c.assignment().len(), 2);
    let tp0 = TopicPartition::new(t.clone(), 0);
    assert!(matches!(c.assign(vec![tp0.clone()]), Err(Error::Config(_))));
    c.unsubscribe().await.unwrap();
    assert!(c.assignment().is_empty());
    assert_eq!(
        l.events.lock().unwrap().last().map(String::as_str),
        Some("revoked 2 commit None"),
        "the listener committed on revoke"
    );
    // The group is empty now: manual assignment with simple commits works.
    c.assign(vec![tp0.clone()]).unwrap();
    assert_eq!(
        c.position(&tp0).await.unwrap(),
        3,
        "resumes at the committed offset"
    );
    c.commit(&[(tp0.clone(), OffsetAndMetadata::new(1))])
        .await
        .unwrap();
    let committed = c.committed(std::slice::from_ref(&tp0)).await.unwrap();
    assert_eq!(committed[&tp0], Some(OffsetAndMetadata::new(1)));
}

/// Bug: a rejoin that failed with a non-retriable error left the consumer without an
/// assignment and without a heartbeat task, and no later poll tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_failed_rejoin_is_retried_by_the_next_poll() {
    let b = common::test_server(1).await;
    let admin = b.client().await;
    let t = topic(&admin, 2).await;
    let group = unique("g");
    let mut c = b.client().await.consumer(group_config(&group)).unwrap();
    c.subscribe(vec![t.clone()], None).unwrap();
    c.poll(Duration::from_millis(100)).await.unwrap();
    assert_eq!(c.assignment().len(), 2);
    // GROUP_AUTHORIZATION_FAILED (not retriable) for the next JoinGroup.
    b.server().inject_error(11, 30, 1).await;
    c.subscribe(vec![t.clone()], None).unwrap();
    assert!(matches!(
        c.poll(Duration::from_millis(100)).await,
        Err(Error::Authorization { code: 30, .. })
    ));
    c.poll(Duration::from_millis(100)).await.unwrap();
    assert_eq!(c.assignment().len(), 2, "the next poll rejoined");
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_coordinator_errors_rediscover_the_coordinator_and_retry() {
    let b = common::test_server(1).await;
    let admin = b.client().await;
    let t = topic(&admin, 1).await;
    let group = unique("g");
    let mut c = b.client().await.consumer(group_config(&group)).unwrap();
    c.subscribe(vec![t.clone()], None).unwrap();
    // NOT_COORDINATOR for JoinGroup, then twice for OffsetCommit: each is retried after
    // asking FindCoordinator again.
    b.server().inject_error(11, 16, 1).await;
    c.poll(Duration::from_millis(100)).await.unwrap();
    assert_eq!(c.assignment().len(), 1);
    let finds = b.server().request_count(10).await;
    b.server().inject_error(8, 16, 2).await;
    let tp = TopicPartition::new(t.clone(), 0);
    c.commit(&[(tp.clone(), OffsetAndMetadata::new(0))])
        .await
        .unwrap();
    assert!(
        b.server().request_count(10).await > finds,
        "FindCoordinator was asked again"
    );
    let committed = c.committed(std::slice::from_ref(&tp)).await.unwrap();
    assert_eq!(committed[&tp], Some(OffsetAndMetadata::new(0)));
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_dies_is_expired_after_its_session_timeout() {
    dies(|c| {
        c.with_session_timeout(Duration::from_millis(1000))
            .with_assignors(vec![Assignor::RoundRobin])
    })
    .await;
}

/// The consumer protocol's session timeout is the broker's
/// (`group.consumer.session.timeout.ms`: 6 s in the CI cluster and the tests' testserver).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_protocol_a_member_that_stops_heartbeating_is_fenced_and_its_partitions_move() {
    dies(|c| consumer_protocol(c, "uniform")).await;
}

async fn dies(configure: impl Fn(ConsumerConfig) -> ConsumerConfig + Send + Sync) {
    let b = broker().await;
    let admin = b.client().await;
    let t = topic(&admin, 2).await;
    let group = unique("g");
    let cfg = configure(group_config(&group));
    let mut a = b.client().await.consumer(cfg.clone()).unwrap();
    let mut d = b.client().await.consumer(cfg).unwrap();
    a.subscribe(vec![t.clone()], None).unwrap();
    d.subscribe(vec![t.clone()], None).unwrap();
    let pa = spawn_poller(a);
    let pd = spawn_poller(d);
    wait_until("one partition each", || {
        pa.assigned().len() == 1 && pd.assigned().len() == 1
    })
    .await;
    // Dropped without close: no LeaveGroup, no more heartbeats (a crashed process).
    let started = Instant::now();
    drop(pd.stop().await);
    wait_until("A holds both", || pa.assigned().len() == 2).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "moved before the session timeout: {:?}",
        started.elapsed()
    );
    pa.stop().await.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_lost_coordinator_connection_resumes_heartbeats_without_a_rebalance() {
    let b = common::test_server(1).await;
    let admin = b.client().await;
    let t = topic(&admin, 2).await;
    let group = unique("g");
    let l = CommitOnRevoke::default();
    let mut c = b.client().await.consumer(group_config(&group)).unwrap();
    c.subscribe(vec![t.clone()], Some(Box::new(l.clone())))
        .unwrap();
    c.poll(Duration::from_millis(100)).await.unwrap();
    assert_eq!(c.assignment().len(), 2);
    let generation = c.group_generation().unwrap();
    b.server().drop_connections().await;
    let heartbeats = b.server().request_count(12).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.server().request_count(12).await < heartbeats + 3 {
        assert!(Instant::now() < deadline, "heartbeats never resumed");
        c.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(c.group_generation().unwrap(), generation, "no rebalance");
    assert_eq!(c.assignment().len(), 2);
    let events = l.events.lock().unwrap().clone();
    assert_eq!(events, vec!["assigned 2".to_owned()], "{events:?}");
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_poll_records_bounds_a_poll_and_positions_follow_what_was_returned() {
    let b = broker().await;
    let client = b.client().await;
    let t = topic(&client, 1).await;
    produce(&client, &t, 1, 30, "m").await;
    let tp = TopicPartition::new(t.clone(), 0);
    let group = unique("g");
    let mut c = client
        .consumer(group_config(&group).with_max_poll_records(7))
        .unwrap();
    c.assign(vec![tp.clone()]).unwrap();
    let first = c.poll(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        first.iter().map(|r| r.offset()).collect::<Vec<_>>(),
        (0..7).collect::<Vec<i64>>()
    );
    assert_eq!(
        c.position(&tp).await.unwrap(),
        7,
        "the position is what was returned"
    );
    c.commit_positions().await.unwrap();
    assert_eq!(
        c.committed(std::slice::from_ref(&tp)).await.unwrap()[&tp],
        Some(OffsetAndMetadata::new(7))
    );
    let second = c.poll(Duration::from_secs(5)).await.unwrap();
    assert_eq!(second.first().map(|r| r.offset()), Some(7));
    assert_eq!(second.len(), 7);
    // A seek drops what was buffered.
    c.seek(&tp, 25).unwrap();
    let rest = poll_until(&mut c, 5).await;
    assert_eq!(
        rest.iter().map(|r| r.offset()).collect::<Vec<_>>(),
        (25..30).collect::<Vec<i64>>()
    );
    assert!(matches!(
        client.consumer(ConsumerConfig::new("g").with_max_poll_records(0)),
        Err(Error::Config(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_consumer_protocol_a_fenced_member_is_told_lost_and_rejoins_with_epoch_zero() {
    let b = common::test_server(1).await;
    let admin = b.client().await;
    let t = topic(&admin, 2).await;
    let group = unique("g");
    let l = CommitOnRevoke::default();
    let mut a = b
        .client()
        .await
        .consumer(consumer_protocol(group_config(&group), "uniform"))
        .unwrap();
    a.subscribe(vec![t.clone()], Some(Box::new(l.clone())))
        .unwrap();
    let pa = spawn_poller(a);
    wait_until("both partitions", || pa.assigned().len() == 2).await;
    let before = pa.generation().unwrap();
    b.server()
        .inject_error(
            68,
            kafka_persistence_wire::ErrorCode::FENCED_MEMBER_EPOCH,
            1,
        )
        .await;
    wait_until("lost", || {
        l.events.lock().unwrap().iter().any(|e| e == "lost 2")
    })
    .await;
    // Rejoined (epoch 0, a new member epoch) and assigned again.
    wait_until("assigned again", || {
        pa.assigned().len() == 2 && pa.generation().is_some_and(|g| g > before)
    })
    .await;
    let events = l.events.lock().unwrap().clone();
    assert_eq!(
        events,
        vec!["assigned 2", "lost 2", "assigned 2"],
        "{events:?}"
    );
    pa.stop().await.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_consumer_protocol_on_a_broker_without_it_is_a_clear_error() {
    let server = kafka_persistence_testserver::TestServer::builder()
        .hide_api(68)
        .start()
        .await
        .unwrap();
    let b = common::Broker {
        bootstrap: server.bootstrap_servers(),
        server: Some(server),
    };
    let admin = b.client().await;
    let t = topic(&admin, 1).await;
    let mut c = b
        .client()
        .await
        .consumer(consumer_protocol(group_config(&unique("g")), "uniform"))
        .unwrap();
    c.subscribe(vec![t], None).unwrap();
    let e = c.poll(Duration::from_millis(100)).await.unwrap_err();
    assert_eq!(
        e.code(),
        Some(kafka_persistence_wire::ErrorCode::UNSUPPORTED_VERSION),
        "{e}"
    );
    assert!(e.to_string().contains("group.protocol"), "{e}");
}

/// Found against a fresh Apache Kafka: the first FindCoordinator of a new cluster is
/// COORDINATOR_NOT_AVAILABLE while the offsets topic is created; joining retries it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_consumer_protocol_an_unavailable_coordinator_at_join_is_retried() {
    let b = common::test_server(1).await;
    let admin = b.client().await;
    let t = topic(&admin, 2).await;
    b.server()
        .inject_error(
            10,
            kafka_persistence_wire::ErrorCode::COORDINATOR_NOT_AVAILABLE,
            3,
        )
        .await;
    let mut c = b
        .client()
        .await
        .consumer(consumer_protocol(group_config(&unique("g")), "uniform"))
        .unwrap();
    c.subscribe(vec![t], None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.assignment().len() < 2 {
        assert!(Instant::now() < deadline, "never assigned");
        c.poll(Duration::from_millis(100)).await.expect("poll");
    }
    assert!(b.server().request_count(10).await >= 4);
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_protocol_a_regex_subscription_consumes_the_matching_topics() {
    let b = broker().await;
    let admin = b.client().await;
    let prefix = unique("rx");
    let (ta, tb, other) = (
        format!("{prefix}-a"),
        format!("{prefix}-b"),
        format!("other-{prefix}"),
    );
    admin
        .create_topics(vec![
            NewTopic::new(&ta, 1, 1),
            NewTopic::new(&tb, 2, 1),
            NewTopic::new(&other, 1, 1),
        ])
        .await
        .unwrap();
    produce(&admin, &ta, 1, 5, "a").await;
    produce(&admin, &tb, 2, 5, "b").await;
    produce(&admin, &other, 1, 5, "o").await;
    let mut c = b
        .client()
        .await
        .consumer(consumer_protocol(group_config(&unique("g")), "uniform"))
        .unwrap();
    // The regex syntax both brokers share (RE2J on Kafka, Rust `regex` on the testserver).
    c.subscribe_pattern(format!("{}-[ab]", prefix.replace('-', "\\-")), None)
        .unwrap();
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.values().sum::<usize>() < 15 {
        assert!(Instant::now() < deadline, "got only {got:?}");
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            *got.entry(r.topic.to_string()).or_default() += 1;
        }
    }
    assert_eq!(got, BTreeMap::from([(ta, 5), (tb, 10)]));
    let mut assigned = c.assignment();
    assigned.sort();
    assert_eq!(assigned.len(), 3);
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_regex_subscription_follows_existing_and_new_topics_shared_by_two_members() {
    let b = broker().await;
    let admin = b.client().await;
    let prefix = unique("crx");
    let (ta, tb, other) = (
        format!("{prefix}-a"),
        format!("{prefix}-b"),
        format!("other-{prefix}-a"),
    );
    admin
        .create_topics(vec![NewTopic::new(&ta, 2, 1), NewTopic::new(&other, 2, 1)])
        .await
        .unwrap();
    produce(&admin, &ta, 2, 3, "a").await;
    produce(&admin, &other, 2, 3, "o").await;
    let group = unique("g");
    let cfg = group_config(&group)
        .with_assignors(vec![Assignor::Range])
        .with_metadata_max_age(Duration::from_millis(300));
    let mut invalid = b.client().await.consumer(cfg.clone()).unwrap();
    assert!(matches!(
        invalid.subscribe_pattern(format!("{prefix}-(a"), None),
        Err(Error::Config(m)) if m.contains("regex")
    ));
    let pattern = format!("{prefix}-.*");
    let (la, lb) = (CommitOnRevoke::default(), CommitOnRevoke::default());
    let mut a = b.client().await.consumer(cfg.clone()).unwrap();
    a.subscribe_pattern(&pattern, Some(Box::new(la.clone())))
        .unwrap();
    let mut bb = b.client().await.consumer(cfg).unwrap();
    bb.subscribe_pattern(&pattern, Some(Box::new(lb.clone())))
        .unwrap();
    let (pa, pb) = (spawn_poller(a), spawn_poller(bb));
    let shares = |want: usize| {
        let (x, y) = (pa.assigned(), pb.assigned());
        let all: HashSet<TopicPartition> = x.iter().chain(&y).cloned().collect();
        x.len() == want && y.len() == want && all.len() == 2 * want
    };
    wait_until("the two partitions of the matching topic, one each", || {
        shares(1)
    })
    .await;
    // A new matching topic: found at the next metadata look, the group rebalances over it.
    admin
        .create_topics(vec![NewTopic::new(&tb, 2, 1)])
        .await
        .unwrap();
    produce(&admin, &tb, 2, 3, "b").await;
    wait_until("four partitions of two topics, two each", || shares(2)).await;
    let mut assigned: Vec<TopicPartition> = pa.assigned();
    assigned.extend(pb.assigned());
    assigned.sort();
    let expected: Vec<TopicPartition> = [&ta, &tb]
        .iter()
        .flat_map(|t| (0..2).map(|p| TopicPartition::new(t.to_string(), p)))
        .collect();
    assert_eq!(assigned, expected, "only the matching topics");
    wait_until("every matching record", || {
        pa.records().len() + pb.records().len() >= 12
    })
    .await;
    // Let a few more polls (and metadata looks) pass: nothing else arrives.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut seen = pa.records();
    seen.extend(pb.records());
    assert!(
        seen.iter().all(|(t, _, _)| *t == ta || *t == tb),
        "a non-matching topic was consumed: {seen:?}"
    );
    let distinct: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(distinct.len(), 12, "{seen:?}");
    assert_eq!(
        seen.len(),
        12,
        "commits on revoke: no record twice: {seen:?}"
    );
    pa.stop().await.close().await.unwrap();
    pb.stop().await.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_group_resumes_from_its_committed_offset_after_a_testserver_restart() {
    let dir = std::env::temp_dir().join(unique("group-restart"));
    let start = || async {
        let server = kafka_persistence_testserver::TestServer::builder()
            .data_dir(&dir)
            .start()
            .await
            .unwrap();
        common::Broker {
            bootstrap: server.bootstrap_servers(),
            server: Some(server),
        }
    };
    let group = unique("g");
    let b = start().await;
    let admin = b.client().await;
    let t = topic(&admin, 1).await;
    let tp = TopicPartition::new(t.clone(), 0);
    produce(&admin, &t, 1, 10, "a").await;
    let mut c = b.client().await.consumer(group_config(&group)).unwrap();
    c.subscribe(vec![t.clone()], None).unwrap();
    assert_eq!(poll_until(&mut c, 10).await.len(), 10);
    c.commit(&[(tp.clone(), OffsetAndMetadata::with_metadata(7, "seven"))])
        .await
        .unwrap();
    c.close().await.unwrap();
    b.server().shutdown().await;
    drop((admin, b));
    // A new process on the same data directory (new ports): the topic and the commit are back.
    let b = start().await;
    let mut c = b.client().await.consumer(group_config(&group)).unwrap();
    c.subscribe(vec![t.clone()], None).unwrap();
    // auto.offset.reset=earliest: without the commit this would start at 0.
    let got = poll_until(&mut c, 3).await;
    assert_eq!(
        got.iter().map(|r| r.offset()).collect::<Vec<_>>(),
        vec![7, 8, 9]
    );
    let committed = c.committed(std::slice::from_ref(&tp)).await.unwrap();
    assert_eq!(
        committed.get(&tp).cloned().flatten(),
        Some(OffsetAndMetadata::with_metadata(7, "seven"))
    );
    c.close().await.unwrap();
    b.server().shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_unstable_committed_offsets_are_waited_for() {
    // UNSTABLE_OFFSET_COMMIT: a transaction holding offsets of the partition has not ended.
    let b = common::test_server(1).await;
    let admin = b.client().await;
    let t = topic(&admin, 1).await;
    let tp = TopicPartition::new(t.clone(), 0);
    let group = unique("g");
    let mut c = b.client().await.consumer(group_config(&group)).unwrap();
    c.commit(&[(tp.clone(), OffsetAndMetadata::new(4))])
        .await
        .unwrap();
    let before = b.server().request_count(9).await;
    b.server().inject_error(9, 88, 3).await;
    let committed = c.committed(std::slice::from_ref(&tp)).await.unwrap();
    assert_eq!(
        committed.get(&tp).cloned().flatten(),
        Some(OffsetAndMetadata::new(4))
    );
    assert_eq!(
        b.server().request_count(9).await - before,
        4,
        "three refusals, one answer"
    );
}

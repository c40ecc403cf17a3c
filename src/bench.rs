//! `kafka-persistence bench`: the journal benchmarks P1-P5 of SPEC.md, in the shape of Akka's
//! `JournalPerfSpec`, against the embedded testserver (default) or a broker (`--bootstrap`),
//! and the entity figure (`entities_through_handles`: asks through `EntityRef`s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kafka_persistence::entities::{Entities, EntitiesConfig};
use kafka_persistence::entity::{Behavior, CodecError};
use kafka_persistence::journal::{AtomicWrite, Journal, JournalConfig, Layout, PersistentRepr};
use kafka_persistence::snapshot::{SnapshotConfig, SnapshotStore};

use crate::bench_scale::{p5_scale, ScaleArgs, ScaleReport};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// A Kafka broker to run against ("host:port[,host:port]"); default: an embedded testserver.
    #[arg(long)]
    bootstrap: Option<String>,
    /// Print one JSON object with the results on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
    /// Iterations of P1, P2 and P3.
    #[arg(long, default_value_t = 10)]
    iterations: usize,
    /// Events per iteration of P1, P2 and P3.
    #[arg(long, default_value_t = 10_000)]
    events: u64,
    /// Persistence ids of P4 (each writes `--p4-events` events).
    #[arg(long, default_value_t = 10_000)]
    p4_ids: usize,
    /// Events per id in P4.
    #[arg(long, default_value_t = 10)]
    p4_events: u64,
    /// Ids of P4 writing at once (each awaits its own writes one after another); 0: all of
    /// them.
    #[arg(long, default_value_t = 1000)]
    p4_in_flight: usize,
    /// Atomic writes per `write` call in P1 (the batch a journal receives).
    #[arg(long, default_value_t = 100)]
    p1_batch: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Ids of P5 (one event each; 0 skips P5).
    #[arg(long, default_value_t = 1_000_000)]
    p5_ids: u64,
    /// Ids per `write` call in P5.
    #[arg(long, default_value_t = 100)]
    p5_batch: usize,
    /// `write` calls in flight in P5.
    #[arg(long, default_value_t = 64)]
    p5_in_flight: usize,
    /// Random ids P5 recovers on a fresh journal instance.
    #[arg(long, default_value_t = 1_000)]
    p5_recover: usize,
    /// The journal's topic layout: `shared` (v2, default) or `per-id` (v1).
    #[arg(long, default_value_t = Layout::Shared)]
    layout: Layout,
    /// Partitions of layout v2's journal topic (new topics only; existing ones are checked).
    #[arg(long, default_value_t = 16)]
    partitions: i32,
    /// Replication factor of the topics the benchmark creates.
    #[arg(long, default_value_t = 1)]
    replication_factor: i16,
    /// Entities of the entity figure, each asked `--entity-asks` times through its handle
    /// (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    entities: usize,
    /// Asks per entity in the entity figure, awaited one after another.
    #[arg(long, default_value_t = 10)]
    entity_asks: u64,
    /// Hide the progress bars.
    #[arg(long)]
    quiet: bool,
    /// The async runtime the benchmark (and the embedded testserver) runs on.
    #[arg(long, value_enum, default_value_t = RuntimeKind::CurrentThread)]
    pub(crate) runtime: RuntimeKind,
}

/// Which tokio runtime `bench` uses.
///
/// `current-thread` (default): the journal, its client and the embedded testserver share one
/// thread, as in a service that runs each entity's work on one thread; a write's round trip
/// never hands work to another thread. `multi-thread`: one worker per core; more throughput
/// for many ids at once (P4), but each hand-off between threads pays the wake-up of an idle
/// core, which on small virtual machines costs 100 µs or more and then dominates P2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RuntimeKind {
    /// One thread.
    CurrentThread,
    /// One worker thread per core.
    MultiThread,
}

impl RuntimeKind {
    /// Builds the runtime.
    pub(crate) fn build(self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = match self {
            RuntimeKind::CurrentThread => tokio::runtime::Builder::new_current_thread(),
            RuntimeKind::MultiThread => tokio::runtime::Builder::new_multi_thread(),
        };
        builder.enable_all().build()
    }
}

/// What P1-P4 measured.
#[derive(Debug, serde::Serialize)]
struct Report {
    broker: String,
    runtime: RuntimeKind,
    layout: String,
    p1_events_per_s: f64,
    p1_iteration_events_per_s: Vec<f64>,
    p2_p50_us: f64,
    p2_p99_us: f64,
    p2_events_per_s: f64,
    p3_recovery_ms: f64,
    p3_recovery_ms_all: Vec<f64>,
    p4_ok: bool,
    p4_ids: usize,
    p4_events_per_s: f64,
    p4_seconds: f64,
    #[serde(flatten)]
    p5: Option<ScaleReport>,
    /// The entity figure (`None` with `--entities 0`).
    entities: Option<EntityFigure>,
}

/// What `entities_through_handles` measured.
#[derive(Debug, serde::Serialize)]
struct EntityFigure {
    entities: usize,
    asks_per_entity: u64,
    /// Seconds until every entity answered its first ask (start: recovery, and on a fresh
    /// journal its first write); not part of the figures below.
    start_seconds: f64,
    asks_per_s: f64,
    ask_p50_us: f64,
    ask_p99_us: f64,
    /// Resident memory growth of the whole process (journal, client, embedded broker
    /// included) from before the first ask to all entities in memory.
    rss_growth_mib: Option<f64>,
    ok: bool,
}

pub(crate) async fn run(args: BenchArgs) -> Result<(), BoxError> {
    if args.iterations == 0 || args.events == 0 {
        return Err("--iterations and --events must be at least 1".into());
    }
    if args.p1_batch == 0 {
        return Err("--p1-batch must be at least 1".into());
    }
    #[cfg(feature = "testserver")]
    let mut _server = None;
    let (bootstrap, broker) = match &args.bootstrap {
        Some(b) => (b.clone(), b.clone()),
        None => {
            #[cfg(feature = "testserver")]
            {
                let server = kafka_persistence::testserver::TestServer::start().await?;
                let b = server.bootstrap_servers();
                _server = Some(server);
                (b, "embedded testserver".to_string())
            }
            #[cfg(not(feature = "testserver"))]
            return Err("built without the testserver feature: pass --bootstrap".into());
        }
    };
    let config = JournalConfig::new(&bootstrap)
        .with_timeout(Duration::from_secs(60))
        .with_layout(args.layout)
        .with_partitions(args.partitions)
        .with_replication_factor(args.replication_factor);
    let journal = Arc::new(Journal::connect(config.clone()).await?);
    let progress = Progress::new(args.quiet);
    let run_id = run_id();
    let payload = Bytes::from(vec![b'x'; args.payload]);

    let p1 = p1_pipelined(&journal, &progress, &args, &run_id, &payload).await?;
    let p2 = p2_one_at_a_time(&journal, &progress, &args, &run_id, &payload).await?;
    let p3 = p3_recovery(&journal, &progress, &args, &run_id, &payload).await?;
    let p4 = p4_many_ids(&journal, &progress, &args, &run_id, &payload).await?;
    let p5 = if args.p5_ids > 0 {
        let scale = ScaleArgs {
            ids: args.p5_ids,
            batch: args.p5_batch,
            in_flight: args.p5_in_flight,
            recover: args.p5_recover,
        };
        let bar = |name: &str, len: u64| progress.bar(name, len);
        Some(p5_scale(&config, &journal, bar, &scale, &run_id, &payload).await?)
    } else {
        None
    };
    let entities = if args.entities == 0 || args.entity_asks == 0 {
        None
    } else {
        Some(
            entities_through_handles(&bootstrap, Arc::clone(&journal), &progress, &args, &run_id)
                .await?,
        )
    };

    let report = Report {
        broker,
        runtime: args.runtime,
        layout: args.layout.to_string(),
        p1_events_per_s: median(&p1),
        p1_iteration_events_per_s: p1,
        p2_p50_us: p2.p50_us,
        p2_p99_us: p2.p99_us,
        p2_events_per_s: p2.events_per_s,
        p3_recovery_ms: median(&p3),
        p3_recovery_ms_all: p3,
        p4_ok: p4.ok,
        p4_ids: args.p4_ids,
        p4_events_per_s: p4.events_per_s,
        p4_seconds: p4.seconds,
        p5,
        entities,
    };
    progress.clear();
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report, &args);
    }
    if report.entities.as_ref().is_some_and(|e| !e.ok) {
        return Err("entities: some entities did not end at their expected state".into());
    }
    if !report.p4_ok {
        return Err("P4: some persistence ids did not replay intact".into());
    }
    if report.p5.as_ref().is_some_and(|p5| !p5.p5_ok) {
        return Err("P5: some recovered ids did not replay their event".into());
    }
    Ok(())
}

/// Writes event `seq` of `pid` on its own and awaits it; a refusal is an error.
async fn write_one(
    journal: &Journal,
    pid: &str,
    seq: u64,
    payload: &Bytes,
) -> Result<(), BoxError> {
    let event = PersistentRepr::new(pid, seq, payload.clone());
    match journal
        .write(vec![AtomicWrite::new(vec![event])])
        .await?
        .pop()
    {
        Some(Err(e)) => Err(format!("write {seq} of {pid} was refused: {e}").into()),
        _ => Ok(()),
    }
}

/// P1: one id, `iterations` x `events` events written without awaiting each (pipelined).
async fn p1_pipelined(
    journal: &Arc<Journal>,
    progress: &Progress,
    args: &BenchArgs,
    run_id: &str,
    payload: &Bytes,
) -> Result<Vec<f64>, BoxError> {
    let pid = format!("bench-p1-{run_id}");
    // One awaited write first: it creates the topic, so P1 measures pipelined appends to an
    // existing id (as JournalPerfSpec does), not the topic's creation.
    write_one(journal, &pid, 1, payload).await?;
    let bar = progress.bar("P1 pipelined writes", args.iterations as u64 * args.events);
    let mut rates = Vec::with_capacity(args.iterations);
    let mut next = 2u64;
    for _ in 0..args.iterations {
        let start = Instant::now();
        let mut batches = Vec::new();
        let end = next + args.events;
        while next < end {
            let n = (end - next).min(args.p1_batch as u64);
            let writes = (next..next + n)
                .map(|seq| {
                    AtomicWrite::new(vec![PersistentRepr::new(pid.clone(), seq, payload.clone())])
                })
                .collect::<Vec<_>>();
            batches.push(writes);
            next += n;
        }
        // Every call is issued before the previous one is acknowledged (up to 64 in flight);
        // `buffered` polls them in issue order, so the journal sees them in sequence order.
        let mut results = futures::stream::iter(batches.into_iter().map(|w| {
            let journal = Arc::clone(journal);
            async move { journal.write(w).await }
        }))
        .buffered(64);
        while let Some(result) = results.next().await {
            let inner = result?;
            for r in &inner {
                if let Err(e) = r {
                    return Err(format!("P1: a write was refused: {e}").into());
                }
            }
            bar.inc(inner.len() as u64);
        }
        rates.push(args.events as f64 / start.elapsed().as_secs_f64());
    }
    bar.finish();
    Ok(rates)
}

struct Latency {
    p50_us: f64,
    p99_us: f64,
    events_per_s: f64,
}

/// P2: `iterations` x `events` events, each write awaited before the next.
async fn p2_one_at_a_time(
    journal: &Arc<Journal>,
    progress: &Progress,
    args: &BenchArgs,
    run_id: &str,
    payload: &Bytes,
) -> Result<Latency, BoxError> {
    let pid = format!("bench-p2-{run_id}");
    let total = args.iterations as u64 * args.events;
    let bar = progress.bar("P2 one-at-a-time writes", total);
    // The first write creates the topic: keep it out of the latency figures.
    write_one(journal, &pid, 1, payload).await?;
    let mut samples = Vec::with_capacity(total as usize);
    let start = Instant::now();
    for seq in 2..total + 2 {
        let t = Instant::now();
        write_one(journal, &pid, seq, payload)
            .await
            .map_err(|e| format!("P2: {e}"))?;
        samples.push(t.elapsed());
        if seq % 256 == 0 {
            bar.set_position(seq - 1);
        }
    }
    let elapsed = start.elapsed();
    bar.finish();
    samples.sort_unstable();
    Ok(Latency {
        p50_us: percentile(&samples, 0.50),
        p99_us: percentile(&samples, 0.99),
        events_per_s: total as f64 / elapsed.as_secs_f64(),
    })
}

/// P3: replay `events` events of one id, `iterations` times; milliseconds per replay.
async fn p3_recovery(
    journal: &Arc<Journal>,
    progress: &Progress,
    args: &BenchArgs,
    run_id: &str,
    payload: &Bytes,
) -> Result<Vec<f64>, BoxError> {
    let pid = format!("bench-p3-{run_id}");
    let setup = progress.bar("P3 setup", args.events);
    let mut seq = 1u64;
    while seq <= args.events {
        let n = (args.events + 1 - seq).min(1000);
        let writes = (seq..seq + n)
            .map(|s| AtomicWrite::new(vec![PersistentRepr::new(pid.clone(), s, payload.clone())]))
            .collect();
        for r in journal.write(writes).await? {
            r?;
        }
        seq += n;
        setup.set_position(seq - 1);
    }
    setup.finish();
    let bar = progress.bar("P3 recovery", args.iterations as u64);
    let mut times = Vec::with_capacity(args.iterations);
    for _ in 0..args.iterations {
        let start = Instant::now();
        let events: Vec<PersistentRepr> = journal
            .replay(&pid, 1, u64::MAX, u64::MAX)
            .try_collect()
            .await?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let intact = events.len() as u64 == args.events
            && events.iter().zip(1u64..).all(|(e, s)| e.sequence_nr == s);
        if !intact {
            return Err(format!(
                "P3: replay returned {} events, expected 1..={}",
                events.len(),
                args.events
            )
            .into());
        }
        times.push(ms);
        bar.inc(1);
    }
    bar.finish();
    Ok(times)
}

struct ManyIds {
    ok: bool,
    events_per_s: f64,
    seconds: f64,
}

/// P4: `p4_ids` ids x `p4_events` events, all ids concurrently, then every id replayed.
///
/// Each id writes from a task of its own, as an entity does. Thousands of writes polled by
/// ONE task (one `buffer_unordered` or `join_all`) cost several times the CPU per write: the
/// task exhausts tokio's cooperative budget and its pending futures are polled again and
/// again (measured at 5,000 ids in flight: 21 s of CPU against 8 s for the same writes).
async fn p4_many_ids(
    journal: &Arc<Journal>,
    progress: &Progress,
    args: &BenchArgs,
    run_id: &str,
    payload: &Bytes,
) -> Result<ManyIds, BoxError> {
    let total = args.p4_ids as u64 * args.p4_events;
    let bar = progress.bar("P4 many ids", total);
    let start = Instant::now();
    let writers = (0..args.p4_ids).map(|i| {
        let journal = Arc::clone(journal);
        let pid = format!("bench-p4-{run_id}-{i}");
        let payload = payload.clone();
        let bar = bar.clone();
        let events = args.p4_events;
        let task = tokio::spawn(async move {
            for seq in 1..=events {
                write_one(&journal, &pid, seq, &payload)
                    .await
                    .map_err(|e| format!("P4: {e}"))?;
                bar.inc(1);
            }
            Ok::<(), BoxError>(())
        });
        async move {
            task.await
                .map_err(|e| -> BoxError { format!("P4: {e}").into() })?
        }
    });
    let in_flight = match args.p4_in_flight {
        0 => args.p4_ids.max(1),
        n => n,
    };
    futures::stream::iter(writers)
        .buffer_unordered(in_flight)
        .try_collect::<Vec<()>>()
        .await?;
    let seconds = start.elapsed().as_secs_f64();
    bar.finish();
    let check = progress.bar("P4 verify", args.p4_ids as u64);
    let checks = (0..args.p4_ids).map(|i| {
        let journal = Arc::clone(journal);
        let pid = format!("bench-p4-{run_id}-{i}");
        let events = args.p4_events;
        let check = check.clone();
        async move {
            let replayed: Vec<PersistentRepr> = journal
                .replay(&pid, 1, u64::MAX, u64::MAX)
                .try_collect()
                .await?;
            check.inc(1);
            let intact = replayed.len() as u64 == events
                && replayed
                    .iter()
                    .zip(1u64..)
                    .all(|(e, s)| e.sequence_nr == s && e.persistence_id == pid);
            Ok::<bool, BoxError>(intact && journal.highest_sequence_nr(&pid).await? == events)
        }
    });
    let ok = futures::stream::iter(checks)
        .buffer_unordered(256)
        .try_collect::<Vec<bool>>()
        .await?
        .into_iter()
        .all(|ok| ok);
    check.finish();
    Ok(ManyIds {
        ok,
        events_per_s: total as f64 / seconds,
        seconds,
    })
}

/// A counter entity for the entity figure: each ask adds 1 (one event of 8 bytes).
struct BenchCounter;

impl Behavior for BenchCounter {
    type State = u64;
    type Command = ();
    type Event = u64;
    type Rejection = std::convert::Infallible;

    fn handle(&self, count: &u64, (): ()) -> Result<Vec<u64>, Self::Rejection> {
        Ok(vec![count + 1])
    }
    fn apply(&self, count: &mut u64, event: &u64) {
        *count = *event;
    }
    fn encode_event(&self, event: &u64) -> Result<(String, Bytes), CodecError> {
        Ok((String::new(), Bytes::copy_from_slice(&event.to_be_bytes())))
    }
    fn decode_event(&self, _: &str, payload: &Bytes) -> Result<u64, CodecError> {
        let raw: [u8; 8] = payload[..]
            .try_into()
            .map_err(|_| CodecError::new("not 8 bytes"))?;
        Ok(u64::from_be_bytes(raw))
    }
    fn encode_state(&self, count: &u64) -> Result<Bytes, CodecError> {
        self.encode_event(count).map(|(_, b)| b)
    }
    fn decode_state(&self, snapshot: &Bytes) -> Result<u64, CodecError> {
        self.decode_event("", snapshot)
    }
}

/// Resident memory of this process (VmRSS in /proc/self/status), in MiB; `None` off Linux.
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The entity figure: `--entities` entities started with one ask each, then all at once
/// asked `--entity-asks` times each through their `EntityRef`s (each ask awaited before the
/// next); asks/s and the ask latency of those. Every entity must end at its count (`ok`).
async fn entities_through_handles(
    bootstrap: &str,
    journal: Arc<Journal>,
    progress: &Progress,
    args: &BenchArgs,
    run_id: &str,
) -> Result<EntityFigure, BoxError> {
    let store = Arc::new(
        SnapshotStore::connect(
            SnapshotConfig::new(bootstrap).with_timeout(Duration::from_secs(60)),
        )
        .await?,
    );
    let entities = Entities::new(
        journal,
        store,
        BenchCounter,
        EntitiesConfig::default()
            .with_max_entities(args.entities)
            .with_idle_timeout(None)
            .with_ask_timeout(Duration::from_secs(120)),
    );
    let handles: Vec<_> = (0..args.entities)
        .map(|i| entities.entity(format!("bench-entity-{run_id}-{i}")))
        .collect();
    let bar = progress.bar("entities (start)", args.entities as u64);
    let rss_before = rss_mib();
    let start = Instant::now();
    let starts = handles.iter().map(|handle| {
        let bar = bar.clone();
        async move {
            handle.ask(()).await.map_err(|e| format!("entities: {e}"))?;
            bar.inc(1);
            Ok::<_, BoxError>(())
        }
    });
    futures::future::try_join_all(starts).await?;
    let start_seconds = start.elapsed().as_secs_f64();
    bar.finish();
    let total = args.entities as u64 * args.entity_asks;
    let bar = progress.bar("entities (asks)", total);
    let start = Instant::now();
    let work = handles.iter().map(|handle| {
        let bar = bar.clone();
        let asks = args.entity_asks;
        async move {
            let mut latencies = Vec::with_capacity(asks as usize);
            for _ in 0..asks {
                let t = Instant::now();
                handle.ask(()).await.map_err(|e| format!("entities: {e}"))?;
                latencies.push(t.elapsed());
                bar.inc(1);
            }
            let count = handle
                .state(|c: &u64| *c)
                .await
                .map_err(|e| format!("entities: {e}"))?;
            Ok::<_, BoxError>((latencies, count == asks + 1))
        }
    });
    let results: Vec<(Vec<Duration>, bool)> = futures::future::try_join_all(work).await?;
    let seconds = start.elapsed().as_secs_f64();
    let rss_after = rss_mib();
    bar.finish();
    let ok = results.iter().all(|(_, ok)| *ok) && entities.running() == args.entities;
    let mut latencies: Vec<Duration> = results.into_iter().flat_map(|(l, _)| l).collect();
    latencies.sort_unstable();
    entities.shutdown().await;
    Ok(EntityFigure {
        entities: args.entities,
        asks_per_entity: args.entity_asks,
        start_seconds,
        asks_per_s: total as f64 / seconds.max(f64::EPSILON),
        ask_p50_us: percentile(&latencies, 0.50),
        ask_p99_us: percentile(&latencies, 0.99),
        rss_growth_mib: rss_before.zip(rss_after).map(|(b, a)| a - b),
        ok,
    })
}

fn print_table(r: &Report, args: &BenchArgs) {
    println!(
        "kafka-persistence bench on {} ({} B payloads, layout {}, {} runtime)",
        r.broker,
        args.payload,
        r.layout,
        match r.runtime {
            RuntimeKind::CurrentThread => "current-thread",
            RuntimeKind::MultiThread => "multi-thread",
        }
    );
    println!("{:<44} {:>16}", "benchmark", "result");
    println!("{}", "-".repeat(61));
    println!(
        "{:<44} {:>10.0} ev/s",
        format!(
            "P1 pipelined, {}x{} events (median)",
            args.iterations, args.events
        ),
        r.p1_events_per_s
    );
    println!(
        "{:<44} {:>10.1} us",
        "P2 one-at-a-time write latency p50", r.p2_p50_us
    );
    println!(
        "{:<44} {:>10.1} us",
        "P2 one-at-a-time write latency p99", r.p2_p99_us
    );
    println!(
        "{:<44} {:>10.0} ev/s",
        "P2 one-at-a-time throughput", r.p2_events_per_s
    );
    println!(
        "{:<44} {:>10.2} ms",
        format!("P3 recovery of {} events (median)", args.events),
        r.p3_recovery_ms
    );
    println!(
        "{:<44} {:>10.0} ev/s",
        format!("P4 {} ids x {} events", args.p4_ids, args.p4_events),
        r.p4_events_per_s
    );
    println!(
        "{:<44} {:>13}",
        "P4 every id intact",
        if r.p4_ok { "yes" } else { "NO" }
    );
    if let Some(p5) = &r.p5 {
        let rows: [(String, String); 9] = [
            (
                format!("P5 write {} ids x 1 event", p5.p5_ids),
                format!("{:>10.0} ids/s", p5.p5_ids_per_s),
            ),
            (
                "P5 fresh instance: restore".into(),
                format!("{:>10.2} s", p5.p5_restore_s),
            ),
            (
                "P5 fresh instance: resident memory".into(),
                format!("{:>10.1} MiB", p5.p5_rss_mb),
            ),
            (
                "P5 fresh instance: memory per id".into(),
                format!("{:>10.0} B", p5.p5_rss_bytes_per_id),
            ),
            (
                "P5 fresh instance: index bytes per id".into(),
                format!("{:>10.0} B", p5.p5_index_bytes_per_id),
            ),
            (
                "P5 recovery p50".into(),
                format!("{:>10.2} ms", p5.p5_recover_p50_ms),
            ),
            (
                "P5 recovery p99".into(),
                format!("{:>10.2} ms", p5.p5_recover_p99_ms),
            ),
            (
                "P5 recovery max".into(),
                format!("{:>10.2} ms", p5.p5_recover_max_ms),
            ),
            (
                "P5 every recovered id intact".into(),
                format!("{:>13}", if p5.p5_ok { "yes" } else { "NO" }),
            ),
        ];
        for (name, value) in rows {
            println!("{name:<44} {value}");
        }
    }
    if let Some(e) = &r.entities {
        println!(
            "{:<44} {:>10.2} s",
            format!("entities: {} started (first ask each)", e.entities),
            e.start_seconds
        );
        println!(
            "{:<44} {:>10.0} asks/s",
            format!(
                "entities: {} x {} asks via handles",
                e.entities, e.asks_per_entity
            ),
            e.asks_per_s
        );
        println!(
            "{:<44} {:>10.1} us",
            "entities: ask latency p50", e.ask_p50_us
        );
        println!(
            "{:<44} {:>10.1} us",
            "entities: ask latency p99", e.ask_p99_us
        );
        if let Some(mib) = e.rss_growth_mib {
            println!(
                "{:<44} {:>10.1} MiB",
                "entities: resident memory growth", mib
            );
        }
        println!(
            "{:<44} {:>13}",
            "entities: every entity at its count",
            if e.ok { "yes" } else { "NO" }
        );
    }
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Nearest-rank percentile of sorted samples, in microseconds.
fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e6
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}-{}", nanos, std::process::id())
}

struct Progress {
    multi: MultiProgress,
    quiet: bool,
}

impl Progress {
    fn new(quiet: bool) -> Self {
        let multi = MultiProgress::with_draw_target(if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        });
        Progress { multi, quiet }
    }

    fn bar(&self, name: &str, len: u64) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(len));
        if !self.quiet {
            let style = ProgressStyle::with_template(
                "{prefix:<26} [{bar:30}] {pos:>7}/{len:7} {per_sec:>12} {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
        }
        bar.set_prefix(name.to_string());
        bar
    }

    fn clear(&self) {
        let _ = self.multi.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&samples, 0.50), 50.0);
        assert_eq!(percentile(&samples, 0.99), 99.0);
        assert_eq!(percentile(&samples[..1], 0.99), 1.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}

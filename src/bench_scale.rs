//! `bench` P5 (SPEC.md): the scale benchmark of layout v2. A million ids with one event
//! each, written with many ids in flight; then, on a fresh `Journal` instance, its restore
//! time and resident memory, and random ids recovered (highest sequence number + replay).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use kafka_persistence::journal::{AtomicWrite, Journal, JournalConfig, PersistentRepr};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// P5's settings.
#[derive(Debug, Clone)]
pub(crate) struct ScaleArgs {
    /// Ids written (one event each).
    pub(crate) ids: u64,
    /// Ids per `write` call.
    pub(crate) batch: usize,
    /// `write` calls in flight.
    pub(crate) in_flight: usize,
    /// Ids recovered on the fresh instance.
    pub(crate) recover: usize,
}

/// What P5 measured.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ScaleReport {
    pub(crate) p5_ids: u64,
    pub(crate) p5_ids_per_s: f64,
    pub(crate) p5_write_s: f64,
    pub(crate) p5_restore_s: f64,
    /// Resident memory the fresh instance added (restored index, client), in MiB.
    pub(crate) p5_rss_mb: f64,
    /// The same per id, in bytes.
    pub(crate) p5_rss_bytes_per_id: f64,
    /// The fresh instance's index as it counts itself (map slots, keys, ranges), per id.
    pub(crate) p5_index_bytes_per_id: f64,
    pub(crate) p5_recover_p50_ms: f64,
    pub(crate) p5_recover_p99_ms: f64,
    pub(crate) p5_recover_max_ms: f64,
    /// Every recovered id replayed exactly its one event.
    pub(crate) p5_ok: bool,
}

/// The process's resident set size in bytes (Linux; 0 elsewhere).
pub(crate) fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// A small deterministic generator (xorshift), so the recovered ids differ per run but need
/// no dependency.
fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

fn pid(run_id: &str, i: u64) -> String {
    format!("bench-p5-{run_id}-{i}")
}

/// Runs P5 against `config`'s cluster (layout v2 expected; it runs on v1 too, slowly).
/// Each `write` call runs on a task of its own (see P4 in `bench.rs` for why).
pub(crate) async fn p5_scale(
    config: &JournalConfig,
    journal: &Arc<Journal>,
    bar: impl Fn(&str, u64) -> ProgressBar,
    args: &ScaleArgs,
    run_id: &str,
    payload: &Bytes,
) -> Result<ScaleReport, BoxError> {
    if args.batch == 0 || args.in_flight == 0 {
        return Err("P5: --p5-batch and --p5-in-flight must be at least 1".into());
    }
    let write_bar = bar("P5 write ids", args.ids);
    let start = Instant::now();
    let batch = args.batch as u64;
    let calls = (0..args.ids.div_ceil(batch)).map(|c| {
        let journal = Arc::clone(journal);
        let payload = payload.clone();
        let write_bar = write_bar.clone();
        let ids = args.ids;
        let run_id = run_id.to_string();
        let task = tokio::spawn(async move {
            let writes: Vec<AtomicWrite> = (c * batch..((c + 1) * batch).min(ids))
                .map(|i| {
                    AtomicWrite::new(vec![PersistentRepr::new(
                        pid(&run_id, i),
                        1,
                        payload.clone(),
                    )])
                })
                .collect();
            let n = writes.len() as u64;
            let results = journal.write(writes).await?;
            if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
                return Err::<(), BoxError>(format!("P5: a write was refused: {e}").into());
            }
            write_bar.inc(n);
            Ok(())
        });
        async move {
            task.await
                .map_err(|e| -> BoxError { format!("P5: {e}").into() })?
        }
    });
    futures::stream::iter(calls)
        .buffer_unordered(args.in_flight)
        .try_collect::<Vec<()>>()
        .await?;
    let write_s = start.elapsed().as_secs_f64();
    write_bar.finish();
    // Store the index now (it would otherwise follow within its flush interval), so the fresh
    // instance restores from it.
    journal.flush_index().await?;

    let rss_before = rss_bytes();
    let restore_start = Instant::now();
    let fresh = Journal::connect(config.clone()).await?;
    let restore_s = restore_start.elapsed().as_secs_f64();
    let rss_after = rss_bytes();
    let rss = rss_after.saturating_sub(rss_before);
    let index_bytes = fresh.index_stats().map_or(0, |s| s.bytes);

    let recover_bar = bar("P5 recover ids", args.recover as u64);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ (std::process::id() as u64);
    let mut latencies = Vec::with_capacity(args.recover);
    let mut ok = true;
    for _ in 0..args.recover {
        let id = pid(run_id, next_random(&mut seed) % args.ids.max(1));
        let t = Instant::now();
        let highest = fresh.highest_sequence_nr(&id).await?;
        let events: Vec<PersistentRepr> = fresh
            .replay(&id, 1, highest, u64::MAX)
            .try_collect()
            .await?;
        latencies.push(t.elapsed());
        ok &= highest == 1 && events.len() == 1 && events[0].payload == *payload;
        recover_bar.inc(1);
    }
    recover_bar.finish();
    latencies.sort();
    let ms = |q: f64| percentile_ms(&latencies, q);
    Ok(ScaleReport {
        p5_ids: args.ids,
        p5_ids_per_s: args.ids as f64 / write_s,
        p5_write_s: write_s,
        p5_restore_s: restore_s,
        p5_rss_mb: rss as f64 / (1024.0 * 1024.0),
        p5_rss_bytes_per_id: rss as f64 / args.ids.max(1) as f64,
        p5_index_bytes_per_id: index_bytes as f64 / args.ids.max(1) as f64,
        p5_recover_p50_ms: ms(0.50),
        p5_recover_p99_ms: ms(0.99),
        p5_recover_max_ms: latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        p5_ok: ok,
    })
}

/// Nearest-rank percentile of sorted samples, in milliseconds.
fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_random_ids() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&d, 0.5), 50.0);
        assert_eq!(percentile_ms(&d, 0.99), 99.0);
        let mut s = 1;
        let a = next_random(&mut s);
        assert_ne!(a, next_random(&mut s));
    }
}

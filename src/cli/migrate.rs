//! `kafka-persistence migrate --from-layout per-id`: copies every layout v1 id (events with
//! their sequence numbers, writer ids and everything else written with them, gaps, deletion
//! marks, and snapshots) into layout v2 on the same cluster. Idempotent and resumable: an id
//! already complete in v2 is left alone, one an interrupted run left half-way continues after
//! what is there, and snapshots are saved again under their own metadata.

use std::time::Instant;

use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kafka_persistence::journal::{Journal, Layout};
use kafka_persistence::snapshot::{SnapshotSelectionCriteria, SnapshotStore};
use serde_json::json;

use super::{CliError, ConnectArgs, OutputArgs};

/// Arguments of `migrate`.
#[derive(Debug, clap::Args)]
pub(crate) struct MigrateArgs {
    /// The layout to copy from; only `per-id` (v1) is a source, into `shared` (v2).
    #[arg(long)]
    pub(crate) from_layout: Layout,
    /// Partitions of the v2 topics, if they do not exist yet (default: the configuration's).
    #[arg(long)]
    pub(crate) partitions: Option<i32>,
    /// Leave the snapshots alone (copy only the journal).
    #[arg(long)]
    pub(crate) skip_snapshots: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Default)]
struct Summary {
    ids: u64,
    copied: u64,
    already_complete: u64,
    records: u64,
    snapshots: u64,
    failed: Vec<(String, String)>,
}

/// Copies every snapshot of `pid`, youngest first.
async fn copy_snapshots(
    from: &SnapshotStore,
    to: &SnapshotStore,
    pid: &str,
) -> Result<u64, String> {
    let mut criteria = SnapshotSelectionCriteria::latest();
    let mut copied = 0;
    while let Some(s) = from.load(pid, criteria).await.map_err(|e| e.to_string())? {
        let seq = s.metadata.sequence_nr;
        to.save(s.metadata, s.snapshot)
            .await
            .map_err(|e| e.to_string())?;
        copied += 1;
        if seq <= 1 {
            break;
        }
        criteria = criteria.with_max_sequence_nr(seq - 1);
    }
    Ok(copied)
}

async fn migrate_id(
    args: &MigrateArgs,
    v1: &Journal,
    v2: &Journal,
    stores: Option<&(SnapshotStore, SnapshotStore)>,
    pid: &str,
    summary: &mut Summary,
) -> Result<(), String> {
    let export = v1
        .export_id(pid)
        .await
        .map_err(|e| format!("reading: {e}"))?;
    let (highest, deleted_to) = (export.highest, export.deleted_to);
    let outcome = v2
        .import_id(export)
        .await
        .map_err(|e| format!("writing: {e}"))?;
    // Check what v2 holds now against v1.
    let h2 = v2
        .highest_sequence_nr(pid)
        .await
        .map_err(|e| e.to_string())?;
    let d2 = v2.deleted_to(pid).await.map_err(|e| e.to_string())?;
    if h2 != highest || d2 < deleted_to {
        return Err(format!(
            "after copying, v2 has highest {h2} and deletion mark {d2}, v1 {highest} and {deleted_to}"
        ));
    }
    if outcome.already_complete {
        summary.already_complete += 1;
    } else {
        summary.copied += 1;
    }
    summary.records += outcome.records_written;
    if let (false, Some((from, to))) = (args.skip_snapshots, stores) {
        summary.snapshots += copy_snapshots(from, to, pid)
            .await
            .map_err(|e| format!("snapshots: {e}"))?;
    }
    Ok(())
}

pub(crate) async fn run(args: MigrateArgs) -> Result<(), CliError> {
    if args.from_layout != Layout::PerId {
        return Err(CliError::usage(
            "--from-layout: only `per-id` (layout v1) can be migrated, into `shared` (v2)",
        ));
    }
    let mut v2_config = args.connect.journal_config()?.with_layout(Layout::Shared);
    if let Some(p) = args.partitions {
        v2_config = v2_config.with_partitions(p);
    }
    let v1_config = args.connect.journal_config()?.with_layout(Layout::PerId);
    let unreachable = |e| CliError::unreachable(&args.connect.bootstrap, e);
    let v1 = Journal::connect(v1_config).await.map_err(unreachable)?;
    let v2 = Journal::connect(v2_config).await.map_err(unreachable)?;
    let stores = if args.skip_snapshots {
        None
    } else {
        let base = args.connect.snapshot_config()?;
        let from = SnapshotStore::connect(base.clone().with_layout(Layout::PerId))
            .await
            .map_err(|e| CliError::unreachable(&args.connect.bootstrap, e))?;
        let to = SnapshotStore::connect(base.with_layout(Layout::Shared))
            .await
            .map_err(|e| CliError::unreachable(&args.connect.bootstrap, e))?;
        Some((from, to))
    };
    let ids: Vec<String> = v1
        .current_persistence_ids()
        .try_collect()
        .await
        .map_err(|e| CliError::failed(format!("listing the layout v1 ids: {e}")))?;
    let bar = if args.quiet || args.output.json {
        ProgressBar::with_draw_target(Some(ids.len() as u64), ProgressDrawTarget::hidden())
    } else {
        ProgressBar::new(ids.len() as u64)
    };
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} ids ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar.set_message("migrate");
    let started = Instant::now();
    let mut summary = Summary {
        ids: ids.len() as u64,
        ..Summary::default()
    };
    for pid in &ids {
        if let Err(e) = migrate_id(&args, &v1, &v2, stores.as_ref(), pid, &mut summary).await {
            bar.suspend(|| eprintln!("error: {pid}: {e}"));
            summary.failed.push((pid.clone(), e));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    // Store v2's index now, so the application's next start restores from it.
    v2.flush_index()
        .await
        .map_err(|e| CliError::failed(format!("writing the v2 index: {e}")))?;
    let seconds = started.elapsed().as_secs_f64();
    if args.output.json {
        let failed: Vec<_> = summary
            .failed
            .iter()
            .map(|(id, e)| json!({"persistence_id": id, "error": e}))
            .collect();
        println!(
            "{}",
            json!({
                "ids": summary.ids,
                "copied": summary.copied,
                "already_complete": summary.already_complete,
                "records_written": summary.records,
                "snapshots_copied": summary.snapshots,
                "failed": failed,
                "seconds": seconds,
            })
        );
    } else {
        println!(
            "migrated {} of {} ids from layout v1 to v2 in {seconds:.1} s: {} copied, {} already \
             complete, {} records written, {} snapshots copied, {} failed",
            summary.copied + summary.already_complete,
            summary.ids,
            summary.copied,
            summary.already_complete,
            summary.records,
            summary.snapshots,
            summary.failed.len()
        );
    }
    if summary.failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::failed(format!(
            "{} ids could not be migrated (run again to retry them)",
            summary.failed.len()
        )))
    }
}

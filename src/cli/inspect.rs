//! `kafka-persistence inspect <persistence-id>`: an id's events (sequence number, manifest,
//! writer, timestamp, size), its gaps (sequence numbers between the deletion mark and the
//! highest that no event holds: rejected writes, or events lost otherwise), the deletion mark
//! (`Journal::deleted_to`) and its snapshots with their metadata.

use futures::TryStreamExt;
use kafka_persistence::journal::PersistentRepr;
use kafka_persistence::snapshot::{SnapshotMetadata, SnapshotSelectionCriteria, SnapshotStore};
use serde_json::json;

use super::output::{ranges, utc, Table};
use super::{CliError, ConnectArgs, OutputArgs};

/// Arguments of `inspect`.
#[derive(Debug, clap::Args)]
pub(crate) struct InspectArgs {
    /// The persistence id.
    pub(crate) persistence_id: String,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// A snapshot's metadata and payload size.
struct SnapshotInfo {
    metadata: SnapshotMetadata,
    size: usize,
}

/// Every snapshot of `persistence_id`, youngest first (one load per snapshot).
async fn snapshots(
    store: &SnapshotStore,
    persistence_id: &str,
) -> Result<Vec<SnapshotInfo>, CliError> {
    let mut found = Vec::new();
    let mut criteria = SnapshotSelectionCriteria::latest();
    while let Some(s) = store
        .load(persistence_id, criteria)
        .await
        .map_err(|e| CliError::failed(format!("loading snapshots: {e}")))?
    {
        let seq = s.metadata.sequence_nr;
        found.push(SnapshotInfo {
            size: s.snapshot.len(),
            metadata: s.metadata,
        });
        match seq.checked_sub(1) {
            Some(below) if below > 0 => criteria = criteria.with_max_sequence_nr(below),
            _ => break,
        }
    }
    Ok(found)
}

/// `-` for an empty cell.
fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        s.to_string()
    }
}

/// The sequence numbers in `deleted_to + 1 ..= highest` that no event holds.
fn gaps(events: &[PersistentRepr], deleted_to: u64, highest: u64) -> Vec<u64> {
    let mut present = events.iter().map(|e| e.sequence_nr).peekable();
    let mut missing = Vec::new();
    for seq in deleted_to.saturating_add(1)..=highest {
        while present.peek().is_some_and(|&p| p < seq) {
            present.next();
        }
        if present.peek() != Some(&seq) {
            missing.push(seq);
        }
    }
    missing
}

pub(crate) async fn run(args: InspectArgs) -> Result<(), CliError> {
    let pid = args.persistence_id.as_str();
    let journal = args.connect.journal().await?;
    let store = args.connect.store().await?;
    let failed =
        |what: &str, e: &dyn std::fmt::Display| CliError::failed(format!("{what} of `{pid}`: {e}"));
    let highest = journal
        .highest_sequence_nr(pid)
        .await
        .map_err(|e| failed("highest sequence number", &e))?;
    let deleted_to = journal
        .deleted_to(pid)
        .await
        .map_err(|e| failed("deletion mark", &e))?;
    let events: Vec<PersistentRepr> = if highest == 0 {
        Vec::new()
    } else {
        journal
            .replay(pid, 1, highest, u64::MAX)
            .try_collect()
            .await
            .map_err(|e| failed("replay", &e))?
    };
    let snapshots = snapshots(&store, pid).await?;
    if highest == 0 && snapshots.is_empty() {
        return Err(CliError::not_found(format!(
            "unknown persistence id `{pid}`: no events and no snapshots"
        )));
    }
    let gaps = gaps(&events, deleted_to, highest);
    if args.output.json {
        let doc = json!({
            "persistence_id": pid,
            "highest_sequence_nr": highest,
            "deleted_to": deleted_to,
            "gaps": gaps,
            "events": events.iter().map(|e| json!({
                "sequence_nr": e.sequence_nr,
                "manifest": e.manifest,
                "writer_uuid": e.writer_uuid,
                "timestamp": e.timestamp,
                "size": e.payload.len(),
                "tags": e.tags,
                "metadata_size": e.metadata.as_ref().map(|m| m.len()),
            })).collect::<Vec<_>>(),
            "snapshots": snapshots.iter().map(|s| json!({
                "sequence_nr": s.metadata.sequence_nr,
                "timestamp": s.metadata.timestamp,
                "size": s.size,
                "metadata_size": s.metadata.metadata.as_ref().map(|m| m.len()),
            })).collect::<Vec<_>>(),
        });
        println!("{doc:#}");
        return Ok(());
    }
    println!("persistence id       {pid}");
    println!("highest sequence nr  {highest}");
    println!(
        "deleted to           {deleted_to}{}",
        if deleted_to > 0 {
            " (events up to here are deleted)"
        } else {
            ""
        }
    );
    println!(
        "gaps                 {}",
        if gaps.is_empty() {
            "none".to_string()
        } else {
            ranges(&gaps)
        }
    );
    println!();
    let mut table = Table::new(&["SEQ", "MANIFEST", "WRITER", "TIMESTAMP", "SIZE", "TAGS"]);
    for e in &events {
        table.row(vec![
            e.sequence_nr.to_string(),
            or_dash(&e.manifest),
            or_dash(&e.writer_uuid),
            utc(e.timestamp),
            e.payload.len().to_string(),
            or_dash(&e.tags.join(",")),
        ]);
    }
    println!("events ({})", events.len());
    if !table.is_empty() {
        print!("{}", table.render());
    }
    println!();
    let mut table = Table::new(&["SEQ", "TIMESTAMP", "SIZE", "METADATA"]);
    for s in &snapshots {
        table.row(vec![
            s.metadata.sequence_nr.to_string(),
            utc(s.metadata.timestamp),
            s.size.to_string(),
            s.metadata
                .metadata
                .as_ref()
                .map_or("-".to_string(), |m| format!("{} bytes", m.len())),
        ]);
    }
    println!("snapshots ({})", snapshots.len());
    if !table.is_empty() {
        print!("{}", table.render());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::gaps;
    use kafka_persistence::journal::PersistentRepr;

    #[test]
    fn gaps_are_the_numbers_no_event_holds_above_the_deletion_mark() {
        let events: Vec<PersistentRepr> = [4, 5, 7, 10]
            .into_iter()
            .map(|s| PersistentRepr::new("p", s, "x"))
            .collect();
        assert_eq!(gaps(&events, 3, 10), vec![6, 8, 9]);
        assert_eq!(gaps(&events, 0, 5), vec![1, 2, 3]);
        assert_eq!(gaps(&[], 5, 5), Vec::<u64>::new());
    }
}

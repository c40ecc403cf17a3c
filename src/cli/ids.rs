//! `kafka-persistence ids`: every persistence id (`Journal::current_persistence_ids`) with
//! its highest sequence number, deletion mark and number of stored events.

use futures::{StreamExt, TryStreamExt};
use kafka_persistence::journal::Journal;
use serde_json::json;

use super::output::Table;
use super::{CliError, ConnectArgs, OutputArgs};

/// Arguments of `ids`.
#[derive(Debug, clap::Args)]
pub(crate) struct IdsArgs {
    /// Skip counting each id's stored events (a replay per id); show only the sequence numbers.
    #[arg(long)]
    pub(crate) no_count: bool,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

struct IdInfo {
    persistence_id: String,
    highest: u64,
    deleted_to: u64,
    events: Option<u64>,
}

async fn info(journal: &Journal, persistence_id: String, count: bool) -> Result<IdInfo, CliError> {
    let failed = |e: kafka_persistence::journal::JournalError| {
        CliError::failed(format!("reading `{persistence_id}`: {e}"))
    };
    let highest = journal
        .highest_sequence_nr(&persistence_id)
        .await
        .map_err(failed)?;
    let deleted_to = journal.deleted_to(&persistence_id).await.map_err(failed)?;
    let events = if count && highest > 0 {
        Some(
            journal
                .replay(&persistence_id, 1, highest, u64::MAX)
                .try_fold(0u64, |n, _| async move { Ok(n + 1) })
                .await
                .map_err(failed)?,
        )
    } else if count {
        Some(0)
    } else {
        None
    };
    Ok(IdInfo {
        persistence_id,
        highest,
        deleted_to,
        events,
    })
}

pub(crate) async fn run(args: IdsArgs) -> Result<(), CliError> {
    let journal = args.connect.journal().await?;
    let mut ids: Vec<String> = journal
        .current_persistence_ids()
        .try_collect()
        .await
        .map_err(|e| CliError::failed(format!("listing persistence ids: {e}")))?;
    ids.sort();
    let count = !args.no_count;
    let infos: Vec<IdInfo> = futures::stream::iter(ids)
        .map(|id| info(&journal, id, count))
        .buffered(8)
        .try_collect()
        .await?;
    if args.output.json {
        let doc: Vec<_> = infos
            .iter()
            .map(|i| {
                json!({
                    "persistence_id": i.persistence_id,
                    "highest_sequence_nr": i.highest,
                    "deleted_to": i.deleted_to,
                    "events": i.events,
                })
            })
            .collect();
        println!("{:#}", serde_json::Value::Array(doc));
        return Ok(());
    }
    let mut table = Table::new(&["PERSISTENCE ID", "HIGHEST", "DELETED TO", "EVENTS"]);
    for i in &infos {
        table.row(vec![
            i.persistence_id.clone(),
            i.highest.to_string(),
            i.deleted_to.to_string(),
            i.events.map_or("-".to_string(), |n| n.to_string()),
        ]);
    }
    print!("{}", table.render());
    println!("{} persistence id(s)", infos.len());
    Ok(())
}

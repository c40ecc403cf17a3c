//! `kafka-persistence tail <topic>`: decodes the `Event` protobuf records of an event topic
//! (what the journal publishes for external consumers; `journal::Event`) as they arrive, from
//! the end (default) or `--from-beginning`, across all partitions. A record that is not an
//! `Event` stops the command: the topic is not an event topic.

use std::time::Duration;

use kafka_persistence::journal::Event;
use kafka_persistence::wire::{Client, ClientConfig, ConsumedRecord, FetchRequest, OffsetSpec};
use serde_json::json;

use super::output::utc;
use super::{CliError, ConnectArgs, OutputArgs};
use crate::cli::error::ErrorKind;

/// Arguments of `tail`.
#[derive(Debug, clap::Args)]
pub(crate) struct TailArgs {
    /// The event topic (the journal's default is `events`).
    pub(crate) topic: String,
    /// Start at the oldest record instead of the end.
    #[arg(long)]
    pub(crate) from_beginning: bool,
    /// Stop after this many events (default: run until interrupted).
    #[arg(long)]
    pub(crate) max_events: Option<u64>,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// How long a fetch waits for new records when the previous round found none.
const IDLE_WAIT: Duration = Duration::from_millis(300);

/// The printable form of a payload: UTF-8 text, or hex.
fn payload_text(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(s) => s.to_string(),
        Err(_) => payload.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

fn decode(topic: &str, partition: i32, record: &ConsumedRecord) -> Result<Event, CliError> {
    let not_event = |why: String| {
        CliError::new(
            ErrorKind::NotEventTopic,
            format!(
                "`{topic}` is not an event topic: the record at partition {partition}, offset {} {why}",
                record.offset
            ),
        )
    };
    let value = record
        .value
        .as_ref()
        .ok_or_else(|| not_event("has no value".to_string()))?;
    Event::decode(value).map_err(|e| not_event(format!("is not an Event protobuf ({e})")))
}

fn print(json: bool, partition: i32, record: &ConsumedRecord, event: &Event) {
    let manifest = event
        .manifest
        .as_ref()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_default();
    if json {
        let line = json!({
            "partition": partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
            "persistence_id": event.persistence_id,
            "sequence_nr": event.sequence_nr,
            "manifest": manifest,
            "serializer_id": event.serializer_id,
            "size": event.payload.len(),
            "payload": payload_text(&event.payload),
        });
        println!("{line}");
    } else {
        let mut payload = payload_text(&event.payload);
        if payload.chars().count() > 60 {
            payload = payload.chars().take(57).collect::<String>() + "...";
        }
        println!(
            "{partition:<4} {:<8} {:<24} {:<30} {:<6} {:<20} {:<6} {payload}",
            record.offset,
            utc(record.timestamp),
            event.persistence_id,
            event.sequence_nr,
            if manifest.is_empty() { "-" } else { &manifest },
            event.payload.len(),
        );
    }
}

pub(crate) async fn run(args: TailArgs) -> Result<(), CliError> {
    let bootstrap = &args.connect.bootstrap;
    let timeout = args.connect.timeout;
    let config = ClientConfig::new(bootstrap.clone())
        .with_client_id("kafka-persistence-tail")
        .with_request_timeout(timeout)
        .with_delivery_timeout(timeout)
        .with_connect_timeout(timeout);
    let client = tokio::time::timeout(timeout, Client::connect(config))
        .await
        .map_err(|_| CliError::unreachable(bootstrap, format!("no answer within {timeout:?}")))?
        .map_err(|e| CliError::unreachable(bootstrap, e))?;
    let topic = args.topic.as_str();
    let metadata = tokio::time::timeout(timeout, client.topic_metadata(topic))
        .await
        .map_err(|_| CliError::unreachable(bootstrap, format!("no answer within {timeout:?}")))?
        .map_err(|e| CliError::failed(format!("metadata of `{topic}`: {e}")))?
        .ok_or_else(|| CliError::not_found(format!("topic `{topic}` does not exist")))?;
    let spec = if args.from_beginning {
        OffsetSpec::Earliest
    } else {
        OffsetSpec::Latest
    };
    let mut positions = Vec::new();
    for p in &metadata.partitions {
        let offset = client
            .list_offset(topic, p.partition, spec)
            .await
            .map_err(|e| CliError::failed(format!("offsets of `{topic}`/{}: {e}", p.partition)))?;
        positions.push((p.partition, offset));
    }
    eprintln!(
        "tailing `{topic}`: {} partition(s) from {}",
        positions.len(),
        if args.from_beginning {
            "the beginning"
        } else {
            "the end"
        }
    );
    if !args.output.json {
        println!(
            "{:<4} {:<8} {:<24} {:<30} {:<6} {:<20} {:<6} PAYLOAD",
            "PART", "OFFSET", "TIMESTAMP", "PERSISTENCE ID", "SEQ", "MANIFEST", "SIZE"
        );
    }
    let mut printed = 0u64;
    if args.max_events == Some(0) {
        return Ok(());
    }
    // The long-poll wait of an idle round, spread over the partitions.
    let spread = u32::try_from(positions.len().clamp(1, 10)).unwrap_or(1);
    let idle_wait = IDLE_WAIT / spread;
    let mut idle = false;
    loop {
        let mut found = false;
        for (partition, offset) in positions.iter_mut() {
            let wait = if idle { idle_wait } else { Duration::ZERO };
            let request = FetchRequest::new(topic, *partition, *offset).with_max_wait(wait);
            let response = client
                .fetch(request)
                .await
                .map_err(|e| CliError::failed(format!("fetching `{topic}`/{partition}: {e}")))?;
            for record in &response.records {
                let event = decode(topic, *partition, record)?;
                print(args.output.json, *partition, record, &event);
                found = true;
                printed += 1;
                if args.max_events.is_some_and(|max| printed >= max) {
                    return Ok(());
                }
            }
            *offset = (*offset).max(response.next_offset);
        }
        idle = !found;
    }
}

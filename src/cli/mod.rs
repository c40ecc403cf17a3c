//! The operator commands of the `kafka-persistence` binary, one module each. `main.rs` only
//! parses and dispatches; a new command is a new module here plus one enum variant there.
//!
//! Every command that talks to Kafka takes [`ConnectArgs`] (`--bootstrap`, `--timeout`, and
//! optional JSON files with the journal's and the snapshot store's configuration, so the
//! command sees the same topics as the application), prints a readable table by default and
//! JSON with `--json`, and fails with a [`CliError`] whose kind is the exit code.

pub(crate) mod error;
pub(crate) mod ids;
pub(crate) mod inspect;
pub(crate) mod migrate;
pub(crate) mod output;
#[cfg(feature = "testserver")]
pub(crate) mod serve;
pub(crate) mod tail;

use std::path::PathBuf;
use std::time::Duration;

use kafka_persistence::journal::{Journal, JournalConfig};
use kafka_persistence::snapshot::{SnapshotConfig, SnapshotStore};

pub(crate) use error::CliError;

/// How a command reaches the cluster.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConnectArgs {
    /// Bootstrap servers, `host:port[,host:port...]` (overrides the configuration files').
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub(crate) bootstrap: String,
    /// Bound of every call to the cluster, e.g. `10s`, `500ms`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// The application's journal configuration (JSON, `JournalConfig`): topic prefix etc.
    #[arg(long)]
    pub(crate) journal_config: Option<PathBuf>,
    /// The application's snapshot store configuration (JSON, `SnapshotConfig`).
    #[arg(long)]
    pub(crate) snapshot_config: Option<PathBuf>,
}

/// Output format shared by the commands.
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct OutputArgs {
    /// Machine-readable JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Parses `10s`, `500ms`, `2m` or a bare number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as 10s or 500ms"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        _ => Err(format!("`{s}`: unknown unit `{unit}` (ms, s, m)")),
    }
}

fn read_config<T: serde::de::DeserializeOwned>(path: &PathBuf) -> Result<T, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| CliError::usage(format!("invalid configuration in {}: {e}", path.display())))
}

impl ConnectArgs {
    /// The journal configuration: the file's, with `--bootstrap` and `--timeout`.
    pub(crate) fn journal_config(&self) -> Result<JournalConfig, CliError> {
        let mut config = match &self.journal_config {
            Some(path) => read_config::<JournalConfig>(path)?,
            None => JournalConfig::new(&self.bootstrap),
        };
        config.bootstrap_servers = self.bootstrap.clone();
        Ok(config.with_timeout(self.timeout))
    }

    /// Connects the journal (an unreachable cluster is [`CliError::unreachable`]).
    pub(crate) async fn journal(&self) -> Result<Journal, CliError> {
        Journal::connect(self.journal_config()?)
            .await
            .map_err(|e| CliError::unreachable(&self.bootstrap, e))
    }

    /// The snapshot store configuration: the file's, with `--bootstrap` and `--timeout`.
    pub(crate) fn snapshot_config(&self) -> Result<SnapshotConfig, CliError> {
        let mut config = match &self.snapshot_config {
            Some(path) => read_config::<SnapshotConfig>(path)?,
            None => SnapshotConfig::new(&self.bootstrap),
        };
        config.bootstrap_servers = self.bootstrap.clone();
        Ok(config.with_timeout(self.timeout))
    }

    /// Connects the snapshot store.
    pub(crate) async fn store(&self) -> Result<SnapshotStore, CliError> {
        SnapshotStore::connect(self.snapshot_config()?)
            .await
            .map_err(|e| CliError::unreachable(&self.bootstrap, e))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5h").is_err());
    }
}

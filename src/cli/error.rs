//! The commands' error: a message for the operator and its exit code.

use std::process::ExitCode;

/// Exit codes: 1 for anything else, as every CLI does; the specific ones let scripts react.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// A failure while talking to the cluster, or any other failure (exit code 1).
    Failed = 1,
    /// Invalid arguments or configuration (exit code 2, as clap uses).
    Usage = 2,
    /// The cluster cannot be reached (exit code 3).
    Unreachable = 3,
    /// The persistence id or topic does not exist (exit code 4).
    NotFound = 4,
    /// The topic holds records that are not `Event` protobufs (exit code 5).
    NotEventTopic = 5,
}

/// A command's failure.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
}

impl CliError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CliError {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn failed(message: impl std::fmt::Display) -> Self {
        CliError::new(ErrorKind::Failed, message.to_string())
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        CliError::new(ErrorKind::Usage, message)
    }

    pub(crate) fn unreachable(bootstrap: &str, reason: impl std::fmt::Display) -> Self {
        CliError::new(
            ErrorKind::Unreachable,
            format!("cannot reach the Kafka cluster at {bootstrap}: {reason}"),
        )
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        CliError::new(ErrorKind::NotFound, message)
    }

    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.kind as u8)
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Box<dyn std::error::Error + Send + Sync>> for CliError {
    fn from(e: Box<dyn std::error::Error + Send + Sync>) -> Self {
        CliError::failed(e)
    }
}

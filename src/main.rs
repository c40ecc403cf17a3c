//! The `kafka-persistence` command line: `bench` (the journal benchmarks), the operator
//! commands `inspect`, `ids` and `tail`, and `serve` (the standalone in-process broker).
//! This file parses and dispatches; each command lives in its own module under `cli/`
//! (`bench` in `bench.rs`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod bench_scale;
mod cli;

use cli::CliError;

#[derive(Debug, Parser)]
#[command(
    name = "kafka-persistence",
    version,
    about = "Event sourcing on Apache Kafka, in pure Rust"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the journal benchmarks P1-P5 (SPEC.md) against the embedded testserver or a broker.
    Bench(bench::BenchArgs),
    /// Shows a persistence id: events, gaps, deletion mark, snapshots.
    Inspect(cli::inspect::InspectArgs),
    /// Lists the persistence ids with their sequence numbers and event counts.
    Ids(cli::ids::IdsArgs),
    /// Prints the events of an event topic as they arrive.
    Tail(cli::tail::TailArgs),
    /// Copies every layout v1 (per-id) id, its events, gaps, deletion mark and snapshots, into
    /// layout v2 (shared); resumable and idempotent.
    Migrate(cli::migrate::MigrateArgs),
    /// Runs the in-process Kafka broker standalone, until Ctrl-C.
    #[cfg(feature = "testserver")]
    Serve(cli::serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match &cli.command {
        Command::Bench(args) => args.runtime.build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), CliError> = runtime.block_on(async move {
        match cli.command {
            Command::Bench(args) => bench::run(args).await.map_err(CliError::from),
            Command::Inspect(args) => cli::inspect::run(args).await,
            Command::Ids(args) => cli::ids::run(args).await,
            Command::Tail(args) => cli::tail::run(args).await,
            Command::Migrate(args) => cli::migrate::run(args).await,
            #[cfg(feature = "testserver")]
            Command::Serve(args) => cli::serve::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

//! The `kafka-persistence` command line: `bench` (the main job) and `serve` (the standalone
//! in-process broker for use with other tools).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;

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
    /// Runs the journal benchmarks P1-P4 (SPEC.md) against the embedded testserver or a broker.
    Bench(bench::BenchArgs),
    /// Runs the in-process Kafka broker standalone, until Ctrl-C.
    #[cfg(feature = "testserver")]
    Serve(ServeArgs),
}

/// Arguments of `serve`.
#[cfg(feature = "testserver")]
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Port of the first node (the others take the next ports); 0 picks free ports.
    #[arg(long, default_value_t = 9092)]
    port: u16,
    /// Number of broker nodes.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Keep the data in this directory so that it survives a restart (default: in memory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Let Metadata requests create missing topics, as `auto.create.topics.enable=true` does.
    #[arg(long)]
    auto_create_topics: bool,
    /// Serve TLS with this certificate chain (PEM; needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM): mutual TLS.
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// A SASL user, MECHANISM:USER:PASSWORD (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); repeatable.
    #[arg(long = "sasl-user")]
    sasl_users: Vec<String>,
    /// An ACL, PRINCIPAL:OPERATION:TOPIC (e.g. User:alice:write:events, topic * = all);
    /// repeatable. Any ACL turns authorization on.
    #[arg(long = "acl")]
    acls: Vec<String>,
    /// A principal allowed everything (e.g. User:admin); repeatable.
    #[arg(long = "super-user")]
    super_users: Vec<String>,
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
        #[cfg(feature = "testserver")]
        Command::Serve(_) => tokio::runtime::Builder::new_multi_thread()
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
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Bench(args) => bench::run(args).await,
            #[cfg(feature = "testserver")]
            Command::Serve(args) => serve(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "testserver")]
async fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use kafka_persistence::testserver::TestServer;
    if args.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    let mut builder = TestServer::builder()
        .nodes(args.nodes)
        .port(args.port)
        .auto_create_topics(args.auto_create_topics);
    if let Some(dir) = &args.data_dir {
        builder = builder.data_dir(dir.clone());
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        builder = builder.tls(
            std::fs::read_to_string(cert)?,
            std::fs::read_to_string(key)?,
        );
    }
    if let Some(ca) = &args.tls_client_ca {
        builder = builder.tls_client_ca(std::fs::read_to_string(ca)?);
    }
    for spec in &args.sasl_users {
        builder = builder.sasl_user_spec(spec)?;
    }
    for spec in &args.acls {
        builder = builder.acl_spec(spec)?;
    }
    for principal in &args.super_users {
        builder = builder.super_user(principal.clone());
    }
    let server = builder.start().await?;
    println!("{}", server.bootstrap_servers());
    eprintln!(
        "kafka-persistence testserver: {} node(s) listening on {}{}; Ctrl-C stops it",
        args.nodes,
        server.bootstrap_servers(),
        args.data_dir
            .as_ref()
            .map(|d| format!(", data in {}", d.display()))
            .unwrap_or_default()
    );
    tokio::signal::ctrl_c().await?;
    eprintln!("stopping");
    server.shutdown().await;
    Ok(())
}

//! `kafka-persistence serve`: the in-process Kafka broker standalone, until Ctrl-C.

use std::path::PathBuf;

use kafka_persistence::testserver::TestServer;

use super::CliError;

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
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
}

pub(crate) async fn run(args: ServeArgs) -> Result<(), CliError> {
    if args.nodes == 0 {
        return Err(CliError::usage("--nodes must be at least 1"));
    }
    let mut builder = TestServer::builder()
        .nodes(args.nodes)
        .port(args.port)
        .auto_create_topics(args.auto_create_topics);
    if let Some(dir) = &args.data_dir {
        builder = builder.data_dir(dir.clone());
    }
    let server = builder.start().await.map_err(CliError::failed)?;
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
    tokio::signal::ctrl_c().await.map_err(CliError::failed)?;
    eprintln!("stopping");
    server.shutdown().await;
    Ok(())
}

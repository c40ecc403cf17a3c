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
    /// Keep the data in this directory so that it survives a restart (default: in memory):
    /// topics and their records, the consumer groups' committed offsets (both group
    /// protocols, and those of committed transactions) and the transaction coordinator's
    /// state. Group membership is not kept: members rejoin after a restart.
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

fn read(path: &std::path::Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))
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
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        builder = builder.tls(read(cert)?, read(key)?);
    }
    if let Some(ca) = &args.tls_client_ca {
        builder = builder.tls_client_ca(read(ca)?);
    }
    for spec in &args.sasl_users {
        builder = builder
            .sasl_user_spec(spec)
            .map_err(|e| CliError::usage(format!("--sasl-user {spec:?}: {e}")))?;
    }
    for spec in &args.acls {
        builder = builder
            .acl_spec(spec)
            .map_err(|e| CliError::usage(format!("--acl {spec:?}: {e}")))?;
    }
    for principal in &args.super_users {
        builder = builder.super_user(principal.clone());
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

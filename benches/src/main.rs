//! `compare`: throughput of our client (`wire` and the facade's stream module) against
//! `rdkafka` (and `rskafka` where it has the feature) on the same broker, in one run.
//!
//! ```text
//! cargo run --release -p kafka-persistence-benches --bin compare -- \
//!     --broker testserver|kafka|<bootstrap> [--bootstrap host:port] [--records N] [--runs R] \
//!     [--partitions P] [--workloads produce-fetch,group-consume,at-least-once,transactional] \
//!     [--clients wire,rskafka,rdkafka] [--json] [--tls] [--ssl-ca-location ca.pem]
//! ```
//!
//! Workloads (one module each; see `benches/README.md`):
//! - `produce-fetch` ([`produce_fetch`]): produce N records of 100 bytes with acks=all to a
//!   single-partition topic, then fetch them back (rows `produce`, `fetch`);
//! - `group-consume` ([`group_consume`]): one consumer group member reads N records from a
//!   P-partition topic;
//! - `at-least-once` ([`at_least_once`]): consume in a group, transform, produce, commit every
//!   100 ms;
//! - `transactional` ([`transactional`]): the same exactly once, one transaction every 100 ms.
//!
//! The group workloads check their result (every record arrived exactly once, transformed,
//! and the group's offsets committed to the end), so a fast wrong answer fails instead of
//! winning. rskafka has no consumer groups and takes part in `produce-fetch` only.
//!
//! Every figure is the median of `--runs` runs (at least 3), clients interleaved run by run.
//! The table gives medians in records per second, the ratio wire/rdkafka per row, and the
//! ratio transactional/at-least-once per client; `--json` prints the same (with every run's
//! figure) as one JSON object instead. A client run that fails counts as missing (`n/a`,
//! `null`) and its error goes to stderr.
//!
//! `--tls` runs everything over TLS (`security.protocol=SSL`, the broker's certificate
//! checked against a private CA, hostname verification on): the embedded testserver then
//! serves TLS with a certificate from a CA made here by rcgen; with an external broker give
//! the CA's PEM file as `--ssl-ca-location`. rskafka is built without TLS support here.

mod at_least_once;
mod common;
mod group_consume;
mod produce_fetch;
mod report;
mod transactional;

use clap::{Parser, ValueEnum};
use kafka_persistence_testserver::{CertificateAuthority, TestServer};
use kafka_persistence_wire::Client;
use serde_json::json;

use common::{prepare_input, BoxError, Security};
use report::Row;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Wire,
    Rskafka,
    Rdkafka,
}

impl Which {
    /// Its column in the report.
    fn column(self) -> usize {
        match self {
            Which::Wire => 0,
            Which::Rskafka => 1,
            Which::Rdkafka => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    ProduceFetch,
    GroupConsume,
    AtLeastOnce,
    Transactional,
}

#[derive(Debug, Parser)]
#[command(about = "Client throughput: wire vs rskafka vs rdkafka, on one broker")]
struct Args {
    /// The broker: `testserver` (embedded, started here), `kafka` (at `--bootstrap`), or a
    /// bootstrap address (`host:port[,host:port]`).
    #[arg(long, default_value = "testserver")]
    broker: String,
    /// Bootstrap servers for `--broker kafka`.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Records per run and client.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Runs per client (the median is reported; at least 3).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Partitions of the group workloads' input and output topics.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Workloads to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = vec![
        Workload::ProduceFetch, Workload::GroupConsume, Workload::AtLeastOnce, Workload::Transactional,
    ])]
    workloads: Vec<Workload>,
    /// Run over TLS (see the module docs).
    #[arg(long)]
    tls: bool,
    /// The CA certificate (PEM file) of an external broker's TLS listener (implies `--tls`).
    #[arg(long)]
    ssl_ca_location: Option<std::path::PathBuf>,
    /// Clients to measure (default: all three).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = vec![Which::Wire, Which::Rskafka, Which::Rdkafka])]
    clients: Vec<Which>,
    /// Print the results as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

/// Runs one client once on one workload: the figures of its rows, in row order.
async fn run_once(
    workload: Workload,
    which: Which,
    admin: &Client,
    bootstrap: &str,
    sec: &Security,
    args: &Args,
) -> Result<Vec<f64>, BoxError> {
    let n = args.records;
    if workload == Workload::ProduceFetch {
        let r = match which {
            Which::Wire => produce_fetch::run_wire(admin, bootstrap, sec, n).await,
            Which::Rskafka => produce_fetch::run_rskafka(admin, bootstrap, sec, n).await,
            Which::Rdkafka => produce_fetch::run_rdkafka(admin, bootstrap, sec, n).await,
        }?;
        return Ok(vec![r.produce, r.fetch]);
    }
    if which == Which::Rskafka {
        return Err("rskafka has no consumer groups".into());
    }
    // A fresh input per client and run, written the same way for every client (not timed).
    let input = prepare_input(admin, bootstrap, sec, "in", args.partitions, n).await?;
    let r = match (workload, which) {
        (Workload::GroupConsume, Which::Wire) => group_consume::run_wire(&input).await,
        (Workload::GroupConsume, _) => group_consume::run_rdkafka(&input).await,
        (Workload::AtLeastOnce, Which::Wire) => at_least_once::run_wire(&input).await,
        (Workload::AtLeastOnce, _) => at_least_once::run_rdkafka(&input, admin).await,
        (Workload::Transactional, Which::Wire) => transactional::run_wire(&input).await,
        (_, _) => transactional::run_rdkafka(&input, admin).await,
    };
    let _ = admin.delete_topics(&[input.topic]).await;
    Ok(vec![r?])
}

fn rows_of(workload: Workload) -> Vec<Row> {
    match workload {
        Workload::ProduceFetch => vec![Row::new("produce"), Row::new("fetch")],
        Workload::GroupConsume => vec![Row::new("group-consume")],
        Workload::AtLeastOnce => vec![Row::new("at-least-once")],
        Workload::Transactional => vec![Row::new("transactional")],
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    if args.runs < 3 {
        return Err("--runs must be at least 3 (the median of 3 or more runs is reported)".into());
    }
    if args.records == 0 {
        return Err("--records must be positive".into());
    }
    if args.partitions < 1 {
        return Err("--partitions must be positive".into());
    }
    let tls = args.tls || args.ssl_ca_location.is_some();
    // Keep the server alive for the whole bench.
    let (_server, bootstrap, sec) = match args.broker.as_str() {
        "testserver" => {
            let mut builder = TestServer::builder();
            let mut sec = Security::default();
            if tls {
                let ca = CertificateAuthority::new("bench CA")?;
                let cert = ca.issue_server(&["127.0.0.1", "localhost"])?;
                builder = builder.tls(&cert.cert_pem, &cert.key_pem);
                sec.ca_pem = Some(ca.cert_pem().to_owned());
            }
            let server = builder.start().await?;
            let b = server.bootstrap_servers();
            (Some(server), b, sec)
        }
        external => {
            let bootstrap = match external {
                "kafka" => args.bootstrap.clone(),
                b => b.to_owned(),
            };
            let ca_pem = match (&args.ssl_ca_location, tls) {
                (Some(path), _) => Some(std::fs::read_to_string(path)?),
                (None, true) => {
                    return Err("an external broker with --tls needs --ssl-ca-location".into())
                }
                (None, false) => None,
            };
            (None, bootstrap, Security { ca_pem })
        }
    };
    let admin = Client::connect(sec.wire(&bootstrap, "bench-admin")).await?;

    let mut rows: Vec<Row> = Vec::new();
    for &workload in &args.workloads {
        let first = rows.len();
        rows.extend(rows_of(workload));
        for run in 0..args.runs {
            // Interleave the clients so that drift in the machine's load hits all of them alike.
            for which in [Which::Wire, Which::Rskafka, Which::Rdkafka] {
                if !args.clients.contains(&which)
                    || (which == Which::Rskafka && workload != Workload::ProduceFetch)
                {
                    continue;
                }
                match run_once(workload, which, &admin, &bootstrap, &sec, &args).await {
                    Ok(figures) => {
                        let shown: Vec<String> = rows[first..]
                            .iter()
                            .zip(&figures)
                            .map(|(r, f)| format!("{} {f:.0} rec/s", r.name))
                            .collect();
                        eprintln!("run {} {which:?}: {}", run + 1, shown.join(", "));
                        for (row, f) in rows[first..].iter_mut().zip(figures) {
                            row.runs[which.column()].push(f);
                        }
                    }
                    Err(e) => eprintln!("run {} {which:?} {workload:?} failed: {e}", run + 1),
                }
            }
        }
    }
    let over = if tls { " over TLS" } else { "" };
    let broker = if _server.is_some() {
        "embedded testserver".to_owned()
    } else {
        bootstrap.clone()
    };
    if args.json {
        let settings = json!({
            "broker": broker,
            "tls": tls,
            "records": args.records,
            "runs": args.runs,
            "partitions": args.partitions,
            "commit_interval_ms": common::COMMIT_INTERVAL.as_millis() as u64,
        });
        println!("{}", report::json(&rows, settings));
    } else {
        let header = format!(
            "{broker}{over}: {} records x {} runs, {} partitions (group workloads), commits every {} ms",
            args.records,
            args.runs,
            args.partitions,
            common::COMMIT_INTERVAL.as_millis()
        );
        print!("{}", report::table(&rows, &header));
    }
    Ok(())
}

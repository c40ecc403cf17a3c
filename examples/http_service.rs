//! An HTTP service (axum) whose handlers share one `Entities` runtime: each request asks the
//! account's handle; requests for one account are applied one at a time, different accounts
//! in parallel. Runs on the embedded test broker, sends itself two requests and exits; with
//! `--serve` it keeps serving until Ctrl-C:
//!
//! ```sh
//! cargo run --example http_service -- --serve
//! curl -X POST localhost:PORT/accounts/alice/deposit/10
//! curl localhost:PORT/accounts/alice
//! ```

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use kafka_persistence::entities::{Entities, EntitiesConfig};
use kafka_persistence::entity::{EntityError, Handled};
use kafka_persistence::journal::{Journal, JournalConfig};
use kafka_persistence::snapshot::{SnapshotConfig, SnapshotStore};
use kafka_persistence::testserver::TestServer;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "shared/bank.rs"]
mod bank;
use bank::{Account, AccountCommand, BankAccount};

type Reply = Result<Json<Value>, (StatusCode, String)>;

/// A failed ask: the entity is recovering or the journal is unavailable; the client retries.
fn unavailable(e: EntityError) -> (StatusCode, String) {
    (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

async fn command(accounts: &Entities<BankAccount>, id: &str, command: AccountCommand) -> Reply {
    match accounts.ask(id, command).await.map_err(unavailable)? {
        Handled::Persisted { sequence_nr } => Ok(Json(json!({ "sequence_nr": sequence_nr }))),
        Handled::Refused(why) => Err((StatusCode::CONFLICT, why)),
    }
}

async fn deposit(
    State(accounts): State<Entities<BankAccount>>,
    Path((id, amount)): Path<(String, u64)>,
) -> Reply {
    command(&accounts, &id, AccountCommand::Deposit(amount)).await
}

async fn withdraw(
    State(accounts): State<Entities<BankAccount>>,
    Path((id, amount)): Path<(String, u64)>,
) -> Reply {
    command(&accounts, &id, AccountCommand::Withdraw(amount)).await
}

async fn balance(State(accounts): State<Entities<BankAccount>>, Path(id): Path<String>) -> Reply {
    let balance = accounts
        .entity(id.clone())
        .state(|a: &Account| a.balance)
        .await
        .map_err(unavailable)?;
    Ok(Json(json!({ "id": id, "balance": balance })))
}

/// One HTTP/1.1 request over a plain TCP connection (the example needs no HTTP client).
async fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response.lines().last().unwrap_or_default().to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let server = TestServer::start().await?;
    let bootstrap = server.bootstrap_servers();
    let journal = Arc::new(Journal::connect(JournalConfig::new(&bootstrap)).await?);
    let store = Arc::new(SnapshotStore::connect(SnapshotConfig::new(&bootstrap)).await?);
    let accounts = Entities::new(
        journal,
        store,
        BankAccount::new(),
        EntitiesConfig::default(),
    );

    let app = Router::new()
        .route("/accounts/{id}", get(balance))
        .route("/accounts/{id}/deposit/{amount}", post(deposit))
        .route("/accounts/{id}/withdraw/{amount}", post(withdraw))
        .with_state(accounts.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    let http = tokio::spawn(async move { axum::serve(listener, app).await });

    println!(
        "{}",
        request(addr, "POST", "/accounts/alice/deposit/10").await?
    );
    println!(
        "{}",
        request(addr, "POST", "/accounts/alice/withdraw/99").await?
    );
    println!("{}", request(addr, "GET", "/accounts/alice").await?);
    if std::env::args().any(|a| a == "--serve") {
        tokio::signal::ctrl_c().await?;
    }
    http.abort();
    accounts.shutdown().await;
    Ok(())
}

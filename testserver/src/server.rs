//! Listeners and connections.
//!
//! One task per connection: read one frame, handle it, write the answer, repeat. Kafka's
//! per-connection ordering falls out of that (the next request is read only after the previous
//! one was answered; TCP buffers the client's pipelined requests meanwhile). A frame that does
//! not decode closes the connection, as Kafka does. A panic inside a handler is caught, logged
//! and closes only that connection.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::api::{self, Ctx, Gate};
use crate::auth::Session;
use crate::cluster::{lock, Action, Cluster};
use crate::protocol::{decode_request, encode_response, MAX_FRAME_SIZE};

/// Binds a listener on `host:port` (port 0 = any free port).
pub(crate) async fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind((host, port)).await
}

/// Starts serving `listener` as node `node_id` and marks the node running.
pub(crate) fn serve(cluster: &Arc<Cluster>, node_id: i32, listener: TcpListener) {
    let Some(node) = cluster.node(node_id) else {
        return;
    };
    let c = Arc::clone(cluster);
    let mut slot = lock(&node.listener);
    let handle = tokio::spawn(accept_loop(c, node_id, listener));
    if let Some(old) = slot.replace(handle) {
        old.abort();
    }
    node.running.store(true, Ordering::Release);
}

async fn accept_loop(cluster: Arc<Cluster>, node_id: i32, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(node_id, error = %e, reason = "accept failed", "retrying in 10 ms");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(node) = cluster.node(node_id) else {
            return;
        };
        let id = cluster.conn_counter.fetch_add(1, Ordering::Relaxed);
        let c = Arc::clone(&cluster);
        // Register under the lock so the task's own removal cannot run first.
        let mut conns = lock(&node.conns);
        let handle = tokio::spawn(async move {
            tracing::trace!(node_id, %peer, "connection opened");
            open_connection(&c, node_id, stream, format!("/{}", peer.ip())).await;
            if let Some(n) = c.node(node_id) {
                lock(&n.conns).remove(&id);
            }
        });
        conns.insert(id, handle.abort_handle());
    }
}

/// How long a client may take over the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs TLS on the listener if configured (the client certificate names the principal),
/// then serves the connection.
/// `client_host` is the peer's address as Kafka prints it (`/127.0.0.1`), for DescribeGroups.
async fn open_connection(
    cluster: &Arc<Cluster>,
    node_id: i32,
    stream: TcpStream,
    client_host: String,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "set_nodelay failed");
    }
    let Some(tls) = cluster.settings.tls.clone() else {
        let session = Session::new(&cluster.settings.auth, None);
        return serve_connection(cluster, node_id, stream, session, client_host).await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(node_id, error = %e, reason = "TLS handshake failed", "closing connection");
            return;
        }
        Err(_) => {
            tracing::debug!(
                node_id,
                reason = "TLS handshake timed out",
                "closing connection"
            );
            return;
        }
    };
    let principal = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(crate::tls::principal_of);
    let session = Session::new(&cluster.settings.auth, principal);
    serve_connection(cluster, node_id, stream, session, client_host).await;
}

/// Encodes and writes one response; false if the connection must close.
async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    wbuf: &mut BytesMut,
    api_key: i16,
    version: i16,
    correlation_id: i32,
    body: &kafka_protocol::messages::ResponseKind,
) -> bool {
    wbuf.clear();
    let Ok(key) = kafka_protocol::messages::ApiKey::try_from(api_key) else {
        return false;
    };
    if let Err(e) = encode_response(key, version, correlation_id, body, wbuf) {
        tracing::error!(api_key, error = %e, "cannot encode response; closing connection");
        return false;
    }
    stream.write_all(wbuf).await.is_ok() && stream.flush().await.is_ok()
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    cluster: &Arc<Cluster>,
    node_id: i32,
    mut stream: S,
    mut session: Session,
    client_host: String,
) {
    let ctx = Ctx {
        cluster: Arc::clone(cluster),
        node_id,
        client_host,
    };
    let mut rbuf = BytesMut::new();
    let mut wbuf = BytesMut::with_capacity(16 * 1024);
    loop {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let len = i32::from_be_bytes(len);
        let Ok(len) = usize::try_from(len) else {
            tracing::debug!(
                node_id,
                len,
                reason = "negative frame length",
                "closing connection"
            );
            return;
        };
        if len > MAX_FRAME_SIZE {
            tracing::debug!(
                node_id,
                len,
                reason = "frame too large",
                "closing connection"
            );
            return;
        }
        rbuf.clear();
        rbuf.resize(len, 0);
        if stream.read_exact(&mut rbuf[..]).await.is_err() {
            return;
        }
        let frame = rbuf.split().freeze();
        let (header, request) = match decode_request(frame) {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(node_id, error = %e, reason = "undecodable request", "closing connection");
                return;
            }
        };
        let api_key = header.request_api_key;
        match api::gate(cluster, &mut session, &header, &request) {
            Gate::Pass => {}
            Gate::Close(reason) => {
                tracing::debug!(node_id, api_key, reason, "closing connection");
                return;
            }
            Gate::Respond(version, body, close) => {
                cluster.count(api_key);
                let sent = respond(
                    &mut stream,
                    &mut wbuf,
                    api_key,
                    version,
                    header.correlation_id,
                    &body,
                )
                .await;
                if !sent || close {
                    return;
                }
                continue;
            }
        }
        let action = cluster.take_action(api_key);
        let response = match action {
            Action::CloseBeforeHandling => {
                tracing::debug!(
                    node_id,
                    api_key,
                    reason = "injected fault",
                    "closing before handling"
                );
                return;
            }
            Action::Error(code) => api::error_response(&header, &request, code),
            Action::Handle | Action::DropResponse => {
                match AssertUnwindSafe(api::handle(&ctx, &header, request))
                    .catch_unwind()
                    .await
                {
                    Ok(r) => r,
                    Err(_) => {
                        tracing::error!(node_id, api_key, "handler panicked; closing connection");
                        return;
                    }
                }
            }
        };
        cluster.count(api_key);
        if action == Action::DropResponse {
            tracing::debug!(
                node_id,
                api_key,
                reason = "injected fault",
                "dropping response and closing"
            );
            return;
        }
        let Some((version, body)) = response else {
            continue; // acks=0
        };
        let latency = cluster.latency_us.load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(Duration::from_micros(latency)).await;
        }
        wbuf.clear();
        let Ok(key) = kafka_protocol::messages::ApiKey::try_from(api_key) else {
            return;
        };
        if let Err(e) = encode_response(key, version, header.correlation_id, &body, &mut wbuf) {
            tracing::error!(node_id, api_key, error = %e, "cannot encode response; closing connection");
            return;
        }
        if stream.write_all(&wbuf).await.is_err() || stream.flush().await.is_err() {
            return;
        }
        if wbuf.capacity() > 4 * 1024 * 1024 {
            wbuf = BytesMut::with_capacity(16 * 1024);
        }
    }
}

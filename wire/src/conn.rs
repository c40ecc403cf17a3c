//! One multiplexed TCP connection to one broker.
//!
//! - Requests carry correlation ids; a map correlation id -> waiter routes each response.
//!   A waiter is either a oneshot (for `async` callers) or a callback run on the reader task
//!   (the producer's hot path: no extra task hop between the socket and the batch bookkeeping).
//! - Frames are written whole by a writer task. A caller only hands a complete frame to the
//!   writer's channel, so cancelling the caller can never leave half a frame on the socket.
//! - A reader task reads length-prefixed frames (size checked before allocating) and routes
//!   them. Responses for entries that are gone (caller dropped its future) are discarded.
//! - Any I/O or framing error, and any request timeout (as the Java client does), poisons the
//!   connection: every request in flight fails, new requests fail at once, and the pool opens
//!   a new connection on next use.
//! - The stream comes from [`transport::establish`] (TCP, TLS, SASL); then each connection
//!   negotiates versions with ApiVersions before it is used (KIP-511 fallback:
//!   on UNSUPPORTED_VERSION the body is read as v0 and the request retried at the advertised
//!   maximum, accepting only a strictly lower version, so a broker cannot loop us).
//! - Re-authentication (KIP-368): when SASL granted a session lifetime, a task runs the SASL
//!   exchange again on the live connection at a random point in 85-95% of the lifetime (as
//!   the Java client does). Meanwhile new requests are held back (queued in order, deadlines
//!   running) and sent right after it, so the broker sees nothing but SaslHandshake and
//!   SaslAuthenticate until it is done; requests already in flight are answered first (the
//!   broker serves a connection's requests in order) and are not failed. A failed
//!   re-authentication poisons the connection (the pool opens a new one).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn, Instrument};

use crate::error::{Error, ErrorCode};
use crate::frame::{FrameError, FrameReader};
use crate::protocol::{self, ProtocolError};
// A poisoned state lock only means a callback panicked; the map itself is still consistent.
use crate::sync::lock;
use crate::transport::{self, Reader, Security, Writer};

/// Callback invoked on the reader task with a response frame (or the failure).
pub(crate) type Callback = Box<dyn FnOnce(Result<Bytes, Error>) + Send>;

enum Waiter {
    Oneshot(oneshot::Sender<Result<Bytes, Error>>),
    Callback(Callback),
}

impl Waiter {
    fn complete(self, r: Result<Bytes, Error>) {
        match self {
            Waiter::Oneshot(tx) => {
                let _ = tx.send(r);
            }
            Waiter::Callback(cb) => cb(r),
        }
    }
}

struct Entry {
    waiter: Waiter,
    deadline: Instant,
    api: ApiKey,
}

struct State {
    /// `Some` once the connection is poisoned: the reason every later request fails with.
    failed: Option<Error>,
    pending: HashMap<i32, Entry>,
    /// `Some` while re-authenticating: the frames submitted meanwhile, in order.
    held: Option<Vec<Bytes>>,
}

/// Counters shared by all connections of a client.
#[derive(Debug, Default)]
pub(crate) struct ConnStats {
    pub(crate) opened: std::sync::atomic::AtomicU64,
    pub(crate) reauthentications: std::sync::atomic::AtomicU64,
}

/// The API versions this client can speak: (api, min, max).
pub(crate) const CLIENT_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 0, 4),
    // Moving leaders (wire::leaders).
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    // Consumer groups (classic protocol).
    // v9: the member epoch of the consumer protocol as the generation.
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 1, 7),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    // Transactions (the client versions; newer ones are KIP-890's).
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    // The consumer group protocol (KIP-848); v1: the member chooses its member id.
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// Highest ApiVersions version we send first.
const API_VERSIONS_MAX: i16 = 3;

/// Versions negotiated with one broker: per api key, the highest version both support.
#[derive(Debug, Clone, Default)]
pub(crate) struct Versions {
    map: HashMap<i16, i16>,
}

impl Versions {
    /// Intersects the broker's advertised ranges with [`CLIENT_VERSIONS`].
    pub(crate) fn negotiate(broker: &[(i16, i16, i16)]) -> Versions {
        let mut map = HashMap::new();
        for &(api, min, max) in CLIENT_VERSIONS {
            if let Some(&(_, bmin, bmax)) = broker.iter().find(|(k, _, _)| *k == api as i16) {
                let hi = max.min(bmax);
                if hi >= min.max(bmin) {
                    map.insert(api as i16, hi);
                }
            }
        }
        Versions { map }
    }

    /// The version to use for `api`, if the broker and we share one.
    pub(crate) fn get(&self, api: ApiKey) -> Option<i16> {
        self.map.get(&(api as i16)).copied()
    }
}

/// Connection parameters.
#[derive(Debug, Clone)]
pub(crate) struct ConnConfig {
    pub(crate) client_id: String,
    pub(crate) max_frame_size: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    /// TLS and SASL (shared by all connections of a client).
    pub(crate) security: Arc<Security>,
    /// Connections opened and re-authentications, for [`crate::Client::connection_stats`].
    pub(crate) stats: Arc<ConnStats>,
}

/// A live (or poisoned) connection to one broker.
pub(crate) struct Connection {
    addr: String,
    client_id: Option<String>,
    versions: Versions,
    state: Arc<Mutex<State>>,
    writer: mpsc::UnboundedSender<Bytes>,
    next_correlation: AtomicI32,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Whether a frame waits while the connection re-authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Priority {
    /// Held back during re-authentication.
    Normal,
    /// The re-authentication's own requests.
    PastHold,
}

/// Fails the connection: records the reason and fails every waiter.
fn fail_all(state: &Mutex<State>, err: Error) {
    let drained: Vec<Entry> = {
        let mut st = lock(state);
        if st.failed.is_none() {
            st.failed = Some(err.duplicate());
        }
        st.held = None;
        st.pending.drain().map(|(_, e)| e).collect()
    };
    for e in drained {
        e.waiter.complete(Err(err.duplicate()));
    }
}

impl Connection {
    /// Connects to `addr` (TCP, TLS, SASL), negotiates versions, and starts the reader,
    /// writer and timeout tasks.
    pub(crate) async fn connect(addr: &str, cfg: &ConnConfig) -> Result<Arc<Connection>, Error> {
        let client_id = (!cfg.client_id.is_empty()).then(|| cfg.client_id.clone());
        let (mut rd, mut wr, lifetime) = transport::establish(
            addr,
            client_id.as_deref(),
            &cfg.security,
            cfg.connect_timeout,
        )
        .await?;
        let versions = tokio::time::timeout(
            cfg.request_timeout,
            negotiate(
                addr,
                client_id.as_deref(),
                cfg.max_frame_size,
                &mut rd,
                &mut wr,
            ),
        )
        .await
        .map_err(|_| Error::Timeout {
            what: format!("ApiVersions with {addr}"),
            after: cfg.request_timeout,
        })??;
        let state = Arc::new(Mutex::new(State {
            failed: None,
            pending: HashMap::new(),
            held: None,
        }));
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer_task(addr.to_owned(), wr, rx, Arc::clone(&state)));
        tokio::spawn(reader_task(
            addr.to_owned(),
            rd,
            cfg.max_frame_size,
            Arc::clone(&state),
        ));
        tokio::spawn(timeout_task(
            addr.to_owned(),
            Arc::downgrade(&state),
            cfg.request_timeout,
        ));
        debug!(broker = addr, ?lifetime, "connected");
        cfg.stats.opened.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Connection {
            addr: addr.to_owned(),
            client_id,
            versions,
            state,
            writer: tx,
            next_correlation: AtomicI32::new(1),
        });
        if let Some(lifetime) = lifetime {
            tokio::spawn(crate::reauth::run(
                Arc::downgrade(&conn),
                lifetime,
                cfg.clone(),
            ));
        }
        Ok(conn)
    }

    /// Holds back the requests submitted from now on (re-authentication begins).
    pub(crate) fn hold(&self) {
        let mut st = lock(&self.state);
        if st.held.is_none() {
            st.held = Some(Vec::new());
        }
    }

    /// Sends the requests held back since [`Connection::hold`], in order, and stops holding.
    pub(crate) fn release(&self) {
        let mut st = lock(&self.state);
        for frame in st.held.take().unwrap_or_default() {
            if self.writer.send(frame).is_err() {
                break; // the writer is gone; its failure fails the waiters
            }
        }
    }

    /// Fails the connection with `err` (every request in flight or held fails).
    pub(crate) fn fail(&self, err: Error) {
        fail_all(&self.state, err);
    }

    /// Sends a typed request past the re-authentication hold (the SASL exchange itself)
    /// and decodes its response.
    pub(crate) async fn request_unheld<Req, Resp>(
        &self,
        api: ApiKey,
        version: i16,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, Error>
    where
        Req: Encodable + HeaderVersion + Sync,
        Resp: Decodable + HeaderVersion + Send,
    {
        let (cid, frame) = self.encode(api, version, body)?;
        let frame = self
            .await_frame(api, cid, frame, timeout, Priority::PastHold)
            .await?;
        let (_, body) = protocol::decode_response::<Resp>(api, version, frame)?;
        Ok(body)
    }

    /// `host:port` of the broker.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the connection has failed (the pool replaces it).
    pub(crate) fn is_failed(&self) -> bool {
        lock(&self.state).failed.is_some() || self.writer.is_closed()
    }

    /// The version to use for `api`, or [`Error::UnsupportedApi`].
    pub(crate) fn version(&self, api: ApiKey) -> Result<i16, Error> {
        self.versions.get(api).ok_or_else(|| Error::UnsupportedApi {
            broker: self.addr.clone(),
            api: api_name(api),
            min_version: CLIENT_VERSIONS
                .iter()
                .find(|(k, _, _)| *k == api)
                .map(|(_, min, _)| *min)
                .unwrap_or(0),
        })
    }

    fn correlation_id(&self) -> i32 {
        // Wraps at i32::MAX back to 1; ids in flight are far fewer than 2^31.
        let id = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        if id == i32::MAX {
            self.next_correlation.store(1, Ordering::Relaxed);
        }
        id & i32::MAX
    }

    /// Encodes a request into a frame. Returns the correlation id and the frame.
    pub(crate) fn encode<R: Encodable + HeaderVersion>(
        &self,
        api: ApiKey,
        version: i16,
        body: &R,
    ) -> Result<(i32, Bytes), Error> {
        let correlation_id = self.correlation_id();
        let mut buf = BytesMut::with_capacity(64);
        protocol::encode_request(
            api,
            version,
            correlation_id,
            self.client_id.as_deref(),
            body,
            &mut buf,
        )?;
        Ok((correlation_id, buf.freeze()))
    }

    /// Registers `waiter` under `correlation_id` and hands `frame` to the writer (or holds
    /// it back while re-authenticating).
    fn submit(
        &self,
        api: ApiKey,
        correlation_id: i32,
        frame: Bytes,
        waiter: Option<Waiter>,
        timeout: Duration,
    ) -> Result<(), (Error, Option<Waiter>)> {
        self.submit_at(
            api,
            correlation_id,
            frame,
            waiter,
            timeout,
            Priority::Normal,
        )
    }

    fn submit_at(
        &self,
        api: ApiKey,
        correlation_id: i32,
        frame: Bytes,
        waiter: Option<Waiter>,
        timeout: Duration,
        priority: Priority,
    ) -> Result<(), (Error, Option<Waiter>)> {
        let mut st = lock(&self.state);
        if let Some(e) = &st.failed {
            return Err((e.duplicate(), waiter));
        }
        if let Some(w) = waiter {
            st.pending.insert(
                correlation_id,
                Entry {
                    waiter: w,
                    deadline: Instant::now() + timeout,
                    api,
                },
            );
        }
        // Sent while holding the lock: frames of one connection are queued in the order
        // their callers submitted them (the producer relies on this per partition).
        if priority == Priority::Normal {
            if let Some(held) = st.held.as_mut() {
                held.push(frame);
                return Ok(());
            }
        }
        if self.writer.send(frame).is_err() {
            let w = st.pending.remove(&correlation_id).map(|e| e.waiter);
            return Err((Error::Closed, w));
        }
        Ok(())
    }

    /// Sends a request and waits for its raw response frame.
    pub(crate) async fn send_frame(
        &self,
        api: ApiKey,
        correlation_id: i32,
        frame: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, Error> {
        self.await_frame(api, correlation_id, frame, timeout, Priority::Normal)
            .await
    }

    /// Submits `frame` at `priority` and waits for its response frame (a dropped wait
    /// removes its waiter).
    async fn await_frame(
        &self,
        api: ApiKey,
        correlation_id: i32,
        frame: Bytes,
        timeout: Duration,
        priority: Priority,
    ) -> Result<Bytes, Error> {
        let (tx, rx) = oneshot::channel();
        self.submit_at(
            api,
            correlation_id,
            frame,
            Some(Waiter::Oneshot(tx)),
            timeout,
            priority,
        )
        .map_err(|(e, _)| e)?;
        let guard = RemoveOnDrop {
            state: &self.state,
            correlation_id,
        };
        let r = rx.await;
        std::mem::forget(guard);
        match r {
            Ok(r) => r,
            Err(_) => Err(Error::Closed),
        }
    }

    /// Sends a request whose response is passed to `callback` on the reader task. If the
    /// request cannot be submitted, the callback is handed back unrun with the error (so a
    /// caller holding a lock the callback needs cannot deadlock).
    pub(crate) fn try_send_with_callback(
        &self,
        api: ApiKey,
        correlation_id: i32,
        frame: Bytes,
        timeout: Duration,
        callback: Callback,
    ) -> Result<(), (Error, Callback)> {
        match self.submit(
            api,
            correlation_id,
            frame,
            Some(Waiter::Callback(callback)),
            timeout,
        ) {
            Ok(()) => Ok(()),
            Err((e, Some(Waiter::Callback(cb)))) => Err((e, cb)),
            Err((e, _)) => {
                // The writer is gone and the entry had already been failed by `fail_all`,
                // which ran the callback; report the error without a callback to run.
                Err((e, Box::new(|_| {})))
            }
        }
    }

    /// Sends a request that has no response (Produce with acks=0).
    pub(crate) fn send_frame_no_response(&self, api: ApiKey, frame: Bytes) -> Result<(), Error> {
        self.submit(api, 0, frame, None, Duration::ZERO)
            .map_err(|(e, _)| e)
    }

    /// Sends a typed request at the negotiated version and decodes the typed response.
    pub(crate) async fn request<Req, Resp>(
        &self,
        api: ApiKey,
        body: &Req,
        timeout: Duration,
    ) -> Result<(i16, Resp), Error>
    where
        Req: Encodable + HeaderVersion + Sync,
        Resp: Decodable + HeaderVersion + Send,
    {
        let version = self.version(api)?;
        let resp = self.request_at(api, version, body, timeout).await?;
        Ok((version, resp))
    }

    /// Sends a typed request at `version` and decodes the typed response.
    pub(crate) async fn request_at<Req, Resp>(
        &self,
        api: ApiKey,
        version: i16,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, Error>
    where
        Req: Encodable + HeaderVersion + Sync,
        Resp: Decodable + HeaderVersion + Send,
    {
        let (cid, frame) = self.encode(api, version, body)?;
        let span = tracing::debug_span!(
            "request",
            api = api_name(api),
            version,
            correlation_id = cid,
            broker = %self.addr,
            bytes = frame.len()
        );
        async {
            let start = Instant::now();
            let resp = self.send_frame(api, cid, frame, timeout).await;
            debug!(
                latency_us = start.elapsed().as_micros() as u64,
                ok = resp.is_ok(),
                "response"
            );
            let (_, body) = protocol::decode_response::<Resp>(api, version, resp?)?;
            Ok(body)
        }
        .instrument(span)
        .await
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Dropping the writer sender ends the writer task, which shuts the socket down. The
        // waiters still pending are failed from a separate task: the last `Arc` may be dropped
        // by code holding a lock that a response callback needs.
        let state = Arc::clone(&self.state);
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move { fail_all(&state, Error::Closed) });
            }
            Err(_) => fail_all(&state, Error::Closed),
        }
    }
}

struct RemoveOnDrop<'a> {
    state: &'a Mutex<State>,
    correlation_id: i32,
}

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        lock(self.state).pending.remove(&self.correlation_id);
    }
}

/// Kafka's name of an api, for errors and logs.
pub(crate) fn api_name(api: ApiKey) -> &'static str {
    match api {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::DeleteRecords => "DeleteRecords",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::OffsetCommit => "OffsetCommit",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::JoinGroup => "JoinGroup",
        ApiKey::Heartbeat => "Heartbeat",
        ApiKey::LeaveGroup => "LeaveGroup",
        ApiKey::SyncGroup => "SyncGroup",
        ApiKey::AddPartitionsToTxn => "AddPartitionsToTxn",
        ApiKey::AddOffsetsToTxn => "AddOffsetsToTxn",
        ApiKey::EndTxn => "EndTxn",
        ApiKey::TxnOffsetCommit => "TxnOffsetCommit",
        ApiKey::SaslHandshake => "SaslHandshake",
        ApiKey::SaslAuthenticate => "SaslAuthenticate",
        ApiKey::ConsumerGroupHeartbeat => "ConsumerGroupHeartbeat",
        _ => "other",
    }
}

async fn writer_task(
    addr: String,
    mut wr: Writer,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    state: Arc<Mutex<State>>,
) {
    const COALESCE: usize = 64 * 1024;
    let mut buf = BytesMut::with_capacity(COALESCE);
    while let Some(first) = rx.recv().await {
        // Coalesce small frames that are already queued into one write.
        let result: std::io::Result<()> = async {
            if first.len() >= COALESCE {
                wr.write_all(&first).await?;
            } else {
                buf.extend_from_slice(&first);
            }
            while let Ok(next) = rx.try_recv() {
                if next.len() >= COALESCE {
                    if !buf.is_empty() {
                        wr.write_all(&buf).await?;
                        buf.clear();
                    }
                    wr.write_all(&next).await?;
                } else {
                    buf.extend_from_slice(&next);
                    if buf.len() >= COALESCE {
                        wr.write_all(&buf).await?;
                        buf.clear();
                    }
                }
            }
            if !buf.is_empty() {
                wr.write_all(&buf).await?;
                buf.clear();
            }
            // A TLS stream buffers records until flushed; for TCP this is a no-op.
            wr.flush().await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            warn!(broker = %addr, error = %e, "write failed; failing connection");
            fail_all(&state, Error::io(&addr, e));
            return;
        }
        if lock(&state).failed.is_some() {
            break;
        }
    }
    let _ = wr.shutdown().await;
}

async fn reader_task(addr: String, rd: Reader, max_frame: usize, state: Arc<Mutex<State>>) {
    let mut rd = FrameReader::new(rd, max_frame);
    let err = loop {
        let frame = match rd.frame().await {
            Ok(f) => f,
            Err(FrameError::Io(e)) => break Error::io(&addr, e),
            Err(FrameError::Protocol(e)) => break Error::Protocol(e),
        };
        let cid = match protocol::peek_correlation_id(&frame) {
            Ok(c) => c,
            Err(e) => break Error::Protocol(e),
        };
        let entry = {
            let mut st = lock(&state);
            if st.failed.is_some() {
                return;
            }
            st.pending.remove(&cid)
        };
        match entry {
            Some(e) => e.waiter.complete(Ok(frame)),
            None => debug!(broker = %addr, correlation_id = cid, "response for abandoned request"),
        }
    };
    let already = lock(&state).failed.is_some();
    if !already {
        debug!(broker = %addr, error = %err, "connection lost; failing in-flight requests");
    }
    fail_all(&state, err);
}

async fn timeout_task(
    addr: String,
    state: std::sync::Weak<Mutex<State>>,
    request_timeout: Duration,
) {
    let tick = (request_timeout / 20).clamp(Duration::from_millis(5), Duration::from_millis(100));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(state) = state.upgrade() else { return };
        let now = Instant::now();
        let expired = {
            let st = lock(&state);
            if st.failed.is_some() {
                return;
            }
            st.pending
                .iter()
                .find(|(_, e)| e.deadline <= now)
                .map(|(cid, e)| (*cid, e.api))
        };
        if let Some((cid, api)) = expired {
            warn!(broker = %addr, correlation_id = cid, api = api_name(api), "request timed out; failing connection");
            // Fail the expired request with a timeout, everything else as a lost connection.
            let entry = lock(&state).pending.remove(&cid);
            if let Some(e) = entry {
                e.waiter.complete(Err(Error::Timeout {
                    what: format!("{} request to {addr}", api_name(api)),
                    after: request_timeout,
                }));
            }
            fail_all(
                &state,
                Error::io(
                    &addr,
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "connection closed after a request timed out",
                    ),
                ),
            );
            return;
        }
    }
}

/// ApiVersions exchange on the raw socket, before the connection is shared.
async fn negotiate<R, W>(
    addr: &str,
    client_id: Option<&str>,
    max_frame: usize,
    rd: &mut R,
    wr: &mut W,
) -> Result<Versions, Error>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut version = API_VERSIONS_MAX;
    let mut tried_v0 = false;
    for correlation_id in 0..4 {
        let body = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("kafka-persistence-wire"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut buf = BytesMut::new();
        protocol::encode_request(
            ApiKey::ApiVersions,
            version,
            correlation_id,
            client_id,
            &body,
            &mut buf,
        )?;
        wr.write_all(&buf)
            .await
            .map_err(|e| Error::setup_io(addr, e))?;
        wr.flush().await.map_err(|e| Error::setup_io(addr, e))?;
        let len = rd.read_i32().await.map_err(|e| {
            // franz-go's observation: a broker that hangs up on ApiVersions most likely wants
            // TLS (or speaks something else entirely) on this port.
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::setup_io(
                    addr,
                    std::io::Error::new(
                        e.kind(),
                        "the broker closed the connection instead of answering ApiVersions \
                         (does this listener expect TLS? check security.protocol)",
                    ),
                )
            } else {
                Error::setup_io(addr, e)
            }
        })?;
        // A TLS record (alert 0x15 or handshake 0x16, version 3.x) where a frame length
        // should be: the listener expects TLS.
        let tls_record = matches!(len.to_be_bytes(), [0x15 | 0x16, 0x03, _, _]);
        if tls_record && protocol::check_frame_len(len, max_frame).is_err() {
            return Err(Error::Protocol(ProtocolError::Decode {
                what: "ApiVersions response",
                message: format!(
                    "{addr} answered with a TLS record: this listener expects TLS \
                     (security.protocol=SSL or SASL_SSL)"
                ),
            }));
        }
        let len = protocol::check_frame_len(len, max_frame)?;
        let mut frame = BytesMut::zeroed(len);
        rd.read_exact(&mut frame)
            .await
            .map_err(|e| Error::setup_io(addr, e))?;
        let frame = frame.freeze();
        // Every ApiVersions response starts with correlation id (v0 header) and error code.
        let code = match frame.get(4..6) {
            Some(b) => i16::from_be_bytes([b[0], b[1]]),
            None => return Err(Error::Protocol(ProtocolError::ShortFrame(frame.len()))),
        };
        if code == ErrorCode::UNSUPPORTED_VERSION {
            // Kafka answers with a v0 body (KIP-511); tolerate a body at the version we sent.
            let resp = protocol::decode_response::<ApiVersionsResponse>(
                ApiKey::ApiVersions,
                0,
                frame.clone(),
            )
            .or_else(|_| {
                protocol::decode_response::<ApiVersionsResponse>(
                    ApiKey::ApiVersions,
                    version,
                    frame,
                )
            })
            .map(|(_, r)| r)?;
            let advertised = resp
                .api_keys
                .iter()
                .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                .map(|k| k.max_version);
            match advertised {
                Some(max) if max < version && max >= 0 => {
                    debug!(
                        broker = addr,
                        from = version,
                        to = max,
                        reason = "UNSUPPORTED_VERSION",
                        "retrying ApiVersions at the advertised version"
                    );
                    version = max;
                    continue;
                }
                None if !tried_v0 && version > 0 => {
                    debug!(
                        broker = addr,
                        reason = "UNSUPPORTED_VERSION without versions",
                        "retrying ApiVersions at v0"
                    );
                    tried_v0 = true;
                    version = 0;
                    continue;
                }
                _ => {
                    return Err(Error::broker(
                        code,
                        None,
                        None,
                        Some(format!("ApiVersions negotiation with {addr} failed")),
                    ));
                }
            }
        }
        if code != 0 {
            return Err(Error::broker(
                code,
                None,
                None,
                Some(format!("ApiVersions from {addr}")),
            ));
        }
        let (cid, resp) =
            protocol::decode_response::<ApiVersionsResponse>(ApiKey::ApiVersions, version, frame)?;
        if cid != correlation_id {
            return Err(Error::Protocol(ProtocolError::Decode {
                what: "ApiVersions response",
                message: format!("correlation id {cid}, expected {correlation_id}"),
            }));
        }
        let ranges: Vec<(i16, i16, i16)> = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        let versions = Versions::negotiate(&ranges);
        debug!(broker = addr, api_versions = version, negotiated = ?versions.map, "negotiated versions");
        return Ok(versions);
    }
    Err(Error::Protocol(ProtocolError::Decode {
        what: "ApiVersions response",
        message: format!("negotiation with {addr} did not converge"),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::ResponseKind;

    fn av(key: i16, min: i16, max: i16) -> ApiVersion {
        ApiVersion::default()
            .with_api_key(key)
            .with_min_version(min)
            .with_max_version(max)
    }

    /// A scripted broker: answers each ApiVersions request with `answers[i]` (version, body).
    async fn scripted(
        answers: Vec<(i16, ApiVersionsResponse)>,
    ) -> (Result<Versions, Error>, Vec<i16>) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (mut srd, mut swr) = tokio::io::split(server);
        let broker = tokio::spawn(async move {
            let mut seen = Vec::new();
            for (v, body) in answers {
                let Ok(len) = srd.read_i32().await else { break };
                let mut frame = vec![0u8; len as usize];
                if srd.read_exact(&mut frame).await.is_err() {
                    break;
                }
                let (header, _) = protocol::decode_request(Bytes::from(frame)).unwrap();
                seen.push(header.request_api_version);
                let mut out = BytesMut::new();
                protocol::encode_response(
                    ApiKey::ApiVersions,
                    v,
                    header.correlation_id,
                    &ResponseKind::ApiVersions(body),
                    &mut out,
                )
                .unwrap();
                swr.write_all(&out).await.unwrap();
            }
            seen
        });
        let (mut crd, mut cwr) = tokio::io::split(client);
        let r = negotiate("scripted", Some("t"), 1 << 20, &mut crd, &mut cwr).await;
        drop((crd, cwr));
        let seen = broker.await.unwrap_or_default();
        (r, seen)
    }

    #[tokio::test]
    async fn unsupported_version_retries_at_advertised_lower_version() {
        let reject = ApiVersionsResponse::default()
            .with_error_code(35)
            .with_api_keys(vec![av(18, 0, 2)]);
        let ok = ApiVersionsResponse::default().with_api_keys(vec![
            av(0, 3, 9),
            av(1, 4, 11),
            av(18, 0, 2),
        ]);
        let (r, seen) = scripted(vec![(0, reject), (2, ok)]).await;
        let v = r.unwrap();
        assert_eq!(seen, vec![3, 2]);
        assert_eq!(v.get(ApiKey::Produce), Some(9));
        assert_eq!(v.get(ApiKey::Fetch), Some(11));
    }

    #[tokio::test]
    async fn hostile_broker_cannot_loop_negotiation() {
        // Advertises the same version we just used: refused, no retry loop.
        let reject = ApiVersionsResponse::default()
            .with_error_code(35)
            .with_api_keys(vec![av(18, 0, 3)]);
        let (r, seen) = scripted(vec![(0, reject.clone()), (0, reject)]).await;
        assert!(matches!(r, Err(Error::Broker { code: 35, .. })), "{r:?}");
        assert_eq!(seen, vec![3]);
        // No key list at all: one retry at v0 (pre-KIP-511 brokers), then give up.
        let empty = ApiVersionsResponse::default().with_error_code(35);
        let (r, seen) = scripted(vec![(0, empty.clone()), (0, empty)]).await;
        assert!(r.is_err());
        assert_eq!(seen, vec![3, 0]);
    }

    #[test]
    fn negotiation_picks_highest_common_version() {
        // Kafka 4.0 advertises Produce 0..=12 but we must never pick below 3.
        let v = Versions::negotiate(&[(0, 0, 12), (1, 4, 17), (3, 0, 2), (18, 0, 4)]);
        assert_eq!(v.get(ApiKey::Produce), Some(11));
        assert_eq!(v.get(ApiKey::Fetch), Some(12));
        assert_eq!(v.get(ApiKey::Metadata), Some(2));
        assert_eq!(v.get(ApiKey::ApiVersions), Some(3));
        assert_eq!(v.get(ApiKey::ListOffsets), None);
        // A broker whose Produce tops out at 2 is not usable for producing.
        let old = Versions::negotiate(&[(0, 0, 2), (1, 0, 3)]);
        assert_eq!(old.get(ApiKey::Produce), None);
        assert_eq!(old.get(ApiKey::Fetch), None);
    }
}

#![doc = include_str!("../README.md")]
//!
//! # Skipped features (`skipped_features`)
//! Deliberate gaps (see also each `api/NN_*.rs` header):
//! - no replication: one replica per partition, so the high watermark is the log end offset
//!   and `acks=1` and `acks=-1` behave the same; `timeout_ms` of writes is ignored;
//! - no transactions (transactional produce is refused with INVALID_TXN_STATE; InitProducerId
//!   with a transactional id works, so the epoch can be bumped and fenced);
//! - no fetch sessions (KIP-227): every fetch response has session id 0, which clients treat
//!   as "sessions unsupported" and send full fetches;
//! - TLS, SASL (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER with a token list) and literal topic
//!   ACLs only (see `auth`: no group/cluster ACLs, no DENY); re-authentication (KIP-368) with
//!   `connections_max_reauth`; no quotas or throttling;
//! - no time- or size-based retention (use `set_log_start_offset` or DeleteRecords);
//! - no KIP-848 consumer groups, only the classic protocol;
//! - storage is not crash safe and producer state is not persisted (see `storage`).
#![cfg_attr(not(test), warn(missing_docs))]

mod api;
mod auth;
mod cluster;
mod compaction;
mod config;
pub mod external;
mod groups;
mod groups848;
mod log;
pub mod protocol;
mod server;
mod state_file;
mod storage;
pub mod tls;
mod txn;

pub use auth::AclOperation;
pub use kafka_persistence_wire::SaslMechanism;
pub use tls::{CertificateAuthority, CertifiedKey};

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::cluster::{lock, Cluster, Settings, TopicError};

/// Errors of the control API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Binding a port or touching the data directory failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The operation was refused with a Kafka error code (e.g. 36 TOPIC_ALREADY_EXISTS,
    /// 17 INVALID_TOPIC_EXCEPTION, 40 INVALID_CONFIG).
    #[error("refused with Kafka error {code}: {message}")]
    Kafka {
        /// The Kafka error code.
        code: i16,
        /// What was wrong.
        message: String,
    },
    /// No such topic.
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    /// No such partition.
    #[error("unknown partition {topic}-{partition}")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// No such node.
    #[error("unknown node {0}")]
    UnknownNode(i32),
    /// A builder or control argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl From<TopicError> for Error {
    fn from(e: TopicError) -> Self {
        match e {
            TopicError::Code(code, message) => Error::Kafka { code, message },
            TopicError::Io(m) => Error::Io(std::io::Error::other(m)),
        }
    }
}

/// A connection-level fault for the next `count` requests of an api (all nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Handle (apply!) the request, then close the connection without answering:
    /// the "ack lost" case.
    DropResponse {
        /// Api key, e.g. 0 for Produce.
        api_key: i16,
        /// How many requests this applies to.
        count: u32,
    },
    /// Close the connection without handling the request.
    CloseBeforeHandling {
        /// Api key, e.g. 0 for Produce.
        api_key: i16,
        /// How many requests this applies to.
        count: u32,
    },
}

impl Fault {
    pub(crate) fn api_key(&self) -> i16 {
        match self {
            Fault::DropResponse { api_key, .. } | Fault::CloseBeforeHandling { api_key, .. } => {
                *api_key
            }
        }
    }

    /// Uses one unit of the budget; true when exhausted.
    pub(crate) fn consume(&mut self) -> bool {
        match self {
            Fault::DropResponse { count, .. } | Fault::CloseBeforeHandling { count, .. } => {
                *count = count.saturating_sub(1);
                *count == 0
            }
        }
    }
}

/// A snapshot of one partition's state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionInfo {
    /// First offset still in the log.
    pub log_start_offset: i64,
    /// Next offset to be written.
    pub high_watermark: i64,
    /// Leader node id.
    pub leader: i32,
    /// Current leader epoch (bumped by every leader move).
    pub leader_epoch: i32,
    /// Number of stored record batches.
    pub record_batches: usize,
}

/// Builder for a [`TestServer`].
#[derive(Debug, Clone)]
pub struct TestServerBuilder {
    nodes: usize,
    auto_create_topics: bool,
    data_dir: Option<PathBuf>,
    port: u16,
    default_max_message_bytes: usize,
    default_partitions: i32,
    compaction_interval: Duration,
    host: String,
    /// (certificate PEM, key PEM, client CA PEM for mutual TLS).
    tls: Option<(String, String, Option<String>)>,
    auth: auth::AuthSettings,
    consumer_group_timeouts: (Duration, Duration),
    hidden_apis: Vec<i16>,
}

impl Default for TestServerBuilder {
    fn default() -> Self {
        TestServerBuilder {
            nodes: 1,
            auto_create_topics: false,
            data_dir: None,
            port: 0,
            default_max_message_bytes: 1_048_588,
            default_partitions: 1,
            compaction_interval: Duration::from_secs(5),
            host: "127.0.0.1".to_string(),
            tls: None,
            auth: auth::AuthSettings::default(),
            consumer_group_timeouts: (Duration::from_secs(45), Duration::from_secs(5)),
            hidden_apis: Vec::new(),
        }
    }
}

impl TestServerBuilder {
    /// Number of broker nodes (default 1), ids `0..n`, each on its own loopback port.
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// Whether Metadata may create unknown topics (default false). When true, a Metadata v4+
    /// request still needs `allow_auto_topic_creation`.
    pub fn auto_create_topics(mut self, enabled: bool) -> Self {
        self.auto_create_topics = enabled;
        self
    }

    /// Keep topics in files under `dir`, reloaded on start (see the `storage` module docs),
    /// with the groups' committed offsets (`__consumer_offsets`) and the transaction
    /// coordinator's state (`__transaction_state`) beside them.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The consumer group protocol's (KIP-848) member session timeout and the heartbeat
    /// interval it tells members (the broker's `group.consumer.session.timeout.ms`, default
    /// 45 s, and `group.consumer.heartbeat.interval.ms`, default 5 s).
    pub fn consumer_group_timeouts(mut self, session: Duration, heartbeat: Duration) -> Self {
        self.consumer_group_timeouts = (session, heartbeat);
        self
    }

    /// Leaves api `key` out of ApiVersions, as a broker that lacks it would (e.g. 68,
    /// ConsumerGroupHeartbeat, for a broker before Kafka 4.0).
    pub fn hide_api(mut self, key: i16) -> Self {
        self.hidden_apis.push(key);
        self
    }

    /// Port of the first node; node `i` listens on `port + i`. 0 (default) = free ports.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The broker's `message.max.bytes`, the default `max.message.bytes` of new topics.
    pub fn default_max_message_bytes(mut self, bytes: usize) -> Self {
        self.default_max_message_bytes = bytes;
        self
    }

    /// Partitions of auto-created topics and of CreateTopics with `num_partitions = -1`.
    pub fn default_partitions(mut self, n: i32) -> Self {
        self.default_partitions = n;
        self
    }

    /// How often the background compactor looks at `cleanup.policy=compact` topics
    /// (default 5 s).
    pub fn compaction_interval(mut self, every: Duration) -> Self {
        self.compaction_interval = every;
        self
    }

    /// Host advertised in Metadata and bound by the listeners (default `127.0.0.1`).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// Serves TLS on every listener with this certificate chain and private key (PEM); see
    /// [`CertificateAuthority`] to make them.
    pub fn tls(mut self, cert_pem: impl Into<String>, key_pem: impl Into<String>) -> Self {
        let ca = self.tls.take().and_then(|(_, _, ca)| ca);
        self.tls = Some((cert_pem.into(), key_pem.into(), ca));
        self
    }

    /// Requires a client certificate signed by this CA (PEM): mutual TLS. The principal of a
    /// connection is then `User:CN=<common name>`. Needs [`TestServerBuilder::tls`].
    pub fn tls_client_ca(mut self, ca_pem: impl Into<String>) -> Self {
        let (cert, key) = match self.tls.take() {
            Some((c, k, _)) => (c, k),
            None => (String::new(), String::new()),
        };
        self.tls = Some((cert, key, Some(ca_pem.into())));
        self
    }

    /// Adds a SASL user (`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`; SCRAM credentials are
    /// stored salted, 4096 iterations). Any user makes every listener require SASL; the
    /// principal is `User:<user>`.
    pub fn sasl_user(
        mut self,
        mechanism: SaslMechanism,
        user: impl AsRef<str>,
        password: impl AsRef<str>,
    ) -> Self {
        self.auth
            .add_user(mechanism, user.as_ref(), password.as_ref());
        self
    }

    /// Accepts this OAUTHBEARER token as principal `User:<principal>` (and enables SASL).
    pub fn oauthbearer_token(
        mut self,
        token: impl Into<String>,
        principal: impl Into<String>,
    ) -> Self {
        self.auth.tokens.insert(token.into(), principal.into());
        self
    }

    /// Allows `principal` (e.g. `User:alice`) `operation` on `topic` (a name, or `*` for
    /// all). Any ACL turns authorization on: operations without a matching ACL are refused
    /// with TOPIC_AUTHORIZATION_FAILED.
    pub fn acl(
        mut self,
        principal: impl Into<String>,
        operation: AclOperation,
        topic: impl Into<String>,
    ) -> Self {
        self.auth
            .acls
            .entry(principal.into())
            .or_default()
            .insert((operation, topic.into()));
        self.auth.authorize = true;
        self
    }

    /// [`TestServerBuilder::sasl_user`] from `MECHANISM:USER:PASSWORD` (the `serve` flag).
    pub fn sasl_user_spec(self, spec: &str) -> Result<Self, Error> {
        let mut parts = spec.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(user), Some(password)) if !user.is_empty() => {
                let m: SaslMechanism = m.parse().map_err(Error::InvalidArgument)?;
                Ok(self.sasl_user(m, user, password))
            }
            _ => Err(Error::InvalidArgument(
                "a SASL user is MECHANISM:USER:PASSWORD".to_owned(),
            )),
        }
    }

    /// [`TestServerBuilder::acl`] from `PRINCIPAL:OPERATION:TOPIC`, e.g.
    /// `User:alice:write:events` (the `serve` flag).
    pub fn acl_spec(self, spec: &str) -> Result<Self, Error> {
        let mut parts = spec.rsplitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(topic), Some(op), Some(principal))
                if !topic.is_empty() && !principal.is_empty() =>
            {
                let op: AclOperation = op.parse().map_err(Error::InvalidArgument)?;
                Ok(self.acl(principal, op, topic))
            }
            _ => Err(Error::InvalidArgument(
                "an ACL is PRINCIPAL:OPERATION:TOPIC, e.g. User:alice:write:events".to_owned(),
            )),
        }
    }

    /// Kafka's `connections.max.reauth.ms` (KIP-368): every SASL session lasts `lifetime`,
    /// reported to the client in SaslAuthenticate v1+; a connection must re-authenticate
    /// (SaslHandshake and SaslAuthenticate again, same mechanism and principal) before it
    /// ends, or the next request after it closes the connection.
    pub fn connections_max_reauth(mut self, lifetime: Duration) -> Self {
        self.auth.max_reauth = Some(lifetime);
        self
    }

    /// Lets `principal` do anything (and turns authorization on).
    pub fn super_user(mut self, principal: impl Into<String>) -> Self {
        self.auth.super_users.insert(principal.into());
        self.auth.authorize = true;
        self
    }

    /// Binds the listeners, loads the data directory and starts serving.
    pub async fn start(self) -> Result<TestServer, Error> {
        if self.nodes == 0 || self.nodes > 64 {
            return Err(Error::InvalidArgument(format!(
                "nodes must be 1..=64, got {}",
                self.nodes
            )));
        }
        if self.default_partitions <= 0 {
            return Err(Error::InvalidArgument(
                "default_partitions must be > 0".into(),
            ));
        }
        let mut listeners = Vec::with_capacity(self.nodes);
        for i in 0..self.nodes {
            let port = if self.port == 0 {
                0
            } else {
                u16::try_from(usize::from(self.port) + i)
                    .map_err(|_| Error::InvalidArgument("port range overflows".into()))?
            };
            listeners.push(server::bind(&self.host, port).await?);
        }
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<Result<_, _>>()?;
        let tls = match &self.tls {
            Some((cert, key, ca)) => Some(tls::server_config(cert, key, ca.as_deref())?),
            None => None,
        };
        let settings = Settings {
            tls,
            auth: self.auth,
            auto_create_topics: self.auto_create_topics,
            default_partitions: self.default_partitions,
            default_max_message_bytes: self.default_max_message_bytes,
            data_dir: self.data_dir,
            host: self.host,
            consumer_group_timeouts: self.consumer_group_timeouts,
            hidden_apis: self.hidden_apis,
        };
        let cluster = Arc::new(Cluster::new(settings, &ports));
        cluster.load_from_disk()?;
        cluster.groups.load()?;
        cluster.load_transactions()?;
        for (i, l) in listeners.into_iter().enumerate() {
            server::serve(&cluster, i as i32, l);
        }
        let compactor = compaction::spawn_background(&cluster, self.compaction_interval);
        let txn_expiry = txn::spawn_expiry(&cluster);
        tracing::debug!(bootstrap = %bootstrap(&cluster), "testserver started");
        Ok(TestServer {
            cluster,
            compactor,
            txn_expiry,
            shutdown: Arc::new(Notify::new()),
        })
    }
}

fn bootstrap(cluster: &Cluster) -> String {
    cluster
        .nodes
        .iter()
        .map(|n| format!("{}:{}", cluster.settings.host, n.port))
        .collect::<Vec<_>>()
        .join(",")
}

/// A running in-process Kafka broker or cluster. Dropping it stops every node.
#[derive(Debug)]
pub struct TestServer {
    cluster: Arc<Cluster>,
    compactor: AbortHandle,
    txn_expiry: AbortHandle,
    shutdown: Arc<Notify>,
}

impl TestServer {
    /// Starts one node on `127.0.0.1:<free port>` with default settings.
    pub async fn start() -> Result<TestServer, Error> {
        TestServerBuilder::default().start().await
    }

    /// A builder for more nodes, a port, a data directory, auto-creation.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::default()
    }

    /// `"127.0.0.1:P1,127.0.0.1:P2"`: every node, running or not.
    pub fn bootstrap_servers(&self) -> String {
        bootstrap(&self.cluster)
    }

    /// The node ids, `0..n`.
    pub fn node_ids(&self) -> Vec<i32> {
        self.cluster.nodes.iter().map(|n| n.id).collect()
    }

    /// Creates a topic directly (test setup), with Kafka's validation of name and configs.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<(), Error> {
        let configs: Vec<(String, String)> = configs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        self.cluster.create_topic(name, partitions, &configs)?;
        Ok(())
    }

    /// Deletes a topic directly.
    pub async fn delete_topic(&self, name: &str) -> Result<(), Error> {
        self.cluster.delete_topic(name)?;
        Ok(())
    }

    fn partition(&self, topic: &str, partition: i32) -> Result<Arc<cluster::Partition>, Error> {
        let t = self
            .cluster
            .topic(topic)
            .ok_or_else(|| Error::UnknownTopic(topic.to_string()))?;
        t.partition(partition)
            .cloned()
            .ok_or_else(|| Error::UnknownPartition {
                topic: topic.to_string(),
                partition,
            })
    }

    /// Moves a partition's leadership to `node_id` and bumps its leader epoch; clients that
    /// still talk to the old leader get NOT_LEADER_OR_FOLLOWER.
    pub async fn move_leader(
        &self,
        topic: &str,
        partition: i32,
        node_id: i32,
    ) -> Result<(), Error> {
        if self.cluster.node(node_id).is_none() {
            return Err(Error::UnknownNode(node_id));
        }
        let p = self.partition(topic, partition)?;
        {
            let mut log = lock(&p.log);
            if log.leader != node_id {
                log.leader = node_id;
                log.leader_epoch += 1;
            }
        }
        // Long-polling fetches on the old leader must answer now.
        p.appended.notify_waiters();
        Ok(())
    }

    /// The current leader of a partition.
    pub async fn leader_of(&self, topic: &str, partition: i32) -> Option<i32> {
        let p = self.partition(topic, partition).ok()?;
        let leader = lock(&p.log).leader;
        Some(leader)
    }

    /// Stops a node: closes its listener and its connections. Its partitions report
    /// LEADER_NOT_AVAILABLE in Metadata until it is started again.
    pub async fn stop_node(&self, node_id: i32) -> Result<(), Error> {
        let node = self
            .cluster
            .node(node_id)
            .ok_or(Error::UnknownNode(node_id))?;
        node.running.store(false, Ordering::Release);
        let listener = lock(&node.listener).take();
        if let Some(l) = listener {
            l.abort();
            // Wait until the listener is really closed, so the port can be bound again.
            let _ = l.await;
        }
        node.drop_connections();
        Ok(())
    }

    /// Starts a stopped node again on the same port.
    pub async fn start_node(&self, node_id: i32) -> Result<(), Error> {
        let node = self
            .cluster
            .node(node_id)
            .ok_or(Error::UnknownNode(node_id))?;
        if node.running.load(Ordering::Acquire) {
            return Ok(());
        }
        // The port was just released; retry briefly in case the old socket lingers.
        let mut attempt = 0;
        let listener = loop {
            match server::bind(&self.cluster.settings.host, node.port).await {
                Ok(l) => break l,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempt < 100 => {
                    attempt += 1;
                    tracing::debug!(
                        node_id,
                        attempt,
                        reason = "port still in use",
                        "retrying bind"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        server::serve(&self.cluster, node_id, listener);
        Ok(())
    }

    /// Closes every open client connection on every node (listeners stay up).
    pub async fn drop_connections(&self) {
        for n in &self.cluster.nodes {
            n.drop_connections();
        }
    }

    /// The next `count` requests of `api_key` answer `error_code` for every topic/partition
    /// (or as the top-level error for APIs without partitions), without being applied.
    pub async fn inject_error(&self, api_key: i16, error_code: i16, count: u32) {
        self.cluster.inject_error(api_key, error_code, count);
    }

    /// Injects a connection-level fault (see [`Fault`]).
    pub async fn inject_fault(&self, fault: Fault) {
        self.cluster.inject_fault(fault);
    }

    /// Adds `latency` before every response (0 turns it off).
    pub async fn set_latency(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.cluster.latency_us.store(us, Ordering::Relaxed);
    }

    /// Runs compaction of a `cleanup.policy=compact` topic now (a no-op for other topics).
    pub async fn compact(&self, topic: &str) -> Result<(), Error> {
        let t = self
            .cluster
            .topic(topic)
            .ok_or_else(|| Error::UnknownTopic(topic.to_string()))?;
        compaction::compact_topic(&t, cluster::now_ms(), true);
        Ok(())
    }

    /// A snapshot of a partition's offsets and leader.
    pub async fn partition_info(&self, topic: &str, partition: i32) -> Option<PartitionInfo> {
        let p = self.partition(topic, partition).ok()?;
        let log = lock(&p.log);
        Some(PartitionInfo {
            log_start_offset: log.log_start_offset,
            high_watermark: log.high_watermark,
            leader: log.leader,
            leader_epoch: log.leader_epoch,
            record_batches: log.batches.len(),
        })
    }

    /// Moves the log start offset forward (simulated retention); returns the new one.
    pub async fn set_log_start_offset(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<i64, Error> {
        let p = self.partition(topic, partition)?;
        let res = lock(&p.log).advance_log_start(offset)?;
        Ok(res)
    }

    /// How many connections the listeners accepted so far (all nodes).
    pub fn connections_accepted(&self) -> u64 {
        self.cluster.conn_counter.load(Ordering::Relaxed)
    }

    /// How many requests of `api_key` the cluster handled (all nodes, injected errors
    /// included, connections closed before handling excluded).
    pub async fn request_count(&self, api_key: i16) -> u64 {
        self.cluster.request_count(api_key)
    }

    /// Stops every node; [`TestServer::wait_for_shutdown`] returns afterwards. Idempotent.
    pub async fn shutdown(&self) {
        let listeners: Vec<_> = self
            .cluster
            .nodes
            .iter()
            .filter_map(|n| lock(&n.listener).take())
            .collect();
        self.stop_all();
        for l in listeners {
            l.abort();
            let _ = l.await;
        }
        self.shutdown.notify_waiters();
        self.shutdown.notify_one();
    }

    /// Waits until [`TestServer::shutdown`] is called (for the standalone `serve` command:
    /// select it against Ctrl-C).
    pub async fn wait_for_shutdown(&self) {
        self.shutdown.notified().await;
    }

    fn stop_all(&self) {
        self.compactor.abort();
        self.txn_expiry.abort();
        for n in &self.cluster.nodes {
            n.running.store(false, Ordering::Release);
            if let Some(l) = lock(&n.listener).take() {
                l.abort();
            }
            n.drop_connections();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop_all();
    }
}

//! [`Client`]: the connection pool, the metadata cache, and the retry loop shared by the
//! admin calls, the fetcher and the producer.
//!
//! Connections: per broker address, one connection for ordinary requests (produce, metadata,
//! admin), one for immediate fetches and a few for long-poll fetches, so neither a large
//! replay nor a long poll delays a produce behind it (head-of-line blocking: Kafka answers
//! one connection's requests in order).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, warn};

use crate::backoff::{time_seed, Backoff};
use crate::config::{ClientConfig, ProducerConfig};
use crate::conn::{ConnConfig, Connection};
use crate::error::Error;
use crate::metadata::{MetadataCache, TopicMetadata, TopicState};
use crate::producer::Producer;
use crate::sync::lock;

/// Which of a broker's connections to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ConnKind {
    /// Produce, metadata, admin.
    Main,
    /// Fetches that answer at once (replays).
    Fetch,
    /// Long-poll fetches, spread over a few connections: a broker answers one connection's
    /// requests in order, so a long poll would hold up everything behind it.
    LongPoll(u8),
}

/// How many connections per broker carry long polls.
pub(crate) const LONG_POLL_CONNECTIONS: u8 = 4;

/// Connection counters of a [`Client`] (see [`Client::connection_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionStats {
    /// Connections opened (TCP, TLS, SASL and ApiVersions done), bootstrap included.
    pub opened: u64,
    /// Successful SASL re-authentications of live connections.
    pub reauthentications: u64,
}

/// A Kafka client: cheap to clone (all clones share connections and metadata).
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
}

/// Serialises connection attempts to one address.
type ConnectGate = Arc<tokio::sync::Mutex<()>>;

pub(crate) struct ClientInner {
    pub(crate) config: ClientConfig,
    pub(crate) conn_config: ConnConfig,
    bootstrap: Vec<String>,
    conns: Mutex<HashMap<(String, ConnKind), Arc<Connection>>>,
    connecting: Mutex<HashMap<(String, ConnKind), ConnectGate>>,
    pub(crate) metadata: Mutex<MetadataCache>,
    rng: AtomicU64,
    long_poll_rr: AtomicU32,
}

impl std::fmt::Debug for ClientInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientInner")
            .field("bootstrap", &self.bootstrap)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the cluster: validates the configuration and loads the broker list from the
    /// first bootstrap server that answers.
    pub async fn connect(config: ClientConfig) -> Result<Client, Error> {
        let bootstrap = config.validate()?;
        for (key, value) in config.extra_properties() {
            tracing::warn!(property = %key, value = %value, reason = "not interpreted by this client", "ignoring client property");
        }
        let conn_config = ConnConfig {
            client_id: config.client_id.clone(),
            max_frame_size: config.max_frame_size,
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            security: Arc::new(crate::transport::Security::prepare(&config.security)?),
            stats: Arc::default(),
        };
        let client = Client {
            inner: Arc::new(ClientInner {
                config,
                conn_config,
                bootstrap,
                conns: Mutex::new(HashMap::new()),
                connecting: Mutex::new(HashMap::new()),
                metadata: Mutex::new(MetadataCache::default()),
                rng: AtomicU64::new(time_seed()),
                long_poll_rr: AtomicU32::new(0),
            }),
        };
        let inner = Arc::clone(&client.inner);
        client
            .with_retries("bootstrap metadata", &[], move || {
                let inner = Arc::clone(&inner);
                async move { inner.fetch_metadata(Some(&[])).await.map(|_| ()) }
            })
            .await?;
        Ok(client)
    }

    /// The configuration this client was created with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// How many connections this client has opened and how many times they re-authenticated
    /// (KIP-368), since it was created.
    pub fn connection_stats(&self) -> ConnectionStats {
        let s = &self.inner.conn_config.stats;
        ConnectionStats {
            opened: s.opened.load(Ordering::Relaxed),
            reauthentications: s.reauthentications.load(Ordering::Relaxed),
        }
    }

    /// A producer sharing this client's connections and metadata.
    pub fn producer(&self, config: ProducerConfig) -> Producer {
        Producer::new(self.clone(), config)
    }

    /// Runs `op` until it succeeds, fails with a non-retriable error, or the delivery timeout
    /// passes. Before retrying an error that means stale metadata, refreshes `topics`.
    pub(crate) async fn with_retries<T, F, Fut>(
        &self,
        what: &str,
        topics: &[String],
        mut op: F,
    ) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let timeout = self.inner.config.delivery_timeout;
        let deadline = Instant::now() + timeout;
        let mut backoff = self.inner.backoff();
        let mut last: Option<Error> = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let result = match tokio::time::timeout(remaining, op()).await {
                Ok(r) => r,
                Err(_) => {
                    // Say why the earlier attempts failed, not just that time ran out.
                    let what = match &last {
                        Some(e) => format!("{what} (last error: {e})"),
                        None => what.to_owned(),
                    };
                    return Err(Error::Timeout {
                        what,
                        after: timeout,
                    });
                }
            };
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !err.is_retriable() {
                return Err(err);
            }
            let delay = backoff.next_delay();
            if Instant::now() + delay >= deadline {
                warn!(operation = what, error = %err, "giving up: delivery timeout reached");
                return Err(err);
            }
            debug!(operation = what, error = %err, delay_ms = delay.as_millis() as u64, "retrying");
            if err.needs_metadata_refresh() {
                if let Err(e) = self.inner.refresh(topics, &err.to_string()).await {
                    debug!(operation = what, error = %e, "metadata refresh failed");
                }
            }
            tokio::time::sleep(delay).await;
            last = Some(err);
        }
    }
}

impl ClientInner {
    /// Round-robin over the long-poll connections.
    pub(crate) fn next_long_poll_slot(&self) -> u8 {
        (self.long_poll_rr.fetch_add(1, Ordering::Relaxed) % u32::from(LONG_POLL_CONNECTIONS)) as u8
    }

    pub(crate) fn backoff(&self) -> Backoff {
        let seed = self.rng.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        Backoff::new(
            self.config.retry_backoff_min,
            self.config.retry_backoff_max,
            seed,
        )
    }

    /// A live connection to `addr` of the given kind (connecting if needed).
    pub(crate) async fn conn(&self, addr: &str, kind: ConnKind) -> Result<Arc<Connection>, Error> {
        let key = (addr.to_owned(), kind);
        if let Some(c) = lock(&self.conns).get(&key) {
            if !c.is_failed() {
                return Ok(Arc::clone(c));
            }
        }
        let gate = Arc::clone(lock(&self.connecting).entry(key.clone()).or_default());
        let _g = gate.lock().await;
        if let Some(c) = lock(&self.conns).get(&key) {
            if !c.is_failed() {
                return Ok(Arc::clone(c));
            }
        }
        let c = Connection::connect(addr, &self.conn_config).await?;
        lock(&self.conns).insert(key, Arc::clone(&c));
        Ok(c)
    }

    /// A cached live connection, without connecting (producer fast path).
    pub(crate) fn cached_conn(&self, addr: &str, kind: ConnKind) -> Option<Arc<Connection>> {
        lock(&self.conns)
            .get(&(addr.to_owned(), kind))
            .filter(|c| !c.is_failed())
            .map(Arc::clone)
    }

    /// Address of node `id`.
    pub(crate) fn broker_addr(&self, id: i32) -> Option<String> {
        lock(&self.metadata).brokers.get(&id).cloned()
    }

    /// A connection to node `id`.
    pub(crate) async fn broker_conn(
        &self,
        id: i32,
        kind: ConnKind,
    ) -> Result<Arc<Connection>, Error> {
        match self.broker_addr(id) {
            Some(a) => self.conn(&a, kind).await,
            None => {
                self.refresh(&[], "unknown broker id").await?;
                let a = self.broker_addr(id).ok_or_else(|| {
                    Error::broker(8, None, None, Some(format!("broker {id} not in metadata")))
                })?;
                self.conn(&a, kind).await
            }
        }
    }

    /// A connection to any broker (known brokers first, then the bootstrap list).
    pub(crate) async fn any_conn(&self) -> Result<Arc<Connection>, Error> {
        let mut addrs: Vec<String> = lock(&self.metadata).brokers.values().cloned().collect();
        addrs.sort();
        for b in &self.bootstrap {
            if !addrs.contains(b) {
                addrs.push(b.clone());
            }
        }
        // Prefer an address we already have a connection to.
        for a in &addrs {
            if let Some(c) = self.cached_conn(a, ConnKind::Main) {
                return Ok(c);
            }
        }
        let mut last = None;
        for a in &addrs {
            match self.conn(a, ConnKind::Main).await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    debug!(broker = %a, error = %e, "broker unreachable, trying the next");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Config("no brokers".to_owned())))
    }

    /// Sends one Metadata request for `topics` (`None` = all topics) and merges the answer.
    pub(crate) async fn fetch_metadata(
        &self,
        topics: Option<&[String]>,
    ) -> Result<MetadataResponse, Error> {
        let conn = self.any_conn().await?;
        let req = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect()
            }));
        let generation = lock(&self.metadata).begin();
        let (_, resp): (i16, MetadataResponse) = conn
            .request(ApiKey::Metadata, &req, self.config.request_timeout)
            .await?;
        lock(&self.metadata).apply_as_of(&resp, topics, generation);
        // A topic we may not describe: say so, rather than "unknown topic" later.
        if let Some(t) = resp
            .topics
            .iter()
            .find(|t| crate::error::lookup(t.error_code).is_authorization())
        {
            let name = t.name.as_ref().map(|n| n.0.as_str());
            return Err(Error::broker(t.error_code, name, None, None));
        }
        Ok(resp)
    }

    /// Refreshes the metadata of `topics` (the broker list if empty), rate limited per topic.
    pub(crate) async fn refresh(&self, topics: &[String], reason: &str) -> Result<(), Error> {
        let wait = {
            let md = lock(&self.metadata);
            let min = self.config.metadata_min_refresh;
            let last = if topics.is_empty() {
                md.brokers_refreshed_at
            } else {
                topics
                    .iter()
                    .map(|t| md.refreshed_at.get(t).copied())
                    .min()
                    .flatten()
            };
            last.map(|l| min.saturating_sub(l.elapsed()))
                .unwrap_or_default()
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        debug!(topics = ?topics, reason, "refreshing metadata");
        self.fetch_metadata(Some(topics)).await.map(|_| ())
    }

    /// Cached metadata of `topic`, refreshing once if it is not cached.
    pub(crate) async fn topic(&self, topic: &str) -> Result<Option<TopicMetadata>, Error> {
        let ttl = self.config.metadata_min_refresh;
        let cached = lock(&self.metadata).state(topic, ttl).cloned();
        let state = match cached {
            Some(s) => s,
            None => {
                self.refresh(&[topic.to_owned()], "topic not cached")
                    .await?;
                match lock(&self.metadata).topics.get(topic).cloned() {
                    Some(s) => s,
                    None => TopicState::Missing,
                }
            }
        };
        Ok(match state {
            TopicState::Known(t) => Some(t),
            TopicState::Missing => None,
        })
    }

    /// The leader's node id for a partition: errors are retriable where they should be
    /// (leaderless partition) and final where the topic does not exist.
    pub(crate) async fn leader(&self, topic: &str, partition: i32) -> Result<i32, Error> {
        let ttl = self.config.metadata_min_refresh;
        let cached = lock(&self.metadata).leader(topic, partition, ttl);
        let r = match cached {
            Err(false) => {
                self.refresh(&[topic.to_owned()], "topic not cached")
                    .await?;
                lock(&self.metadata).leader(topic, partition, Duration::MAX)
            }
            other => other,
        };
        match r {
            Ok(Some(l)) => Ok(l),
            Ok(None) => Err(Error::broker(5, Some(topic), Some(partition), None)),
            Err(_) => Err(Error::UnknownTopic {
                topic: topic.to_owned(),
            }),
        }
    }

    /// A connection to the leader of a partition.
    pub(crate) async fn leader_conn(
        &self,
        topic: &str,
        partition: i32,
        kind: ConnKind,
    ) -> Result<Arc<Connection>, Error> {
        let leader = self.leader(topic, partition).await?;
        self.broker_conn(leader, kind).await
    }

    /// Forgets the cached state of a topic (next use refreshes it).
    pub(crate) fn invalidate(&self, topic: &str) {
        lock(&self.metadata).invalidate(topic);
    }
}

//! Shared broker state: nodes, topics, partitions, producer ids, faults.
//!
//! Lock order (never take them the other way round):
//! `topics` (RwLock, held only to look up or insert a topic) → one partition's `log` mutex →
//! `txns` (the transaction coordinator) → `producers` / `faults` / `groups`. No lock is held across an `.await`. Locks are std
//! mutexes; a poisoned lock is recovered (`into_inner`), because a panic inside a handler is
//! caught per request and the protected data is only mutated in panic-free sections.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinHandle};

use crate::config::{collision_key, validate_topic_name, TopicConfig};
use crate::groups::Groups;
use crate::groups848::ConsumerGroups;
use kafka_persistence_wire::ErrorCode;

use crate::log::{PartitionLog, StoredBatch};
use crate::storage::{self, PartitionFile};
use crate::Fault;

/// Locks a mutex, recovering from poisoning (see the module docs).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One partition: its log and a notifier that wakes long-polling fetches on append.
#[derive(Debug)]
pub(crate) struct Partition {
    pub(crate) log: Mutex<PartitionLog>,
    pub(crate) appended: Notify,
}

/// One topic.
#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) name: String,
    pub(crate) id: uuid::Uuid,
    pub(crate) config: TopicConfig,
    pub(crate) partitions: Vec<Arc<Partition>>,
    /// Set when the topic is deleted, so in-flight handlers holding the Arc can tell.
    pub(crate) deleted: AtomicBool,
}

impl Topic {
    /// Partition `p`, if it exists.
    pub(crate) fn partition(&self, p: i32) -> Option<&Arc<Partition>> {
        usize::try_from(p).ok().and_then(|i| self.partitions.get(i))
    }
}

/// One broker node: its fixed port, whether it runs, its listener and connections.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) id: i32,
    pub(crate) port: u16,
    pub(crate) running: AtomicBool,
    pub(crate) listener: Mutex<Option<JoinHandle<()>>>,
    pub(crate) conns: Mutex<HashMap<u64, AbortHandle>>,
}

impl Node {
    /// Aborts every open connection of this node.
    pub(crate) fn drop_connections(&self) {
        let conns: Vec<AbortHandle> = lock(&self.conns).drain().map(|(_, h)| h).collect();
        for c in conns {
            c.abort();
        }
    }
}

/// Injected errors and faults, consumed per request.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    errors: Vec<(i16, i16, u32)>,
    faults: Vec<Fault>,
}

/// What the connection loop must do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Handle,
    CloseBeforeHandling,
    Error(i16),
    DropResponse,
}

/// Producer ids handed out by InitProducerId (transactional ids: `txn::Coordinator`).
#[derive(Debug, Default)]
pub(crate) struct ProducerIds {
    /// Producer id → current epoch (for epoch bumps and fencing).
    pub(crate) epochs: HashMap<i64, i16>,
}

/// Static settings from the builder.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) auto_create_topics: bool,
    pub(crate) default_partitions: i32,
    pub(crate) default_max_message_bytes: usize,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) host: String,
    /// TLS on every listener, if set.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// SASL users and ACLs.
    pub(crate) auth: crate::auth::AuthSettings,
    /// `group.consumer.session.timeout.ms` and `group.consumer.heartbeat.interval.ms`.
    pub(crate) consumer_group_timeouts: (Duration, Duration),
    /// Api keys ApiVersions leaves out (an older broker).
    pub(crate) hidden_apis: Vec<i16>,
}

/// Why a control call or direct topic operation failed (mapped to the public `Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TopicError {
    Code(i16, String),
    Io(String),
}

/// The whole cluster.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) settings: Settings,
    pub(crate) cluster_id: String,
    pub(crate) nodes: Vec<Node>,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    topic_counter: AtomicUsize,
    pub(crate) next_producer_id: AtomicI64,
    pub(crate) producers: Mutex<ProducerIds>,
    has_faults: AtomicBool,
    faults: Mutex<FaultState>,
    pub(crate) latency_us: AtomicU64,
    counts: Vec<AtomicU64>,
    pub(crate) conn_counter: AtomicU64,
    pub(crate) groups: Groups,
    pub(crate) txns: crate::txn::Coordinator,
    /// The consumer group protocol's coordinator (KIP-848).
    pub(crate) consumer_groups: ConsumerGroups,
}

fn new_uuid(name: &str) -> uuid::Uuid {
    // Unique enough for a test cluster: time, a counter and the name, hashed.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    let hi = nanos ^ h.rotate_left(17);
    let lo = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ h;
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    // Version 4 / RFC 4122 variant bits, so tools print it like any topic id.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes)
}

impl Cluster {
    pub(crate) fn new(settings: Settings, ports: &[u16]) -> Cluster {
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, &port)| Node {
                id: i as i32,
                port,
                running: AtomicBool::new(false),
                listener: Mutex::new(None),
                conns: Mutex::new(HashMap::new()),
            })
            .collect();
        Cluster {
            cluster_id: format!("kp-testserver-{}", new_uuid("cluster").simple()),
            nodes,
            topics: RwLock::new(HashMap::new()),
            topic_counter: AtomicUsize::new(0),
            next_producer_id: AtomicI64::new(1000),
            producers: Mutex::new(ProducerIds::default()),
            has_faults: AtomicBool::new(false),
            faults: Mutex::new(FaultState::default()),
            latency_us: AtomicU64::new(0),
            counts: (0..128).map(|_| AtomicU64::new(0)).collect(),
            conn_counter: AtomicU64::new(0),
            groups: Groups::new(settings.data_dir.clone()),
            txns: crate::txn::Coordinator::default(),
            consumer_groups: ConsumerGroups::new(
                settings.consumer_group_timeouts.0,
                settings.consumer_group_timeouts.1,
            ),
            settings,
        }
    }

    /// The node with this id.
    pub(crate) fn node(&self, id: i32) -> Option<&Node> {
        usize::try_from(id).ok().and_then(|i| self.nodes.get(i))
    }

    /// Whether node `id` is up.
    pub(crate) fn is_running(&self, id: i32) -> bool {
        self.node(id)
            .is_some_and(|n| n.running.load(Ordering::Acquire))
    }

    /// The lowest running node (controller, coordinator of everything).
    pub(crate) fn controller_id(&self) -> i32 {
        self.nodes
            .iter()
            .find(|n| n.running.load(Ordering::Acquire))
            .map_or(-1, |n| n.id)
    }

    /// Looks a topic up by name.
    pub(crate) fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        read(&self.topics).get(name).cloned()
    }

    /// Looks a topic up by id.
    pub(crate) fn topic_by_id(&self, id: uuid::Uuid) -> Option<Arc<Topic>> {
        read(&self.topics).values().find(|t| t.id == id).cloned()
    }

    /// All topics, sorted by name.
    pub(crate) fn all_topics(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<Arc<Topic>> = read(&self.topics).values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Validates a new topic; returns its config. Does not create it.
    pub(crate) fn validate_new_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: &[(String, String)],
    ) -> Result<TopicConfig, TopicError> {
        self.validate_in(&read(&self.topics), name, partitions, configs)
    }

    fn validate_in(
        &self,
        topics: &HashMap<String, Arc<Topic>>,
        name: &str,
        partitions: i32,
        configs: &[(String, String)],
    ) -> Result<TopicConfig, TopicError> {
        validate_topic_name(name)
            .map_err(|m| TopicError::Code(ErrorCode::INVALID_TOPIC_EXCEPTION, m))?;
        if partitions <= 0 || partitions > 100_000 {
            return Err(TopicError::Code(
                ErrorCode::INVALID_PARTITIONS,
                format!("number of partitions must be in 1..=100000, got {partitions}"),
            ));
        }
        let cfg = TopicConfig::new(
            configs.iter().cloned(),
            self.settings.default_max_message_bytes,
        )
        .map_err(|e| TopicError::Code(ErrorCode::INVALID_CONFIG, e.0))?;
        if topics.contains_key(name) {
            return Err(TopicError::Code(
                ErrorCode::TOPIC_ALREADY_EXISTS,
                format!("topic '{name}' already exists"),
            ));
        }
        let key = collision_key(name);
        if let Some(other) = topics.keys().find(|t| collision_key(t) == key) {
            return Err(TopicError::Code(
                ErrorCode::INVALID_TOPIC_EXCEPTION,
                format!("topic '{name}' collides with existing topic '{other}'"),
            ));
        }
        Ok(cfg)
    }

    /// Creates a topic (validating it); leaders are spread round-robin over the nodes. The
    /// topic map stays write-locked throughout, so two concurrent creations of one name (or
    /// of colliding names) cannot both touch the data directory.
    pub(crate) fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: &[(String, String)],
    ) -> Result<Arc<Topic>, TopicError> {
        let mut topics = write(&self.topics);
        let config = self.validate_in(&topics, name, partitions, configs)?;
        let id = new_uuid(name);
        let dir = match &self.settings.data_dir {
            Some(root) => Some(
                storage::create_topic(root, name, *id.as_bytes(), partitions, configs)
                    .map_err(|e| TopicError::Io(e.to_string()))?,
            ),
            None => None,
        };
        let mut parts = Vec::with_capacity(partitions as usize);
        let first = self.topic_counter.fetch_add(1, Ordering::Relaxed);
        for p in 0..partitions {
            let leader = ((first + p as usize) % self.nodes.len().max(1)) as i32;
            let mut log = PartitionLog::new(leader);
            if let Some(dir) = &dir {
                log.file =
                    Some(PartitionFile::open(dir, p).map_err(|e| TopicError::Io(e.to_string()))?);
            }
            parts.push(Arc::new(Partition {
                log: Mutex::new(log),
                appended: Notify::new(),
            }));
        }
        let topic = Arc::new(Topic {
            name: name.to_string(),
            id,
            config,
            partitions: parts,
            deleted: AtomicBool::new(false),
        });
        topics.insert(name.to_string(), Arc::clone(&topic));
        drop(topics);
        tracing::debug!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// Loads topics from the data directory (at start).
    pub(crate) fn load_from_disk(&self) -> std::io::Result<()> {
        let Some(root) = self.settings.data_dir.clone() else {
            return Ok(());
        };
        for t in storage::load_all(&root)? {
            let Ok(config) = TopicConfig::new(
                t.configs.iter().cloned(),
                self.settings.default_max_message_bytes,
            ) else {
                tracing::warn!(topic = %t.name, reason = "invalid stored config", "skipping topic");
                continue;
            };
            let first = self.topic_counter.fetch_add(1, Ordering::Relaxed);
            let dir = root.join(&t.name);
            let mut parts = Vec::new();
            for (p, lp) in t.partitions.into_iter().enumerate() {
                let leader = ((first + p) % self.nodes.len().max(1)) as i32;
                let mut log = PartitionLog::new(leader);
                log.batches = lp.batches.into();
                log.log_start_offset = lp.log_start_offset;
                log.high_watermark = lp.high_watermark;
                log.dirty = true;
                log.rebuild_transactions();
                // Idempotent producers keep their sequence state across the restart, and
                // their ids are never handed out again. Not on compacted topics: compaction
                // may have dropped a producer's last batch (Kafka keeps it, we do not), and
                // a stale window would refuse that producer's next batch.
                let rebuilt = if config.compact {
                    Vec::new()
                } else {
                    log.rebuild_producers()
                };
                for (id, epoch) in rebuilt {
                    self.next_producer_id.fetch_max(id + 1, Ordering::Relaxed);
                    let mut producers = lock(&self.producers);
                    let e = producers.epochs.entry(id).or_insert(epoch);
                    *e = (*e).max(epoch);
                }
                log.file = Some(PartitionFile::open(&dir, p as i32)?);
                parts.push(Arc::new(Partition {
                    log: Mutex::new(log),
                    appended: Notify::new(),
                }));
            }
            let topic = Topic {
                name: t.name.clone(),
                id: uuid::Uuid::from_bytes(t.id),
                config,
                partitions: parts,
                deleted: AtomicBool::new(false),
            };
            write(&self.topics).insert(t.name, Arc::new(topic));
        }
        Ok(())
    }

    /// Deletes a topic; wakes its long-polling fetches.
    pub(crate) fn delete_topic(&self, name: &str) -> Result<(), TopicError> {
        let Some(topic) = write(&self.topics).remove(name) else {
            return Err(TopicError::Code(
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic '{name}' does not exist"),
            ));
        };
        topic.deleted.store(true, Ordering::Release);
        for p in &topic.partitions {
            lock(&p.log).file = None;
            p.appended.notify_waiters();
        }
        if let Some(root) = &self.settings.data_dir {
            storage::delete_topic(root, name).map_err(|e| TopicError::Io(e.to_string()))?;
        }
        tracing::debug!(topic = name, "deleted topic");
        Ok(())
    }

    /// Counts one handled request of `api_key`.
    pub(crate) fn count(&self, api_key: i16) {
        if let Some(c) = usize::try_from(api_key)
            .ok()
            .and_then(|i| self.counts.get(i))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many requests of `api_key` were handled.
    pub(crate) fn request_count(&self, api_key: i16) -> u64 {
        usize::try_from(api_key)
            .ok()
            .and_then(|i| self.counts.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Registers an injected error for the next `count` requests of `api_key`.
    pub(crate) fn inject_error(&self, api_key: i16, error_code: i16, count: u32) {
        if count == 0 {
            return;
        }
        lock(&self.faults).errors.push((api_key, error_code, count));
        self.has_faults.store(true, Ordering::Release);
    }

    /// Registers a connection-level fault.
    pub(crate) fn inject_fault(&self, fault: Fault) {
        lock(&self.faults).faults.push(fault);
        self.has_faults.store(true, Ordering::Release);
    }

    /// Decides what to do with the next request of `api_key`, consuming one fault budget.
    pub(crate) fn take_action(&self, api_key: i16) -> Action {
        if !self.has_faults.load(Ordering::Acquire) {
            return Action::Handle;
        }
        let mut f = lock(&self.faults);
        let mut action = Action::Handle;
        if let Some(i) = f.faults.iter().position(|x| x.api_key() == api_key) {
            action = match f.faults[i] {
                Fault::CloseBeforeHandling { .. } => Action::CloseBeforeHandling,
                Fault::DropResponse { .. } => Action::DropResponse,
            };
            if f.faults[i].consume() {
                f.faults.remove(i);
            }
        } else if let Some(i) = f.errors.iter().position(|x| x.0 == api_key) {
            action = Action::Error(f.errors[i].1);
            f.errors[i].2 -= 1;
            if f.errors[i].2 == 0 {
                f.errors.remove(i);
            }
        }
        if f.faults.is_empty() && f.errors.is_empty() {
            self.has_faults.store(false, Ordering::Release);
        }
        action
    }

    /// Replaces the batches of a partition after compaction (and rewrites its file).
    pub(crate) fn replace_batches(log: &mut PartitionLog, batches: Vec<StoredBatch>) {
        log.batches = batches.into();
        if let Some(f) = log.file.as_mut() {
            if let Err(e) = f.rewrite(log.batches.iter()) {
                tracing::warn!(error = %e, reason = "rewrite after compaction failed", "partition file may be stale");
            }
        }
    }
}

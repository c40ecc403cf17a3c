//! The member of the consumer group protocol (KIP-848, `group.protocol=consumer`): one
//! request, ConsumerGroupHeartbeat, carries the membership; the broker assigns.
//!
//! - A heartbeat task (its own coordinator connection) sends the member epoch (0 to join),
//!   the subscribed topic names (or a regex, which the broker resolves), `group.remote.assignor`, the rebalance timeout
//!   (`max.poll.interval.ms`), the static instance id and the partitions the member owns, at
//!   the interval the broker gives, and at once after the member's assignment changed. It
//!   never touches partitions: it stores the assignment it receives (topic ids → partitions)
//!   and raises `rejoin`; a FENCED_MEMBER_EPOCH or UNKNOWN_MEMBER_ID raises `lost`. Both end
//!   the current `poll`.
//! - `poll` reconciles on the caller's task ([`super::Consumer`]): the partitions no longer
//!   assigned are revoked (the listener may commit them, with the current member epoch),
//!   then the new ones are added (assigned callback), then the owned set is handed to the
//!   heartbeat task, whose next heartbeat acknowledges the revocation — the broker gives a
//!   revoked partition to its next owner only after that. Lost: the lost callback, everything
//!   dropped, and the member rejoins with epoch 0 under the same member id.
//! - Leaving: epoch -1, or -2 for a static member (`group.instance.id`), whose assignment the
//!   broker keeps for the session timeout so that a restart gets it back.
//! - `max.poll.interval.ms` without a poll: the member leaves (as above) and is lost.
//! - v1 (Kafka 4.0+): the member id is ours (22 characters, url-safe base64 of 16 random
//!   bytes, like the Java client's); v0 lets the broker choose it on join.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::assignor::TopicPartition;
use super::config::ConsumerConfig;
use super::group::{find_coordinator, ms, Flags};
use crate::client::Client;
use crate::conn::Connection;
use crate::error::{Error, ErrorCode};
use crate::sync::lock;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// A member id of our own (KIP-1082): 16 random bytes, url-safe base64 without padding.
fn new_member_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        // RandomState is seeded from the OS per instance.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_be_bytes());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the member subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subscription {
    /// Topic names.
    Topics(Vec<String>),
    /// Every topic whose whole name matches (resolved by the broker; v1+).
    Pattern(String),
}

/// What the heartbeat task and `poll` share.
#[derive(Debug)]
struct State {
    member_id: String,
    /// The member epoch to send (0: join).
    epoch: i32,
    subscription: Subscription,
    /// Owned partitions, by topic id, as the next heartbeat reports them.
    owned: BTreeMap<Uuid, BTreeSet<i32>>,
    /// An assignment received and not reconciled yet.
    target: Option<BTreeMap<Uuid, BTreeSet<i32>>>,
    /// Fenced or unknown: no heartbeat until `poll` handled it (then epoch 0).
    lost: bool,
    /// An error no retry fixes (unsupported assignor, authorization...), for `poll`.
    fatal: Option<Error>,
    interval: Duration,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    wake: Notify,
    epoch: Arc<AtomicI32>,
}

/// The consumer-protocol side of one consumer's group membership.
#[derive(Debug)]
pub(crate) struct Member848 {
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
    client: Client,
    config: Arc<ConsumerConfig>,
    group_id: String,
    /// Topic id → name, for the subscribed topics.
    names: HashMap<Uuid, String>,
}

impl Drop for Member848 {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// What one reconciliation changes.
#[derive(Debug, Default)]
pub(crate) struct Reconciled {
    /// Lost membership: drop everything (lost callback), then rejoin.
    pub(crate) lost: bool,
    /// The new assignment, when one arrived.
    pub(crate) assignment: Option<BTreeSet<TopicPartition>>,
}

impl Member848 {
    /// Checks that the coordinator offers ConsumerGroupHeartbeat, then starts heartbeating
    /// (joining with epoch 0) for `topics`. `flags` are the group member's.
    pub(crate) async fn start(
        client: Client,
        config: Arc<ConsumerConfig>,
        group_id: String,
        subscription: Subscription,
        flags: Arc<Flags>,
    ) -> Result<Member848, Error> {
        let conn = coordinator_with_retries(&client, &group_id).await?;
        let version = conn.version(ApiKey::ConsumerGroupHeartbeat).map_err(|_| {
            Error::broker(
                ErrorCode::UNSUPPORTED_VERSION,
                None,
                None,
                Some(format!(
                    "group.protocol=consumer needs ConsumerGroupHeartbeat (KIP-848), which the \
                     coordinator {} of group {group_id} does not offer; use group.protocol=classic",
                    conn.addr()
                )),
            )
        })?;
        if version < 1 && matches!(subscription, Subscription::Pattern(_)) {
            return Err(Error::broker(
                ErrorCode::UNSUPPORTED_VERSION,
                None,
                None,
                Some(format!(
                    "a regex subscription needs ConsumerGroupHeartbeat v1, which the coordinator {} does not offer",
                    conn.addr()
                )),
            ));
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                member_id: if version >= 1 {
                    new_member_id()
                } else {
                    String::new()
                },
                epoch: 0,
                subscription,
                owned: BTreeMap::new(),
                target: None,
                lost: false,
                fatal: None,
                interval: Duration::from_millis(100),
            }),
            wake: Notify::new(),
            epoch: Arc::new(AtomicI32::new(0)),
        });
        let task = tokio::spawn(heartbeat_loop(
            client.clone(),
            Arc::clone(&config),
            group_id.clone(),
            Arc::clone(&shared),
            flags,
            Some(conn),
        ));
        Ok(Member848 {
            shared,
            task: Some(task),
            client,
            config,
            group_id,
            names: HashMap::new(),
        })
    }

    /// The live member epoch (commits carry it).
    pub(crate) fn epoch_cell(&self) -> Arc<AtomicI32> {
        Arc::clone(&self.shared.epoch)
    }

    /// Our member id (empty on v0 until the broker gave one).
    pub(crate) fn member_id(&self) -> String {
        lock(&self.shared.state).member_id.clone()
    }

    /// The member epoch.
    pub(crate) fn epoch(&self) -> i32 {
        lock(&self.shared.state).epoch
    }

    /// Changes the subscription (sent with the next heartbeat, at once).
    pub(crate) fn set_subscription(&self, subscription: Subscription) {
        lock(&self.shared.state).subscription = subscription;
        self.shared.wake.notify_one();
    }

    /// What changed since the last call: a lost membership, or a new assignment (topic ids
    /// resolved through Metadata).
    pub(crate) async fn take_changes(&mut self) -> Result<Reconciled, Error> {
        let (lost, target) = {
            let mut s = lock(&self.shared.state);
            if let Some(e) = s.fatal.take() {
                return Err(e);
            }
            (s.lost, s.target.take())
        };
        if lost {
            return Ok(Reconciled {
                lost: true,
                assignment: None,
            });
        }
        let Some(target) = target else {
            return Ok(Reconciled::default());
        };
        if target.keys().any(|id| !self.names.contains_key(id)) {
            self.resolve_ids().await?;
        }
        let mut out = BTreeSet::new();
        for (id, ps) in &target {
            match self.names.get(id) {
                Some(name) => {
                    out.extend(ps.iter().map(|p| TopicPartition::new(name.clone(), *p)));
                }
                None => {
                    warn!(group = %self.group_id, topic_id = %id, "assigned topic id unknown to Metadata: skipped");
                }
            }
        }
        Ok(Reconciled {
            lost: false,
            assignment: Some(out),
        })
    }

    /// Looks up the subscribed topics' ids (every topic's, for a pattern).
    async fn resolve_ids(&mut self) -> Result<(), Error> {
        let subscription = lock(&self.shared.state).subscription.clone();
        let resp = match &subscription {
            Subscription::Topics(topics) => self.client.inner.fetch_metadata(Some(topics)).await?,
            Subscription::Pattern(_) => self.client.inner.fetch_metadata(None).await?,
        };
        for t in &resp.topics {
            if let Some(name) = &t.name {
                if !t.topic_id.is_nil() {
                    self.names.insert(t.topic_id, name.0.to_string());
                }
            }
        }
        Ok(())
    }

    /// Hands the owned partitions to the heartbeat task and sends a heartbeat now (it
    /// acknowledges revocations).
    pub(crate) fn set_owned(&self, owned: &BTreeSet<TopicPartition>) {
        let ids: HashMap<&str, Uuid> = self.names.iter().map(|(id, n)| (n.as_str(), *id)).collect();
        let mut by_id: BTreeMap<Uuid, BTreeSet<i32>> = BTreeMap::new();
        for tp in owned {
            if let Some(id) = ids.get(tp.topic.as_str()) {
                by_id.entry(*id).or_default().insert(tp.partition);
            }
        }
        lock(&self.shared.state).owned = by_id;
        self.shared.wake.notify_one();
    }

    /// After a lost membership was handled: rejoin with epoch 0 and nothing owned.
    pub(crate) fn rejoin(&self) {
        {
            let mut s = lock(&self.shared.state);
            s.epoch = 0;
            s.owned.clear();
            s.target = None;
            s.lost = false;
        }
        self.shared.epoch.store(0, Ordering::Release);
        self.shared.wake.notify_one();
    }

    /// Leaves the group: epoch -1, or -2 for a static member (which keeps its slot for the
    /// session timeout). Stops the heartbeat task first.
    pub(crate) async fn leave(&mut self) -> Result<(), Error> {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        let (member_id, epoch, lost) = {
            let s = lock(&self.shared.state);
            (s.member_id.clone(), s.epoch, s.lost)
        };
        if member_id.is_empty() || lost {
            return Ok(());
        }
        let leave_epoch = if self.config.instance_id.is_some() {
            -2
        } else {
            -1
        };
        let timeout = self.client.inner.config.request_timeout;
        let conn = coordinator_with_retries(&self.client, &self.group_id).await?;
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(sb(&self.group_id)))
            .with_member_id(sb(&member_id))
            .with_member_epoch(leave_epoch)
            .with_instance_id(self.config.instance_id.as_deref().map(sb))
            .with_rebalance_timeout_ms(-1);
        let resp: ConsumerGroupHeartbeatResponse = conn
            .request(ApiKey::ConsumerGroupHeartbeat, &req, timeout)
            .await
            .map(|(_, r)| r)?;
        self.shared.epoch.store(-1, Ordering::Release);
        match resp.error_code {
            0 | ErrorCode::UNKNOWN_MEMBER_ID | ErrorCode::FENCED_MEMBER_EPOCH => {
                info!(group = %self.group_id, member = %member_id, from_epoch = epoch, leave_epoch, "left consumer group");
                Ok(())
            }
            c => Err(Error::broker(
                c,
                None,
                None,
                Some(format!(
                    "ConsumerGroupHeartbeat (leave) of group {}",
                    self.group_id
                )),
            )),
        }
    }
}

/// The coordinator, retrying while it is being elected or loaded (a new cluster creates
/// its offsets topic on the first FindCoordinator) or unreachable, up to `delivery.timeout`.
async fn coordinator_with_retries(
    client: &Client,
    group_id: &str,
) -> Result<Arc<Connection>, Error> {
    let deadline = tokio::time::Instant::now() + client.inner.config.delivery_timeout;
    let mut backoff = client.inner.backoff();
    loop {
        match find_coordinator(client, group_id, client.inner.config.request_timeout).await {
            Ok(c) => return Ok(c),
            Err(e) => {
                let retry = e.code().is_some_and(is_coordinator_error)
                    || matches!(e, Error::Io { .. } | Error::Timeout { .. } | Error::Closed);
                if !retry || tokio::time::Instant::now() >= deadline {
                    return Err(e);
                }
                let delay = backoff.next_delay();
                debug!(group = %group_id, error = %e, delay_ms = delay.as_millis() as u64, "FindCoordinator: retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

fn is_coordinator_error(c: i16) -> bool {
    matches!(
        c,
        ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
            | ErrorCode::COORDINATOR_NOT_AVAILABLE
            | ErrorCode::NOT_COORDINATOR
    )
}

/// The heartbeat task (see the module docs).
async fn heartbeat_loop(
    client: Client,
    config: Arc<ConsumerConfig>,
    group_id: String,
    shared: Arc<Shared>,
    flags: Arc<Flags>,
    mut conn: Option<Arc<Connection>>,
) {
    let timeout = client.inner.config.request_timeout;
    let mut backoff = client.inner.backoff();
    // The first heartbeat (the join) goes out at once.
    let mut wait = Duration::ZERO;
    loop {
        if !wait.is_zero() {
            let _ = tokio::time::timeout(wait, shared.wake.notified()).await;
        }
        let request = {
            let s = lock(&shared.state);
            (!s.lost && s.fatal.is_none()).then(|| build_request(&s, &config, &group_id))
        };
        let Some(request) = request else {
            // Nothing to send until `poll` handled it.
            shared.wake.notified().await;
            wait = Duration::ZERO;
            continue;
        };
        let idle = lock(&flags.last_poll).elapsed();
        if idle > config.max_poll_interval {
            warn!(group = %group_id, idle_ms = idle.as_millis() as u64, reason = "max.poll.interval.ms passed", "leaving consumer group");
            let mut leave = request.clone();
            leave.member_epoch = if config.instance_id.is_some() { -2 } else { -1 };
            if let Some(c) = &conn {
                let _ = c
                    .request::<_, ConsumerGroupHeartbeatResponse>(
                        ApiKey::ConsumerGroupHeartbeat,
                        &leave,
                        timeout,
                    )
                    .await;
            }
            mark_lost(&shared, &flags);
            wait = Duration::ZERO;
            continue;
        }
        let c = match &conn {
            Some(c) if !c.is_failed() => Arc::clone(c),
            _ => match find_coordinator(&client, &group_id, timeout).await {
                Ok(c) => {
                    conn = Some(Arc::clone(&c));
                    c
                }
                Err(e) => {
                    wait = backoff.next_delay();
                    debug!(group = %group_id, error = %e, delay_ms = wait.as_millis() as u64, "consumer group coordinator not found");
                    continue;
                }
            },
        };
        let sent_epoch = request.member_epoch;
        let r: Result<(i16, ConsumerGroupHeartbeatResponse), Error> = c
            .request(ApiKey::ConsumerGroupHeartbeat, &request, timeout)
            .await;
        let resp = match r {
            Ok((_, resp)) => resp,
            Err(e) => {
                conn = None;
                wait = backoff.next_delay();
                debug!(group = %group_id, error = %e, reason = "heartbeat failed", "consumer group coordinator lost");
                continue;
            }
        };
        match resp.error_code {
            0 => {
                backoff = client.inner.backoff();
                let mut s = lock(&shared.state);
                if s.lost {
                    // `poll` rejoined meanwhile? It only clears `lost` itself; keep waiting.
                    continue;
                }
                if let Some(id) = &resp.member_id {
                    if s.member_id.is_empty() && !id.is_empty() {
                        s.member_id = id.to_string();
                    }
                }
                if sent_epoch == 0 || s.epoch != resp.member_epoch {
                    debug!(group = %group_id, member = %s.member_id, epoch = resp.member_epoch, "member epoch");
                }
                s.epoch = resp.member_epoch;
                shared.epoch.store(resp.member_epoch, Ordering::Release);
                if resp.heartbeat_interval_ms > 0 {
                    s.interval = Duration::from_millis(
                        u64::try_from(resp.heartbeat_interval_ms).unwrap_or(0),
                    );
                }
                if let Some(a) = resp.assignment {
                    let target: BTreeMap<Uuid, BTreeSet<i32>> = a
                        .topic_partitions
                        .into_iter()
                        .map(|tp| (tp.topic_id, tp.partitions.into_iter().collect()))
                        .collect();
                    if target != s.owned {
                        s.target = Some(target);
                        flags.rejoin.store(true, Ordering::Release);
                    }
                }
                wait = s.interval;
            }
            ErrorCode::FENCED_MEMBER_EPOCH | ErrorCode::UNKNOWN_MEMBER_ID => {
                info!(group = %group_id, code = resp.error_code, epoch = sent_epoch, reason = "fenced or expired", "consumer group membership lost");
                mark_lost(&shared, &flags);
                wait = Duration::ZERO;
            }
            c if is_coordinator_error(c) => {
                conn = None;
                wait = backoff.next_delay();
                debug!(group = %group_id, code = c, reason = "coordinator moved", "consumer group coordinator lost");
            }
            c => {
                let e = Error::broker(
                    c,
                    None,
                    None,
                    Some(format!(
                        "ConsumerGroupHeartbeat of group {group_id}: {}",
                        resp.error_message.as_deref().unwrap_or("")
                    )),
                );
                if e.is_retriable() {
                    wait = backoff.next_delay();
                    debug!(group = %group_id, error = %e, "heartbeat error, retrying");
                } else {
                    warn!(group = %group_id, error = %e, "heartbeat failed for good");
                    lock(&shared.state).fatal = Some(e);
                    flags.rejoin.store(true, Ordering::Release);
                    wait = Duration::ZERO;
                }
            }
        }
    }
}

fn mark_lost(shared: &Shared, flags: &Flags) {
    lock(&shared.state).lost = true;
    shared.epoch.store(-1, Ordering::Release);
    flags.lost.store(true, Ordering::Release);
}

fn build_request(
    s: &State,
    config: &ConsumerConfig,
    group_id: &str,
) -> ConsumerGroupHeartbeatRequest {
    // Every field on every heartbeat: the broker treats an unchanged value as no change.
    let (names, regex) = match &s.subscription {
        Subscription::Topics(ts) => (Some(ts.iter().map(|t| TopicName(sb(t))).collect()), None),
        Subscription::Pattern(p) => (None, Some(sb(p))),
    };
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb(group_id)))
        .with_member_id(sb(&s.member_id))
        .with_member_epoch(s.epoch)
        .with_instance_id(config.instance_id.as_deref().map(sb))
        .with_rebalance_timeout_ms(ms(config.max_poll_interval))
        .with_subscribed_topic_names(names)
        .with_subscribed_topic_regex(regex)
        .with_server_assignor(config.remote_assignor.as_deref().map(sb))
        .with_topic_partitions(Some(
            s.owned
                .iter()
                .map(|(id, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(*id)
                        .with_partitions(ps.iter().copied().collect())
                })
                .collect(),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_are_distinct_and_java_shaped() {
        let a = new_member_id();
        let b = new_member_id();
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}

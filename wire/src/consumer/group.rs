//! The group member of the classic protocol: coordinator discovery (FindCoordinator), the
//! join round (JoinGroup, then SyncGroup, the leader running the assignor), the heartbeat
//! task, LeaveGroup, and the group's committed offsets (OffsetCommit, OffsetFetch).
//!
//! - Each member has its own connection to the coordinator: a JoinGroup parks at the broker
//!   until the round is decided and a broker answers one connection's requests in order, so a
//!   shared connection would make the members of one process wait for each other forever.
//! - The heartbeat task runs between polls. It never rebalances itself: it raises flags
//!   (`rejoin` on REBALANCE_IN_PROGRESS, `lost` when fenced or expired, `coordinator_lost`
//!   when the coordinator moved or its connection failed: the next poll finds it again and
//!   resumes heartbeats in the same generation, without a rebalance), and `poll` acts on them, so rebalance callbacks run on the caller's task. It
//!   also enforces `max.poll.interval.ms`: a member that stopped polling leaves the group.
//! - Static membership (KIP-345): `group.instance.id` is sent in every request; a static
//!   member does not send LeaveGroup on close (the coordinator keeps its slot for the
//!   session timeout, so a restart does not move partitions).
//! - Coordinator errors (COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
//!   NOT_COORDINATOR) and network errors rediscover the coordinator and retry with backoff.
//! - OffsetFetch asks for stable offsets (`require_stable`, KIP-447, v7+): while a
//!   transaction holding offsets of the partitions is open the broker answers
//!   UNSTABLE_OFFSET_COMMIT, retried with backoff, so a new owner of a partition starts where
//!   the previous owner's transaction ended, not before it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::assignor::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, Assignor,
    MemberSubscription, TopicPartition,
};
use super::config::ConsumerConfig;
use crate::backoff::Backoff;
use crate::client::Client;
use crate::conn::Connection;
use crate::coordinator::CoordinatorKind;
use crate::error::{Error, ErrorCode};
use crate::sync::lock;

fn coordinator_error(c: i16) -> bool {
    matches!(
        c,
        ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
            | ErrorCode::COORDINATOR_NOT_AVAILABLE
            | ErrorCode::NOT_COORDINATOR
    )
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// A committed offset with its metadata string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    /// The next offset to consume.
    pub offset: i64,
    /// Free text stored with the commit (`None`: empty).
    pub metadata: Option<String>,
}

impl OffsetAndMetadata {
    /// An offset without metadata.
    pub fn new(offset: i64) -> Self {
        OffsetAndMetadata {
            offset,
            metadata: None,
        }
    }

    /// An offset with metadata.
    pub fn with_metadata(offset: i64, metadata: impl Into<String>) -> Self {
        OffsetAndMetadata {
            offset,
            metadata: Some(metadata.into()),
        }
    }
}

/// Flags shared with the heartbeat task.
#[derive(Debug)]
pub(crate) struct Flags {
    /// The coordinator asked for a rebalance.
    pub(crate) rejoin: AtomicBool,
    /// The membership is gone (fenced, expired, or left after `max.poll.interval.ms`).
    pub(crate) lost: AtomicBool,
    /// The coordinator moved or its connection failed.
    pub(crate) coordinator_lost: AtomicBool,
    /// When `poll` was last called.
    pub(crate) last_poll: Mutex<Instant>,
}

/// The result of a completed join round.
#[derive(Debug)]
pub(crate) struct Joined {
    pub(crate) assignment: Vec<TopicPartition>,
    pub(crate) protocol: Assignor,
}

#[derive(Debug)]
pub(crate) struct GroupMember {
    client: Client,
    config: Arc<ConsumerConfig>,
    pub(crate) group_id: String,
    pub(crate) member_id: String,
    pub(crate) generation: i32,
    coordinator: Option<Arc<Connection>>,
    pub(crate) flags: Arc<Flags>,
    heartbeat: Option<JoinHandle<()>>,
    backoff: Backoff,
    /// The consumer protocol (KIP-848): the member epoch as the heartbeat task last heard it,
    /// which commits carry as their generation.
    pub(super) live_epoch: Option<Arc<AtomicI32>>,
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}

impl GroupMember {
    pub(crate) fn new(client: Client, config: Arc<ConsumerConfig>, group_id: String) -> Self {
        let backoff = client.inner.backoff();
        GroupMember {
            client,
            config,
            group_id,
            member_id: String::new(),
            generation: -1,
            coordinator: None,
            flags: Arc::new(Flags {
                rejoin: AtomicBool::new(false),
                lost: AtomicBool::new(false),
                coordinator_lost: AtomicBool::new(false),
                last_poll: Mutex::new(Instant::now()),
            }),
            heartbeat: None,
            backoff,
            live_epoch: None,
        }
    }

    pub(super) fn timeout(&self) -> Duration {
        self.client.inner.config.request_timeout
    }

    fn instance_id(&self) -> Option<StrBytes> {
        self.config.instance_id.as_deref().map(sb)
    }

    /// Whether the member is in a generation (joined and not lost).
    pub(crate) fn is_active(&self) -> bool {
        self.generation >= 0 && !self.flags.lost.load(Ordering::Acquire)
    }

    /// The coordinator's connection, discovering it if needed.
    async fn coordinator(&mut self) -> Result<Arc<Connection>, Error> {
        if self.flags.coordinator_lost.swap(false, Ordering::AcqRel) {
            self.coordinator = None;
        }
        if let Some(c) = &self.coordinator {
            if !c.is_failed() {
                return Ok(Arc::clone(c));
            }
        }
        let c = find_coordinator(&self.client, &self.group_id, self.timeout()).await?;
        self.coordinator = Some(Arc::clone(&c));
        Ok(c)
    }

    /// Handles a retriable failure of a group request: forget the coordinator if the error
    /// says so, back off. `Err` when the error is not one to retry.
    async fn retry_after(&mut self, e: Error, what: &str, deadline: Instant) -> Result<(), Error> {
        let coordinator = e.code().is_some_and(coordinator_error);
        let transport = matches!(e, Error::Io { .. } | Error::Timeout { .. } | Error::Closed);
        if !(coordinator || transport) || Instant::now() >= deadline {
            return Err(e);
        }
        self.coordinator = None;
        let delay = self.backoff.next_delay();
        debug!(group = %self.group_id, error = %e, delay_ms = delay.as_millis() as u64, reason = "coordinator error", "{what}: rediscovering the coordinator");
        tokio::time::sleep(delay).await;
        Ok(())
    }

    fn stop_heartbeat(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }

    /// After the heartbeat task lost the coordinator: finds it again and resumes heartbeats
    /// in the same generation (the membership survives a coordinator move or a dropped
    /// connection; if it did not, the next heartbeat says so and the member rejoins).
    pub(crate) async fn resume_heartbeat(&mut self) -> Result<(), Error> {
        if !self.flags.coordinator_lost.load(Ordering::Acquire) || !self.is_active() {
            return Ok(());
        }
        self.stop_heartbeat();
        let deadline = Instant::now() + self.client.inner.config.delivery_timeout;
        loop {
            match self.coordinator().await {
                Ok(_) => break,
                Err(e) => self.retry_after(e, "FindCoordinator", deadline).await?,
            }
        }
        info!(group = %self.group_id, member = %self.member_id, generation = self.generation, reason = "coordinator lost", "heartbeats resumed");
        self.spawn_heartbeat();
        Ok(())
    }

    /// One complete join round: JoinGroup (until a generation is decided), the assignment if
    /// we lead, SyncGroup. Returns our partitions.
    pub(crate) async fn join(
        &mut self,
        topics: &[String],
        owned: &[TopicPartition],
    ) -> Result<Joined, Error> {
        self.stop_heartbeat();
        self.flags.rejoin.store(false, Ordering::Release);
        if self.flags.lost.swap(false, Ordering::AcqRel) {
            self.member_id.clear();
            self.generation = -1;
        }
        let deadline = Instant::now() + self.config.max_poll_interval + self.timeout();
        loop {
            match self.join_once(topics, owned).await {
                Ok(Some(j)) => {
                    self.spawn_heartbeat();
                    return Ok(j);
                }
                // The round must be run again (rebalance restarted, member id required...).
                Ok(None) => continue,
                Err(e) => {
                    if let Err(e) = self.retry_after(e, "JoinGroup", deadline).await {
                        // The next poll must try again: without a heartbeat task nothing
                        // else would ask it to.
                        self.flags.rejoin.store(true, Ordering::Release);
                        return Err(e);
                    }
                }
            }
        }
    }

    async fn join_once(
        &mut self,
        topics: &[String],
        owned: &[TopicPartition],
    ) -> Result<Option<Joined>, Error> {
        let conn = self.coordinator().await?;
        let version = conn.version(ApiKey::JoinGroup)?;
        let metadata = encode_subscription(topics, owned, self.generation)?;
        let mut req = JoinGroupRequest::default()
            .with_group_id(GroupId(sb(&self.group_id)))
            .with_session_timeout_ms(ms(self.config.session_timeout))
            .with_member_id(sb(&self.member_id))
            .with_protocol_type(sb("consumer"))
            .with_protocols(
                self.config
                    .assignors
                    .iter()
                    .map(|a| {
                        JoinGroupRequestProtocol::default()
                            .with_name(sb(a.name()))
                            .with_metadata(metadata.clone())
                    })
                    .collect(),
            );
        if version >= 1 {
            req.rebalance_timeout_ms = ms(self.config.max_poll_interval);
        }
        if version >= 5 {
            req.group_instance_id = self.instance_id();
        }
        let timeout = self.config.max_poll_interval + self.timeout();
        let resp: JoinGroupResponse = conn
            .request_at(ApiKey::JoinGroup, version, &req, timeout)
            .await?;
        match resp.error_code {
            0 => {}
            ErrorCode::MEMBER_ID_REQUIRED => {
                // KIP-394: join again with the id the coordinator gave us.
                self.member_id = resp.member_id.to_string();
                return Ok(None);
            }
            ErrorCode::UNKNOWN_MEMBER_ID | ErrorCode::ILLEGAL_GENERATION => {
                info!(group = %self.group_id, member = %self.member_id, reason = "member unknown to the coordinator", "joining as a new member");
                self.member_id.clear();
                self.generation = -1;
                return Ok(None);
            }
            ErrorCode::REBALANCE_IN_PROGRESS => return Ok(None),
            c => {
                return Err(Error::broker(
                    c,
                    None,
                    None,
                    Some(format!("JoinGroup of group {}", self.group_id)),
                ))
            }
        }
        self.member_id = resp.member_id.to_string();
        self.generation = resp.generation_id;
        let protocol_name = resp
            .protocol_name
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let protocol = Assignor::from_name(&protocol_name).ok_or_else(|| {
            Error::Config(format!(
                "coordinator chose the assignor {protocol_name:?}, which this client lacks"
            ))
        })?;
        let assignments = if resp.leader.as_str() == self.member_id {
            self.lead(protocol, &resp).await?
        } else {
            Vec::new()
        };
        let version = conn.version(ApiKey::SyncGroup)?;
        let mut sync = SyncGroupRequest::default()
            .with_group_id(GroupId(sb(&self.group_id)))
            .with_generation_id(self.generation)
            .with_member_id(sb(&self.member_id))
            .with_assignments(assignments);
        if version >= 3 {
            sync.group_instance_id = self.instance_id();
        }
        if version >= 5 {
            sync.protocol_type = Some(sb("consumer"));
            sync.protocol_name = Some(sb(protocol.name()));
        }
        let resp: SyncGroupResponse = conn
            .request_at(ApiKey::SyncGroup, version, &sync, timeout)
            .await?;
        match resp.error_code {
            0 => {}
            ErrorCode::REBALANCE_IN_PROGRESS | ErrorCode::ILLEGAL_GENERATION => return Ok(None),
            ErrorCode::UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                self.generation = -1;
                return Ok(None);
            }
            c => {
                return Err(Error::broker(
                    c,
                    None,
                    None,
                    Some(format!("SyncGroup of group {}", self.group_id)),
                ))
            }
        }
        let assignment = decode_assignment(resp.assignment)?;
        self.backoff = self.client.inner.backoff();
        info!(group = %self.group_id, member = %self.member_id, generation = self.generation, assignor = protocol.name(), partitions = assignment.len(), "joined group");
        Ok(Some(Joined {
            assignment,
            protocol,
        }))
    }

    /// As the leader: decode the subscriptions, look up partition counts, assign.
    async fn lead(
        &self,
        protocol: Assignor,
        resp: &JoinGroupResponse,
    ) -> Result<Vec<SyncGroupRequestAssignment>, Error> {
        let mut members = Vec::with_capacity(resp.members.len());
        for m in &resp.members {
            let instance = m.group_instance_id.as_ref().map(|s| s.to_string());
            match decode_subscription(&m.member_id, instance, m.metadata.clone()) {
                Ok(s) => members.push(s),
                Err(e) => {
                    // A member we cannot read gets nothing rather than failing the group.
                    warn!(group = %self.group_id, member = %m.member_id, error = %e, "undecodable subscription");
                    members.push(MemberSubscription {
                        member_id: m.member_id.to_string(),
                        ..MemberSubscription::default()
                    });
                }
            }
        }
        let mut topics: Vec<String> = members.iter().flat_map(|m| m.topics.clone()).collect();
        topics.sort();
        topics.dedup();
        let mut partitions = BTreeMap::new();
        for t in topics {
            match self.client.inner.topic(&t).await? {
                Some(md) => {
                    partitions.insert(t, i32::try_from(md.partitions.len()).unwrap_or(i32::MAX));
                }
                None => {
                    debug!(group = %self.group_id, topic = %t, "subscribed topic does not exist")
                }
            }
        }
        let result = protocol.assign(&members, &partitions);
        result
            .into_iter()
            .map(|(member, parts)| {
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(sb(&member))
                    .with_assignment(encode_assignment(&parts)?))
            })
            .collect()
    }

    fn spawn_heartbeat(&mut self) {
        let Some(conn) = self.coordinator.clone() else {
            return;
        };
        let flags = Arc::clone(&self.flags);
        let group_id = self.group_id.clone();
        let member_id = self.member_id.clone();
        let generation = self.generation;
        let instance_id = self.config.instance_id.clone();
        let interval = self.config.heartbeat_interval;
        let max_poll = self.config.max_poll_interval;
        let timeout = self.timeout();
        self.heartbeat = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let idle = lock(&flags.last_poll).elapsed();
                if idle > max_poll {
                    warn!(group = %group_id, member = %member_id, idle_ms = idle.as_millis() as u64, reason = "max.poll.interval.ms passed", "leaving group");
                    if instance_id.is_none() {
                        let _ = leave(&conn, &group_id, &member_id, None, timeout).await;
                    }
                    flags.lost.store(true, Ordering::Release);
                    return;
                }
                let r = heartbeat(
                    &conn,
                    &group_id,
                    &member_id,
                    generation,
                    instance_id.as_deref(),
                    timeout,
                )
                .await;
                match r {
                    Ok(0) => {}
                    Ok(ErrorCode::REBALANCE_IN_PROGRESS) => {
                        flags.rejoin.store(true, Ordering::Release)
                    }
                    Ok(
                        ErrorCode::UNKNOWN_MEMBER_ID
                        | ErrorCode::ILLEGAL_GENERATION
                        | ErrorCode::FENCED_INSTANCE_ID,
                    ) => {
                        debug!(group = %group_id, member = %member_id, reason = "fenced or expired", "membership lost");
                        flags.lost.store(true, Ordering::Release);
                        return;
                    }
                    Ok(c) if coordinator_error(c) => {
                        debug!(group = %group_id, code = c, reason = "coordinator moved", "coordinator lost");
                        flags.coordinator_lost.store(true, Ordering::Release);
                        return;
                    }
                    Ok(c) => {
                        debug!(group = %group_id, code = c, "heartbeat error");
                    }
                    Err(e) => {
                        debug!(group = %group_id, error = %e, reason = "heartbeat failed", "coordinator lost");
                        flags.coordinator_lost.store(true, Ordering::Release);
                        return;
                    }
                }
            }
        }));
    }

    /// Leaves the group (dynamic members only: a static member keeps its slot).
    pub(crate) async fn leave(&mut self) -> Result<(), Error> {
        self.stop_heartbeat();
        if self.member_id.is_empty() || self.config.instance_id.is_some() {
            return Ok(());
        }
        let Some(conn) = self.coordinator.clone() else {
            return Ok(());
        };
        let r = leave(&conn, &self.group_id, &self.member_id, None, self.timeout()).await;
        self.member_id.clear();
        self.generation = -1;
        r
    }

    /// Commits offsets: as this member's generation when active, else as a simple commit
    /// (generation -1), which the coordinator accepts only for a group without members.
    pub(crate) async fn commit(
        &mut self,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
    ) -> Result<(), Error> {
        if offsets.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.client.inner.config.delivery_timeout;
        loop {
            match self.commit_once(offsets).await {
                Ok(()) => return Ok(()),
                // KIP-848: the epoch moved since the heartbeat task last heard it; the next
                // heartbeat brings the current one.
                Err(e)
                    if e.code() == Some(ErrorCode::STALE_MEMBER_EPOCH)
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(self.backoff.next_delay()).await;
                }
                Err(e) => self.retry_after(e, "OffsetCommit", deadline).await?,
            }
        }
    }

    async fn commit_once(
        &mut self,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
    ) -> Result<(), Error> {
        let conn = self.coordinator().await?;
        let version = conn.version(ApiKey::OffsetCommit)?;
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (tp, om) in offsets {
            let mut p = OffsetCommitRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_committed_offset(om.offset)
                .with_committed_metadata(Some(sb(om.metadata.as_deref().unwrap_or(""))));
            if version >= 6 {
                p.committed_leader_epoch = -1;
            }
            by_topic.entry(&tp.topic).or_default().push(p);
        }
        let (generation, member) = if self.is_active() {
            let generation = self
                .live_epoch
                .as_ref()
                .map_or(self.generation, |e| e.load(Ordering::Acquire));
            (generation, self.member_id.clone())
        } else {
            (-1, String::new())
        };
        let mut req = OffsetCommitRequest::default()
            .with_group_id(GroupId(sb(&self.group_id)))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(sb(&member))
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(sb(t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        if version >= 7 && generation >= 0 {
            req.group_instance_id = self.instance_id();
        }
        let resp: OffsetCommitResponse = conn
            .request_at(ApiKey::OffsetCommit, version, &req, self.timeout())
            .await?;
        for t in &resp.topics {
            for p in &t.partitions {
                if p.error_code != 0 {
                    if matches!(
                        p.error_code,
                        ErrorCode::UNKNOWN_MEMBER_ID
                            | ErrorCode::ILLEGAL_GENERATION
                            | ErrorCode::FENCED_INSTANCE_ID
                            | ErrorCode::FENCED_MEMBER_EPOCH
                    ) {
                        self.flags.lost.store(true, Ordering::Release);
                    }
                    return Err(Error::broker(
                        p.error_code,
                        Some(&t.name.0),
                        Some(p.partition_index),
                        Some(format!("OffsetCommit of group {}", self.group_id)),
                    ));
                }
            }
        }
        debug!(group = %self.group_id, partitions = offsets.len(), generation, "offsets committed");
        Ok(())
    }

    /// The group's committed offsets of `partitions` (`None`: nothing committed).
    pub(crate) async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, Option<OffsetAndMetadata>>, Error> {
        let deadline = Instant::now() + self.client.inner.config.delivery_timeout;
        loop {
            match self.committed_once(partitions).await {
                Ok(r) => return Ok(r),
                // KIP-447: a transaction holding offsets of these partitions has not ended
                // yet; its outcome decides where to start, so wait for it.
                Err(e)
                    if e.code() == Some(ErrorCode::UNSTABLE_OFFSET_COMMIT)
                        && Instant::now() < deadline =>
                {
                    debug!(group = %self.group_id, reason = "pending transactional offsets", "OffsetFetch: retrying");
                    tokio::time::sleep(self.backoff.next_delay()).await;
                }
                Err(e) => self.retry_after(e, "OffsetFetch", deadline).await?,
            }
        }
    }

    async fn committed_once(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, Option<OffsetAndMetadata>>, Error> {
        let conn = self.coordinator().await?;
        let version = conn.version(ApiKey::OffsetFetch)?;
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in partitions {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        let req = OffsetFetchRequest::default()
            // KIP-447 (v7+): refuse offsets a transaction may still change (retried above).
            .with_require_stable(version >= 7)
            .with_group_id(GroupId(sb(&self.group_id)))
            .with_topics(Some(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(TopicName(sb(t)))
                            .with_partition_indexes(ps)
                    })
                    .collect(),
            ));
        let resp: OffsetFetchResponse = conn
            .request_at(ApiKey::OffsetFetch, version, &req, self.timeout())
            .await?;
        if version >= 2 && resp.error_code != 0 {
            return Err(Error::broker(
                resp.error_code,
                None,
                None,
                Some(format!("OffsetFetch of group {}", self.group_id)),
            ));
        }
        let mut out: HashMap<TopicPartition, Option<OffsetAndMetadata>> =
            partitions.iter().map(|tp| (tp.clone(), None)).collect();
        for t in &resp.topics {
            for p in &t.partitions {
                if p.error_code != 0 {
                    return Err(Error::broker(
                        p.error_code,
                        Some(&t.name.0),
                        Some(p.partition_index),
                        Some(format!("OffsetFetch of group {}", self.group_id)),
                    ));
                }
                let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                if let Some(slot) = out.get_mut(&tp) {
                    *slot = (p.committed_offset >= 0).then(|| OffsetAndMetadata {
                        offset: p.committed_offset,
                        metadata: p
                            .metadata
                            .as_ref()
                            .map(|m| m.to_string())
                            .filter(|m| !m.is_empty()),
                    });
                }
            }
        }
        Ok(out)
    }
}

/// Finds `group_id`'s coordinator (FindCoordinator) and opens a connection of our own to it
/// (see the module docs).
pub(super) async fn find_coordinator(
    client: &Client,
    group_id: &str,
    timeout: Duration,
) -> Result<Arc<Connection>, Error> {
    let (_, addr) =
        crate::coordinator::find(client, CoordinatorKind::Group, group_id, timeout).await?;
    // Our own connection (see the module docs), not the pooled one.
    Connection::connect(&addr, &client.inner.conn_config).await
}

pub(super) fn ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

async fn heartbeat(
    conn: &Connection,
    group_id: &str,
    member_id: &str,
    generation: i32,
    instance_id: Option<&str>,
    timeout: Duration,
) -> Result<i16, Error> {
    let version = conn.version(ApiKey::Heartbeat)?;
    let mut req = HeartbeatRequest::default()
        .with_group_id(GroupId(sb(group_id)))
        .with_generation_id(generation)
        .with_member_id(sb(member_id));
    if version >= 3 {
        req.group_instance_id = instance_id.map(sb);
    }
    let resp: HeartbeatResponse = conn
        .request_at(ApiKey::Heartbeat, version, &req, timeout)
        .await?;
    Ok(resp.error_code)
}

async fn leave(
    conn: &Connection,
    group_id: &str,
    member_id: &str,
    instance_id: Option<&str>,
    timeout: Duration,
) -> Result<(), Error> {
    let version = conn.version(ApiKey::LeaveGroup)?;
    let mut req = LeaveGroupRequest::default().with_group_id(GroupId(sb(group_id)));
    if version >= 3 {
        req.members = vec![MemberIdentity::default()
            .with_member_id(sb(member_id))
            .with_group_instance_id(instance_id.map(sb))];
    } else {
        req.member_id = sb(member_id);
    }
    let resp: LeaveGroupResponse = conn
        .request_at(ApiKey::LeaveGroup, version, &req, timeout)
        .await?;
    let code = if resp.error_code != 0 {
        resp.error_code
    } else {
        resp.members
            .iter()
            .map(|m| m.error_code)
            .find(|c| *c != 0)
            .unwrap_or(0)
    };
    if code != 0 && code != ErrorCode::UNKNOWN_MEMBER_ID {
        return Err(Error::broker(
            code,
            None,
            None,
            Some(format!("LeaveGroup of group {group_id}")),
        ));
    }
    debug!(group = %group_id, member = %member_id, "left group");
    Ok(())
}

//! The classic consumer-group coordinator: membership, rebalances, committed offsets.
//!
//! State machine per group (Kafka's, without the initial rebalance delay):
//! `Empty` → (join) `PreparingRebalance` → (every known member joined, or the rebalance
//! timeout passed: stragglers are removed) `CompletingRebalance` → (leader's SyncGroup)
//! `Stable` → (a join, a leave or an expired session) `PreparingRebalance` ...
//!
//! JoinGroup and SyncGroup wait (without holding the lock) on the group's `Notify` until
//! their round is decided. Sessions expire lazily: every group call first removes members
//! whose last heartbeat is older than their session timeout (members parked in a join are
//! alive). A static member (KIP-345) rejoining a stable group with unchanged protocols takes
//! over its slot and assignment without a rebalance; offsets may be committed while the group
//! prepares a rebalance (not while it waits for the leader's SyncGroup). The coordinator of
//! every group is the lowest running node; group state is shared by the cluster, so it
//! survives coordinator moves. With a `data_dir`, the committed offsets (of both protocols'
//! groups, and those of committed transactions) survive a restart (see `store`); membership
//! does not: members rejoin, as they do after a coordinator failover in Kafka.

mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::cluster::lock;
use kafka_persistence_wire::ErrorCode;

/// Group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// The name Kafka gives the state (DescribeGroups, ListGroups).
    pub(crate) fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// One member.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) instance_id: Option<String>,
    /// The client id and address of the member's last JoinGroup (DescribeGroups).
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) last_seen: Instant,
    /// Joined in the current rebalance round.
    pub(crate) joined: bool,
    /// Parked in a JoinGroup right now (counts as alive).
    pub(crate) waiting: bool,
    pub(crate) assignment: Bytes,
}

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Committed {
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: Option<String>,
    /// When the commit was made (ms since the epoch), kept like Kafka's commit timestamp.
    pub(crate) commit_timestamp_ms: i64,
}

/// One group.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) state: GroupState,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol: Option<String>,
    pub(crate) leader: Option<String>,
    pub(crate) members: BTreeMap<String, Member>,
    pub(crate) rebalance_deadline: Option<Instant>,
    pub(crate) offsets: BTreeMap<(String, i32), Committed>,
    pub(crate) changed: Arc<Notify>,
}

impl Group {
    fn new() -> Group {
        Group {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            rebalance_deadline: None,
            offsets: BTreeMap::new(),
            changed: Arc::new(Notify::new()),
        }
    }

    /// Removes members whose session expired; starts a rebalance if any were removed.
    fn expire(&mut self, now: Instant) {
        let before = self.members.len();
        self.members
            .retain(|_, m| m.waiting || now.duration_since(m.last_seen) <= m.session_timeout);
        if self.members.len() != before {
            tracing::debug!(
                removed = before - self.members.len(),
                reason = "session timeout",
                "group members expired"
            );
            self.start_rebalance(now);
        }
    }

    /// Moves to PreparingRebalance (or Empty when no member is left).
    fn start_rebalance(&mut self, now: Instant) {
        if self.members.is_empty() {
            if self.state != GroupState::Empty {
                self.generation += 1;
            }
            self.state = GroupState::Empty;
            self.leader = None;
            self.protocol = None;
            self.rebalance_deadline = None;
        } else if self.state != GroupState::PreparingRebalance {
            self.state = GroupState::PreparingRebalance;
            for m in self.members.values_mut() {
                m.joined = false;
            }
            let timeout = self
                .members
                .values()
                .map(|m| m.rebalance_timeout)
                .max()
                .unwrap_or(Duration::from_secs(60));
            self.rebalance_deadline = Some(now + timeout);
        }
        self.changed.notify_waiters();
    }

    /// Completes the join round if every member joined, or if `force` (deadline passed):
    /// members that did not join are removed.
    fn maybe_complete_join(&mut self, force: bool) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if !force && !self.members.values().all(|m| m.joined) {
            return;
        }
        self.members.retain(|_, m| m.joined);
        if self.members.is_empty() {
            self.start_rebalance(Instant::now());
            return;
        }
        self.generation += 1;
        self.protocol = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
        }
        self.state = GroupState::CompletingRebalance;
        self.rebalance_deadline = None;
        self.changed.notify_waiters();
    }

    /// The first protocol, in the leader's (or first member's) preference order, that every
    /// member supports.
    fn select_protocol(&self) -> Option<String> {
        let first = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .or_else(|| self.members.values().next())?;
        first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .find(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(x, _)| x == *n))
            })
            .cloned()
    }
}

/// Parameters of a JoinGroup.
#[derive(Debug)]
pub(crate) struct JoinArgs {
    pub(crate) group_id: String,
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    pub(crate) protocol_type: String,
    pub(crate) protocols: Vec<(String, Bytes)>,
}

/// The outcome of a JoinGroup.
#[derive(Debug, Default)]
pub(crate) struct JoinResult {
    pub(crate) error: i16,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol: Option<String>,
    pub(crate) leader: String,
    pub(crate) member_id: String,
    /// (member id, instance id, metadata) for the leader only.
    pub(crate) members: Vec<(String, Option<String>, Bytes)>,
}

/// The outcome of a SyncGroup.
#[derive(Debug, Default)]
pub(crate) struct SyncResult {
    pub(crate) error: i16,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol: Option<String>,
    pub(crate) assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupSummary {
    pub(crate) state: GroupState,
    /// Empty for a group that only holds committed offsets (no member ever joined).
    pub(crate) protocol_type: String,
    /// The chosen protocol, only when Stable (as Kafka: empty in the other states).
    pub(crate) protocol: String,
    pub(crate) members: Vec<MemberSummary>,
}

/// A member as DescribeGroups shows it; metadata and assignment only when the group is
/// Stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberSummary {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) metadata: Bytes,
    pub(crate) assignment: Bytes,
}

/// One topic's committed offsets: partition → commit (None = nothing committed).
pub(crate) type TopicOffsets = (String, Vec<(i32, Option<Committed>)>);

/// All groups.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    groups: Mutex<HashMap<String, Group>>,
    member_counter: AtomicU64,
    /// Where committed offsets are kept (`store`), if anywhere.
    data_dir: Option<PathBuf>,
}

/// Upper bound on how long a join or sync parks, whatever the client asked.
const MAX_PARK: Duration = Duration::from_secs(300);

impl Groups {
    /// The groups of a cluster that keeps its committed offsets in `data_dir` (if any).
    pub(crate) fn new(data_dir: Option<PathBuf>) -> Groups {
        Groups {
            data_dir,
            ..Groups::default()
        }
    }

    /// Loads the committed offsets from `data_dir` (at start).
    pub(crate) fn load(&self) -> std::io::Result<()> {
        let Some(dir) = &self.data_dir else {
            return Ok(());
        };
        let loaded = store::load(dir)?;
        let mut groups = lock(&self.groups);
        for (id, offsets) in loaded {
            groups.entry(id).or_insert_with(Group::new).offsets = offsets;
        }
        Ok(())
    }

    /// Writes the committed offsets to `data_dir` (if any), under the groups lock so that
    /// writes land in commit order; a failure is logged, the offsets stay in memory.
    fn save(&self, groups: &HashMap<String, Group>) {
        if let Some(dir) = &self.data_dir {
            if let Err(e) = store::save(dir, groups) {
                tracing::warn!(error = %e, reason = "cannot write committed offsets", "committed offsets not persisted");
            }
        }
    }

    /// JoinGroup: registers the member, then waits until the round is decided.
    pub(crate) async fn join(&self, args: JoinArgs) -> JoinResult {
        let fail = |error: i16, member_id: &str| JoinResult {
            error,
            generation: -1,
            member_id: member_id.to_string(),
            ..JoinResult::default()
        };
        if args.group_id.is_empty() {
            return fail(ErrorCode::INVALID_GROUP_ID, &args.member_id);
        }
        if args.session_timeout.is_zero() || args.protocols.is_empty() {
            return fail(
                if args.protocols.is_empty() {
                    ErrorCode::INCONSISTENT_GROUP_PROTOCOL
                } else {
                    ErrorCode::INVALID_SESSION_TIMEOUT
                },
                &args.member_id,
            );
        }
        let member_id;
        {
            let mut groups = lock(&self.groups);
            let g = groups
                .entry(args.group_id.clone())
                .or_insert_with(Group::new);
            let now = Instant::now();
            g.expire(now);
            if let Some(pt) = &g.protocol_type {
                if !g.members.is_empty() && *pt != args.protocol_type {
                    return fail(ErrorCode::INCONSISTENT_GROUP_PROTOCOL, &args.member_id);
                }
            }
            if !g.members.is_empty()
                && !args.protocols.iter().any(|(n, _)| {
                    g.members
                        .values()
                        .all(|m| m.protocols.iter().any(|(x, _)| x == n))
                })
            {
                return fail(ErrorCode::INCONSISTENT_GROUP_PROTOCOL, &args.member_id);
            }
            // KIP-345: a static member that rejoins (restarted, so with an empty member id)
            // a stable group with the same protocols takes over its old slot under a new
            // member id, keeps its assignment, and no rebalance happens.
            if args.member_id.is_empty() && g.state == GroupState::Stable {
                if let Some(inst) = &args.instance_id {
                    let old = g
                        .members
                        .values()
                        .find(|m| m.instance_id.as_ref() == Some(inst))
                        .map(|m| {
                            // The same protocol names: the chosen protocol cannot change.
                            // (The metadata bytes differ after a restart: no owned partitions.)
                            let names = |p: &[(String, Bytes)]| -> Vec<String> {
                                p.iter().map(|(n, _)| n.clone()).collect()
                            };
                            (m.id.clone(), names(&m.protocols) == names(&args.protocols))
                        });
                    if let Some((old_id, true)) = old {
                        let n = self.member_counter.fetch_add(1, Ordering::Relaxed);
                        let new_id = format!(
                            "{}-{n}",
                            if args.client_id.is_empty() {
                                "member"
                            } else {
                                &args.client_id
                            }
                        );
                        if let Some(mut m) = g.members.remove(&old_id) {
                            m.id = new_id.clone();
                            m.protocols = args.protocols.clone();
                            m.client_id = args.client_id.clone();
                            m.client_host = args.client_host.clone();
                            m.session_timeout = args.session_timeout;
                            m.rebalance_timeout = args.rebalance_timeout;
                            m.last_seen = now;
                            m.waiting = false;
                            g.members.insert(new_id.clone(), m);
                        }
                        if g.leader.as_deref() == Some(old_id.as_str()) {
                            g.leader = Some(new_id.clone());
                        }
                        tracing::debug!(instance = %inst, old = %old_id, new = %new_id, reason = "static member rejoined", "member id replaced without a rebalance");
                        return JoinResult {
                            error: ErrorCode::NONE,
                            generation: g.generation,
                            protocol_type: g.protocol_type.clone(),
                            protocol: g.protocol.clone(),
                            leader: g.leader.clone().unwrap_or_default(),
                            member_id: new_id,
                            // Like Kafka, the leader is not asked to assign again.
                            members: Vec::new(),
                        };
                    }
                }
            }
            member_id = if args.member_id.is_empty() {
                // A static member (KIP-345) keeps its slot under a new member id.
                if let Some(inst) = &args.instance_id {
                    let old: Vec<String> = g
                        .members
                        .values()
                        .filter(|m| m.instance_id.as_ref() == Some(inst))
                        .map(|m| m.id.clone())
                        .collect();
                    for o in old {
                        g.members.remove(&o);
                    }
                }
                let n = self.member_counter.fetch_add(1, Ordering::Relaxed);
                format!(
                    "{}-{n}",
                    if args.client_id.is_empty() {
                        "member"
                    } else {
                        &args.client_id
                    }
                )
            } else if g.members.contains_key(&args.member_id) {
                args.member_id.clone()
            } else {
                return fail(ErrorCode::UNKNOWN_MEMBER_ID, &args.member_id);
            };
            g.members.insert(
                member_id.clone(),
                Member {
                    id: member_id.clone(),
                    instance_id: args.instance_id.clone(),
                    client_id: args.client_id.clone(),
                    client_host: args.client_host.clone(),
                    session_timeout: args.session_timeout,
                    rebalance_timeout: args.rebalance_timeout,
                    protocols: args.protocols.clone(),
                    last_seen: now,
                    joined: true,
                    waiting: true,
                    assignment: Bytes::new(),
                },
            );
            g.protocol_type = Some(args.protocol_type.clone());
            // Any join outside a running round starts one (Kafka skips the rebalance when a
            // follower rejoins a stable group with unchanged metadata; we do not).
            if g.state != GroupState::PreparingRebalance {
                g.start_rebalance(now);
                if let Some(m) = g.members.get_mut(&member_id) {
                    m.joined = true;
                }
            }
            g.maybe_complete_join(false);
        }
        let deadline = Instant::now() + MAX_PARK;
        loop {
            let (notify, wait_until) = {
                let mut groups = lock(&self.groups);
                let Some(g) = groups.get_mut(&args.group_id) else {
                    return fail(ErrorCode::UNKNOWN_MEMBER_ID, &member_id);
                };
                let now = Instant::now();
                if g.state == GroupState::PreparingRebalance
                    && g.rebalance_deadline.is_some_and(|d| now >= d)
                {
                    g.maybe_complete_join(true);
                }
                if !g.members.contains_key(&member_id) {
                    return fail(ErrorCode::UNKNOWN_MEMBER_ID, &member_id);
                }
                if g.state == GroupState::CompletingRebalance || g.state == GroupState::Stable {
                    let leader = g.leader.clone().unwrap_or_default();
                    if let Some(m) = g.members.get_mut(&member_id) {
                        m.waiting = false;
                        m.last_seen = now;
                    }
                    let members = if leader == member_id {
                        let proto = g.protocol.clone().unwrap_or_default();
                        g.members
                            .values()
                            .map(|m| {
                                let meta = m
                                    .protocols
                                    .iter()
                                    .find(|(n, _)| *n == proto)
                                    .map(|(_, b)| b.clone())
                                    .unwrap_or_default();
                                (m.id.clone(), m.instance_id.clone(), meta)
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    return JoinResult {
                        error: ErrorCode::NONE,
                        generation: g.generation,
                        protocol_type: g.protocol_type.clone(),
                        protocol: g.protocol.clone(),
                        leader,
                        member_id,
                        members,
                    };
                }
                if now >= deadline {
                    if let Some(m) = g.members.get_mut(&member_id) {
                        m.waiting = false;
                    }
                    return fail(ErrorCode::REBALANCE_IN_PROGRESS, &member_id);
                }
                let until = g.rebalance_deadline.unwrap_or(deadline).min(deadline);
                (Arc::clone(&g.changed), until)
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Re-check after arming: the state may have changed between unlock and enable.
            if self.round_decided(&args.group_id) {
                continue;
            }
            let _ = tokio::time::timeout_at(wait_until.into(), notified).await;
        }
    }

    fn round_decided(&self, group_id: &str) -> bool {
        lock(&self.groups)
            .get(group_id)
            .is_none_or(|g| g.state != GroupState::PreparingRebalance)
    }

    /// SyncGroup: the leader's assignments are stored; everyone waits for them.
    pub(crate) async fn sync(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResult {
        let fail = |error| SyncResult {
            error,
            ..SyncResult::default()
        };
        let deadline = Instant::now() + MAX_PARK;
        let mut first = true;
        loop {
            let notify = {
                let mut groups = lock(&self.groups);
                let Some(g) = groups.get_mut(group_id) else {
                    return fail(ErrorCode::UNKNOWN_MEMBER_ID);
                };
                let now = Instant::now();
                g.expire(now);
                let Some(m) = g.members.get_mut(member_id) else {
                    return fail(ErrorCode::UNKNOWN_MEMBER_ID);
                };
                m.last_seen = now;
                if generation != g.generation {
                    return fail(ErrorCode::ILLEGAL_GENERATION);
                }
                match g.state {
                    GroupState::PreparingRebalance | GroupState::Empty => {
                        return fail(ErrorCode::REBALANCE_IN_PROGRESS)
                    }
                    GroupState::CompletingRebalance => {
                        if first && g.leader.as_deref() == Some(member_id) {
                            for (id, a) in &assignments {
                                if let Some(m) = g.members.get_mut(id) {
                                    m.assignment = a.clone();
                                }
                            }
                            g.state = GroupState::Stable;
                            g.changed.notify_waiters();
                        }
                    }
                    GroupState::Stable => {}
                }
                first = false;
                if g.state == GroupState::Stable {
                    return SyncResult {
                        error: ErrorCode::NONE,
                        protocol_type: g.protocol_type.clone(),
                        protocol: g.protocol.clone(),
                        assignment: g
                            .members
                            .get(member_id)
                            .map(|m| m.assignment.clone())
                            .unwrap_or_default(),
                    };
                }
                if now >= deadline {
                    return fail(ErrorCode::REBALANCE_IN_PROGRESS);
                }
                Arc::clone(&g.changed)
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if lock(&self.groups)
                .get(group_id)
                .is_none_or(|g| g.state != GroupState::CompletingRebalance)
            {
                continue;
            }
            let _ = tokio::time::timeout_at(deadline.into(), notified).await;
        }
    }

    /// Heartbeat.
    pub(crate) fn heartbeat(&self, group_id: &str, generation: i32, member_id: &str) -> i16 {
        let mut groups = lock(&self.groups);
        let Some(g) = groups.get_mut(group_id) else {
            return ErrorCode::UNKNOWN_MEMBER_ID;
        };
        let now = Instant::now();
        g.expire(now);
        let Some(m) = g.members.get_mut(member_id) else {
            return ErrorCode::UNKNOWN_MEMBER_ID;
        };
        m.last_seen = now;
        // Kafka's order: a stale generation is fenced (ILLEGAL_GENERATION) before the
        // current one is told to rejoin.
        if generation != g.generation {
            return ErrorCode::ILLEGAL_GENERATION;
        }
        if g.state == GroupState::PreparingRebalance {
            return ErrorCode::REBALANCE_IN_PROGRESS;
        }
        ErrorCode::NONE
    }

    /// LeaveGroup for each member; returns one error code per member.
    pub(crate) fn leave(&self, group_id: &str, members: &[(String, Option<String>)]) -> Vec<i16> {
        let mut groups = lock(&self.groups);
        let Some(g) = groups.get_mut(group_id) else {
            return members
                .iter()
                .map(|_| ErrorCode::UNKNOWN_MEMBER_ID)
                .collect();
        };
        let mut out = Vec::with_capacity(members.len());
        let mut removed = false;
        for (id, inst) in members {
            let key = if id.is_empty() {
                inst.as_ref().and_then(|i| {
                    g.members
                        .values()
                        .find(|m| m.instance_id.as_ref() == Some(i))
                        .map(|m| m.id.clone())
                })
            } else {
                Some(id.clone())
            };
            match key.and_then(|k| g.members.remove(&k)) {
                Some(_) => {
                    removed = true;
                    out.push(ErrorCode::NONE);
                }
                None => out.push(ErrorCode::UNKNOWN_MEMBER_ID),
            }
        }
        if removed {
            g.start_rebalance(Instant::now());
            g.maybe_complete_join(false);
        }
        out
    }

    /// OffsetCommit validation: simple commits (generation -1, no member) need an empty
    /// group; members must be known and in the current generation, and the group must not be
    /// waiting for the leader's assignment (CompletingRebalance).
    pub(crate) fn commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        offsets: Vec<((String, i32), Committed)>,
    ) -> i16 {
        if group_id.is_empty() {
            return ErrorCode::INVALID_GROUP_ID;
        }
        let mut groups = lock(&self.groups);
        let g = groups
            .entry(group_id.to_string())
            .or_insert_with(Group::new);
        let now = Instant::now();
        g.expire(now);
        if generation < 0 && member_id.is_empty() {
            if !g.members.is_empty() {
                return ErrorCode::UNKNOWN_MEMBER_ID;
            }
        } else {
            let Some(m) = g.members.get_mut(member_id) else {
                return ErrorCode::UNKNOWN_MEMBER_ID;
            };
            m.last_seen = now;
            if generation != g.generation {
                return ErrorCode::ILLEGAL_GENERATION;
            }
            // Kafka accepts commits of the current generation while the group prepares a
            // rebalance: that is when an eager member commits what it is about to give up
            // (before its JoinGroup). Only between the join and the leader's SyncGroup is a
            // commit refused, as the member cannot know its new assignment yet.
            if g.state == GroupState::CompletingRebalance {
                return ErrorCode::REBALANCE_IN_PROGRESS;
            }
        }
        for (k, v) in offsets {
            g.offsets.insert(k, v);
        }
        self.save(&groups);
        ErrorCode::NONE
    }

    /// TxnOffsetCommit's group check (KIP-447): generation -1 with no member id skips it
    /// (older clients); otherwise the member must be known and in the current generation.
    pub(crate) fn check_txn_member(&self, group_id: &str, generation: i32, member_id: &str) -> i16 {
        if group_id.is_empty() {
            return ErrorCode::INVALID_GROUP_ID;
        }
        if generation < 0 && member_id.is_empty() {
            return ErrorCode::NONE;
        }
        let mut groups = lock(&self.groups);
        let Some(g) = groups.get_mut(group_id) else {
            return ErrorCode::UNKNOWN_MEMBER_ID;
        };
        g.expire(Instant::now());
        if !g.members.contains_key(member_id) {
            return ErrorCode::UNKNOWN_MEMBER_ID;
        }
        if generation != g.generation {
            return ErrorCode::ILLEGAL_GENERATION;
        }
        ErrorCode::NONE
    }

    /// Stores offsets checked elsewhere: those of a committed transaction (checked when they
    /// were sent) and the commits of a consumer-protocol group (`groups848`), which share
    /// this store.
    pub(crate) fn store_offsets(&self, group_id: &str, offsets: Vec<((String, i32), Committed)>) {
        let mut groups = lock(&self.groups);
        let g = groups
            .entry(group_id.to_string())
            .or_insert_with(Group::new);
        for (k, v) in offsets {
            g.offsets.insert(k, v);
        }
        self.save(&groups);
    }

    /// Whether `group_id` has classic members (live sessions).
    pub(crate) fn has_members(&self, group_id: &str) -> bool {
        let mut groups = lock(&self.groups);
        match groups.get_mut(group_id) {
            Some(g) => {
                g.expire(Instant::now());
                !g.members.is_empty()
            }
            None => false,
        }
    }

    /// The group as DescribeGroups shows it, `None` if no such group exists (members expire
    /// first, as on every group call).
    pub(crate) fn describe(&self, group_id: &str) -> Option<GroupSummary> {
        let mut groups = lock(&self.groups);
        let g = groups.get_mut(group_id)?;
        g.expire(Instant::now());
        let stable = g.state == GroupState::Stable;
        let protocol = if stable {
            g.protocol.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let members = g
            .members
            .values()
            .map(|m| {
                let (metadata, assignment) = if stable {
                    let meta = m
                        .protocols
                        .iter()
                        .find(|(n, _)| *n == protocol)
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default();
                    (meta, m.assignment.clone())
                } else {
                    (Bytes::new(), Bytes::new())
                };
                MemberSummary {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata,
                    assignment,
                }
            })
            .collect();
        Some(GroupSummary {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol,
            members,
        })
    }

    /// Every group: (id, protocol type, state), by id.
    pub(crate) fn list(&self) -> Vec<(String, String, GroupState)> {
        let mut groups = lock(&self.groups);
        let now = Instant::now();
        let mut out: Vec<(String, String, GroupState)> = groups
            .iter_mut()
            .map(|(id, g)| {
                g.expire(now);
                (
                    id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state,
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Committed offsets of a group: for `topics` (name → partitions) or all.
    pub(crate) fn committed(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Vec<TopicOffsets> {
        let groups = lock(&self.groups);
        let offsets = groups.get(group_id).map(|g| &g.offsets);
        match topics {
            Some(ts) => ts
                .into_iter()
                .map(|(t, ps)| {
                    let parts = ps
                        .into_iter()
                        .map(|p| (p, offsets.and_then(|o| o.get(&(t.clone(), p)).cloned())))
                        .collect();
                    (t, parts)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<Committed>)>> = BTreeMap::new();
                for ((t, p), c) in offsets.into_iter().flatten() {
                    by_topic
                        .entry(t.clone())
                        .or_default()
                        .push((*p, Some(c.clone())));
                }
                by_topic.into_iter().collect()
            }
        }
    }
}

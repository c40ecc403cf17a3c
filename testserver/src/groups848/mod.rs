//! The consumer group coordinator of KIP-848 (`ConsumerGroupHeartbeat`): membership,
//! epochs, the server-side assignment and its reconciliation, member by member.
//!
//! - Epochs: the **group epoch** is bumped by every change that can move partitions (a member
//!   joins, leaves, is fenced, changes its subscription or assignor; a subscribed topic appears
//!   or grows). The **target assignment** is recomputed (with the group's assignor,
//!   `assign.rs`) when it is older than the group epoch, and carries that epoch. A **member
//!   epoch** reaches the target epoch once the member gave up every partition the target no
//!   longer gives it.
//! - Reconciliation (on the member's own heartbeat): a member owning partitions outside its
//!   target is told its assignment without them and keeps its epoch until a heartbeat reports
//!   them gone (revocation acknowledged); then its epoch moves to the target epoch and it gets
//!   the target partitions that no other member still owns or has yet to revoke — a partition
//!   reaches its new owner only after the old owner acknowledged its revocation.
//! - A heartbeat with the member's epoch, or with its previous epoch when what it reports owning
//!   is within its assignment (a lost response), is accepted; any other epoch is
//!   FENCED_MEMBER_EPOCH; an unknown member id is UNKNOWN_MEMBER_ID. Epoch 0 joins (or
//!   rejoins, dropping what the member owned), -1 leaves, -2 leaves a static member's slot
//!   (`instance_id`) with its assignment for the session timeout; a static member rejoining
//!   takes the slot over (new member id, same assignment and epoch, no rebalance) and one
//!   whose slot is still held by a live member is UNRELEASED_INSTANCE_ID.
//! - Timeouts, checked lazily on every call: a member not heard from for
//!   `group.consumer.session.timeout.ms` (builder setting) is removed; one that did not
//!   acknowledge a revocation within its rebalance timeout is removed (fenced).
//! - Offsets live in the classic coordinator's store (`groups.rs`); commits of a group of this
//!   protocol are validated here: OffsetCommit v9+, the member known (UNKNOWN_MEMBER_ID), its
//!   epoch the member's (else STALE_MEMBER_EPOCH, older or newer, as Kafka 4.1); a simple
//!   commit (no member, epoch -1) only while the group has no member.
//!
//! - Regex subscriptions (`subscribed_topic_regex`, v1): the member subscribes to every topic
//!   whose whole name matches (Rust `regex` syntax, close to Kafka's RE2J), resolved again on
//!   every heartbeat of the group, so a topic created later joins the subscription; an invalid
//!   one is INVALID_REGULAR_EXPRESSION.
//!
//! Skipped: rack-aware assignment, group size limits, upgrading a classic group in place (a group id is of one
//! protocol while it has members).

pub(crate) mod assign;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kafka_persistence_wire::ErrorCode;

use crate::cluster::lock;
use assign::{AssignMember, Partitions, ASSIGNORS};

/// One member.
#[derive(Debug, Clone)]
struct Member {
    id: String,
    instance_id: Option<String>,
    /// The client id and address of the member's latest heartbeat (ConsumerGroupDescribe).
    client_id: String,
    client_host: String,
    epoch: i32,
    previous_epoch: i32,
    topics: BTreeSet<String>,
    /// A regex subscription (anchored), resolved into `topics`.
    regex: Option<(String, regex::Regex)>,
    assignor: Option<String>,
    rebalance_timeout: Duration,
    last_seen: Instant,
    /// What the member may own now (told in the last response that carried an assignment).
    assigned: Partitions,
    /// Partitions it must give up before its epoch advances.
    revoking: Partitions,
    revoke_deadline: Option<Instant>,
    /// The assignment last sent, to send it again only when it changed.
    sent: Option<Partitions>,
    /// A static member that left with epoch -2: its slot waits for the session timeout.
    departed: bool,
}

/// One group.
#[derive(Debug, Default)]
struct Group {
    epoch: i32,
    target_epoch: i32,
    target: BTreeMap<String, Partitions>,
    members: BTreeMap<String, Member>,
    /// Partition counts of the subscribed topics when the group epoch was last bumped.
    topics: BTreeMap<String, i32>,
}

/// A ConsumerGroupHeartbeat as the coordinator sees it (owned partitions by topic name).
#[derive(Debug)]
pub(crate) struct HeartbeatArgs {
    pub(crate) group_id: String,
    pub(crate) member_id: String,
    pub(crate) epoch: i32,
    pub(crate) instance_id: Option<String>,
    pub(crate) rebalance_timeout: Option<Duration>,
    pub(crate) topics: Option<Vec<String>>,
    pub(crate) regex: Option<String>,
    pub(crate) assignor: Option<String>,
    pub(crate) owned: Option<Partitions>,
    /// The request header's client id and the connection's peer address.
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    /// v0 lets the coordinator choose the member id; v1+ needs the member's own.
    pub(crate) version: i16,
}

/// The answer to a heartbeat.
#[derive(Debug, Default)]
pub(crate) struct HeartbeatResult {
    pub(crate) error: i16,
    pub(crate) message: Option<String>,
    pub(crate) member_id: String,
    pub(crate) epoch: i32,
    pub(crate) heartbeat_interval: Duration,
    /// The member's full assignment, when it changed (or the member may not know it).
    pub(crate) assignment: Option<Partitions>,
}

/// What a commit check says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommitCheck {
    /// Not a group of this protocol: the classic rules apply.
    Classic,
    /// A group of this protocol: accept (`NONE`) or refuse with the code.
    Consumer(i16),
}

/// A group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupSummary {
    /// Kafka's names: Empty, Assigning, Reconciling, Stable.
    pub(crate) state: &'static str,
    pub(crate) epoch: i32,
    pub(crate) assignment_epoch: i32,
    pub(crate) assignor: &'static str,
    pub(crate) members: Vec<MemberSummary>,
}

/// A member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberSummary {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    /// -2 for a static member that left its slot (kept for the session timeout).
    pub(crate) epoch: i32,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) topics: Vec<String>,
    pub(crate) regex: Option<String>,
    /// What the member may own now.
    pub(crate) assignment: Partitions,
    /// Its share of the target assignment.
    pub(crate) target: Partitions,
}

/// All groups of the consumer protocol.
#[derive(Debug)]
pub(crate) struct ConsumerGroups {
    groups: Mutex<HashMap<String, Group>>,
    session_timeout: Duration,
    heartbeat_interval: Duration,
    member_counter: AtomicU64,
}

fn count(p: &Partitions) -> usize {
    p.values().map(BTreeSet::len).sum()
}

fn minus(a: &Partitions, b: &Partitions) -> Partitions {
    let mut out = Partitions::new();
    for (t, ps) in a {
        let rest: BTreeSet<i32> = match b.get(t) {
            Some(bs) => ps.difference(bs).copied().collect(),
            None => ps.clone(),
        };
        if !rest.is_empty() {
            out.insert(t.clone(), rest);
        }
    }
    out
}

fn intersect(a: &Partitions, b: &Partitions) -> Partitions {
    let mut out = Partitions::new();
    for (t, ps) in a {
        if let Some(bs) = b.get(t) {
            let both: BTreeSet<i32> = ps.intersection(bs).copied().collect();
            if !both.is_empty() {
                out.insert(t.clone(), both);
            }
        }
    }
    out
}

fn within(a: &Partitions, b: &Partitions) -> bool {
    count(&minus(a, b)) == 0
}

impl Group {
    /// Whether the group exists for the inspection apis: it has members or had some (a
    /// failed first heartbeat leaves an entry at epoch 0 behind).
    fn exists(&self) -> bool {
        !self.members.is_empty() || self.epoch > 0
    }

    /// Kafka's state of a consumer group: Empty without members; Assigning while the
    /// target assignment is older than the group epoch; Reconciling while a member is not at
    /// the target epoch or does not own exactly its target; else Stable.
    fn state(&self) -> &'static str {
        if self.members.is_empty() {
            return "Empty";
        }
        if self.epoch > self.target_epoch {
            return "Assigning";
        }
        let empty = Partitions::new();
        let settled = self.members.values().all(|m| {
            m.epoch == self.target_epoch
                && count(&m.revoking) == 0
                && m.assigned == *self.target.get(&m.id).unwrap_or(&empty)
        });
        if settled {
            "Stable"
        } else {
            "Reconciling"
        }
    }

    fn bump(&mut self, why: &str) {
        self.epoch += 1;
        tracing::debug!(
            epoch = self.epoch,
            reason = why,
            "consumer group epoch bumped"
        );
    }

    /// Removes members whose session expired or whose revocation is overdue.
    fn expire(&mut self, now: Instant, session: Duration) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                now.duration_since(m.last_seen) > session
                    || m.revoke_deadline.is_some_and(|d| now >= d)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &gone {
            self.members.remove(id);
        }
        if !gone.is_empty() {
            self.bump("member session or rebalance timeout");
        }
    }

    /// The group's assignor: the one most members ask for, else the default.
    fn assignor(&self) -> &'static str {
        let mut votes: BTreeMap<usize, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(i) = m
                .assignor
                .as_deref()
                .and_then(|a| ASSIGNORS.iter().position(|x| *x == a))
            {
                *votes.entry(i).or_default() += 1;
            }
        }
        let best = votes
            .iter()
            .max_by_key(|(i, n)| (**n, std::cmp::Reverse(**i)))
            .map_or(0, |(i, _)| *i);
        ASSIGNORS[best]
    }

    /// Recomputes the target assignment if the group epoch moved past it.
    fn refresh_target(&mut self) {
        if self.target_epoch >= self.epoch {
            return;
        }
        let empty = Partitions::new();
        let members: Vec<AssignMember<'_>> = self
            .members
            .values()
            .map(|m| AssignMember {
                id: &m.id,
                topics: &m.topics,
                current: self.target.get(&m.id).unwrap_or(&empty),
            })
            .collect();
        let target = assign::assign(self.assignor(), &members, &self.topics).unwrap_or_default();
        self.target = target;
        self.target_epoch = self.epoch;
        tracing::debug!(
            epoch = self.epoch,
            assignor = self.assignor(),
            members = self.members.len(),
            "target assignment computed"
        );
    }

    /// Whether partition `p` of `t` is owned or being revoked by a member other than `me`.
    fn taken(&self, me: &str, t: &str, p: i32) -> bool {
        self.members.values().any(|m| {
            m.id != me
                && (m.assigned.get(t).is_some_and(|s| s.contains(&p))
                    || m.revoking.get(t).is_some_and(|s| s.contains(&p)))
        })
    }

    /// Moves member `id` as far toward its target as the others allow.
    fn reconcile(&mut self, id: &str, owned: Option<&Partitions>, now: Instant) {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let target_epoch = self.target_epoch;
        let Some(m) = self.members.get(id) else {
            return;
        };
        let mut m = m.clone();
        if count(&m.revoking) > 0 {
            let acked = owned.is_some_and(|o| intersect(o, &m.revoking).is_empty());
            if !acked {
                return;
            }
            m.revoking.clear();
            m.revoke_deadline = None;
        }
        if m.epoch < target_epoch {
            let revoke = minus(&m.assigned, &target);
            if count(&revoke) > 0 {
                m.assigned = intersect(&m.assigned, &target);
                m.revoking = revoke;
                m.revoke_deadline = Some(now + m.rebalance_timeout);
                self.members.insert(id.to_owned(), m);
                return;
            }
            m.previous_epoch = m.epoch;
            m.epoch = target_epoch;
        } else {
            // Same epoch: the target cannot have shrunk, but drop anything outside it.
            m.assigned = intersect(&m.assigned, &target);
        }
        for (t, ps) in &target {
            for &p in ps {
                if !self.taken(id, t, p) {
                    m.assigned.entry(t.clone()).or_default().insert(p);
                }
            }
        }
        self.members.insert(id.to_owned(), m);
    }
}

impl ConsumerGroups {
    /// Coordinator with the broker's `group.consumer.session.timeout.ms` and
    /// `group.consumer.heartbeat.interval.ms`.
    pub(crate) fn new(session_timeout: Duration, heartbeat_interval: Duration) -> Self {
        ConsumerGroups {
            groups: Mutex::new(HashMap::new()),
            session_timeout,
            heartbeat_interval,
            member_counter: AtomicU64::new(0),
        }
    }

    /// Whether `group_id` is a group of this protocol with members (live or departed static).
    pub(crate) fn has_members(&self, group_id: &str) -> bool {
        let mut groups = lock(&self.groups);
        match groups.get_mut(group_id) {
            Some(g) => {
                g.expire(Instant::now(), self.session_timeout);
                !g.members.is_empty()
            }
            None => false,
        }
    }

    /// Handles one heartbeat. `partitions` gives a topic's partition count (`None`: no such
    /// topic).
    pub(crate) fn heartbeat(
        &self,
        args: HeartbeatArgs,
        partitions: &dyn Fn(&str) -> Option<i32>,
        all_topics: &dyn Fn() -> Vec<String>,
    ) -> HeartbeatResult {
        let fail = |error: i16, message: &str| HeartbeatResult {
            error,
            message: Some(message.to_owned()),
            member_id: args.member_id.clone(),
            epoch: -1,
            heartbeat_interval: self.heartbeat_interval,
            assignment: None,
        };
        if args.group_id.is_empty() {
            return fail(ErrorCode::INVALID_GROUP_ID, "the group id is empty");
        }
        let regex = match &args.regex {
            Some(p) => match regex::Regex::new(&format!("^(?:{p})$")) {
                Ok(r) => Some((p.clone(), r)),
                Err(e) => {
                    return fail(
                        ErrorCode::INVALID_REGULAR_EXPRESSION,
                        &format!("invalid regex {p:?}: {e}"),
                    )
                }
            },
            None => None,
        };
        let names = all_topics();
        let matching = |r: &regex::Regex| -> BTreeSet<String> {
            names.iter().filter(|t| r.is_match(t)).cloned().collect()
        };
        if args.version >= 1 && args.member_id.is_empty() {
            return fail(ErrorCode::INVALID_REQUEST, "the member id is empty");
        }
        if let Some(a) = &args.assignor {
            if !ASSIGNORS.contains(&a.as_str()) {
                return fail(
                    ErrorCode::UNSUPPORTED_ASSIGNOR,
                    &format!("assignor {a} is not one of {ASSIGNORS:?}"),
                );
            }
        }
        let now = Instant::now();
        let mut groups = lock(&self.groups);
        let g = groups.entry(args.group_id.clone()).or_default();
        g.expire(now, self.session_timeout);
        let mut member_id = args.member_id.clone();
        match args.epoch {
            -1 | -2 => {
                let Some(m) = g.members.get_mut(&member_id) else {
                    return fail(ErrorCode::UNKNOWN_MEMBER_ID, "unknown member");
                };
                if args.epoch == -2 && m.instance_id.is_some() {
                    m.departed = true;
                    m.last_seen = now;
                    tracing::debug!(member = %member_id, "static member left its slot");
                } else {
                    g.members.remove(&member_id);
                    g.bump("member left");
                }
                return HeartbeatResult {
                    error: ErrorCode::NONE,
                    message: None,
                    member_id,
                    epoch: args.epoch,
                    heartbeat_interval: self.heartbeat_interval,
                    assignment: None,
                };
            }
            0 => {
                if member_id.is_empty() {
                    let n = self.member_counter.fetch_add(1, Ordering::Relaxed);
                    member_id = format!("consumer-member-{n}");
                }
                let topics: BTreeSet<String> = match (&args.topics, &regex) {
                    (_, Some((_, r))) => matching(r),
                    (Some(t), None) => t.iter().cloned().collect(),
                    (None, None) => {
                        return fail(
                            ErrorCode::INVALID_REQUEST,
                            "joining needs the subscribed topic names or a regex",
                        )
                    }
                };
                let slot = args.instance_id.as_ref().and_then(|inst| {
                    g.members
                        .values()
                        .find(|m| m.instance_id.as_ref() == Some(inst) && m.id != member_id)
                        .map(|m| (m.id.clone(), m.departed))
                });
                match slot {
                    Some((_, false)) => {
                        return fail(
                            ErrorCode::UNRELEASED_INSTANCE_ID,
                            "the static member's slot is held by a live member",
                        )
                    }
                    Some((old, true)) => {
                        // KIP-848 static membership: the slot, its epoch and assignment pass
                        // to the new member id; no rebalance unless the subscription changed.
                        if let Some(mut m) = g.members.remove(&old) {
                            m.id = member_id.clone();
                            m.departed = false;
                            m.last_seen = now;
                            m.sent = None;
                            if let Some(t) = g.target.remove(&old) {
                                g.target.insert(member_id.clone(), t);
                            }
                            m.regex = regex.clone();
                            if m.topics != topics {
                                m.topics = topics;
                                g.bump("static member's subscription changed");
                            }
                            g.members.insert(member_id.clone(), m);
                            tracing::debug!(old = %old, new = %member_id, "static member took its slot over");
                        }
                    }
                    None => {
                        let rebalance_timeout =
                            args.rebalance_timeout.unwrap_or(Duration::from_secs(300));
                        let fresh = Member {
                            id: member_id.clone(),
                            instance_id: args.instance_id.clone(),
                            client_id: args.client_id.clone(),
                            client_host: args.client_host.clone(),
                            epoch: 0,
                            previous_epoch: -1,
                            topics,
                            regex: regex.clone(),
                            assignor: None,
                            rebalance_timeout,
                            last_seen: now,
                            assigned: Partitions::new(),
                            revoking: Partitions::new(),
                            revoke_deadline: None,
                            sent: None,
                            departed: false,
                        };
                        // A known id rejoining (after being fenced) starts over: whatever it
                        // owned is released.
                        g.members.insert(member_id.clone(), fresh);
                        g.bump("member joined");
                    }
                }
            }
            e => {
                let Some(m) = g.members.get(&member_id) else {
                    return fail(ErrorCode::UNKNOWN_MEMBER_ID, "unknown member");
                };
                let lost_response = e == m.previous_epoch
                    && args.owned.as_ref().is_some_and(|o| within(o, &m.assigned));
                if e != m.epoch && !lost_response {
                    return fail(
                        ErrorCode::FENCED_MEMBER_EPOCH,
                        &format!("member epoch {e}, expected {}", m.epoch),
                    );
                }
                if lost_response {
                    if let Some(m) = g.members.get_mut(&member_id) {
                        m.sent = None;
                    }
                }
            }
        }
        let mut changed = false;
        if let Some(m) = g.members.get_mut(&member_id) {
            m.last_seen = now;
            m.client_id.clone_from(&args.client_id);
            m.client_host.clone_from(&args.client_host);
            if let Some(t) = &args.rebalance_timeout {
                m.rebalance_timeout = *t;
            }
            if let Some((p, r)) = &regex {
                if m.regex.as_ref().map(|(q, _)| q) != Some(p) {
                    m.regex = Some((p.clone(), r.clone()));
                }
            } else if let Some(ts) = &args.topics {
                m.regex = None;
                let ts: BTreeSet<String> = ts.iter().cloned().collect();
                if ts != m.topics {
                    m.topics = ts;
                    changed = true;
                }
            }
            if args.assignor.is_some() && args.assignor != m.assignor {
                m.assignor = args.assignor.clone();
                changed = true;
            }
            if args.epoch == 0 {
                m.sent = None;
            }
        }
        // Regex subscriptions follow the topics that exist now.
        for m in g.members.values_mut() {
            if let Some((_, r)) = &m.regex {
                let ts = matching(r);
                if ts != m.topics {
                    m.topics = ts;
                    changed = true;
                }
            }
        }
        if changed {
            g.bump("subscription or assignor changed");
        }
        // A subscribed topic created, deleted or grown also moves partitions.
        let subscribed: BTreeSet<String> = g
            .members
            .values()
            .flat_map(|m| m.topics.iter().cloned())
            .collect();
        let counts: BTreeMap<String, i32> = subscribed
            .into_iter()
            .filter_map(|t| partitions(&t).map(|n| (t, n)))
            .collect();
        if counts != g.topics {
            g.topics = counts;
            g.bump("subscribed topics changed");
        }
        g.refresh_target();
        g.reconcile(&member_id, args.owned.as_ref(), now);
        let Some(m) = g.members.get_mut(&member_id) else {
            return fail(ErrorCode::UNKNOWN_MEMBER_ID, "unknown member");
        };
        let reported_differs = args.owned.as_ref().is_some_and(|o| *o != m.assigned);
        let assignment = if m.sent.as_ref() != Some(&m.assigned) || reported_differs {
            m.sent = Some(m.assigned.clone());
            Some(m.assigned.clone())
        } else {
            None
        };
        HeartbeatResult {
            error: ErrorCode::NONE,
            message: None,
            member_id,
            epoch: m.epoch,
            heartbeat_interval: self.heartbeat_interval,
            assignment,
        }
    }

    /// The group as ConsumerGroupDescribe shows it; `None` if there is no such group.
    pub(crate) fn describe(&self, group_id: &str) -> Option<GroupSummary> {
        let mut groups = lock(&self.groups);
        let g = groups.get_mut(group_id)?;
        g.expire(Instant::now(), self.session_timeout);
        if !g.exists() {
            return None;
        }
        let members = g
            .members
            .values()
            .map(|m| MemberSummary {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                epoch: if m.departed { -2 } else { m.epoch },
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                topics: m.topics.iter().cloned().collect(),
                regex: m.regex.as_ref().map(|(p, _)| p.clone()),
                assignment: m.assigned.clone(),
                target: g.target.get(&m.id).cloned().unwrap_or_default(),
            })
            .collect();
        Some(GroupSummary {
            state: g.state(),
            epoch: g.epoch,
            assignment_epoch: g.target_epoch,
            assignor: g.assignor(),
            members,
        })
    }

    /// Every group of this protocol: (id, state), by id.
    pub(crate) fn list(&self) -> Vec<(String, &'static str)> {
        let mut groups = lock(&self.groups);
        let now = Instant::now();
        let mut out: Vec<(String, &'static str)> = groups
            .iter_mut()
            .filter_map(|(id, g)| {
                g.expire(now, self.session_timeout);
                g.exists().then(|| (id.clone(), g.state()))
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Whether `group_id` is a group of this protocol (with or without members).
    pub(crate) fn exists(&self, group_id: &str) -> bool {
        lock(&self.groups).get(group_id).is_some_and(Group::exists)
    }

    /// Validates an OffsetCommit against a group of this protocol.
    pub(crate) fn check_commit(
        &self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
        version: i16,
    ) -> CommitCheck {
        let mut groups = lock(&self.groups);
        let Some(g) = groups.get_mut(group_id) else {
            return CommitCheck::Classic;
        };
        g.expire(Instant::now(), self.session_timeout);
        if g.members.is_empty() {
            // An empty group: simple commits only (its offsets are the classic store's).
            return if member_id.is_empty() && epoch < 0 {
                CommitCheck::Classic
            } else {
                CommitCheck::Consumer(ErrorCode::UNKNOWN_MEMBER_ID)
            };
        }
        let Some(m) = g.members.get_mut(member_id) else {
            return CommitCheck::Consumer(ErrorCode::UNKNOWN_MEMBER_ID);
        };
        if version < 9 {
            return CommitCheck::Consumer(ErrorCode::UNSUPPORTED_VERSION);
        }
        // Kafka 4.1 answers STALE_MEMBER_EPOCH for an older and a newer epoch alike.
        CommitCheck::Consumer(if epoch == m.epoch {
            ErrorCode::NONE
        } else {
            ErrorCode::STALE_MEMBER_EPOCH
        })
    }
}

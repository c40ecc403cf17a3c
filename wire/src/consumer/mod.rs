//! The consumer: consumer groups of the classic protocol, or manually assigned partitions.
//!
//! Files: `assignor` (range, round-robin and cooperative-sticky as pure functions, and the
//! embedded subscription/assignment formats), `group` (the member: coordinator, join round,
//! heartbeats, commits), `fetcher` (one fetch round over the assigned partitions), `pattern`
//! (regex subscriptions of the classic protocol), `config`.
//!
//! A [`Consumer`] is driven by its owner's calls to [`Consumer::poll`]: the heartbeat task only
//! raises flags, and `poll` runs the rebalance, so the [`RebalanceListener`] is called on the
//! caller's task, between two polls, and can commit through its [`RebalanceContext`] before a
//! revocation completes (eager assignors: before JoinGroup; cooperative-sticky: only for the
//! partitions that move, after SyncGroup, then the member rejoins).
//!
//! Positions: the next offset to return per assigned partition. A partition without a
//! position starts at the group's committed offset, else per `auto.offset.reset`. Records
//! are returned in offset order per partition; `pause`d partitions are not fetched.
//!
//! A poll returns at most `max.poll.records`; the rest of a fetch round waits in a buffer
//! (its partitions are not fetched again meanwhile; a seek, a pause or a revocation drops a
//! partition's buffered records, which are fetched again from the position when needed).
//!
//! `group.protocol=consumer` (KIP-848): the broker assigns; `group848` is the member (its
//! heartbeat task), `reconcile848` applies its assignments between polls with the same
//! listener calls (revoked, then assigned; lost when fenced). Same API for both protocols.
//!
//! Regex subscriptions (`subscribe_pattern`): the consumer protocol sends the regex and the
//! broker resolves it; the classic protocol resolves it here (`pattern`) against the
//! cluster's topics every `metadata.max.age.ms` and rejoins when the matching set changes.
//!
//! Skipped: rack-aware fetching.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tracing::debug;

mod assignor;
mod config;
mod fetcher;
mod group;
mod group848;
mod pattern;
mod reconcile848;

pub use assignor::{
    cooperative_sticky, decode_assignment, decode_subscription, encode_assignment,
    encode_subscription, range, round_robin, Assignor, MemberSubscription, TopicPartition,
};
pub use config::{ConsumerConfig, GroupProtocol, OffsetReset};
pub use group::OffsetAndMetadata;

use crate::admin::OffsetSpec;
use crate::client::Client;
use crate::error::Error;
use crate::record::ConsumedRecord;
use crate::sync::lock;
use group::GroupMember;
use pattern::TopicPattern;

/// A record with the partition it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// The record (offset, timestamp, key, value, headers).
    pub record: ConsumedRecord,
}

impl ConsumerRecord {
    /// The record's offset.
    pub fn offset(&self) -> i64 {
        self.record.offset
    }

    /// Its partition as a [`TopicPartition`].
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.to_string(), self.partition)
    }
}

/// Told about assignment changes, between two polls, on the polling task.
///
/// Each method returns a boxed future so it can await: `ctx.commit(...)` in
/// `on_partitions_revoked` commits before the partitions go to another member.
pub trait RebalanceListener: Send {
    /// `partitions` are about to be taken away; their positions are still readable and
    /// committable through `ctx`.
    fn on_partitions_revoked<'a>(
        &'a mut self,
        ctx: &'a mut RebalanceContext<'_>,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        let _ = (ctx, partitions);
        Box::pin(async {})
    }

    /// `partitions` were added to the assignment.
    fn on_partitions_assigned<'a>(
        &'a mut self,
        ctx: &'a mut RebalanceContext<'_>,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        let _ = (ctx, partitions);
        Box::pin(async {})
    }

    /// The membership was lost (fenced, expired, or `max.poll.interval.ms` passed): the
    /// partitions may already belong to others, so committing is no longer possible.
    fn on_partitions_lost<'a>(
        &'a mut self,
        ctx: &'a mut RebalanceContext<'_>,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, ()> {
        let _ = (ctx, partitions);
        Box::pin(async {})
    }
}

/// What a [`RebalanceListener`] can do during a callback.
#[derive(Debug)]
pub struct RebalanceContext<'c> {
    group: Option<&'c mut GroupMember>,
    positions: &'c BTreeMap<TopicPartition, Position>,
}

impl RebalanceContext<'_> {
    /// The position (next offset to consume) of an assigned partition.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.positions.get(tp).and_then(|p| p.offset)
    }

    /// Commits `offsets` for the group in the current generation.
    pub async fn commit(
        &mut self,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
    ) -> Result<(), Error> {
        match self.group.as_deref_mut() {
            Some(g) => g.commit(offsets).await,
            None => Err(Error::Config("committing needs a group.id".to_owned())),
        }
    }

    /// Commits the current positions of `partitions` (those that have one).
    pub async fn commit_positions(&mut self, partitions: &[TopicPartition]) -> Result<(), Error> {
        let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = partitions
            .iter()
            .filter_map(|tp| {
                self.position(tp)
                    .map(|o| (tp.clone(), OffsetAndMetadata::new(o)))
            })
            .collect();
        self.commit(&offsets).await
    }
}

/// A partition's consuming state.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Position {
    /// Next offset to return (`None`: not known yet).
    offset: Option<i64>,
    paused: bool,
}

/// A Kafka consumer (see the module docs). Not `Clone`: one owner polls it.
pub struct Consumer {
    client: Client,
    pub(crate) config: Arc<ConsumerConfig>,
    group: Option<GroupMember>,
    subscription: Option<Vec<String>>,
    listener: Option<Box<dyn RebalanceListener>>,
    positions: BTreeMap<TopicPartition, Position>,
    protocol: Option<Assignor>,
    last_auto_commit: Instant,
    /// Fetched records not returned yet (`max.poll.records`); a partition with buffered
    /// records is not fetched again until they are returned.
    buffer: VecDeque<ConsumerRecord>,
    /// The consumer protocol's member (KIP-848), once subscribed with `group.protocol=consumer`.
    kip848: Option<group848::Member848>,
    /// A regex subscription. Consumer protocol: `subscription` is empty, the broker
    /// resolves it. Classic: `subscription` is the matching set, see `classic_pattern`.
    pattern: Option<String>,
    /// The classic protocol's compiled regex subscription (`pattern`).
    classic_pattern: Option<TopicPattern>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("group", &self.config.group_id)
            .field("subscription", &self.subscription)
            .field("assignment", &self.positions.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A consumer sharing this client's metadata and connections (its group coordinator
    /// connection is its own).
    pub fn consumer(&self, config: ConsumerConfig) -> Result<Consumer, Error> {
        Consumer::new(self.clone(), config)
    }
}

impl Consumer {
    fn new(client: Client, config: ConsumerConfig) -> Result<Consumer, Error> {
        config.validate()?;
        let config = Arc::new(config);
        let group = config
            .group_id
            .clone()
            .map(|g| GroupMember::new(client.clone(), Arc::clone(&config), g));
        Ok(Consumer {
            client,
            config,
            group,
            subscription: None,
            listener: None,
            positions: BTreeMap::new(),
            protocol: None,
            last_auto_commit: Instant::now(),
            buffer: VecDeque::new(),
            kip848: None,
            pattern: None,
            classic_pattern: None,
        })
    }

    /// Subscribes to `topics` as a member of the group; the assignment arrives with the next
    /// `poll`. `listener` is told about every assignment change.
    pub fn subscribe(
        &mut self,
        topics: Vec<String>,
        listener: Option<Box<dyn RebalanceListener>>,
    ) -> Result<(), Error> {
        if self.group.is_none() {
            return Err(Error::Config("subscribe needs a group.id".to_owned()));
        }
        if topics.is_empty() {
            return Err(Error::Config(
                "subscribe needs at least one topic".to_owned(),
            ));
        }
        let mut topics = topics;
        topics.sort();
        topics.dedup();
        if let Some(m) = &self.kip848 {
            m.set_subscription(group848::Subscription::Topics(topics.clone()));
        }
        self.subscription = Some(topics);
        self.pattern = None;
        self.classic_pattern = None;
        self.listener = listener;
        if let Some(g) = &self.group {
            g.flags.rejoin.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Subscribes to every topic whose whole name matches `pattern`, as a member of the
    /// group, following topics created (or deleted) later.
    ///
    /// With `group.protocol=consumer` the broker resolves the regex, in its syntax (RE2J for
    /// Apache Kafka). With the classic protocol this consumer resolves it, as the Java client
    /// does: the Rust `regex` syntax (RE2's, like RE2J's) against every non-internal topic in
    /// the metadata, looked at again every `metadata.max.age.ms`
    /// ([`ConsumerConfig::with_metadata_max_age`]); when the matching set changes the member
    /// rejoins, and the group's assignor spreads the new set. An invalid regex is
    /// [`Error::Config`].
    ///
    /// ```no_run
    /// # async fn run(client: kafka_persistence_wire::Client) -> Result<(), kafka_persistence_wire::Error> {
    /// use std::time::Duration;
    /// use kafka_persistence_wire::ConsumerConfig;
    ///
    /// let config = ConsumerConfig::new("audit").with_metadata_max_age(Duration::from_secs(30));
    /// let mut consumer = client.consumer(config)?;
    /// // Every topic named `orders-<something>`, including those created later.
    /// consumer.subscribe_pattern("orders-.*", None)?;
    /// let records = consumer.poll(Duration::from_secs(1)).await?;
    /// # let _ = records;
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe_pattern(
        &mut self,
        pattern: impl Into<String>,
        listener: Option<Box<dyn RebalanceListener>>,
    ) -> Result<(), Error> {
        if self.group.is_none() {
            return Err(Error::Config("subscribe needs a group.id".to_owned()));
        }
        let pattern = pattern.into();
        if pattern.is_empty() {
            return Err(Error::Config("the subscription regex is empty".to_owned()));
        }
        if self.config.group_protocol == GroupProtocol::Consumer {
            if let Some(m) = &self.kip848 {
                m.set_subscription(group848::Subscription::Pattern(pattern.clone()));
            }
            self.classic_pattern = None;
        } else {
            self.classic_pattern = Some(TopicPattern::new(&pattern)?);
            if let Some(g) = &self.group {
                g.flags.rejoin.store(true, Ordering::Release);
            }
        }
        self.subscription = Some(Vec::new());
        self.pattern = Some(pattern);
        self.listener = listener;
        Ok(())
    }

    /// Classic regex subscription: when due, looks at the cluster's topics again; a changed
    /// matching set becomes the subscription and the member rejoins.
    async fn refresh_pattern(&mut self) -> Result<(), Error> {
        let now = Instant::now();
        if !self.classic_pattern.as_ref().is_some_and(|p| p.due(now)) {
            return Ok(());
        }
        let topics = self.client.list_topics().await?;
        let max_age = self.config.metadata_max_age;
        let Some(p) = self.classic_pattern.as_mut() else {
            return Ok(());
        };
        let matching = p.resolve(&topics, Instant::now(), max_age);
        if self.subscription.as_ref() != Some(&matching) {
            debug!(
                pattern = self.pattern.as_deref().unwrap_or_default(),
                topics = matching.len(),
                reason = "the matching topics changed",
                "rejoining with a new subscription"
            );
            self.subscription = Some(matching);
            if let Some(g) = &self.group {
                g.flags.rejoin.store(true, Ordering::Release);
            }
        }
        Ok(())
    }

    /// Consumes exactly `partitions`, without group membership (commits, if a `group.id` is
    /// set, are simple commits, which the coordinator accepts for a group without members).
    /// A subscribed consumer must [`Consumer::unsubscribe`] first.
    pub fn assign(&mut self, partitions: Vec<TopicPartition>) -> Result<(), Error> {
        if self.subscription.is_some() {
            return Err(Error::Config(
                "assign on a subscribed consumer: unsubscribe first".to_owned(),
            ));
        }
        let keep: BTreeSet<TopicPartition> = partitions.into_iter().collect();
        self.positions.retain(|tp, _| keep.contains(tp));
        self.buffer.retain(|r| keep.contains(&r.topic_partition()));
        for tp in keep {
            self.positions.entry(tp).or_default();
        }
        Ok(())
    }

    /// Gives up the subscription: the listener is told the partitions are revoked (it may
    /// commit), then the member leaves the group.
    pub async fn unsubscribe(&mut self) -> Result<(), Error> {
        self.pattern = None;
        self.classic_pattern = None;
        if self.subscription.take().is_none() {
            return Ok(());
        }
        if self.group.as_ref().is_some_and(|g| g.is_active()) {
            let owned = self.assignment();
            self.call_listener(Callback::Revoked, &owned).await;
        }
        self.positions.clear();
        self.buffer.clear();
        self.protocol = None;
        if self.config.group_protocol == GroupProtocol::Consumer {
            return self.leave_848().await;
        }
        match &mut self.group {
            Some(g) => g.leave().await,
            None => Ok(()),
        }
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.positions.keys().cloned().collect()
    }

    /// The generation and member id while in a group.
    pub fn group_generation(&self) -> Option<(i32, String)> {
        self.group
            .as_ref()
            .filter(|g| g.is_active())
            .map(|g| (g.generation, g.member_id.clone()))
    }

    fn assigned(&mut self, tp: &TopicPartition) -> Result<&mut Position, Error> {
        self.positions
            .get_mut(tp)
            .ok_or_else(|| Error::Config(format!("partition {tp} is not assigned")))
    }

    /// Moves to the assignment `new`: the revoked callback for what is no longer assigned
    /// (then their positions and buffered records go), new partitions start without a
    /// position, then the assigned callback for them. Returns the revoked and the added
    /// partitions.
    async fn apply_assignment(
        &mut self,
        new: &BTreeSet<TopicPartition>,
    ) -> (Vec<TopicPartition>, Vec<TopicPartition>) {
        let revoked: Vec<TopicPartition> = self
            .positions
            .keys()
            .filter(|tp| !new.contains(*tp))
            .cloned()
            .collect();
        if !revoked.is_empty() {
            self.call_listener(Callback::Revoked, &revoked).await;
            for tp in &revoked {
                self.positions.remove(tp);
                self.drop_buffered(tp);
            }
        }
        let added: Vec<TopicPartition> = new
            .iter()
            .filter(|tp| !self.positions.contains_key(*tp))
            .cloned()
            .collect();
        for tp in &added {
            self.positions.insert(tp.clone(), Position::default());
        }
        self.call_listener(Callback::Assigned, &added).await;
        (revoked, added)
    }

    fn drop_buffered(&mut self, tp: &TopicPartition) {
        self.buffer
            .retain(|r| !(r.partition == tp.partition && *r.topic == *tp.topic));
    }

    /// Takes up to `max.poll.records` buffered records that are still wanted (assigned, not
    /// paused, at their partition's position), advancing the positions.
    fn take_buffered(&mut self) -> Vec<ConsumerRecord> {
        let mut out = Vec::new();
        while out.len() < self.config.max_poll_records {
            let Some(r) = self.buffer.pop_front() else {
                break;
            };
            let tp = r.topic_partition();
            match self.positions.get_mut(&tp) {
                // `>=`, not `==`: offsets have gaps where transaction markers, aborted
                // transactions (read_committed) or compacted records were.
                Some(p) if !p.paused && p.offset.is_some_and(|o| r.offset() >= o) => {
                    p.offset = Some(r.offset() + 1);
                    out.push(r);
                }
                // Stale: revoked, paused or moved by a seek meanwhile.
                _ => {}
            }
        }
        out
    }

    /// Sets the next offset `poll` returns for `tp`.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), Error> {
        if offset < 0 {
            return Err(Error::Config(format!("invalid offset {offset}")));
        }
        self.assigned(tp)?.offset = Some(offset);
        self.drop_buffered(tp);
        Ok(())
    }

    /// Moves `partitions` to their log start offset.
    pub async fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<(), Error> {
        self.seek_to(partitions, OffsetSpec::Earliest).await
    }

    /// Moves `partitions` to their high watermark.
    pub async fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<(), Error> {
        self.seek_to(partitions, OffsetSpec::Latest).await
    }

    async fn seek_to(
        &mut self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<(), Error> {
        for tp in partitions {
            self.assigned(tp)?;
            let o = self
                .client
                .list_offset(&tp.topic, tp.partition, spec)
                .await?;
            self.assigned(tp)?.offset = Some(o);
            self.drop_buffered(tp);
        }
        Ok(())
    }

    /// The next offset `poll` returns for `tp` (looked up now if not known yet).
    pub async fn position(&mut self, tp: &TopicPartition) -> Result<i64, Error> {
        self.assigned(tp)?;
        self.init_positions().await?;
        self.assigned(tp)?.offset.ok_or_else(|| Error::NoOffset {
            topic: tp.topic.clone(),
            partition: tp.partition,
        })
    }

    /// Stops fetching `partitions` (their positions are kept) until `resume`.
    pub fn pause(&mut self, partitions: &[TopicPartition]) -> Result<(), Error> {
        for tp in partitions {
            self.assigned(tp)?.paused = true;
            // Fetched again from the position after `resume`.
            self.drop_buffered(tp);
        }
        Ok(())
    }

    /// Fetches `partitions` again.
    pub fn resume(&mut self, partitions: &[TopicPartition]) -> Result<(), Error> {
        for tp in partitions {
            self.assigned(tp)?.paused = false;
        }
        Ok(())
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.positions
            .iter()
            .filter(|(_, p)| p.paused)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Commits `offsets` (with their metadata) for the group.
    pub async fn commit(
        &mut self,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
    ) -> Result<(), Error> {
        match &mut self.group {
            Some(g) => g.commit(offsets).await,
            None => Err(Error::Config("committing needs a group.id".to_owned())),
        }
    }

    /// Commits the current positions of every assigned partition.
    pub async fn commit_positions(&mut self) -> Result<(), Error> {
        let offsets = self.current_positions();
        self.commit(&offsets).await
    }

    fn current_positions(&self) -> Vec<(TopicPartition, OffsetAndMetadata)> {
        self.positions
            .iter()
            .filter_map(|(tp, p)| p.offset.map(|o| (tp.clone(), OffsetAndMetadata::new(o))))
            .collect()
    }

    /// The group's committed offsets for `partitions`.
    pub async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<std::collections::HashMap<TopicPartition, Option<OffsetAndMetadata>>, Error> {
        match &mut self.group {
            Some(g) => g.committed(partitions).await,
            None => Err(Error::Config(
                "committed offsets need a group.id".to_owned(),
            )),
        }
    }

    async fn call_listener(&mut self, kind: Callback, partitions: &[TopicPartition]) {
        if partitions.is_empty() {
            return;
        }
        let Some(mut l) = self.listener.take() else {
            return;
        };
        {
            let mut ctx = RebalanceContext {
                group: self.group.as_mut(),
                positions: &self.positions,
            };
            match kind {
                Callback::Revoked => l.on_partitions_revoked(&mut ctx, partitions).await,
                Callback::Assigned => l.on_partitions_assigned(&mut ctx, partitions).await,
                Callback::Lost => l.on_partitions_lost(&mut ctx, partitions).await,
            }
        }
        self.listener = Some(l);
    }

    /// Joins (or rejoins) the group when needed, running the rebalance callbacks.
    async fn ensure_group(&mut self) -> Result<(), Error> {
        if self.config.group_protocol == GroupProtocol::Consumer {
            return self.ensure_group_848().await;
        }
        self.refresh_pattern().await?;
        let Some(topics) = self.subscription.clone() else {
            return Ok(());
        };
        if let Some(g) = self.group.as_mut() {
            g.resume_heartbeat().await?;
        }
        loop {
            let Some(g) = &self.group else {
                return Ok(());
            };
            let lost = g.flags.lost.load(Ordering::Acquire);
            let rejoin = g.flags.rejoin.load(Ordering::Acquire);
            if !lost && !rejoin && g.is_active() {
                return Ok(());
            }
            let owned = self.assignment();
            if lost && g.generation >= 0 {
                debug!(
                    partitions = owned.len(),
                    reason = "membership lost",
                    "dropping assignment"
                );
                self.call_listener(Callback::Lost, &owned).await;
                self.positions.clear();
                self.buffer.clear();
            }
            let cooperative = self.protocol.is_some_and(Assignor::is_cooperative);
            if !cooperative {
                // Eager: give everything up before joining (the listener may commit).
                let owned = self.assignment();
                self.call_listener(Callback::Revoked, &owned).await;
                self.positions.clear();
                self.buffer.clear();
            }
            let owned = self.assignment();
            let Some(g) = self.group.as_mut() else {
                return Ok(());
            };
            let joined = g.join(&topics, &owned).await?;
            self.protocol = Some(joined.protocol);
            let new: BTreeSet<TopicPartition> = joined.assignment.into_iter().collect();
            let (revoked, _) = self.apply_assignment(&new).await;
            if revoked.is_empty() || !joined.protocol.is_cooperative() {
                return Ok(());
            }
            // Cooperative: what we gave up is handed over in the follow-up round.
            if let Some(g) = &self.group {
                g.flags.rejoin.store(true, Ordering::Release);
            }
        }
    }

    /// Gives partitions without a position their committed offset, else applies
    /// `auto.offset.reset`.
    async fn init_positions(&mut self) -> Result<(), Error> {
        let missing: Vec<TopicPartition> = self
            .positions
            .iter()
            .filter(|(_, p)| p.offset.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let committed = match &mut self.group {
            Some(g) => g.committed(&missing).await?,
            None => Default::default(),
        };
        for tp in missing {
            let offset = match committed.get(&tp).cloned().flatten() {
                Some(c) => c.offset,
                None => self.reset_offset(&tp).await?,
            };
            if let Some(p) = self.positions.get_mut(&tp) {
                p.offset = Some(offset);
            }
        }
        Ok(())
    }

    /// The position `auto.offset.reset` gives `tp`. (Borrows no `self` across the await:
    /// the consumer holds a listener that is `Send` but not `Sync`.)
    fn reset_offset(
        &self,
        tp: &TopicPartition,
    ) -> impl std::future::Future<Output = Result<i64, Error>> + Send + 'static {
        let client = self.client.clone();
        let policy = self.config.auto_offset_reset;
        let tp = tp.clone();
        async move { reset_offset(&client, policy, &tp).await }
    }
}

async fn reset_offset(
    client: &Client,
    policy: OffsetReset,
    tp: &TopicPartition,
) -> Result<i64, Error> {
    {
        let spec = match policy {
            OffsetReset::Earliest => OffsetSpec::Earliest,
            OffsetReset::Latest => OffsetSpec::Latest,
            OffsetReset::None => {
                return Err(Error::NoOffset {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                })
            }
        };
        debug!(partition = %tp, policy = ?policy, reason = "no committed offset or out of range", "resetting position");
        client.list_offset(&tp.topic, tp.partition, spec).await
    }
}

impl Consumer {
    /// Returns the records that arrived within `timeout` (possibly none), at most
    /// `max.poll.records`. Joins or rejoins the group first when needed (running the
    /// listener), and auto-commits if enabled. A rebalance can make a poll last longer than
    /// `timeout`: the join round waits for every member, up to the rebalance timeout
    /// (`max.poll.interval.ms`), as the Java client's does.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, Error> {
        let deadline = Instant::now() + timeout;
        if let Some(g) = &self.group {
            *lock(&g.flags.last_poll) = Instant::now();
        }
        self.ensure_group().await?;
        self.init_positions().await?;
        self.maybe_auto_commit().await?;
        let out = self.take_buffered();
        if !out.is_empty() {
            return Ok(out);
        }
        loop {
            let buffered: HashSet<(Arc<str>, i32)> = self
                .buffer
                .iter()
                .map(|r| (Arc::clone(&r.topic), r.partition))
                .collect();
            let fetchable: Vec<(TopicPartition, i64)> = self
                .positions
                .iter()
                .filter(|(_, p)| !p.paused)
                .filter(|(tp, _)| !buffered.contains(&(Arc::from(tp.topic.as_str()), tp.partition)))
                .filter_map(|(tp, p)| p.offset.map(|o| (tp.clone(), o)))
                .collect();
            let remaining = deadline.saturating_duration_since(Instant::now());
            if fetchable.is_empty() {
                tokio::time::sleep(remaining.min(self.config.fetch_max_wait)).await;
            } else {
                let wait = remaining.min(self.config.fetch_max_wait);
                let results =
                    fetcher::fetch_round(&self.client, &self.config, &fetchable, wait).await;
                for (tp, offset, r) in results {
                    match r {
                        Ok(resp) => {
                            // Only this task moves positions, but a result for a position
                            // that changed (seek) would be stale.
                            let Some(p) = self.positions.get_mut(&tp) else {
                                continue;
                            };
                            if p.offset != Some(offset) {
                                continue;
                            }
                            if resp.records.is_empty() {
                                // Control batches or aborted records skipped.
                                p.offset = Some(resp.next_offset.max(offset));
                                continue;
                            }
                            let topic: Arc<str> = Arc::from(tp.topic.as_str());
                            self.buffer.extend(resp.records.into_iter().map(|record| {
                                ConsumerRecord {
                                    topic: Arc::clone(&topic),
                                    partition: tp.partition,
                                    record,
                                }
                            }));
                        }
                        Err(Error::OffsetOutOfRange { .. }) => {
                            let o = self.reset_offset(&tp).await?;
                            if let Some(p) = self.positions.get_mut(&tp) {
                                p.offset = Some(o);
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            let out = self.take_buffered();
            // A regex subscription due for a look at the topics may have to rejoin.
            self.refresh_pattern().await?;
            let rejoin = self.group.as_ref().is_some_and(|g| {
                g.flags.rejoin.load(Ordering::Acquire)
                    || g.flags.lost.load(Ordering::Acquire)
                    || g.flags.coordinator_lost.load(Ordering::Acquire)
            });
            if !out.is_empty() || rejoin || Instant::now() >= deadline {
                return Ok(out);
            }
        }
    }

    async fn maybe_auto_commit(&mut self) -> Result<(), Error> {
        if !self.config.enable_auto_commit
            || self.last_auto_commit.elapsed() < self.config.auto_commit_interval
        {
            return Ok(());
        }
        self.last_auto_commit = Instant::now();
        if self.group.as_ref().is_some_and(|g| g.is_active()) || self.subscription.is_none() {
            self.commit_positions().await?;
        }
        Ok(())
    }

    /// Leaves the group: auto-commits if enabled, tells the listener the partitions are
    /// revoked (it may commit), then sends LeaveGroup (dynamic members; a static member keeps
    /// its slot until its session times out).
    pub async fn close(mut self) -> Result<(), Error> {
        if self.config.enable_auto_commit && self.group.is_some() {
            self.commit_positions().await?;
        }
        if self.subscription.is_some() && self.group.as_ref().is_some_and(|g| g.is_active()) {
            let owned = self.assignment();
            self.call_listener(Callback::Revoked, &owned).await;
        }
        self.positions.clear();
        self.buffer.clear();
        if self.config.group_protocol == GroupProtocol::Consumer {
            return self.leave_848().await;
        }
        match &mut self.group {
            Some(g) => g.leave().await,
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Callback {
    Revoked,
    Assigned,
    Lost,
}

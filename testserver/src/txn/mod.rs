//! The transaction coordinator (KIP-98): transactional ids, their producer id and epoch, the
//! partitions and groups of each open transaction, the offsets committed in it, and the
//! markers that end it.
//!
//! Life of a transactional id:
//! - InitProducerId: the first call allocates a producer id with epoch 0; every later call
//!   bumps the epoch (a fresh producer id when it would overflow), which fences the previous
//!   instance (its requests get PRODUCER_FENCED here, INVALID_PRODUCER_EPOCH on Produce), and
//!   aborts the transaction that instance left open (abort markers under the new epoch).
//! - AddPartitionsToTxn / AddOffsetsToTxn open the transaction (its timeout starts) and add
//!   to it; Produce accepts a transactional batch only for a partition of the open
//!   transaction of its producer id and epoch (else INVALID_TXN_STATE); TxnOffsetCommit
//!   keeps offsets pending in the transaction (a group must have been added first).
//! - EndTxn writes a COMMIT or ABORT marker to every partition of the transaction, then (on
//!   commit) stores the pending offsets in their groups. Repeating the EndTxn that just
//!   completed answers NONE (a retry after a lost response); anything else on a closed
//!   transaction is INVALID_TXN_STATE.
//! - A transaction open longer than its timeout is aborted by the expiry task, with an epoch
//!   bump (its producer is fenced, as in Kafka).
//!
//! Markers are written synchronously, after the coordinator lock is released, so the
//! transaction's state moves to closed first: a Produce racing with EndTxn either lands
//! before the marker (under the partition's lock it checks that the transaction is still
//! open) or is refused. Lock order: partition log → coordinator → producer ids.
//!
//! With a `data_dir`, the state (see `store`) survives a restart; a transaction that was open
//! at the restart is aborted during the load, with an epoch bump (its pending offsets were in
//! memory only, so committing it later could not be exactly once).

pub(crate) mod partition;
mod store;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_persistence_wire::record::ControlType;
use kafka_persistence_wire::ErrorCode;
use tokio::task::AbortHandle;

use crate::cluster::{lock, now_ms, Cluster};
use crate::groups::Committed;

/// Kafka's `transaction.max.timeout.ms` default: longer timeouts are refused.
pub(crate) const MAX_TIMEOUT_MS: i32 = 900_000;

/// How often the expiry task looks for timed-out transactions.
const EXPIRY_INTERVAL: Duration = Duration::from_millis(100);

/// Offsets committed inside a transaction, per group.
pub(crate) type PendingOffsets = BTreeMap<String, Vec<((String, i32), Committed)>>;

/// The state of one transactional id.
#[derive(Debug, Clone, Default)]
pub(crate) struct TxnMeta {
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    pub(crate) timeout_ms: i32,
    /// A transaction is open (partitions or groups were added since the last end).
    pub(crate) open: bool,
    /// When the open transaction began (ms since the epoch).
    pub(crate) started_ms: i64,
    pub(crate) partitions: BTreeSet<(String, i32)>,
    pub(crate) groups: BTreeSet<String>,
    /// Offsets from TxnOffsetCommit, stored in their groups on commit.
    pub(crate) offsets: PendingOffsets,
    /// The last EndTxn that completed: (epoch, committed), for answering its retry.
    pub(crate) last_end: Option<(i16, bool)>,
}

/// The transactions to end after the coordinator lock is released.
#[derive(Debug)]
struct Ending {
    producer_id: i64,
    epoch: i16,
    kind: ControlType,
    partitions: BTreeSet<(String, i32)>,
    offsets: PendingOffsets,
}

/// All transactional ids.
#[derive(Debug, Default)]
pub(crate) struct Coordinator {
    state: Mutex<HashMap<String, TxnMeta>>,
}

/// Checks a request's producer id and epoch against the transactional id's.
fn check_producer(m: Option<&TxnMeta>, producer_id: i64, epoch: i16) -> Result<(), i16> {
    let Some(m) = m else {
        return Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING);
    };
    if m.producer_id != producer_id {
        return Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING);
    }
    if m.epoch != epoch {
        return Err(ErrorCode::PRODUCER_FENCED);
    }
    Ok(())
}

/// Opens the transaction of `m` if it is not open.
fn open(m: &mut TxnMeta, now: i64) {
    if !m.open {
        m.open = true;
        m.started_ms = now;
        m.partitions.clear();
        m.groups.clear();
        m.offsets.clear();
        m.last_end = None;
    }
}

/// Closes the open transaction of `m` (if any) and says what to write.
fn close(m: &mut TxnMeta, kind: ControlType) -> Option<Ending> {
    if !m.open {
        return None;
    }
    m.open = false;
    m.last_end = Some((m.epoch, kind == ControlType::Commit));
    Some(Ending {
        producer_id: m.producer_id,
        epoch: m.epoch,
        kind,
        partitions: std::mem::take(&mut m.partitions),
        offsets: std::mem::take(&mut m.offsets),
    })
}

/// Aborts the open transaction of `m` (if any) and bumps its epoch: the markers carry the
/// new epoch when the producer id stays, so the fenced instance cannot write after them.
fn abort_and_bump(cluster: &Cluster, m: &mut TxnMeta) -> Option<Ending> {
    let mut ending = close(m, ControlType::Abort);
    bump(cluster, m);
    if let Some(e) = ending.as_mut() {
        if e.producer_id == m.producer_id {
            e.epoch = m.epoch;
        }
    }
    ending
}

/// Bumps the epoch of `m` (a fresh producer id when it would overflow).
fn bump(cluster: &Cluster, m: &mut TxnMeta) {
    if m.epoch >= i16::MAX - 1 {
        m.producer_id = cluster.next_producer_id.fetch_add(1, Ordering::Relaxed);
        m.epoch = 0;
    } else {
        m.epoch += 1;
    }
}

impl Cluster {
    /// Saves the coordinator state to `data_dir` (if any); a failure is logged, the state
    /// stays in memory.
    fn save_txns(&self, state: &HashMap<String, TxnMeta>) {
        if let Some(dir) = &self.settings.data_dir {
            if let Err(e) = store::save(dir, state) {
                tracing::warn!(error = %e, reason = "cannot write transaction state", "transaction state not persisted");
            }
        }
    }

    /// Records the epoch InitProducerId handed out, for Produce's fencing check.
    fn fence_below(&self, producer_id: i64, epoch: i16) {
        lock(&self.producers).epochs.insert(producer_id, epoch);
    }

    /// InitProducerId with a transactional id: see the module docs. `(producer_id, epoch)`
    /// from the request is `(-1, -1)` or, KIP-360, the caller's current pair.
    pub(crate) fn init_transactional(
        &self,
        tid: &str,
        timeout_ms: i32,
        producer_id: i64,
        epoch: i16,
    ) -> Result<(i64, i16), i16> {
        if tid.is_empty() {
            return Err(ErrorCode::INVALID_REQUEST);
        }
        if timeout_ms <= 0 || timeout_ms > MAX_TIMEOUT_MS {
            return Err(ErrorCode::INVALID_TRANSACTION_TIMEOUT);
        }
        let (pair, ending) = {
            let mut state = lock(&self.txns.state);
            let (m, ending) = match state.get_mut(tid) {
                None => {
                    let m = TxnMeta {
                        producer_id: self.next_producer_id.fetch_add(1, Ordering::Relaxed),
                        epoch: 0,
                        timeout_ms,
                        ..TxnMeta::default()
                    };
                    (state.entry(tid.to_owned()).or_insert(m), None)
                }
                Some(m) => {
                    if producer_id >= 0 && (producer_id != m.producer_id || epoch != m.epoch) {
                        return Err(ErrorCode::PRODUCER_FENCED);
                    }
                    let ending = abort_and_bump(self, m);
                    m.timeout_ms = timeout_ms;
                    (m, ending)
                }
            };
            let pair = (m.producer_id, m.epoch);
            if let Some(e) = &ending {
                tracing::debug!(
                    transactional_id = tid,
                    producer_id = e.producer_id,
                    "aborting the fenced instance's transaction"
                );
            }
            self.fence_below(pair.0, pair.1);
            self.save_txns(&state);
            (pair, ending)
        };
        if let Some(e) = ending {
            self.finish(e);
        }
        Ok(pair)
    }

    /// AddPartitionsToTxn: one code per partition.
    pub(crate) fn add_partitions_to_txn(
        &self,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Vec<i16> {
        let unknown: Vec<bool> = partitions
            .iter()
            .map(|(t, p)| {
                self.topic(t)
                    .and_then(|t| t.partition(*p).cloned())
                    .is_none()
            })
            .collect();
        let mut state = lock(&self.txns.state);
        let m = state.get_mut(tid);
        let refused = match check_producer(m.as_deref(), producer_id, epoch) {
            Err(c) => Some(c),
            Ok(()) if unknown.iter().any(|u| *u) => None,
            Ok(()) => {
                let Some(m) = m else { return vec![] };
                open(m, now_ms());
                m.partitions.extend(partitions.iter().cloned());
                self.save_txns(&state);
                return vec![ErrorCode::NONE; partitions.len()];
            }
        };
        match refused {
            Some(c) => vec![c; partitions.len()],
            // Kafka adds none of them when one is unknown.
            None => unknown
                .iter()
                .map(|u| {
                    if *u {
                        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                    } else {
                        ErrorCode::OPERATION_NOT_ATTEMPTED
                    }
                })
                .collect(),
        }
    }

    /// AddOffsetsToTxn.
    pub(crate) fn add_offsets_to_txn(
        &self,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
    ) -> i16 {
        if group.is_empty() {
            return ErrorCode::INVALID_GROUP_ID;
        }
        let mut state = lock(&self.txns.state);
        let m = state.get_mut(tid);
        if let Err(c) = check_producer(m.as_deref(), producer_id, epoch) {
            return c;
        }
        if let Some(m) = m {
            open(m, now_ms());
            m.groups.insert(group.to_owned());
        }
        self.save_txns(&state);
        ErrorCode::NONE
    }

    /// TxnOffsetCommit (after the group's generation check): keeps the offsets pending.
    pub(crate) fn txn_offset_commit(
        &self,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
        offsets: Vec<((String, i32), Committed)>,
    ) -> i16 {
        let mut state = lock(&self.txns.state);
        let m = state.get_mut(tid);
        if let Err(c) = check_producer(m.as_deref(), producer_id, epoch) {
            return c;
        }
        let Some(m) = m else {
            return ErrorCode::INVALID_PRODUCER_ID_MAPPING;
        };
        if !m.open || !m.groups.contains(group) {
            return ErrorCode::INVALID_TXN_STATE;
        }
        let pending = m.offsets.entry(group.to_owned()).or_default();
        for (k, v) in offsets {
            pending.retain(|(pk, _)| *pk != k);
            pending.push((k, v));
        }
        ErrorCode::NONE
    }

    /// EndTxn.
    pub(crate) fn end_txn(&self, tid: &str, producer_id: i64, epoch: i16, commit: bool) -> i16 {
        let ending = {
            let mut state = lock(&self.txns.state);
            let m = state.get_mut(tid);
            if let Err(c) = check_producer(m.as_deref(), producer_id, epoch) {
                return c;
            }
            let Some(m) = m else {
                return ErrorCode::INVALID_PRODUCER_ID_MAPPING;
            };
            if !m.open {
                return if m.last_end == Some((epoch, commit)) {
                    ErrorCode::NONE
                } else {
                    ErrorCode::INVALID_TXN_STATE
                };
            }
            let kind = if commit {
                ControlType::Commit
            } else {
                ControlType::Abort
            };
            let ending = close(m, kind);
            self.save_txns(&state);
            ending
        };
        if let Some(e) = ending {
            self.finish(e);
        }
        ErrorCode::NONE
    }

    /// Produce's check for a transactional batch (called under the partition's lock).
    pub(crate) fn check_txn_produce(
        &self,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), i16> {
        let state = lock(&self.txns.state);
        let m = state.get(tid);
        match check_producer(m, producer_id, epoch) {
            Err(ErrorCode::PRODUCER_FENCED) => return Err(ErrorCode::INVALID_PRODUCER_EPOCH),
            Err(c) => return Err(c),
            Ok(()) => {}
        }
        match m {
            Some(m) if m.open && m.partitions.contains(&(topic.to_owned(), partition)) => Ok(()),
            _ => Err(ErrorCode::INVALID_TXN_STATE),
        }
    }

    /// Writes the markers of an ended transaction, then (commit) stores its offsets.
    fn finish(&self, e: Ending) {
        let now = now_ms();
        for (topic, p) in &e.partitions {
            let Some(part) = self.topic(topic).and_then(|t| t.partition(*p).cloned()) else {
                continue;
            };
            let r = lock(&part.log).append_marker(e.kind, e.producer_id, e.epoch, now);
            match r {
                Ok(offset) => {
                    tracing::debug!(topic = %topic, partition = p, offset, kind = ?e.kind, "transaction marker written");
                }
                Err(err) => {
                    tracing::warn!(topic = %topic, partition = p, error = %err, "transaction marker not written");
                }
            }
            part.appended.notify_waiters();
        }
        if e.kind == ControlType::Commit {
            for (group, offsets) in e.offsets {
                self.groups.store_offsets(&group, offsets);
            }
        }
    }

    /// Aborts every transaction open longer than its timeout, bumping its epoch.
    pub(crate) fn abort_expired(&self, now: i64) {
        let endings: Vec<Ending> = {
            let mut state = lock(&self.txns.state);
            let mut out = Vec::new();
            for (tid, m) in state.iter_mut() {
                if m.open && now.saturating_sub(m.started_ms) > i64::from(m.timeout_ms) {
                    tracing::debug!(transactional_id = %tid, reason = "transaction timeout", "aborting transaction");
                    out.extend(abort_and_bump(self, m));
                    self.fence_below(m.producer_id, m.epoch);
                }
            }
            if !out.is_empty() {
                self.save_txns(&state);
            }
            out
        };
        for e in endings {
            self.finish(e);
        }
    }

    /// Loads the coordinator state from `data_dir` (after the topics), aborting the
    /// transactions that were open.
    pub(crate) fn load_transactions(&self) -> std::io::Result<()> {
        let Some(dir) = self.settings.data_dir.clone() else {
            return Ok(());
        };
        let loaded = store::load(&dir)?;
        let endings: Vec<Ending> = {
            let mut state = lock(&self.txns.state);
            *state = loaded;
            let mut out = Vec::new();
            for m in state.values_mut() {
                self.next_producer_id
                    .fetch_max(m.producer_id + 1, Ordering::Relaxed);
                if m.open {
                    out.extend(abort_and_bump(self, m));
                }
                self.fence_below(m.producer_id, m.epoch);
            }
            self.save_txns(&state);
            out
        };
        for e in endings {
            self.finish(e);
        }
        Ok(())
    }
}

/// Starts the task that aborts timed-out transactions.
pub(crate) fn spawn_expiry(cluster: &Arc<Cluster>) -> AbortHandle {
    let weak = Arc::downgrade(cluster);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(c) = weak.upgrade() else { return };
            c.abort_expired(now_ms());
        }
    })
    .abort_handle()
}

/// PRODUCER_FENCED as a request of `version` understands it: requests older than `since`
/// (the version that introduced the code, KIP-588) get INVALID_PRODUCER_EPOCH, as in Kafka.
pub(crate) fn for_version(code: i16, version: i16, since: i16) -> i16 {
    if code == ErrorCode::PRODUCER_FENCED && version < since {
        ErrorCode::INVALID_PRODUCER_EPOCH
    } else {
        code
    }
}

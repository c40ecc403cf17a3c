//! Layout v1 ("per-id"): one single-partition topic per persistence id, as the Scala plugins
//! do. Kept for existing data; `kafka-persistence migrate` copies it into layout v2.
//!
//! - [`naming`]: the injective id -> topic name encoding.
//! - [`pid`]: `PidEntry`, the only owner and mutator of an id's cached state (verified log
//!   state, reservations, writes in flight) and of the scans that advance it; lock order.
//! - [`log`]: the fetch loop over an id's topic and the verified state with checkpoints.
//! - [`write`]: pipelined writes, fencing by expected offset, verification on surprise.
//! - [`delete`]: deletion markers and DeleteRecords.
//! - [`replay`]: replays and the live query.
//! - [`topics`]: coalesced topic creation.

pub(crate) mod delete;
pub(crate) mod log;
pub(crate) mod naming;
pub(crate) mod pid;
pub(crate) mod replay;
pub(crate) mod topics;
pub(crate) mod write;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt};
use futures::stream::BoxStream;
use kafka_persistence_wire::{Client, Producer};

use crate::config::JournalConfig;
use crate::error::JournalError;
use crate::format::JournalRecordView;
use crate::layout::{JournalLayout, Written};
use crate::migrate::IdExport;
use crate::repr::{AtomicWrite, PersistentRepr};
use crate::scan::Applied;
use naming::topic_for;
use pid::{PidCache, PidEntry};
use topics::{NewTopicSpec, TopicCreator};

/// Layout v1 (see the module documentation).
pub(crate) struct PerId {
    pub(crate) client: Client,
    pub(crate) producer: Producer,
    pub(crate) config: JournalConfig,
    pids: Mutex<PidCache>,
    pub(crate) creator: TopicCreator,
    batch_nonce: u64,
    batch_counter: AtomicU64,
}

impl std::fmt::Debug for PerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerId").finish_non_exhaustive()
    }
}

impl PerId {
    pub(crate) fn new(client: Client, producer: Producer, config: JournalConfig) -> Arc<Self> {
        Arc::new(PerId {
            client,
            producer,
            pids: Mutex::new(PidCache::new(config.max_cached_ids)),
            config,
            creator: TopicCreator::default(),
            batch_nonce: crate::random_nonce(),
            batch_counter: AtomicU64::new(0),
        })
    }

    pub(crate) fn entry(&self, persistence_id: &str) -> Arc<PidEntry> {
        let mut pids = self.pids.lock().unwrap_or_else(|p| p.into_inner());
        pids.get_or_insert(persistence_id, |_| {
            PidEntry::new(
                persistence_id,
                topic_for(&self.config.topic_prefix, persistence_id),
            )
        })
    }

    pub(crate) fn new_topic(&self, name: &str) -> NewTopicSpec {
        let mut configs = vec![
            ("cleanup.policy".to_string(), "delete".to_string()),
            (
                "retention.ms".to_string(),
                self.config.retention_ms.to_string(),
            ),
        ];
        if let Some(m) = self.config.max_message_bytes {
            configs.push(("max.message.bytes".to_string(), m.to_string()));
        }
        NewTopicSpec {
            name: name.to_string(),
            partitions: 1,
            replication_factor: self.config.replication_factor,
            configs,
        }
    }

    pub(crate) fn next_batch_id(&self) -> u64 {
        let n = self.batch_counter.fetch_add(1, Ordering::Relaxed);
        crate::batch_id(self.batch_nonce, n)
    }
}

/// Layout v1 behind the boundary; `Arc<PerId>` so futures and streams own what they use.
#[derive(Debug)]
pub(crate) struct PerIdLayout(pub(crate) Arc<PerId>);

impl JournalLayout for PerIdLayout {
    fn write(&self, writes: Vec<AtomicWrite>) -> BoxFuture<'static, Result<Written, JournalError>> {
        let inner = Arc::clone(&self.0);
        let plan = inner.plan(writes);
        async move { inner.write(plan).await }.boxed()
    }

    fn highest_sequence_nr(
        &self,
        persistence_id: &str,
    ) -> BoxFuture<'static, Result<u64, JournalError>> {
        let inner = Arc::clone(&self.0);
        let entry = inner.entry(persistence_id);
        let ticket = entry.gate.ticket();
        async move {
            let verified = entry.synced(ticket, &inner.client).await?;
            Ok(verified.map_or(0, |v| v.state().highest))
        }
        .boxed()
    }

    fn deleted_to(&self, persistence_id: &str) -> BoxFuture<'static, Result<u64, JournalError>> {
        let inner = Arc::clone(&self.0);
        let entry = inner.entry(persistence_id);
        let ticket = entry.gate.ticket();
        async move {
            let verified = entry.synced(ticket, &inner.client).await?;
            Ok(verified.map_or(0, |v| v.state().deleted_to))
        }
        .boxed()
    }

    fn delete_messages_to(
        &self,
        persistence_id: &str,
        to: u64,
    ) -> BoxFuture<'static, Result<(), JournalError>> {
        let inner = Arc::clone(&self.0);
        let entry = inner.entry(persistence_id);
        let ticket = entry.gate.ticket();
        async move { inner.delete_to(entry, ticket, to).await }.boxed()
    }

    fn events(
        &self,
        persistence_id: &str,
        from: u64,
        to: u64,
        max: u64,
        live: bool,
    ) -> BoxStream<'static, Result<PersistentRepr, JournalError>> {
        replay::events(
            Arc::clone(&self.0),
            persistence_id.to_string(),
            from,
            to,
            max,
            live,
        )
    }

    fn persistence_ids(&self) -> BoxFuture<'static, Result<Vec<String>, JournalError>> {
        let inner = Arc::clone(&self.0);
        async move { replay::list_ids(&inner).await }.boxed()
    }

    fn flush(&self) -> BoxFuture<'static, Result<(), JournalError>> {
        futures::future::ready(Ok(())).boxed()
    }

    fn export_id(
        &self,
        persistence_id: &str,
    ) -> BoxFuture<'static, Result<IdExport, JournalError>> {
        let inner = Arc::clone(&self.0);
        let entry = inner.entry(persistence_id);
        let ticket = entry.gate.ticket();
        let pid = persistence_id.to_string();
        async move {
            let mut export = IdExport {
                persistence_id: pid.clone(),
                highest: 0,
                deleted_to: 0,
                records: Vec::new(),
            };
            let Some(v) = entry.synced(ticket, &inner.client).await? else {
                return Ok(export);
            };
            if let Some((from, to)) = v.state().lost_range() {
                return Err(JournalError::EventsLost {
                    persistence_id: pid,
                    from,
                    to,
                });
            }
            export.highest = v.state().highest;
            export.deleted_to = v.state().deleted_to;
            let deleted_to = v.state().deleted_to;
            let mut log = log::Verified::new(v.log_start());
            let records = &mut export.records;
            log::scan(
                &inner.client,
                &entry.topic,
                &mut log,
                log::Until::Offset(v.state().next_offset),
                log::ScanOptions::FULL,
                |m| {
                    if matches!(m.applied, Applied::Event | Applied::Gap)
                        && m.record.last() > deleted_to
                    {
                        records.push(JournalRecordView::from_record(&pid, m.record));
                    }
                    std::ops::ControlFlow::Continue(())
                },
            )
            .await?;
            Ok(export)
        }
        .boxed()
    }
}

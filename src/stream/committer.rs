//! The committer: batches [`CommittableOffset`]s (the highest per partition) and commits a
//! batch when it holds `max_batch` offsets or `max_interval` passed since its first one, and
//! whatever is left when the offsets stream ends.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::time::Instant;

use super::control::CommittableOffset;
use crate::wire::{Error, OffsetAndMetadata, TopicPartition};

/// When the committer commits.
#[derive(Debug, Clone, Copy)]
pub struct CommitterSettings {
    /// Commit after this many offsets (default 1000).
    pub max_batch: usize,
    /// Commit at the latest this long after the first uncommitted offset (default 1 s).
    pub max_interval: Duration,
}

impl Default for CommitterSettings {
    fn default() -> Self {
        CommitterSettings {
            max_batch: 1000,
            max_interval: Duration::from_secs(1),
        }
    }
}

/// What the committer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Offsets received.
    pub offsets: u64,
    /// Commit requests sent.
    pub commits: u64,
}

#[derive(Default)]
struct Pending {
    /// Per source (by channel): partition -> (offset, an offset handle to commit through).
    sources: Vec<(CommittableOffset, BTreeMap<TopicPartition, i64>)>,
    count: usize,
    since: Option<Instant>,
}

impl Pending {
    fn add(&mut self, o: CommittableOffset) {
        self.count += 1;
        self.since.get_or_insert_with(Instant::now);
        match self.sources.iter_mut().find(|(h, _)| h.same_source(&o)) {
            Some((_, m)) => {
                let e = m.entry(o.partition.clone()).or_insert(o.offset);
                *e = (*e).max(o.offset);
            }
            None => {
                let mut m = BTreeMap::new();
                m.insert(o.partition.clone(), o.offset);
                self.sources.push((o, m));
            }
        }
    }

    async fn flush(&mut self, stats: &mut CommitStats) -> Result<(), Error> {
        self.count = 0;
        self.since = None;
        for (handle, offsets) in std::mem::take(&mut self.sources) {
            let list: Vec<(TopicPartition, OffsetAndMetadata)> = offsets
                .into_iter()
                .map(|(tp, o)| (tp, OffsetAndMetadata::new(o)))
                .collect();
            handle.control.commit(list).await?;
            stats.commits += 1;
        }
        Ok(())
    }
}

/// Commits the offsets of `offsets` in batches (see [`CommitterSettings`]) until the stream
/// ends; the last batch is committed then. Fails on the first commit that fails.
pub async fn commit_offsets<S>(
    offsets: S,
    settings: CommitterSettings,
) -> Result<CommitStats, Error>
where
    S: Stream<Item = CommittableOffset>,
{
    let mut offsets = std::pin::pin!(offsets);
    let mut pending = Pending::default();
    let mut stats = CommitStats::default();
    let max_batch = settings.max_batch.max(1);
    loop {
        let next = match pending.since {
            Some(since) => {
                let due = since + settings.max_interval;
                tokio::select! {
                    n = offsets.next() => Some(n),
                    _ = tokio::time::sleep_until(due) => None,
                }
            }
            None => Some(offsets.next().await),
        };
        match next {
            // The interval passed.
            None => pending.flush(&mut stats).await?,
            Some(None) => {
                pending.flush(&mut stats).await?;
                return Ok(stats);
            }
            Some(Some(o)) => {
                stats.offsets += 1;
                pending.add(o);
                if pending.count >= max_batch {
                    pending.flush(&mut stats).await?;
                }
            }
        }
    }
}

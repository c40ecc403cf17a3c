//! Fetching one partition from an offset.
//!
//! - Goes to the partition leader on the broker's *fetch* connection (a long poll never
//!   blocks produce requests on the main connection).
//! - A truncated last batch (the broker cut the response at `max_bytes`) ends decoding
//!   cleanly; `next_offset` then points at that batch, which the next fetch returns whole.
//! - Records below the requested offset are dropped (a batch may start before it).
//! - Control batches are skipped; under `ReadCommitted`, batches of aborted transactions are
//!   skipped too (using the response's aborted-transaction list).
//! - OFFSET_OUT_OF_RANGE becomes [`Error::OffsetOutOfRange`] with the partition's log start
//!   offset and high watermark (asked with ListOffsets if the response does not carry them).

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{AbortedTransaction, PartitionData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest as RawFetchRequest, FetchResponse as RawFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::admin::OffsetSpec;
use crate::client::{Client, ConnKind};
use crate::error::{Error, ErrorCode};
use crate::record::{decode_batches, ConsumedRecord, ControlType, DecodeLimits};
use crate::sync::lock;

/// Which records a fetch may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Everything up to the high watermark.
    #[default]
    ReadUncommitted,
    /// Only up to the last stable offset, without aborted transactional records.
    ReadCommitted,
}

/// A fetch of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// First offset wanted.
    pub offset: i64,
    /// Partition max bytes (default 1 MiB). The broker still returns at least one whole batch.
    pub max_bytes: i32,
    /// How long the broker may wait for `min_bytes` (default 0: answer at once).
    pub max_wait: Duration,
    /// Bytes the broker waits for, up to `max_wait` (default 1).
    pub min_bytes: i32,
    /// Isolation level (default read uncommitted).
    pub isolation: IsolationLevel,
}

impl FetchRequest {
    /// A fetch of `topic`/`partition` from `offset` with the defaults.
    pub fn new(topic: impl Into<String>, partition: i32, offset: i64) -> Self {
        FetchRequest {
            topic: topic.into(),
            partition,
            offset,
            max_bytes: 1024 * 1024,
            max_wait: Duration::ZERO,
            min_bytes: 1,
            isolation: IsolationLevel::ReadUncommitted,
        }
    }

    /// Sets the partition max bytes.
    pub fn with_max_bytes(mut self, n: i32) -> Self {
        self.max_bytes = n.max(1);
        self
    }

    /// Sets the long-poll wait.
    pub fn with_max_wait(mut self, d: Duration) -> Self {
        self.max_wait = d;
        self
    }

    /// Sets the minimum bytes to wait for.
    pub fn with_min_bytes(mut self, n: i32) -> Self {
        self.min_bytes = n.max(0);
        self
    }

    /// Sets the isolation level.
    pub fn with_isolation(mut self, i: IsolationLevel) -> Self {
        self.isolation = i;
        self
    }
}

/// The result of a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponse {
    /// Records with offsets >= the requested offset, in order; control batches skipped.
    pub records: Vec<ConsumedRecord>,
    /// The partition's high watermark.
    pub high_watermark: i64,
    /// The partition's log start offset (-1 if the broker did not say).
    pub log_start_offset: i64,
    /// The last stable offset (-1 if the broker did not say).
    pub last_stable_offset: i64,
    /// Where the next fetch should start.
    pub next_offset: i64,
}

/// Decodes the `records` bytes of one partition. Returns the records at or above `offset`
/// and the offset after the last complete batch seen (or `offset` if there was none).
pub(crate) fn decode_partition(
    records: Bytes,
    offset: i64,
    isolation: IsolationLevel,
    aborted: &[AbortedTransaction],
) -> Result<(Vec<ConsumedRecord>, i64), Error> {
    let mut out = Vec::new();
    let mut next = offset;
    let mut aborted: Vec<(i64, i64)> = aborted
        .iter()
        .map(|a| (a.first_offset, a.producer_id.0))
        .collect();
    aborted.sort_unstable();
    let mut aborted = aborted.into_iter().peekable();
    let mut active: HashSet<i64> = HashSet::new();
    for batch in decode_batches(records, DecodeLimits::default()) {
        let batch = batch?;
        let h = &batch.header;
        next = next.max(h.last_offset().saturating_add(1));
        if isolation == IsolationLevel::ReadCommitted {
            while let Some(&(first, pid)) = aborted.peek() {
                if first > h.last_offset() {
                    break;
                }
                active.insert(pid);
                aborted.next();
            }
        }
        if h.is_control() {
            let is_abort = batch
                .records
                .first()
                .and_then(|r| r.key.as_deref())
                .and_then(ControlType::from_key)
                == Some(ControlType::Abort);
            if is_abort {
                active.remove(&h.producer_id);
            }
            continue;
        }
        if isolation == IsolationLevel::ReadCommitted
            && h.is_transactional()
            && active.contains(&h.producer_id)
        {
            continue;
        }
        out.extend(batch.records.into_iter().filter(|r| r.offset >= offset));
    }
    Ok((out, next))
}

impl Client {
    /// Fetches records of one partition starting at `req.offset`.
    pub async fn fetch(&self, req: FetchRequest) -> Result<FetchResponse, Error> {
        let topics = [req.topic.clone()];
        let resp = self
            .with_retries("Fetch", &topics, || self.fetch_once(&req))
            .await?;
        match resp {
            Ok(r) => Ok(r),
            Err((log_start, hw)) => {
                // Out of range without offsets in the response: ask for them.
                let log_start = match log_start {
                    x if x >= 0 => x,
                    _ => self
                        .list_offset(&req.topic, req.partition, OffsetSpec::Earliest)
                        .await
                        .unwrap_or(-1),
                };
                let hw = match hw {
                    x if x >= 0 => x,
                    _ => self
                        .list_offset(&req.topic, req.partition, OffsetSpec::Latest)
                        .await
                        .unwrap_or(-1),
                };
                Err(Error::OffsetOutOfRange {
                    topic: req.topic.clone(),
                    partition: req.partition,
                    offset: req.offset,
                    log_start_offset: log_start,
                    high_watermark: hw,
                })
            }
        }
    }

    /// One attempt. `Ok(Err((log_start, hw)))` = offset out of range.
    async fn fetch_once(
        &self,
        req: &FetchRequest,
    ) -> Result<Result<FetchResponse, (i64, i64)>, Error> {
        let conn = self
            .inner
            .leader_conn(&req.topic, req.partition, req.conn_kind(self))
            .await?;
        let version = conn.version(ApiKey::Fetch)?;
        let raw = req.raw(
            req.max_bytes.max(1),
            vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(req.topic.clone())))
                .with_partitions(vec![req.raw_partition()])],
        );
        let timeout = self.inner.config.request_timeout + req.max_wait;
        let resp: RawFetchResponse = conn
            .request_at(ApiKey::Fetch, version, &raw, timeout)
            .await?;
        if resp.error_code != 0 {
            return Err(Error::broker(
                resp.error_code,
                Some(&req.topic),
                Some(req.partition),
                None,
            ));
        }
        let p = req.answer_in(&resp).ok_or_else(|| {
            Error::broker(
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                Some(&req.topic),
                Some(req.partition),
                Some("partition missing in Fetch response".to_owned()),
            )
        })?;
        match p.error_code {
            0 => {}
            ErrorCode::OFFSET_OUT_OF_RANGE => {
                return Ok(Err((p.log_start_offset, p.high_watermark)))
            }
            code => {
                if crate::error::lookup(code).refresh_metadata {
                    let hinted = lock(&self.inner.metadata).apply_leader_hint(
                        &req.topic,
                        req.partition,
                        p.current_leader.leader_id.0,
                        p.current_leader.leader_epoch,
                    );
                    if hinted {
                        tracing::debug!(topic = %req.topic, partition = req.partition, leader = p.current_leader.leader_id.0, reason = "KIP-951 current leader hint", "leader moved");
                    }
                }
                return Err(Error::broker(
                    code,
                    Some(&req.topic),
                    Some(req.partition),
                    None,
                ));
            }
        }
        Ok(Ok(req.answer(p)?))
    }
}

impl FetchRequest {
    /// The connection a fetch goes on: a long poll on one of the long-poll connections.
    pub(crate) fn conn_kind(&self, client: &Client) -> ConnKind {
        if self.max_wait.is_zero() {
            ConnKind::Fetch
        } else {
            ConnKind::LongPoll(client.inner.next_long_poll_slot())
        }
    }

    /// This request's partition entry.
    pub(crate) fn raw_partition(&self) -> FetchPartition {
        FetchPartition::default()
            .with_partition(self.partition)
            .with_current_leader_epoch(-1)
            .with_fetch_offset(self.offset)
            .with_last_fetched_epoch(-1)
            .with_log_start_offset(-1)
            .with_partition_max_bytes(self.max_bytes.max(1))
    }

    /// A Fetch request for `topics` with this request's wait, minimum and isolation.
    pub(crate) fn raw(&self, max_bytes: i32, topics: Vec<FetchTopic>) -> RawFetchRequest {
        let max_wait_ms = i32::try_from(self.max_wait.as_millis()).unwrap_or(i32::MAX);
        RawFetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(self.min_bytes)
            .with_max_bytes(max_bytes)
            .with_isolation_level(match self.isolation {
                IsolationLevel::ReadUncommitted => 0,
                IsolationLevel::ReadCommitted => 1,
            })
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(topics)
    }

    /// This request's partition in `resp`.
    pub(crate) fn answer_in<'a>(&self, resp: &'a RawFetchResponse) -> Option<&'a PartitionData> {
        resp.responses
            .iter()
            .filter(|t| t.topic.0.as_str() == self.topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == self.partition)
    }

    /// The records and positions of an error-free answer for this request's partition.
    pub(crate) fn answer(&self, p: &PartitionData) -> Result<FetchResponse, Error> {
        let aborted: &[AbortedTransaction] = p.aborted_transactions.as_deref().unwrap_or(&[]);
        let (records, next_offset) = match &p.records {
            Some(bytes) if !bytes.is_empty() => {
                decode_partition(bytes.clone(), self.offset, self.isolation, aborted)?
            }
            _ => (Vec::new(), self.offset),
        };
        Ok(FetchResponse {
            records,
            high_watermark: p.high_watermark,
            log_start_offset: p.log_start_offset,
            last_stable_offset: p.last_stable_offset,
            next_offset,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::record::{encode_batch, EncodeOptions, Record};
    use bytes::BytesMut;

    fn batch(base: i64, n: usize, out: &mut BytesMut) {
        let recs: Vec<Record> = (0..n)
            .map(|i| Record::new(format!("v{}", base + i as i64), 1))
            .collect();
        let opts = EncodeOptions {
            base_offset: base,
            ..Default::default()
        };
        encode_batch(&recs, &opts, out).unwrap();
    }

    #[test]
    fn drops_below_offset_and_tolerates_truncation() {
        let mut buf = BytesMut::new();
        batch(0, 5, &mut buf);
        batch(5, 5, &mut buf);
        let full = buf.len();
        batch(10, 5, &mut buf);
        // Cut the third batch in half.
        let cut = full + (buf.len() - full) / 2;
        let bytes = buf.freeze().slice(..cut);
        let (recs, next) =
            decode_partition(bytes, 3, IsolationLevel::ReadUncommitted, &[]).unwrap();
        let offsets: Vec<i64> = recs.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(next, 10);
        let (recs, next) =
            decode_partition(Bytes::new(), 42, IsolationLevel::ReadUncommitted, &[]).unwrap();
        assert!(recs.is_empty());
        assert_eq!(next, 42);
    }

    #[test]
    fn skips_control_batches() {
        let mut buf = BytesMut::new();
        batch(0, 2, &mut buf);
        let ctrl = Record {
            key: Some(Bytes::from_static(&[0, 0, 0, 1])),
            value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
            headers: vec![],
            timestamp: 1,
        };
        let opts = EncodeOptions {
            base_offset: 2,
            is_control: true,
            is_transactional: true,
            producer_id: 7,
            producer_epoch: 0,
            ..Default::default()
        };
        encode_batch(&[ctrl], &opts, &mut buf).unwrap();
        batch(3, 1, &mut buf);
        let (recs, next) =
            decode_partition(buf.freeze(), 0, IsolationLevel::ReadUncommitted, &[]).unwrap();
        assert_eq!(
            recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![0, 1, 3]
        );
        assert_eq!(next, 4);
    }

    #[test]
    fn read_committed_skips_aborted() {
        let mut buf = BytesMut::new();
        let rec = |v: &str| Record::new(v.to_owned(), 1);
        let txn = |base: i64, pid: i64| EncodeOptions {
            base_offset: base,
            is_transactional: true,
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: 0,
            ..Default::default()
        };
        encode_batch(&[rec("aborted")], &txn(0, 7), &mut buf).unwrap();
        encode_batch(&[rec("committed")], &txn(1, 8), &mut buf).unwrap();
        let abort = Record {
            key: Some(Bytes::from_static(&[0, 0, 0, 0])),
            value: None,
            headers: vec![],
            timestamp: 1,
        };
        let mut c = txn(2, 7);
        c.is_control = true;
        encode_batch(&[abort], &c, &mut buf).unwrap();
        let aborted = vec![AbortedTransaction::default()
            .with_producer_id(kafka_protocol::messages::ProducerId(7))
            .with_first_offset(0)];
        let bytes = buf.freeze();
        let (rc, _) =
            decode_partition(bytes.clone(), 0, IsolationLevel::ReadCommitted, &aborted).unwrap();
        assert_eq!(rc.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![1]);
        let (ru, next) =
            decode_partition(bytes, 0, IsolationLevel::ReadUncommitted, &aborted).unwrap();
        assert_eq!(ru.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(next, 3);
    }
}

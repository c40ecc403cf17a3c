//! Fetching many partitions at once: one Fetch request per leader for all of its partitions
//! (as the Java client and librdkafka do), instead of one request per partition.
//!
//! Only the happy path is shared: a partition whose leader is unknown, whose leader's request
//! failed, or whose part of the answer carries an error code is fetched again alone with
//! [`Client::fetch`], which owns retries, leader hints and out-of-range offsets. So a
//! partition's outcome is what a single fetch of it would give, one request later at worst.

use std::collections::HashMap;

use futures::future::join_all;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::{ApiKey, FetchResponse as RawFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::client::Client;
use crate::error::Error;
use crate::fetch::{FetchRequest, FetchResponse};

impl Client {
    /// Fetches every request's partition, one Fetch per leader (see the module
    /// documentation); one outcome per request, in order. The requests share the first one's
    /// `max_wait`, `min_bytes` and isolation level; each keeps its own offset and
    /// `max_bytes`.
    pub(crate) async fn fetch_partitions(
        &self,
        reqs: &[FetchRequest],
    ) -> Vec<Result<FetchResponse, Error>> {
        let mut out: Vec<Option<Result<FetchResponse, Error>>> =
            (0..reqs.len()).map(|_| None).collect();
        let mut by_leader: HashMap<i32, Vec<usize>> = HashMap::new();
        let mut alone = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            match self.inner.leader(&r.topic, r.partition).await {
                Ok(leader) => by_leader.entry(leader).or_default().push(i),
                Err(_) => alone.push(i),
            }
        }
        let shared = by_leader.into_iter().map(|(leader, idx)| async move {
            let answers = self.fetch_from(leader, reqs, &idx).await;
            (idx, answers)
        });
        for (idx, answers) in join_all(shared).await {
            match answers {
                Ok(answers) => {
                    for (i, a) in idx.into_iter().zip(answers) {
                        match a {
                            Some(resp) => out[i] = Some(Ok(resp)),
                            None => alone.push(i),
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, reason = "shared fetch failed", "fetching its partitions alone");
                    alone.extend(idx);
                }
            }
        }
        let singles = join_all(alone.iter().map(|&i| self.fetch(reqs[i].clone()))).await;
        for (i, r) in alone.into_iter().zip(singles) {
            out[i] = Some(r);
        }
        out.into_iter()
            .map(|r| r.unwrap_or(Err(Error::Closed)))
            .collect()
    }

    /// One Fetch to `leader` for `reqs[idx]`; per partition its response, or `None` where
    /// the partition must be fetched alone.
    async fn fetch_from(
        &self,
        leader: i32,
        reqs: &[FetchRequest],
        idx: &[usize],
    ) -> Result<Vec<Option<FetchResponse>>, Error> {
        let Some(&first) = idx.first() else {
            return Ok(Vec::new());
        };
        let head = &reqs[first];
        let conn = self.inner.broker_conn(leader, head.conn_kind(self)).await?;
        let version = conn.version(ApiKey::Fetch)?;
        let mut topics: Vec<FetchTopic> = Vec::new();
        let mut total: i64 = 0;
        for &i in idx {
            let r = &reqs[i];
            total += i64::from(r.max_bytes.max(1));
            match topics.iter_mut().find(|t| t.topic.0.as_str() == r.topic) {
                Some(t) => t.partitions.push(r.raw_partition()),
                None => topics.push(
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(r.topic.clone())))
                        .with_partitions(vec![r.raw_partition()]),
                ),
            }
        }
        let raw = head.raw(i32::try_from(total).unwrap_or(i32::MAX), topics);
        let timeout = self.inner.config.request_timeout + head.max_wait;
        let resp: RawFetchResponse = conn
            .request_at(ApiKey::Fetch, version, &raw, timeout)
            .await?;
        if resp.error_code != 0 {
            return Err(Error::broker(resp.error_code, None, None, None));
        }
        let mut answers = Vec::with_capacity(idx.len());
        for &i in idx {
            let r = &reqs[i];
            let answer = match r.answer_in(&resp) {
                Some(p) if p.error_code == 0 => Some(r.answer(p)?),
                // Missing, or an error: the single fetch handles it.
                _ => None,
            };
            answers.push(answer);
        }
        Ok(answers)
    }
}

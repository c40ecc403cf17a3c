//! The consumer's fetcher: one round fetches every fetchable partition from its position,
//! concurrently, each on its leader's long-poll connection, and reports per partition.

use std::time::Duration;

use futures::future::join_all;

use super::assignor::TopicPartition;
use super::config::ConsumerConfig;
use crate::client::Client;
use crate::error::Error;
use crate::fetch::{FetchRequest, FetchResponse};

/// Fetches `partitions` (with their positions), waiting up to `max_wait` for data.
pub(crate) async fn fetch_round(
    client: &Client,
    config: &ConsumerConfig,
    partitions: &[(TopicPartition, i64)],
    max_wait: Duration,
) -> Vec<(TopicPartition, i64, Result<FetchResponse, Error>)> {
    let fetches = partitions.iter().map(|(tp, offset)| async move {
        let req = FetchRequest::new(tp.topic.clone(), tp.partition, *offset)
            .with_max_bytes(config.max_partition_fetch_bytes)
            .with_max_wait(max_wait)
            .with_isolation(config.isolation);
        (tp.clone(), *offset, client.fetch(req).await)
    });
    join_all(fetches).await
}

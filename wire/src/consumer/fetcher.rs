//! The consumer's fetcher: one round fetches every fetchable partition from its position,
//! with one Fetch request per leader (see [`crate::fetch_many`]), and reports per partition.

use std::time::Duration;

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
    let reqs: Vec<FetchRequest> = partitions
        .iter()
        .map(|(tp, offset)| {
            FetchRequest::new(tp.topic.clone(), tp.partition, *offset)
                .with_max_bytes(config.max_partition_fetch_bytes)
                .with_max_wait(max_wait)
                .with_isolation(config.isolation)
        })
        .collect();
    let answers = client.fetch_partitions(&reqs).await;
    partitions
        .iter()
        .zip(answers)
        .map(|((tp, offset), r)| (tp.clone(), *offset, r))
        .collect()
}

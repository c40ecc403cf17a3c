//! Admin calls: create/delete topics, list topics and their metadata, describe topic
//! configuration, list offsets, delete records.
//!
//! - CreateTopics and DeleteTopics go to the controller; NOT_CONTROLLER refreshes metadata and
//!   retries. TOPIC_ALREADY_EXISTS is success (setup is idempotent). After creating, the call
//!   waits until metadata shows every partition of the topic with a leader, so a produce
//!   right after it does not meet UNKNOWN_TOPIC_OR_PARTITION.
//! - ListOffsets and DeleteRecords go to the partition leader.
//! - Nothing here creates a topic implicitly.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteRecordsRequest,
    DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, ListOffsetsRequest, ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use crate::client::{Client, ConnKind};
use crate::coordinator::CoordinatorKind;
use crate::error::{Error, ErrorCode};
use crate::metadata::{TopicMetadata, TopicState};
use crate::sync::lock;

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Number of partitions (-1 = broker default).
    pub num_partitions: i32,
    /// Replication factor (-1 = broker default).
    pub replication_factor: i16,
    /// Topic configuration, e.g. `("cleanup.policy", "compact")`.
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with `num_partitions` partitions and `replication_factor` replicas.
    pub fn new(name: impl Into<String>, num_partitions: i32, replication_factor: i16) -> Self {
        NewTopic {
            name: name.into(),
            num_partitions,
            replication_factor,
            configs: Vec::new(),
        }
    }

    /// Adds a topic configuration entry.
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((key.into(), value.into()));
        self
    }
}

/// Which offset [`Client::list_offset`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset (timestamp -2).
    Earliest,
    /// The high watermark: the offset the next record will get (timestamp -1).
    Latest,
    /// The first offset whose timestamp is >= the given one (ms); -1 if none.
    Timestamp(i64),
}

impl OffsetSpec {
    fn timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn text(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|m| m.as_str().to_owned())
}

/// The broker-side timeout we pass in admin requests (ms).
fn broker_timeout(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

impl Client {
    pub(crate) async fn controller_conn(
        &self,
    ) -> Result<std::sync::Arc<crate::conn::Connection>, Error> {
        let controller = lock(&self.inner.metadata).controller;
        if controller >= 0 {
            if let Ok(c) = self.inner.broker_conn(controller, ConnKind::Main).await {
                return Ok(c);
            }
        }
        // Unknown controller (or v0 metadata): any broker forwards admin requests in KRaft.
        self.inner.any_conn().await
    }

    /// Creates topics. A topic that already exists is not an error. Returns once metadata
    /// shows every created topic with a leader for each partition.
    pub async fn create_topics(&self, topics: Vec<NewTopic>) -> Result<(), Error> {
        if topics.is_empty() {
            return Ok(());
        }
        let timeout = self.inner.config.request_timeout;
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(broker_timeout(timeout))
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(name(&t.name))
                            .with_num_partitions(t.num_partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(StrBytes::from_string(k.clone()))
                                            .with_value(Some(StrBytes::from_string(v.clone())))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
        self.with_retries("CreateTopics", &[], || async {
            let conn = self.controller_conn().await?;
            let (_, resp): (i16, CreateTopicsResponse) = conn
                .request(ApiKey::CreateTopics, &req, timeout + timeout)
                .await?;
            for r in &resp.topics {
                match r.error_code {
                    0 | ErrorCode::TOPIC_ALREADY_EXISTS => {}
                    code => {
                        return Err(Error::broker(
                            code,
                            Some(r.name.0.as_str()),
                            None,
                            text(&r.error_message),
                        ))
                    }
                }
            }
            Ok(())
        })
        .await?;
        self.wait_for_topics(&names, true).await
    }

    /// Waits until metadata shows each topic with leaders (`present`) or shows it gone.
    async fn wait_for_topics(&self, names: &[String], present: bool) -> Result<(), Error> {
        let deadline = Instant::now() + self.inner.config.delivery_timeout;
        let mut delay = Duration::from_millis(5);
        loop {
            self.inner.fetch_metadata(Some(names)).await?;
            let done = {
                let md = lock(&self.inner.metadata);
                names.iter().all(|n| match md.topics.get(n) {
                    Some(TopicState::Known(t)) => present && t.all_leaders_known(),
                    Some(TopicState::Missing) | None => !present,
                })
            };
            if done {
                return Ok(());
            }
            if Instant::now() + delay > deadline {
                return Err(Error::Timeout {
                    what: format!("waiting for metadata of topics {names:?}"),
                    after: self.inner.config.delivery_timeout,
                });
            }
            debug!(topics = ?names, present, reason = "topic not yet visible in metadata", "polling metadata");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(200));
        }
    }

    /// Deletes topics. A topic that does not exist is not an error.
    pub async fn delete_topics(&self, names: &[String]) -> Result<(), Error> {
        if names.is_empty() {
            return Ok(());
        }
        let timeout = self.inner.config.request_timeout;
        self.with_retries("DeleteTopics", &[], || async {
            let conn = self.controller_conn().await?;
            let version = conn.version(ApiKey::DeleteTopics)?;
            let mut req = DeleteTopicsRequest::default().with_timeout_ms(broker_timeout(timeout));
            if version >= 6 {
                req.topics = names
                    .iter()
                    .map(|n| DeleteTopicState::default().with_name(Some(name(n))))
                    .collect();
            } else {
                req.topic_names = names.iter().map(|n| name(n)).collect();
            }
            let resp: DeleteTopicsResponse = conn
                .request_at(ApiKey::DeleteTopics, version, &req, timeout + timeout)
                .await?;
            for r in &resp.responses {
                match r.error_code {
                    0 | ErrorCode::UNKNOWN_TOPIC_OR_PARTITION => {}
                    code => {
                        let topic = r.name.as_ref().map(|n| n.0.as_str());
                        return Err(Error::broker(code, topic, None, text(&r.error_message)));
                    }
                }
            }
            Ok(())
        })
        .await?;
        for n in names {
            self.inner.invalidate(n);
        }
        Ok(())
    }

    /// The node id of the coordinator of a consumer group or of a transactional id
    /// (FindCoordinator), retried while the coordinator is not available (e.g. being moved
    /// after its broker died) until the delivery timeout.
    ///
    /// ```no_run
    /// # async fn run(client: kafka_persistence_wire::Client) -> Result<(), kafka_persistence_wire::Error> {
    /// use kafka_persistence_wire::CoordinatorKind;
    ///
    /// let node = client.find_coordinator(CoordinatorKind::Transaction, "shipping-0").await?;
    /// println!("the transaction coordinator of shipping-0 is node {node}");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn find_coordinator(&self, kind: CoordinatorKind, key: &str) -> Result<i32, Error> {
        let timeout = self.inner.config.request_timeout;
        let (node, _) = self
            .with_retries("find coordinator", &[], || {
                crate::coordinator::find(self, kind, key, timeout)
            })
            .await?;
        Ok(node)
    }

    /// Names of all topics in the cluster, internal ones (`__consumer_offsets`...) left out.
    /// Never creates anything.
    pub async fn list_topics(&self) -> Result<Vec<String>, Error> {
        let resp = self
            .with_retries("list topics", &[], || async {
                self.inner.fetch_metadata(None).await
            })
            .await?;
        let mut names: Vec<String> = resp
            .topics
            .iter()
            .filter(|t| t.error_code == 0 && !t.is_internal)
            .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str().to_owned()))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Fresh metadata of one topic; `None` if it does not exist. Never creates it.
    pub async fn topic_metadata(&self, topic: &str) -> Result<Option<TopicMetadata>, Error> {
        let names = [topic.to_owned()];
        self.with_retries("topic metadata", &names, || async {
            self.inner.fetch_metadata(Some(&names)).await?;
            Ok(match lock(&self.inner.metadata).topics.get(topic) {
                Some(TopicState::Known(t)) => Some(t.clone()),
                _ => None,
            })
        })
        .await
    }

    /// The configuration of a topic (DescribeConfigs), as key -> value; entries without a
    /// value (sensitive ones) are left out.
    pub async fn describe_topic_config(
        &self,
        topic: &str,
    ) -> Result<HashMap<String, String>, Error> {
        const TOPIC_RESOURCE: i8 = 2;
        let timeout = self.inner.config.request_timeout;
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(StrBytes::from_string(topic.to_owned()))
                .with_configuration_keys(None),
        ]);
        let names = [topic.to_owned()];
        self.with_retries("DescribeConfigs", &names, || async {
            let conn = self.inner.any_conn().await?;
            let (_, resp): (i16, DescribeConfigsResponse) =
                conn.request(ApiKey::DescribeConfigs, &req, timeout).await?;
            let mut out = HashMap::new();
            for r in &resp.results {
                if r.error_code == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION {
                    return Err(Error::UnknownTopic {
                        topic: topic.to_owned(),
                    });
                }
                if r.error_code != 0 {
                    return Err(Error::broker(
                        r.error_code,
                        Some(topic),
                        None,
                        text(&r.error_message),
                    ));
                }
                for c in &r.configs {
                    if let Some(v) = &c.value {
                        out.insert(c.name.as_str().to_owned(), v.as_str().to_owned());
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// Looks up an offset of a partition (ListOffsets, to the leader).
    pub async fn list_offset(
        &self,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
    ) -> Result<i64, Error> {
        let timeout = self.inner.config.request_timeout;
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(0)
            .with_timeout_ms(broker_timeout(timeout))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(spec.timestamp())])]);
        let names = [topic.to_owned()];
        self.with_retries("ListOffsets", &names, || async {
            let conn = self
                .inner
                .leader_conn(topic, partition, ConnKind::Main)
                .await?;
            let (_, resp): (i16, ListOffsetsResponse) =
                conn.request(ApiKey::ListOffsets, &req, timeout).await?;
            let p = resp
                .topics
                .iter()
                .filter(|t| t.name.0.as_str() == topic)
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == partition)
                .ok_or_else(|| {
                    Error::broker(
                        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                        Some(topic),
                        Some(partition),
                        Some("partition missing in ListOffsets response".to_owned()),
                    )
                })?;
            if p.error_code != 0 {
                return Err(Error::broker(
                    p.error_code,
                    Some(topic),
                    Some(partition),
                    None,
                ));
            }
            Ok(p.offset)
        })
        .await
    }

    /// Deletes the records of a partition below `before_offset` (DeleteRecords, to the
    /// leader; -1 = the high watermark). Returns the new low watermark (log start offset).
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: i32,
        before_offset: i64,
    ) -> Result<i64, Error> {
        let timeout = self.inner.config.request_timeout;
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(broker_timeout(timeout))
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(before_offset)])]);
        let names = [topic.to_owned()];
        self.with_retries("DeleteRecords", &names, || async {
            let conn = self
                .inner
                .leader_conn(topic, partition, ConnKind::Main)
                .await?;
            let (_, resp): (i16, DeleteRecordsResponse) = conn
                .request(ApiKey::DeleteRecords, &req, timeout + timeout)
                .await?;
            let p = resp
                .topics
                .iter()
                .filter(|t| t.name.0.as_str() == topic)
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == partition)
                .ok_or_else(|| {
                    Error::broker(
                        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                        Some(topic),
                        Some(partition),
                        Some("partition missing in DeleteRecords response".to_owned()),
                    )
                })?;
            if p.error_code != 0 {
                return Err(Error::broker(
                    p.error_code,
                    Some(topic),
                    Some(partition),
                    None,
                ));
            }
            Ok(p.low_watermark)
        })
        .await
    }
}

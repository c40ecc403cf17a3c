//! Admin calls that move partition leadership (what `kafka-reassign-partitions` and
//! `kafka-leader-election` do): AlterPartitionReassignments sets a partition's replica list
//! (its first replica is the preferred leader), ElectLeaders moves leadership to the
//! preferred replica. Both go to the controller (any broker forwards them in KRaft);
//! NOT_CONTROLLER refreshes metadata and retries.
//!
//! Reordering the replicas of a partition without changing the set moves no data; followed
//! by a preferred election it moves the leader to the new first replica, which is how the
//! fault tests move a leader while clients write.

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    ElectLeadersRequest, ElectLeadersResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::Client;
use crate::error::{Error, ErrorCode};

/// ElectLeaders' election type for the preferred replica.
const PREFERRED: i8 = 0;

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn text(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|m| m.as_str().to_owned())
}

fn broker_timeout(d: std::time::Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

impl Client {
    /// Sets the replica list of each `(partition, replicas)` of `topic`; the first replica
    /// becomes the partition's preferred leader (see [`Client::elect_preferred_leaders`]).
    /// Returns once the controller accepted the reassignment (replicas that must catch up do
    /// so afterwards; a mere reordering completes at once).
    pub async fn alter_partition_reassignments(
        &self,
        topic: &str,
        assignments: &[(i32, Vec<i32>)],
    ) -> Result<(), Error> {
        if assignments.is_empty() {
            return Ok(());
        }
        let timeout = self.inner.config.request_timeout;
        let req = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(broker_timeout(timeout))
            .with_topics(vec![ReassignableTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    assignments
                        .iter()
                        .map(|(p, replicas)| {
                            ReassignablePartition::default()
                                .with_partition_index(*p)
                                .with_replicas(Some(
                                    replicas.iter().map(|&b| BrokerId(b)).collect(),
                                ))
                        })
                        .collect(),
                )]);
        self.with_retries("AlterPartitionReassignments", &[], || async {
            let conn = self.controller_conn().await?;
            let (_, resp): (i16, AlterPartitionReassignmentsResponse) = conn
                .request(ApiKey::AlterPartitionReassignments, &req, timeout + timeout)
                .await?;
            if resp.error_code != ErrorCode::NONE {
                return Err(Error::broker(
                    resp.error_code,
                    Some(topic),
                    None,
                    text(&resp.error_message),
                ));
            }
            for t in &resp.responses {
                for p in &t.partitions {
                    if p.error_code != ErrorCode::NONE {
                        return Err(Error::broker(
                            p.error_code,
                            Some(t.name.0.as_str()),
                            Some(p.partition_index),
                            text(&p.error_message),
                        ));
                    }
                }
            }
            Ok(())
        })
        .await?;
        self.inner.invalidate(topic);
        Ok(())
    }

    /// Moves the leadership of each of `partitions` of `topic` to its preferred replica (the
    /// first of its replica list). A partition already led by it is not an error.
    pub async fn elect_preferred_leaders(
        &self,
        topic: &str,
        partitions: &[i32],
    ) -> Result<(), Error> {
        if partitions.is_empty() {
            return Ok(());
        }
        let timeout = self.inner.config.request_timeout;
        let req = ElectLeadersRequest::default()
            .with_election_type(PREFERRED)
            .with_timeout_ms(broker_timeout(timeout))
            .with_topic_partitions(Some(vec![TopicPartitions::default()
                .with_topic(topic_name(topic))
                .with_partitions(partitions.to_vec())]));
        self.with_retries("ElectLeaders", &[], || async {
            let conn = self.controller_conn().await?;
            let (_, resp): (i16, ElectLeadersResponse) = conn
                .request(ApiKey::ElectLeaders, &req, timeout + timeout)
                .await?;
            if resp.error_code != ErrorCode::NONE {
                return Err(Error::broker(resp.error_code, Some(topic), None, None));
            }
            for t in &resp.replica_election_results {
                for p in &t.partition_result {
                    match p.error_code {
                        ErrorCode::NONE | ErrorCode::ELECTION_NOT_NEEDED => {}
                        code => {
                            return Err(Error::broker(
                                code,
                                Some(t.topic.0.as_str()),
                                Some(p.partition_id),
                                text(&p.error_message),
                            ))
                        }
                    }
                }
            }
            Ok(())
        })
        .await?;
        self.inner.invalidate(topic);
        Ok(())
    }
}

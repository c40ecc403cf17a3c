//! Admin calls that inspect consumer groups: DescribeGroups (classic groups), ListGroups
//! (every group of every broker) and ConsumerGroupDescribe (KIP-848 groups).
//!
//! - Describing goes to each group's coordinator (FindCoordinator); NOT_COORDINATOR and
//!   COORDINATOR_NOT_AVAILABLE look the coordinator up again and retry until the delivery
//!   timeout, as the other coordinator calls do.
//! - A classic group that does not exist is described as state `Dead` without members (a
//!   broker before DescribeGroups v6 says only that; v6's GROUP_ID_NOT_FOUND is read the same
//!   way). A KIP-848 group that does not exist, or is a classic group, is an error
//!   (GROUP_ID_NOT_FOUND), as the Java AdminClient reports it.
//! - Listing asks every broker in the metadata and merges the answers (each broker lists the
//!   groups it coordinates).

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::consumer_group_describe_response::Assignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId, ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::{Client, ConnKind};
use crate::coordinator::CoordinatorKind;
use crate::error::{Error, ErrorCode};
use crate::sync::lock;

/// A classic group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// Empty, PreparingRebalance, CompletingRebalance, Stable or Dead.
    pub state: String,
    /// "consumer" for consumer groups ("" for a group that only holds committed offsets).
    pub protocol_type: String,
    /// The chosen protocol (assignor name for consumers); empty unless Stable.
    pub protocol: String,
    /// The members.
    pub members: Vec<GroupMemberDescription>,
}

/// A member of a classic group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberDescription {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its `group.instance.id` (static membership), if any.
    pub instance_id: Option<String>,
    /// The client id it joined with.
    pub client_id: String,
    /// Its address as the broker saw it (`/127.0.0.1`).
    pub client_host: String,
    /// Its metadata for the chosen protocol (empty unless the group is Stable).
    pub metadata: Bytes,
    /// Its assignment from the leader (empty unless the group is Stable).
    pub assignment: Bytes,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedGroup {
    /// The group id.
    pub group_id: String,
    /// The protocol type ("consumer", or "" for a group that only holds offsets).
    pub protocol_type: String,
    /// The state (brokers with ListGroups v4+; empty otherwise).
    pub state: String,
    /// "classic" or "consumer" (brokers with ListGroups v5+; empty otherwise).
    pub group_type: String,
}

/// A group of the consumer protocol (KIP-848) as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    /// The group id.
    pub group_id: String,
    /// Empty, Assigning, Reconciling, Stable (or Dead).
    pub state: String,
    /// The group epoch.
    pub epoch: i32,
    /// The epoch of the target assignment.
    pub assignment_epoch: i32,
    /// The server-side assignor.
    pub assignor: String,
    /// The members.
    pub members: Vec<ConsumerGroupMemberDescription>,
}

/// Partitions by topic name.
pub type TopicPartitions = BTreeMap<String, Vec<i32>>;

/// A member of a KIP-848 group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMemberDescription {
    /// The member id.
    pub member_id: String,
    /// Its `group.instance.id`, if any.
    pub instance_id: Option<String>,
    /// The member epoch.
    pub epoch: i32,
    /// The client id of its heartbeats.
    pub client_id: String,
    /// Its address as the broker saw it.
    pub client_host: String,
    /// The topics it subscribes to (those its regex matches, with a regex).
    pub subscribed_topics: Vec<String>,
    /// Its subscription regex, if any.
    pub subscribed_regex: Option<String>,
    /// What it owns now.
    pub assignment: TopicPartitions,
    /// What the coordinator means it to own.
    pub target_assignment: TopicPartitions,
}

fn s(v: &StrBytes) -> String {
    v.as_str().to_owned()
}

fn partitions(a: &Assignment) -> TopicPartitions {
    let mut out = TopicPartitions::new();
    for tp in &a.topic_partitions {
        let ps = out.entry(s(&tp.topic_name.0)).or_default();
        ps.extend(tp.partitions.iter().copied());
        ps.sort_unstable();
    }
    out
}

impl Client {
    /// A connection to the coordinator of `group`.
    async fn group_coordinator_conn(
        &self,
        group: &str,
    ) -> Result<std::sync::Arc<crate::conn::Connection>, Error> {
        let timeout = self.inner.config.request_timeout;
        let (_, addr) =
            crate::coordinator::find(self, CoordinatorKind::Group, group, timeout).await?;
        self.inner.conn(&addr, ConnKind::Main).await
    }

    /// Describes classic groups (DescribeGroups, to each group's coordinator), in the order
    /// of `groups`. A group that does not exist is described as `Dead` with no members.
    pub async fn describe_groups(&self, groups: &[&str]) -> Result<Vec<GroupDescription>, Error> {
        let timeout = self.inner.config.request_timeout;
        let mut out = Vec::with_capacity(groups.len());
        for &group in groups {
            let d = self
                .with_retries("DescribeGroups", &[], || async {
                    let conn = self.group_coordinator_conn(group).await?;
                    let version = conn.version(ApiKey::DescribeGroups)?;
                    let req = DescribeGroupsRequest::default()
                        .with_groups(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
                    let resp: DescribeGroupsResponse = conn
                        .request_at(ApiKey::DescribeGroups, version, &req, timeout)
                        .await?;
                    let g = resp
                        .groups
                        .into_iter()
                        .find(|g| g.group_id.0.as_str() == group)
                        .ok_or_else(|| {
                            Error::broker(
                                ErrorCode::UNKNOWN_SERVER_ERROR,
                                None,
                                None,
                                Some(format!("group {group} missing in DescribeGroups response")),
                            )
                        })?;
                    match g.error_code {
                        0 | ErrorCode::GROUP_ID_NOT_FOUND => {}
                        code => {
                            return Err(Error::broker(
                                code,
                                None,
                                None,
                                Some(format!("DescribeGroups {group}")),
                            ))
                        }
                    }
                    Ok(GroupDescription {
                        group_id: group.to_owned(),
                        state: s(&g.group_state),
                        protocol_type: s(&g.protocol_type),
                        protocol: s(&g.protocol_data),
                        members: g
                            .members
                            .iter()
                            .map(|m| GroupMemberDescription {
                                member_id: s(&m.member_id),
                                instance_id: m.group_instance_id.as_ref().map(s),
                                client_id: s(&m.client_id),
                                client_host: s(&m.client_host),
                                metadata: m.member_metadata.clone(),
                                assignment: m.member_assignment.clone(),
                            })
                            .collect(),
                    })
                })
                .await?;
            out.push(d);
        }
        Ok(out)
    }

    /// Lists the groups of every broker (ListGroups), sorted by id. `states` and `types`
    /// ("classic", "consumer") filter case-insensitively where the broker supports it
    /// (ListGroups v4 and v5); an empty filter keeps every group. A non-empty filter a broker
    /// is too old for is an UNSUPPORTED_VERSION error.
    pub async fn list_groups(
        &self,
        states: &[&str],
        types: &[&str],
    ) -> Result<Vec<ListedGroup>, Error> {
        let timeout = self.inner.config.request_timeout;
        self.inner.fetch_metadata(Some(&[])).await?;
        let ids: Vec<i32> = {
            let mut v: Vec<i32> = lock(&self.inner.metadata).brokers.keys().copied().collect();
            v.sort_unstable();
            v
        };
        let mut all = Vec::new();
        for id in ids {
            let listed = self
                .with_retries("ListGroups", &[], || async {
                    let conn = self.inner.broker_conn(id, ConnKind::Main).await?;
                    let version = conn.version(ApiKey::ListGroups)?;
                    if (!states.is_empty() && version < 4) || (!types.is_empty() && version < 5) {
                        return Err(Error::broker(
                            ErrorCode::UNSUPPORTED_VERSION,
                            None,
                            None,
                            Some(format!("ListGroups v{version} has no such filter")),
                        ));
                    }
                    let sbs = |v: &[&str]| -> Vec<StrBytes> {
                        v.iter()
                            .map(|x| StrBytes::from_string((*x).to_owned()))
                            .collect()
                    };
                    let req = ListGroupsRequest::default()
                        .with_states_filter(if version >= 4 {
                            sbs(states)
                        } else {
                            Vec::new()
                        })
                        .with_types_filter(if version >= 5 { sbs(types) } else { Vec::new() });
                    let resp: ListGroupsResponse = conn
                        .request_at(ApiKey::ListGroups, version, &req, timeout)
                        .await?;
                    if resp.error_code != 0 {
                        return Err(Error::broker(
                            resp.error_code,
                            None,
                            None,
                            Some(format!("ListGroups on node {id}")),
                        ));
                    }
                    Ok(resp
                        .groups
                        .iter()
                        .map(|g| ListedGroup {
                            group_id: s(&g.group_id.0),
                            protocol_type: s(&g.protocol_type),
                            state: s(&g.group_state),
                            group_type: s(&g.group_type),
                        })
                        .collect::<Vec<_>>())
                })
                .await?;
            all.extend(listed);
        }
        all.sort();
        all.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(all)
    }

    /// Describes groups of the consumer protocol (ConsumerGroupDescribe, KIP-848), in the
    /// order of `groups`. A group that does not exist or is a classic group is a
    /// GROUP_ID_NOT_FOUND error.
    pub async fn describe_consumer_groups(
        &self,
        groups: &[&str],
    ) -> Result<Vec<ConsumerGroupDescription>, Error> {
        let timeout = self.inner.config.request_timeout;
        let mut out = Vec::with_capacity(groups.len());
        for &group in groups {
            let d = self
                .with_retries("ConsumerGroupDescribe", &[], || async {
                    let conn = self.group_coordinator_conn(group).await?;
                    let version = conn.version(ApiKey::ConsumerGroupDescribe)?;
                    let req = ConsumerGroupDescribeRequest::default()
                        .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
                    let resp: ConsumerGroupDescribeResponse = conn
                        .request_at(ApiKey::ConsumerGroupDescribe, version, &req, timeout)
                        .await?;
                    let g = resp
                        .groups
                        .into_iter()
                        .find(|g| g.group_id.0.as_str() == group)
                        .ok_or_else(|| {
                            Error::broker(
                                ErrorCode::UNKNOWN_SERVER_ERROR,
                                None,
                                None,
                                Some(format!(
                                    "group {group} missing in ConsumerGroupDescribe response"
                                )),
                            )
                        })?;
                    if g.error_code != 0 {
                        return Err(Error::broker(
                            g.error_code,
                            None,
                            None,
                            Some(
                                g.error_message
                                    .as_ref()
                                    .map_or_else(|| format!("ConsumerGroupDescribe {group}"), s),
                            ),
                        ));
                    }
                    Ok(ConsumerGroupDescription {
                        group_id: group.to_owned(),
                        state: s(&g.group_state),
                        epoch: g.group_epoch,
                        assignment_epoch: g.assignment_epoch,
                        assignor: s(&g.assignor_name),
                        members: g
                            .members
                            .iter()
                            .map(|m| ConsumerGroupMemberDescription {
                                member_id: s(&m.member_id),
                                instance_id: m.instance_id.as_ref().map(s),
                                epoch: m.member_epoch,
                                client_id: s(&m.client_id),
                                client_host: s(&m.client_host),
                                subscribed_topics: m
                                    .subscribed_topic_names
                                    .iter()
                                    .map(|t| s(&t.0))
                                    .collect(),
                                subscribed_regex: m.subscribed_topic_regex.as_ref().map(s),
                                assignment: partitions(&m.assignment),
                                target_assignment: partitions(&m.target_assignment),
                            })
                            .collect(),
                    })
                })
                .await?;
            out.push(d);
        }
        Ok(out)
    }
}

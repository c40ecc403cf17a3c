//! Authentication state of one connection, SASL users and simple topic ACLs.
//!
//! - A listener with SASL users (see [`crate::TestServerBuilder::sasl_user`]) accepts, before
//!   authentication, only ApiVersions, SaslHandshake and SaslAuthenticate; anything else
//!   closes the connection, as Kafka does. A failed authentication is answered with
//!   SASL_AUTHENTICATION_FAILED and the connection is closed.
//! - The principal is `User:<name>` after SASL, `User:CN=<cn>` after mutual TLS, else
//!   `User:ANONYMOUS`.
//! - ACLs (see [`crate::TestServerBuilder::acl`]): once any is given, every topic operation
//!   needs one (Kafka's `allow.everyone.if.no.acl.found=false`); super users may do anything.
//!   Read, Write, Create and Delete imply Describe, as in Kafka.
//!
//! - Re-authentication (KIP-368, see [`crate::TestServerBuilder::connections_max_reauth`]):
//!   every SASL session then has a lifetime, reported in SaslAuthenticate v1+; a SaslHandshake
//!   on an authenticated connection starts a re-authentication (same mechanism and principal,
//!   or the connection is closed), and any other request after the session expired closes
//!   the connection, as Kafka does.
//!
//! Skipped: group, cluster and transactional-id ACLs; DENY rules; prefixed resource
//! patterns (only a literal topic or `*`); Metadata for all topics is not filtered by
//! Describe (Metadata naming a topic needs it); a request with one unauthorized topic is
//! refused whole with TOPIC_AUTHORIZATION_FAILED for every topic (Kafka answers per topic).

use std::collections::{BTreeSet, HashMap};

use kafka_persistence_wire::sasl::scram::{ScramCredential, ScramHash};
use kafka_persistence_wire::SaslMechanism;
use kafka_protocol::messages::RequestKind;

use crate::cluster::Cluster;

/// A topic operation an ACL can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum AclOperation {
    /// Fetch.
    Read,
    /// Produce.
    Write,
    /// CreateTopics.
    Create,
    /// DeleteTopics, DeleteRecords.
    Delete,
    /// ListOffsets, DescribeConfigs (implied by every other operation).
    Describe,
    /// Everything.
    All,
}

impl std::str::FromStr for AclOperation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "read" => Ok(AclOperation::Read),
            "write" => Ok(AclOperation::Write),
            "create" => Ok(AclOperation::Create),
            "delete" => Ok(AclOperation::Delete),
            "describe" => Ok(AclOperation::Describe),
            "all" => Ok(AclOperation::All),
            _ => Err(format!(
                "unknown ACL operation {s:?} (read, write, create, delete, describe, all)"
            )),
        }
    }
}

/// One user's stored credentials.
#[derive(Clone)]
pub(crate) enum Credential {
    Plain(String),
    Scram(ScramHash, ScramCredential),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Plain(_) => f.write_str("Plain([redacted])"),
            Credential::Scram(h, c) => f.debug_tuple("Scram").field(h).field(c).finish(),
        }
    }
}

/// Users, ACLs and super users: the security settings of a cluster. `Debug` shows no
/// password and no token.
#[derive(Clone, Default)]
pub(crate) struct AuthSettings {
    /// (mechanism, user name) -> credential.
    pub(crate) users: HashMap<(SaslMechanism, String), Credential>,
    /// OAUTHBEARER: accepted token -> principal name.
    pub(crate) tokens: HashMap<String, String>,
    /// principal -> (operation, topic or `*`).
    pub(crate) acls: HashMap<String, BTreeSet<(AclOperation, String)>>,
    pub(crate) super_users: BTreeSet<String>,
    /// Whether ACLs are enforced (any ACL or super user given).
    pub(crate) authorize: bool,
    /// `connections.max.reauth.ms`: the lifetime of a SASL session (`None`: unlimited).
    pub(crate) max_reauth: Option<std::time::Duration>,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("users", &self.users)
            .field("tokens", &self.tokens.len())
            .field("acls", &self.acls)
            .field("super_users", &self.super_users)
            .field("authorize", &self.authorize)
            .field("max_reauth", &self.max_reauth)
            .finish()
    }
}

impl AuthSettings {
    /// Whether the listeners require SASL.
    pub(crate) fn sasl_enabled(&self) -> bool {
        !self.users.is_empty() || !self.tokens.is_empty()
    }

    /// The mechanisms with at least one user, in Kafka's order of names.
    pub(crate) fn mechanisms(&self) -> Vec<SaslMechanism> {
        let mut m: Vec<SaslMechanism> = self.users.keys().map(|(m, _)| *m).collect();
        if !self.tokens.is_empty() {
            m.push(SaslMechanism::OAuthBearer);
        }
        m.sort_by_key(|m| m.name());
        m.dedup();
        m
    }

    /// Adds a user of `mechanism`.
    pub(crate) fn add_user(&mut self, mechanism: SaslMechanism, user: &str, password: &str) {
        let cred = match mechanism {
            SaslMechanism::Plain | SaslMechanism::OAuthBearer => {
                Credential::Plain(password.to_owned())
            }
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                let hash = if mechanism == SaslMechanism::ScramSha256 {
                    ScramHash::Sha256
                } else {
                    ScramHash::Sha512
                };
                // A salt per user, derived from the name: deterministic and unique enough for
                // a test broker.
                let salt = hash.hash(format!("kafka-persistence-testserver:{user}").as_bytes());
                let salt = salt.get(..16).unwrap_or(&salt).to_vec();
                Credential::Scram(hash, ScramCredential::new(hash, password, &salt, 4096))
            }
        };
        self.users.insert((mechanism, user.to_owned()), cred);
    }

    /// Whether `principal` may do `op` on `topic`.
    pub(crate) fn allowed(&self, principal: &str, op: AclOperation, topic: &str) -> bool {
        if !self.authorize || self.super_users.contains(principal) {
            return true;
        }
        let Some(rules) = self.acls.get(principal) else {
            return false;
        };
        rules.iter().any(|(o, t)| {
            let op_ok = *o == op || *o == AclOperation::All || op == AclOperation::Describe;
            op_ok && (t == "*" || t == topic)
        })
    }
}

/// The topics a request touches and the operation it needs on them (`None`: not checked).
pub(crate) fn topic_operation(
    cluster: &Cluster,
    request: &RequestKind,
) -> Option<(AclOperation, Vec<String>)> {
    let names = |it: &mut dyn Iterator<Item = String>| it.collect::<Vec<String>>();
    Some(match request {
        RequestKind::Produce(r) => (
            AclOperation::Write,
            names(&mut r.topic_data.iter().map(|t| t.name.to_string())),
        ),
        RequestKind::Fetch(r) => (
            AclOperation::Read,
            names(&mut r.topics.iter().map(|t| {
                if t.topic.is_empty() {
                    cluster
                        .topic_by_id(t.topic_id)
                        .map(|x| x.name.clone())
                        .unwrap_or_default()
                } else {
                    t.topic.to_string()
                }
            })),
        ),
        // Only explicitly named topics; a request for all topics is not filtered.
        RequestKind::Metadata(r) => match &r.topics {
            Some(topics) if !topics.is_empty() => (
                AclOperation::Describe,
                names(
                    &mut topics
                        .iter()
                        .filter_map(|t| t.name.as_ref().map(|n| n.to_string())),
                ),
            ),
            _ => return None,
        },
        RequestKind::ListOffsets(r) => (
            AclOperation::Describe,
            names(&mut r.topics.iter().map(|t| t.name.to_string())),
        ),
        RequestKind::CreateTopics(r) => (
            AclOperation::Create,
            names(&mut r.topics.iter().map(|t| t.name.to_string())),
        ),
        RequestKind::DeleteTopics(r) => (
            AclOperation::Delete,
            names(
                &mut r.topic_names.iter().map(|t| t.to_string()).chain(
                    r.topics
                        .iter()
                        .filter_map(|t| t.name.as_ref().map(|n| n.to_string())),
                ),
            ),
        ),
        RequestKind::DeleteRecords(r) => (
            AclOperation::Delete,
            names(&mut r.topics.iter().map(|t| t.name.to_string())),
        ),
        _ => return None,
    })
}

/// Where a connection is in the SASL exchange.
#[derive(Debug)]
pub(crate) enum SaslState {
    /// SASL is off on this listener, or the exchange succeeded.
    Done,
    /// Waiting for SaslHandshake.
    Handshake,
    /// Handshake done; waiting for the first SaslAuthenticate of `mechanism`.
    Authenticate(SaslMechanism),
    /// SCRAM: server-first sent; waiting for client-final.
    ScramFinal {
        hash: ScramHash,
        user: String,
        credential: Option<ScramCredential>,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
}

/// One connection's authentication.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) principal: String,
    pub(crate) sasl: SaslState,
    /// The mechanism of the last successful SASL exchange.
    pub(crate) mechanism: Option<SaslMechanism>,
    /// When the SASL session ends (with `connections.max.reauth.ms`).
    pub(crate) expires: Option<std::time::Instant>,
    /// During a re-authentication: the principal it must confirm.
    pub(crate) reauth_of: Option<String>,
}

impl Session {
    /// A new connection; `tls_principal` from the client certificate.
    pub(crate) fn new(settings: &AuthSettings, tls_principal: Option<String>) -> Session {
        Session {
            principal: tls_principal.unwrap_or_else(|| "User:ANONYMOUS".to_owned()),
            sasl: if settings.sasl_enabled() {
                SaslState::Handshake
            } else {
                SaslState::Done
            },
            mechanism: None,
            expires: None,
            reauth_of: None,
        }
    }

    /// Whether the SASL session has expired at `now`.
    pub(crate) fn expired(&self, now: std::time::Instant) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }

    /// Whether requests other than the SASL exchange may be served.
    pub(crate) fn authenticated(&self) -> bool {
        matches!(self.sasl, SaslState::Done)
    }
}

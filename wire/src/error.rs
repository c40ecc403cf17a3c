//! Errors, and the one table that classifies every Kafka error code.
//!
//! [`lookup`] is the single source of truth for "is this code retriable", "does it mean our
//! metadata is stale" and "is the outcome of a produce ambiguous (the records may have been
//! written)". The producer, the fetcher, the admin calls and the metadata cache all ask it;
//! nobody keeps a private list of codes. The classification follows the Java client
//! (`RetriableException`, `InvalidMetadataException`) and franz-go (`kerr`), with two
//! deliberate choices: CORRUPT_MESSAGE is not retried (resending the same bytes cannot help),
//! and BROKER_NOT_AVAILABLE is retried with a metadata refresh.

use std::sync::Arc;
use std::time::Duration;

use crate::protocol::ProtocolError;
use crate::record::RecordError;

/// How the client treats one Kafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorInfo {
    /// The code on the wire.
    pub code: i16,
    /// Kafka's name for it, e.g. `NOT_LEADER_OR_FOLLOWER`.
    pub name: &'static str,
    /// Retrying the same request may succeed.
    pub retriable: bool,
    /// The error means our metadata (leaders, topics) is stale: refresh before retrying.
    pub refresh_metadata: bool,
    /// For a produce: the records may have been written although the request failed.
    pub ambiguous: bool,
}

const fn info(
    code: i16,
    name: &'static str,
    retriable: bool,
    refresh_metadata: bool,
    ambiguous: bool,
) -> ErrorInfo {
    ErrorInfo {
        code,
        name,
        retriable,
        refresh_metadata,
        ambiguous,
    }
}

/// Well-known error codes, by name: `ErrorCode::NOT_LEADER_OR_FOLLOWER` is the `i16` on the
/// wire, `ErrorCode(6).info()` its classification. The constants and the table come from one
/// list (the `table!` below), so they cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub i16);

/// Builds the table (codes -1 ..= 133, indexed by `code + 1`) and one `ErrorCode` constant
/// per row, from rows of `code NAME retriable refresh_metadata ambiguous`.
macro_rules! table {
    ($($code:literal $name:ident $retriable:literal $refresh:literal $ambiguous:literal;)*) => {
        static TABLE: [ErrorInfo; 135] = [
            $(info($code, stringify!($name), $retriable, $refresh, $ambiguous),)*
        ];

        #[allow(missing_docs)]
        impl ErrorCode {
            $(pub const $name: i16 = $code;)*
        }
    };
}

#[rustfmt::skip]
table! {
     -1 UNKNOWN_SERVER_ERROR                  false false false;
      0 NONE                                  false false false;
      1 OFFSET_OUT_OF_RANGE                   false false false;
      2 CORRUPT_MESSAGE                       false false false;
      3 UNKNOWN_TOPIC_OR_PARTITION            true  true  false;
      4 INVALID_FETCH_SIZE                    false false false;
      5 LEADER_NOT_AVAILABLE                  true  true  false;
      6 NOT_LEADER_OR_FOLLOWER                true  true  false;
      7 REQUEST_TIMED_OUT                     true  false true;
      8 BROKER_NOT_AVAILABLE                  true  true  false;
      9 REPLICA_NOT_AVAILABLE                 true  true  false;
     10 MESSAGE_TOO_LARGE                     false false false;
     11 STALE_CONTROLLER_EPOCH                false false false;
     12 OFFSET_METADATA_TOO_LARGE             false false false;
     13 NETWORK_EXCEPTION                     true  true  false;
     14 COORDINATOR_LOAD_IN_PROGRESS          true  false false;
     15 COORDINATOR_NOT_AVAILABLE             true  false false;
     16 NOT_COORDINATOR                       true  false false;
     17 INVALID_TOPIC_EXCEPTION               false false false;
     18 RECORD_LIST_TOO_LARGE                 false false false;
     19 NOT_ENOUGH_REPLICAS                   true  false false;
     20 NOT_ENOUGH_REPLICAS_AFTER_APPEND      true  false true;
     21 INVALID_REQUIRED_ACKS                 false false false;
     22 ILLEGAL_GENERATION                    false false false;
     23 INCONSISTENT_GROUP_PROTOCOL           false false false;
     24 INVALID_GROUP_ID                      false false false;
     25 UNKNOWN_MEMBER_ID                     false false false;
     26 INVALID_SESSION_TIMEOUT               false false false;
     27 REBALANCE_IN_PROGRESS                 false false false;
     28 INVALID_COMMIT_OFFSET_SIZE            false false false;
     29 TOPIC_AUTHORIZATION_FAILED            false false false;
     30 GROUP_AUTHORIZATION_FAILED            false false false;
     31 CLUSTER_AUTHORIZATION_FAILED          false false false;
     32 INVALID_TIMESTAMP                     false false false;
     33 UNSUPPORTED_SASL_MECHANISM            false false false;
     34 ILLEGAL_SASL_STATE                    false false false;
     35 UNSUPPORTED_VERSION                   false false false;
     36 TOPIC_ALREADY_EXISTS                  false false false;
     37 INVALID_PARTITIONS                    false false false;
     38 INVALID_REPLICATION_FACTOR            false false false;
     39 INVALID_REPLICA_ASSIGNMENT            false false false;
     40 INVALID_CONFIG                        false false false;
     41 NOT_CONTROLLER                        true  true  false;
     42 INVALID_REQUEST                       false false false;
     43 UNSUPPORTED_FOR_MESSAGE_FORMAT        false false false;
     44 POLICY_VIOLATION                      false false false;
     45 OUT_OF_ORDER_SEQUENCE_NUMBER          false false false;
     46 DUPLICATE_SEQUENCE_NUMBER             false false false;
     47 INVALID_PRODUCER_EPOCH                false false false;
     48 INVALID_TXN_STATE                     false false false;
     49 INVALID_PRODUCER_ID_MAPPING           false false false;
     50 INVALID_TRANSACTION_TIMEOUT           false false false;
     51 CONCURRENT_TRANSACTIONS               false false false;
     52 TRANSACTION_COORDINATOR_FENCED        false false false;
     53 TRANSACTIONAL_ID_AUTHORIZATION_FAILED false false false;
     54 SECURITY_DISABLED                     false false false;
     55 OPERATION_NOT_ATTEMPTED               false false false;
     56 KAFKA_STORAGE_ERROR                   true  false false;
     57 LOG_DIR_NOT_FOUND                     false false false;
     58 SASL_AUTHENTICATION_FAILED            false false false;
     59 UNKNOWN_PRODUCER_ID                   false false false;
     60 REASSIGNMENT_IN_PROGRESS              false false false;
     61 DELEGATION_TOKEN_AUTH_DISABLED        false false false;
     62 DELEGATION_TOKEN_NOT_FOUND            false false false;
     63 DELEGATION_TOKEN_OWNER_MISMATCH       false false false;
     64 DELEGATION_TOKEN_REQUEST_NOT_ALLOWED  false false false;
     65 DELEGATION_TOKEN_AUTHORIZATION_FAILED false false false;
     66 DELEGATION_TOKEN_EXPIRED              false false false;
     67 INVALID_PRINCIPAL_TYPE                false false false;
     68 NON_EMPTY_GROUP                       false false false;
     69 GROUP_ID_NOT_FOUND                    false false false;
     70 FETCH_SESSION_ID_NOT_FOUND            true  false false;
     71 INVALID_FETCH_SESSION_EPOCH           true  false false;
     72 LISTENER_NOT_FOUND                    true  true  false;
     73 TOPIC_DELETION_DISABLED               false false false;
     74 FENCED_LEADER_EPOCH                   true  true  false;
     75 UNKNOWN_LEADER_EPOCH                  true  true  false;
     76 UNSUPPORTED_COMPRESSION_TYPE          false false false;
     77 STALE_BROKER_EPOCH                    false false false;
     78 OFFSET_NOT_AVAILABLE                  true  false false;
     79 MEMBER_ID_REQUIRED                    false false false;
     80 PREFERRED_LEADER_NOT_AVAILABLE        true  false false;
     81 GROUP_MAX_SIZE_REACHED                false false false;
     82 FENCED_INSTANCE_ID                    false false false;
     83 ELIGIBLE_LEADERS_NOT_AVAILABLE        true  false false;
     84 ELECTION_NOT_NEEDED                   true  false false;
     85 NO_REASSIGNMENT_IN_PROGRESS           false false false;
     86 GROUP_SUBSCRIBED_TO_TOPIC             false false false;
     87 INVALID_RECORD                        false false false;
     88 UNSTABLE_OFFSET_COMMIT                true  false false;
     89 THROTTLING_QUOTA_EXCEEDED             true  false false;
     90 PRODUCER_FENCED                       false false false;
     91 RESOURCE_NOT_FOUND                    false false false;
     92 DUPLICATE_RESOURCE                    false false false;
     93 UNACCEPTABLE_CREDENTIAL               false false false;
     94 INCONSISTENT_VOTER_SET                false false false;
     95 INVALID_UPDATE_VERSION                false false false;
     96 FEATURE_UPDATE_FAILED                 false false false;
     97 PRINCIPAL_DESERIALIZATION_FAILURE     false false false;
     98 SNAPSHOT_NOT_FOUND                    false false false;
     99 POSITION_OUT_OF_RANGE                 false false false;
    100 UNKNOWN_TOPIC_ID                      true  true  false;
    101 DUPLICATE_BROKER_REGISTRATION         false false false;
    102 BROKER_ID_NOT_REGISTERED              false false false;
    103 INCONSISTENT_TOPIC_ID                 true  true  false;
    104 INCONSISTENT_CLUSTER_ID               false false false;
    105 TRANSACTIONAL_ID_NOT_FOUND            false false false;
    106 FETCH_SESSION_TOPIC_ID_ERROR          true  false false;
    107 INELIGIBLE_REPLICA                    false false false;
    108 NEW_LEADER_ELECTED                    false false false;
    109 OFFSET_MOVED_TO_TIERED_STORAGE        false false false;
    110 FENCED_MEMBER_EPOCH                   false false false;
    111 UNRELEASED_INSTANCE_ID                false false false;
    112 UNSUPPORTED_ASSIGNOR                  false false false;
    113 STALE_MEMBER_EPOCH                    false false false;
    114 MISMATCHED_ENDPOINT_TYPE              false false false;
    115 UNSUPPORTED_ENDPOINT_TYPE             false false false;
    116 UNKNOWN_CONTROLLER_ID                 false false false;
    117 UNKNOWN_SUBSCRIPTION_ID               false false false;
    118 TELEMETRY_TOO_LARGE                   false false false;
    119 INVALID_REGISTRATION                  false false false;
    120 TRANSACTION_ABORTABLE                 false false false;
    121 INVALID_RECORD_STATE                  false false false;
    122 SHARE_SESSION_NOT_FOUND               true  false false;
    123 INVALID_SHARE_SESSION_EPOCH           true  false false;
    124 FENCED_STATE_EPOCH                    false false false;
    125 INVALID_VOTER_KEY                     false false false;
    126 DUPLICATE_VOTER                       false false false;
    127 VOTER_NOT_FOUND                       false false false;
    128 INVALID_REGULAR_EXPRESSION            false false false;
    129 REBOOTSTRAP_REQUIRED                  false false false;
    130 STREAMS_INVALID_TOPOLOGY              false false false;
    131 STREAMS_INVALID_TOPOLOGY_EPOCH        false false false;
    132 STREAMS_TOPOLOGY_FENCED               false false false;
    133 SHARE_SESSION_LIMIT_REACHED           true  false false;
}

static UNKNOWN: ErrorInfo = info(i16::MIN, "UNKNOWN_ERROR_CODE", false, false, false);

/// The classification of `code`. Unknown codes are neither retriable nor ambiguous, and
/// carry the name `UNKNOWN_ERROR_CODE`.
pub fn lookup(code: i16) -> &'static ErrorInfo {
    usize::try_from(i32::from(code) + 1)
        .ok()
        .and_then(|i| TABLE.get(i))
        .unwrap_or(&UNKNOWN)
}

impl ErrorCode {
    /// This code's classification.
    pub fn info(self) -> &'static ErrorInfo {
        lookup(self.0)
    }
}

impl ErrorInfo {
    /// The principal lacks an ACL for the operation (topic, group, cluster, transactional id,
    /// delegation token): [`Error::Authorization`], never retried (the table marks them all
    /// non-retriable).
    pub fn is_authorization(&self) -> bool {
        matches!(
            self.code,
            ErrorCode::TOPIC_AUTHORIZATION_FAILED
                | ErrorCode::GROUP_AUTHORIZATION_FAILED
                | ErrorCode::CLUSTER_AUTHORIZATION_FAILED
                | ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
                | ErrorCode::DELEGATION_TOKEN_AUTHORIZATION_FAILED
        )
    }
}

/// Everything that can go wrong in the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket error talking to `broker` (connect, read or write).
    #[error("i/o error with broker {broker}: {source}")]
    Io {
        /// `host:port` of the broker.
        broker: String,
        /// The underlying error (shared: one socket error fails every request in flight).
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A request, or a whole call with its retries, ran out of time.
    #[error("timed out after {after:?}: {what}")]
    Timeout {
        /// What timed out ("Produce request to 127.0.0.1:9092", "delivery", ...).
        what: String,
        /// The time limit that was exceeded.
        after: Duration,
    },
    /// The broker answered with an error code.
    #[error("broker error {name} ({code}){}{}{}", topic.as_ref().map(|t| format!(" topic {t}")).unwrap_or_default(), partition.map(|p| format!(" partition {p}")).unwrap_or_default(), message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Broker {
        /// The Kafka error code.
        code: i16,
        /// Kafka's name for it.
        name: &'static str,
        /// The topic the error is about, if any.
        topic: Option<String>,
        /// The partition the error is about, if any.
        partition: Option<i32>,
        /// The broker's error message, if it sent one.
        message: Option<String>,
    },
    /// A fetch asked for an offset outside `log_start_offset..=high_watermark`.
    #[error("offset {offset} out of range for {topic}/{partition} (log start {log_start_offset}, high watermark {high_watermark})")]
    OffsetOutOfRange {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The offset asked for.
        offset: i64,
        /// The first offset the partition still has (-1 if unknown).
        log_start_offset: i64,
        /// The partition's high watermark (-1 if unknown).
        high_watermark: i64,
    },
    /// A record batch is larger than the broker or topic accepts (`max.message.bytes`).
    #[error("record batch of {size} bytes too large for {topic}/{partition}")]
    MessageTooLarge {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Encoded size of the batch in bytes.
        size: usize,
    },
    /// The topic does not exist (or the partition is outside it).
    #[error("unknown topic or partition: {topic}")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// A broker does not support a version of an api we need.
    #[error("broker {broker} does not support {api} at version >= {min_version}")]
    UnsupportedApi {
        /// `host:port` of the broker.
        broker: String,
        /// Name of the api.
        api: &'static str,
        /// Lowest version this client can use.
        min_version: i16,
    },
    /// The broker sent something that does not parse or does not make sense.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// Invalid configuration or argument.
    #[error("configuration error: {0}")]
    Config(String),
    /// Encoding or decoding a record batch failed.
    #[error("record batch error: {0}")]
    Record(#[from] RecordError),
    /// The idempotent producer lost its sequence state for a partition (KIP-360 case where
    /// the broker may have lost data); the affected sends fail.
    #[error("producer state lost for {topic}/{partition}: {reason}")]
    ProducerState {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Which error led here.
        reason: String,
    },
    /// A consumer has no position for a partition: nothing committed, and
    /// `auto.offset.reset` is `none`.
    #[error("no committed offset for {topic}/{partition} and auto.offset.reset is none")]
    NoOffset {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// The client or producer has been shut down.
    #[error("client closed")]
    Closed,
    /// TLS could not be set up with `broker`: its certificate is not signed by a trusted CA,
    /// does not name the host, has expired, or the broker refused our certificate. Not
    /// retried: this does not heal by itself.
    #[error("TLS with broker {broker} failed: {reason}")]
    Tls {
        /// `host:port` of the broker.
        broker: String,
        /// What was wrong.
        reason: String,
    },
    /// SASL authentication with `broker` failed: wrong credentials (SASL_AUTHENTICATION_FAILED),
    /// a SCRAM server that could not prove it knows the credential, a failed token callback.
    /// Not retried. Never contains a password or token.
    #[error("SASL {mechanism} authentication with broker {broker} failed: {reason}")]
    Authentication {
        /// `host:port` of the broker.
        broker: String,
        /// The mechanism (`SCRAM-SHA-512`, ...).
        mechanism: &'static str,
        /// What the broker said, or what the client found wrong.
        reason: String,
    },
    /// The broker does not enable the configured SASL mechanism (UNSUPPORTED_SASL_MECHANISM).
    #[error("broker {broker} does not enable SASL mechanism {mechanism}; it offers {}", if offered.is_empty() { "none".to_owned() } else { offered.join(", ") })]
    UnsupportedSaslMechanism {
        /// `host:port` of the broker.
        broker: String,
        /// The mechanism asked for.
        mechanism: &'static str,
        /// The mechanisms the broker enables.
        offered: Vec<String>,
    },
    /// A newer producer with the same `transactional.id` took over (PRODUCER_FENCED, or
    /// INVALID_PRODUCER_EPOCH from a partition or an older broker), or the coordinator
    /// aborted our transaction on its timeout and bumped the epoch. Final: this producer can
    /// do nothing more; the instance that fenced it carries on.
    #[error(
        "producer with transactional id {transactional_id} fenced by a newer instance ({name})"
    )]
    ProducerFenced {
        /// The transactional id.
        transactional_id: String,
        /// The code that said so.
        name: &'static str,
    },
    /// The transaction cannot go on: a send in it failed (it must be aborted), or the call
    /// does not fit the transaction's state (commit without begin, begin twice, ...).
    #[error("transaction error: {0}")]
    Transaction(String),
    /// The authenticated principal may not do this (TOPIC_, GROUP_, CLUSTER_,
    /// TRANSACTIONAL_ID_ or DELEGATION_TOKEN_AUTHORIZATION_FAILED). Not retried.
    #[error("not authorized: {name} ({code}){}{}", topic.as_ref().map(|t| format!(" topic {t}")).unwrap_or_default(), message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Authorization {
        /// The Kafka error code.
        code: i16,
        /// Kafka's name for it.
        name: &'static str,
        /// The topic the error is about, if any.
        topic: Option<String>,
        /// The broker's error message, if it sent one.
        message: Option<String>,
    },
}

impl Error {
    /// The Kafka error code this error corresponds to, if any.
    pub fn code(&self) -> Option<i16> {
        match self {
            Error::Broker { code, .. } => Some(*code),
            Error::OffsetOutOfRange { .. } => Some(ErrorCode::OFFSET_OUT_OF_RANGE),
            Error::MessageTooLarge { .. } => Some(ErrorCode::MESSAGE_TOO_LARGE),
            Error::UnknownTopic { .. } => Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
            Error::UnsupportedApi { .. } => Some(ErrorCode::UNSUPPORTED_VERSION),
            Error::Authorization { code, .. } => Some(*code),
            Error::Authentication { .. } => Some(ErrorCode::SASL_AUTHENTICATION_FAILED),
            Error::UnsupportedSaslMechanism { .. } => Some(ErrorCode::UNSUPPORTED_SASL_MECHANISM),
            _ => None,
        }
    }

    /// Whether trying again may succeed (network errors, timeouts, retriable broker codes).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Io { .. } | Error::Timeout { .. } => true,
            Error::Broker { code, .. } => lookup(*code).retriable,
            _ => false,
        }
    }

    /// Whether the error means the metadata (leaders, topics) is stale.
    pub fn needs_metadata_refresh(&self) -> bool {
        match self {
            Error::Io { .. } => true,
            Error::Broker { code, .. } => lookup(*code).refresh_metadata,
            _ => false,
        }
    }

    /// A broker error for `code` with context ([`Error::Authorization`] for the
    /// authorization codes).
    pub fn broker(
        code: i16,
        topic: Option<&str>,
        partition: Option<i32>,
        message: Option<String>,
    ) -> Error {
        if lookup(code).is_authorization() {
            return Error::Authorization {
                code,
                name: lookup(code).name,
                topic: topic.map(str::to_owned),
                message,
            };
        }
        Error::Broker {
            code,
            name: lookup(code).name,
            topic: topic.map(str::to_owned),
            partition,
            message,
        }
    }

    /// A socket error while a connection is being set up (TLS, SASL, ApiVersions): one that
    /// carries a TLS failure, such as the broker's alert refusing our certificate (TLS 1.3
    /// delivers it after the handshake, on the first read), is [`Error::Tls`]. Later, on an
    /// established connection, a TLS failure is an ordinary (retriable) [`Error::Io`].
    pub(crate) fn setup_io(broker: &str, e: std::io::Error) -> Error {
        if let Some(tls) = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Error::Tls {
                broker: broker.to_owned(),
                reason: crate::tls::describe(tls),
            };
        }
        Error::io(broker, e)
    }

    pub(crate) fn io(broker: &str, e: std::io::Error) -> Error {
        Error::Io {
            broker: broker.to_owned(),
            source: Arc::new(e),
        }
    }

    /// A copy for fanning one failure out to several waiters. Record errors (which only
    /// arise before sending, per caller) are rendered as text.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Io { broker, source } => Error::Io {
                broker: broker.clone(),
                source: Arc::clone(source),
            },
            Error::Timeout { what, after } => Error::Timeout {
                what: what.clone(),
                after: *after,
            },
            Error::Broker {
                code,
                name,
                topic,
                partition,
                message,
            } => Error::Broker {
                code: *code,
                name,
                topic: topic.clone(),
                partition: *partition,
                message: message.clone(),
            },
            Error::OffsetOutOfRange {
                topic,
                partition,
                offset,
                log_start_offset,
                high_watermark,
            } => Error::OffsetOutOfRange {
                topic: topic.clone(),
                partition: *partition,
                offset: *offset,
                log_start_offset: *log_start_offset,
                high_watermark: *high_watermark,
            },
            Error::MessageTooLarge {
                topic,
                partition,
                size,
            } => Error::MessageTooLarge {
                topic: topic.clone(),
                partition: *partition,
                size: *size,
            },
            Error::UnknownTopic { topic } => Error::UnknownTopic {
                topic: topic.clone(),
            },
            Error::UnsupportedApi {
                broker,
                api,
                min_version,
            } => Error::UnsupportedApi {
                broker: broker.clone(),
                api,
                min_version: *min_version,
            },
            Error::Protocol(p) => Error::Protocol(p.clone()),
            Error::Config(s) => Error::Config(s.clone()),
            Error::Record(r) => Error::Config(format!("record batch error: {r}")),
            Error::ProducerState {
                topic,
                partition,
                reason,
            } => Error::ProducerState {
                topic: topic.clone(),
                partition: *partition,
                reason: reason.clone(),
            },
            Error::NoOffset { topic, partition } => Error::NoOffset {
                topic: topic.clone(),
                partition: *partition,
            },
            Error::Closed => Error::Closed,
            Error::Tls { broker, reason } => Error::Tls {
                broker: broker.clone(),
                reason: reason.clone(),
            },
            Error::Authentication {
                broker,
                mechanism,
                reason,
            } => Error::Authentication {
                broker: broker.clone(),
                mechanism,
                reason: reason.clone(),
            },
            Error::UnsupportedSaslMechanism {
                broker,
                mechanism,
                offered,
            } => Error::UnsupportedSaslMechanism {
                broker: broker.clone(),
                mechanism,
                offered: offered.clone(),
            },
            Error::ProducerFenced {
                transactional_id,
                name,
            } => Error::ProducerFenced {
                transactional_id: transactional_id.clone(),
                name,
            },
            Error::Transaction(s) => Error::Transaction(s.clone()),
            Error::Authorization {
                code,
                name,
                topic,
                message,
            } => Error::Authorization {
                code: *code,
                name,
                topic: topic.clone(),
                message: message.clone(),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_code() {
        for code in -1..=133i16 {
            assert_eq!(lookup(code).code, code);
        }
        assert_eq!(lookup(134).name, "UNKNOWN_ERROR_CODE");
        assert_eq!(lookup(i16::MIN).name, "UNKNOWN_ERROR_CODE");
        assert_eq!(lookup(i16::MAX).name, "UNKNOWN_ERROR_CODE");
    }

    #[test]
    fn classification_matches_reference() {
        let stale = [3, 5, 6, 13, 74, 75, 100];
        for c in stale {
            let i = lookup(c);
            assert!(i.retriable && i.refresh_metadata, "{}", i.name);
        }
        assert_eq!(lookup(6).name, "NOT_LEADER_OR_FOLLOWER");
        assert!(lookup(7).ambiguous && lookup(7).retriable && !lookup(7).refresh_metadata);
        assert!(lookup(20).ambiguous && lookup(20).retriable);
        assert!(!lookup(19).ambiguous && lookup(19).retriable);
        assert!(!lookup(2).retriable, "CORRUPT_MESSAGE is not retried");
        assert!(!lookup(10).retriable);
        assert!(!lookup(46).retriable);
        assert!(lookup(56).retriable && !lookup(56).refresh_metadata);
        assert!(lookup(89).retriable);
        assert!(lookup(41).refresh_metadata);
        assert_eq!(lookup(36).name, "TOPIC_ALREADY_EXISTS");
        assert_eq!(lookup(35).name, "UNSUPPORTED_VERSION");
        assert_eq!(lookup(45).name, "OUT_OF_ORDER_SEQUENCE_NUMBER");
        assert_eq!(lookup(59).name, "UNKNOWN_PRODUCER_ID");
        let ambiguous: Vec<i16> = (-1..=133).filter(|c| lookup(*c).ambiguous).collect();
        assert_eq!(ambiguous, vec![7, 20]);
    }

    #[test]
    fn error_helpers() {
        let e = Error::broker(6, Some("t"), Some(0), None);
        assert_eq!(e.code(), Some(6));
        assert!(e.is_retriable() && e.needs_metadata_refresh());
        assert!(e.to_string().contains("NOT_LEADER_OR_FOLLOWER"));
        let e = Error::broker(10, Some("t"), Some(0), None);
        assert!(!e.is_retriable());
        let io = Error::io("b:1", std::io::Error::other("x"));
        assert!(io.is_retriable());
        assert!(io.duplicate().needs_metadata_refresh());
        assert_eq!(Error::Closed.code(), None);
    }

    #[test]
    fn authorization_codes_are_their_own_kind_and_final() {
        for code in [29, 30, 31, 53, 65] {
            assert!(lookup(code).is_authorization(), "{code}");
            assert!(!lookup(code).retriable, "{code}");
            let e = Error::broker(code, Some("t"), Some(0), None);
            assert!(matches!(e, Error::Authorization { .. }), "{e:?}");
            assert_eq!(e.code(), Some(code));
            assert!(!e.is_retriable() && !e.needs_metadata_refresh());
            assert!(matches!(e.duplicate(), Error::Authorization { .. }));
        }
        let auth: Vec<i16> = (-1..=133)
            .filter(|c| lookup(*c).is_authorization())
            .collect();
        assert_eq!(auth, vec![29, 30, 31, 53, 65]);
        let sasl = Error::Authentication {
            broker: "b:1".into(),
            mechanism: "PLAIN",
            reason: "x".into(),
        };
        assert!(!sasl.is_retriable() && !sasl.duplicate().is_retriable());
        let tls = Error::Tls {
            broker: "b:1".into(),
            reason: "x".into(),
        };
        assert!(!tls.is_retriable());
    }
}

//! The outcome policy: what to do with a batch the broker (or the connection) failed. A pure
//! function of the error and the batch's state, so every case is one row of a table test.
//!
//! The rules (see the invariants in `producer/mod.rs`):
//! - Retriable errors, and the transport failing (protocol error, connection closed), resend
//!   the identical batch: an ambiguous outcome is never re-sequenced.
//! - OUT_OF_ORDER_SEQUENCE_NUMBER / UNKNOWN_PRODUCER_ID behind an earlier pending batch (or
//!   with a producer reset already due) is the echo of that earlier failure: resend.
//! - The same at the head of the queue means the broker lost our producer state: if it said
//!   UNKNOWN_PRODUCER_ID, or its log start offset moved past our last acknowledged offset
//!   (retention removed our batches, KIP-360), nothing was lost and the partition takes a
//!   fresh producer id; otherwise records may have been lost and the batch fails.
//! - MESSAGE_TOO_LARGE for a batch holding several sends splits it (Java's
//!   `splitAndReenqueue`); a single send is never split (it is stored whole or not at all).
//! - Anything else fails the batch; an idempotent partition then restamps the rest of its
//!   queue under a fresh producer id, as the sequence numbers no longer line up.

use crate::error::ErrorCode;

/// What the policy needs to know about the error and the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Facts {
    /// The Kafka error code, if the error has one.
    pub(super) code: Option<i16>,
    /// Retrying may help (the error table, or a transport failure).
    pub(super) retriable: bool,
    /// The broker refused the batch as too large.
    pub(super) too_large: bool,
    /// The producer is idempotent.
    pub(super) idempotent: bool,
    /// An earlier batch of the partition is still pending (this one is not the queue head).
    pub(super) behind_pending: bool,
    /// A fresh producer id is already due for the partition.
    pub(super) reset_due: bool,
    /// Number of sends in the batch.
    pub(super) sends: usize,
    /// The partition's log start offset from the error response (-1 if unknown).
    pub(super) log_start_offset: i64,
    /// The last offset of ours the broker acknowledged on the partition (-1 if none).
    pub(super) last_acked_offset: i64,
}

/// What to do with the failed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Keep it and resend the identical bytes after recovery.
    Retry,
    /// Keep it; the broker forgot our producer: take a fresh producer id, restamp, resend.
    ResetProducer,
    /// Fail it (possible data loss on the broker), then take a fresh producer id.
    FailDataLoss,
    /// Split it into two batches of its sends and send both.
    Split,
    /// Fail it; `reset`: the partition needs a fresh producer id afterwards.
    Fail {
        /// The sequence numbers after this batch no longer line up.
        reset: bool,
    },
}

/// The decision for one failed batch.
pub(super) fn decide(f: &Facts) -> Action {
    let sequence_error = matches!(
        f.code,
        Some(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER) | Some(ErrorCode::UNKNOWN_PRODUCER_ID)
    );
    if f.retriable || (sequence_error && (f.behind_pending || f.reset_due)) {
        Action::Retry
    } else if sequence_error && f.idempotent {
        if f.code == Some(ErrorCode::UNKNOWN_PRODUCER_ID)
            || (f.log_start_offset >= 0 && f.log_start_offset > f.last_acked_offset)
        {
            Action::ResetProducer
        } else {
            Action::FailDataLoss
        }
    } else if f.too_large && f.sends > 1 {
        Action::Split
    } else {
        Action::Fail {
            reset: f.idempotent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OOOSN: Option<i16> = Some(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
    const UPID: Option<i16> = Some(ErrorCode::UNKNOWN_PRODUCER_ID);
    const TOO_LARGE: Option<i16> = Some(ErrorCode::MESSAGE_TOO_LARGE);
    const TIMED_OUT: Option<i16> = Some(ErrorCode::REQUEST_TIMED_OUT);
    const CORRUPT: Option<i16> = Some(ErrorCode::CORRUPT_MESSAGE);

    fn facts(code: Option<i16>, retriable: bool) -> Facts {
        Facts {
            code,
            retriable,
            too_large: code == TOO_LARGE,
            idempotent: true,
            behind_pending: false,
            reset_due: false,
            sends: 1,
            log_start_offset: -1,
            last_acked_offset: -1,
        }
    }

    #[test]
    fn decision_table() {
        let base = facts(None, false);
        #[rustfmt::skip]
        let rows: Vec<(&str, Facts, Action)> = vec![
            ("timeout is resent as is", facts(TIMED_OUT, true), Action::Retry),
            ("connection lost is resent", facts(None, true), Action::Retry),
            ("corrupt message fails, reset", facts(CORRUPT, false), Action::Fail { reset: true }),
            ("non-idempotent failure needs no reset",
                Facts { idempotent: false, ..facts(CORRUPT, false) }, Action::Fail { reset: false }),
            ("OOOSN behind a pending batch is an echo",
                Facts { behind_pending: true, ..facts(OOOSN, false) }, Action::Retry),
            ("OOOSN with a reset due is resent after it",
                Facts { reset_due: true, ..facts(OOOSN, false) }, Action::Retry),
            ("UNKNOWN_PRODUCER_ID at the head resets",
                facts(UPID, false), Action::ResetProducer),
            ("OOOSN at the head after retention resets",
                Facts { log_start_offset: 10, last_acked_offset: 9, ..facts(OOOSN, false) },
                Action::ResetProducer),
            ("OOOSN at the head without retention is data loss",
                Facts { log_start_offset: 5, last_acked_offset: 9, ..facts(OOOSN, false) },
                Action::FailDataLoss),
            ("OOOSN at the head, log start unknown: data loss",
                facts(OOOSN, false), Action::FailDataLoss),
            ("OOOSN without idempotence just fails",
                Facts { idempotent: false, ..facts(OOOSN, false) }, Action::Fail { reset: false }),
            ("too large with several sends splits",
                Facts { sends: 3, ..facts(TOO_LARGE, false) }, Action::Split),
            ("too large single send fails",
                facts(TOO_LARGE, false), Action::Fail { reset: true }),
            ("no code, not retriable fails", base, Action::Fail { reset: true }),
        ];
        for (name, f, want) in rows {
            assert_eq!(decide(&f), want, "{name}: {f:?}");
        }
    }
}

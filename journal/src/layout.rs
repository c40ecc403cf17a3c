//! The boundary between the [`crate::Journal`] facade and the two topic layouts.
//!
//! [`JournalLayout`] is everything a layout does; the facade bounds each call by the
//! configured timeout and publishes accepted events to the event topics, and never knows
//! which layout runs. Layout v1 ("per-id") is [`crate::per_id`], layout v2 ("shared") is
//! [`crate::shared`].
//!
//! Ordering contract, for both: a call takes its place in line for each persistence id it
//! touches synchronously, when the method is called (before the returned future is first
//! polled), so calls of one id apply in call order whatever happens afterwards.

use futures::future::{BoxFuture, FutureExt};
use futures::stream::BoxStream;

use crate::error::{JournalError, WriteError};
use crate::migrate::{IdExport, ImportOutcome};
use crate::repr::{AtomicWrite, PersistentRepr};

/// A write's outcome: one result per atomic write, and the events stored (to publish).
pub(crate) type Written = (Vec<Result<(), WriteError>>, Vec<PersistentRepr>);

/// What a journal layout does (see the module documentation).
pub(crate) trait JournalLayout: Send + Sync + std::fmt::Debug {
    /// Writes `writes` (see [`crate::Journal::write`]).
    fn write(&self, writes: Vec<AtomicWrite>) -> BoxFuture<'static, Result<Written, JournalError>>;

    /// The highest sequence number of `persistence_id`, after this journal's earlier calls.
    fn highest_sequence_nr(
        &self,
        persistence_id: &str,
    ) -> BoxFuture<'static, Result<u64, JournalError>>;

    /// The deletion mark of `persistence_id`.
    fn deleted_to(&self, persistence_id: &str) -> BoxFuture<'static, Result<u64, JournalError>>;

    /// Deletes up to `to` persistently.
    fn delete_messages_to(
        &self,
        persistence_id: &str,
        to: u64,
    ) -> BoxFuture<'static, Result<(), JournalError>>;

    /// The events `from..=to`, at most `max`; `live` keeps waiting for new ones.
    fn events(
        &self,
        persistence_id: &str,
        from: u64,
        to: u64,
        max: u64,
        live: bool,
    ) -> BoxStream<'static, Result<PersistentRepr, JournalError>>;

    /// Every persistence id that wrote.
    fn persistence_ids(&self) -> BoxFuture<'static, Result<Vec<String>, JournalError>>;

    /// Writes whatever the layout keeps in memory that is due to be stored (layout v2's index).
    fn flush(&self) -> BoxFuture<'static, Result<(), JournalError>>;

    /// The id's accepted history (migration source: layout v1).
    fn export_id(
        &self,
        persistence_id: &str,
    ) -> BoxFuture<'static, Result<IdExport, JournalError>> {
        let _ = persistence_id;
        futures::future::ready(Err(JournalError::Config(
            "exporting ids is supported from layout v1 (\"per-id\"), the migration source".into(),
        )))
        .boxed()
    }

    /// Writes an exported history (migration target: layout v2).
    fn import_id(
        &self,
        export: IdExport,
    ) -> BoxFuture<'static, Result<ImportOutcome, JournalError>> {
        let _ = export;
        futures::future::ready(Err(JournalError::Config(
            "importing ids is supported into layout v2 (\"shared\"), the migration target".into(),
        )))
        .boxed()
    }
}

//! Layout v1 deletion: a deletion marker in the id's topic, then DeleteRecords below the
//! first record that is not fully deleted.

use std::ops::ControlFlow;
use std::sync::Arc;

use super::log::{scan, ScanOptions, Until, Verified};
use super::naming::PARTITION;
use super::pid::PidEntry;
use super::PerId;
use crate::error::JournalError;
use crate::format::JournalRecord;
use crate::gate::Ticket;
use crate::scan::Applied;

impl PerId {
    pub(crate) async fn delete_to(
        &self,
        entry: Arc<PidEntry>,
        ticket: Ticket,
        to: u64,
    ) -> Result<(), JournalError> {
        let persistence_id = entry.persistence_id.as_str();
        let _gate = ticket.enter().await;
        if !entry.topic_exists(&self.client).await? {
            return Ok(());
        }
        let v = entry.sync(&self.client).await?;
        let target = to.min(v.state().highest).max(v.state().deleted_to);
        if target <= v.state().deleted_to {
            return Ok(());
        }
        let marker = JournalRecord::deletion(target, v.state().highest);
        let sent = self
            .producer
            .send(
                &entry.topic,
                PARTITION,
                vec![marker.to_record(persistence_id, crate::now_ms())],
            )
            .await;
        let meta = match sent {
            Ok(m) => m,
            Err(e) => {
                entry.poison();
                return Err(e.into());
            }
        };
        let v = entry.sync(&self.client).await?;
        // Free the space below the first record that is not fully deleted (at most up to the
        // marker, so a truncated log still starts with the deletion state).
        let mut probe = Verified::from_state(v.start_for(target.saturating_add(1)), v.log_start());
        let mut truncate_to = meta.base_offset;
        scan(
            &self.client,
            &entry.topic,
            &mut probe,
            Until::Offset(meta.base_offset),
            ScanOptions::FULL,
            |m| {
                if matches!(m.applied, Applied::Event | Applied::Gap) && m.record.last() > target {
                    truncate_to = m.offset;
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .await?;
        if truncate_to > v.log_start() {
            match self
                .client
                .delete_records(&entry.topic, PARTITION, truncate_to)
                .await
            {
                Ok(low) => {
                    entry.log_start_moved(low.max(truncate_to));
                }
                Err(e) => {
                    tracing::warn!(topic = %entry.topic, error = %e, reason = "DeleteRecords failed; the deletion marker still hides the events", "space not freed");
                }
            }
        }
        Ok(())
    }
}

//! Layout v2 deletion: a deletion marker in the id's shared partition, honoured by every later
//! replay. Nothing is truncated (the partition is shared); the journal topic's retention
//! frees the space, and the index forgets the ranges the marker covers.

use super::{tail, write, ActiveId, Shared};
use crate::error::JournalError;
use crate::format::JournalRecord;
use crate::gate::Ticket;

pub(crate) async fn delete_to(
    shared: &Shared,
    active: &ActiveId,
    ticket: Ticket,
    to: u64,
) -> Result<(), JournalError> {
    let _gate = ticket.enter().await;
    active.inflight.drain().await;
    let p = &shared.partitions[active.partition];
    tail::catch_up(shared, p).await?;
    let pid = active.persistence_id.as_ref();
    let Some((highest, deleted_to)) = p.state().heads.get(pid).map(|h| (h.highest, h.deleted_to))
    else {
        return Ok(());
    };
    let target = to.min(highest).max(deleted_to);
    if target <= deleted_to {
        return Ok(());
    }
    let marker = JournalRecord::deletion(target, highest);
    let record = marker.to_record(pid, crate::now_ms());
    write::send_and_decide(shared, p, pid, vec![record], vec![marker]).await?;
    Ok(())
}

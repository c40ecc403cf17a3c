//! The consumer's side of the consumer group protocol (KIP-848): between two polls, bring
//! the assignment to what the broker gave (see `group848` for the member and its heartbeats).
//! Order per change: revoked partitions first (the listener may commit them, with the member
//! epoch they were owned in), then the added ones (assigned callback), then the owned set goes
//! to the heartbeat task, whose next heartbeat acknowledges the revocation. A lost membership
//! calls the lost callback, drops everything and rejoins with epoch 0.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tracing::debug;

use super::group848::{Member848, Subscription};
use super::{Callback, Consumer, TopicPartition};
use crate::error::Error;

impl Consumer {
    /// Starts the member if needed and applies what its heartbeats brought.
    pub(super) async fn ensure_group_848(&mut self) -> Result<(), Error> {
        let Some(topics) = self.subscription.clone() else {
            return Ok(());
        };
        let subscription = match &self.pattern {
            Some(p) => Subscription::Pattern(p.clone()),
            None => Subscription::Topics(topics),
        };
        let Some(g) = self.group.as_mut() else {
            return Ok(());
        };
        let member = match &mut self.kip848 {
            Some(m) => m,
            None => {
                let m = Member848::start(
                    self.client.clone(),
                    Arc::clone(&self.config),
                    g.group_id.clone(),
                    subscription,
                    Arc::clone(&g.flags),
                )
                .await?;
                g.member_id = m.member_id();
                g.generation = -1;
                g.live_epoch = Some(m.epoch_cell());
                self.kip848.insert(m)
            }
        };
        g.flags.rejoin.store(false, Ordering::Release);
        let changes = member.take_changes().await?;
        if g.member_id.is_empty() {
            // v0: the broker chose it.
            g.member_id = member.member_id();
        }
        if changes.lost {
            let owned = self.assignment();
            debug!(
                partitions = owned.len(),
                reason = "membership lost",
                "dropping assignment"
            );
            self.call_listener(Callback::Lost, &owned).await;
            self.positions.clear();
            self.buffer.clear();
            if let (Some(g), Some(m)) = (self.group.as_mut(), self.kip848.as_ref()) {
                g.generation = -1;
                g.flags.lost.store(false, Ordering::Release);
                m.rejoin();
            }
            return Ok(());
        }
        let Some(new) = changes.assignment else {
            if let (Some(g), Some(m)) = (self.group.as_mut(), self.kip848.as_ref()) {
                g.generation = m.epoch();
            }
            return Ok(());
        };
        let (revoked, added) = self.apply_assignment(&new).await;
        let owned: BTreeSet<TopicPartition> = self.positions.keys().cloned().collect();
        if let (Some(g), Some(m)) = (self.group.as_mut(), self.kip848.as_ref()) {
            m.set_owned(&owned);
            g.generation = m.epoch();
            debug!(group = %g.group_id, member = %g.member_id, epoch = g.generation, revoked = revoked.len(), added = added.len(), "assignment reconciled");
        }
        Ok(())
    }

    /// Leaves a consumer-protocol group (epoch -1, or -2 for a static member).
    pub(super) async fn leave_848(&mut self) -> Result<(), Error> {
        let r = match self.kip848.as_mut() {
            Some(m) => m.leave().await,
            None => Ok(()),
        };
        self.kip848 = None;
        if let Some(g) = self.group.as_mut() {
            g.generation = -1;
            g.member_id.clear();
            g.live_epoch = None;
        }
        r
    }
}

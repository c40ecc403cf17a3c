//! Coalesced topic creation: concurrent first writes of many ids share CreateTopics requests
//! (one request in flight; whoever arrives meanwhile joins the next one).

use std::sync::Mutex;

use kafka_persistence_wire::{Client, NewTopic};
use tokio::sync::oneshot;

use crate::error::JournalError;

type Waiter = oneshot::Sender<Result<(), String>>;

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct TopicCreator {
    state: Mutex<CreatorState>,
}

#[derive(Debug, Default)]
struct CreatorState {
    running: bool,
    pending: Vec<(NewTopicSpec, Waiter)>,
}

/// What a [`NewTopic`] is built from (kept here so it need not be `Debug`/`Clone`).
#[derive(Debug, Clone)]
pub(crate) struct NewTopicSpec {
    pub(crate) name: String,
    pub(crate) partitions: i32,
    pub(crate) replication_factor: i16,
    pub(crate) configs: Vec<(String, String)>,
}

impl NewTopicSpec {
    fn build(&self) -> NewTopic {
        let mut t = NewTopic::new(self.name.as_str(), self.partitions, self.replication_factor);
        for (k, v) in &self.configs {
            t = t.with_config(k.as_str(), v.as_str());
        }
        t
    }
}

impl TopicCreator {
    /// Creates `topics` ("already exists" is success), batched with concurrent callers.
    pub(crate) async fn create(
        &self,
        client: &Client,
        topics: Vec<NewTopicSpec>,
    ) -> Result<(), JournalError> {
        let mut receivers = Vec::with_capacity(topics.len());
        let lead = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            for t in topics {
                let (tx, rx) = oneshot::channel();
                st.pending.push((t, tx));
                receivers.push(rx);
            }
            !std::mem::replace(&mut st.running, true)
        };
        if lead {
            let mut reset = ResetOnDrop(Some(self));
            loop {
                let batch = {
                    let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                    if st.pending.is_empty() {
                        st.running = false;
                        reset.0 = None;
                        break;
                    }
                    std::mem::take(&mut st.pending)
                };
                // Concurrent first writes of one id ask for the same topic: once per request.
                let mut names = std::collections::HashSet::new();
                let specs: Vec<NewTopic> = batch
                    .iter()
                    .filter(|(t, _)| names.insert(t.name.as_str()))
                    .map(|(t, _)| t.build())
                    .collect();
                tracing::debug!(
                    topics = specs.len(),
                    reason = "first write",
                    "creating journal topics"
                );
                let result = client.create_topics(specs).await.map_err(|e| e.to_string());
                for (_, tx) in batch {
                    let _ = tx.send(result.clone());
                }
            }
        }
        for rx in receivers {
            match rx.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(JournalError::TopicCreation(e)),
                Err(_) => {
                    return Err(JournalError::TopicCreation(
                        "the request creating the topic was cancelled".into(),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// If the leading caller is cancelled, lets the next caller lead; waiters of the cancelled
/// batch see a cancellation.
struct ResetOnDrop<'a>(Option<&'a TopicCreator>);

impl Drop for ResetOnDrop<'_> {
    fn drop(&mut self) {
        let Some(creator) = self.0 else {
            return;
        };
        let mut st = creator.state.lock().unwrap_or_else(|p| p.into_inner());
        st.running = false;
        // Waiters still pending lose their leader: fail them so they retry.
        for (_, tx) in std::mem::take(&mut st.pending) {
            let _ = tx.send(Err("the request creating the topic was cancelled".into()));
        }
    }
}

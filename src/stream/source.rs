//! Sources: the consumer's task and the record streams of one source over all its
//! partitions.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;
use tracing::debug;

use super::control::{serve_commit, Command, CommittableMessage, Control};
use crate::wire::{Consumer, ConsumerRecord, Error};

/// Settings of a source.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    /// How long one poll of the consumer waits for records (commands are served between
    /// polls; default 100 ms).
    pub poll_timeout: Duration,
    /// How many polled batches may wait for the downstream before the consumer stops
    /// polling (default 2).
    pub buffer_batches: usize,
}

impl Default for SourceSettings {
    fn default() -> Self {
        SourceSettings {
            poll_timeout: Duration::from_millis(100),
            buffer_batches: 2,
        }
    }
}

type Batch = Result<Vec<ConsumerRecord>, Error>;

fn spawn(consumer: Consumer, settings: SourceSettings) -> (mpsc::Receiver<Batch>, Control) {
    let (tx, rx) = mpsc::channel(settings.buffer_batches.max(1));
    let (ctx, crx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(consumer, tx, crx, settings.poll_timeout));
    (rx, Control::new(ctx, task))
}

/// The consumer's task: poll while the stream has room; serve commands in between.
async fn run(
    mut consumer: Consumer,
    tx: mpsc::Sender<Batch>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    poll_timeout: Duration,
) -> Result<(), Error> {
    let mut tx = Some(tx);
    let mut first_error: Option<Error> = None;
    loop {
        let event = match &tx {
            Some(t) => {
                let reserve = t.clone().reserve_owned();
                tokio::select! {
                    biased;
                    c = commands.recv() => Event::Command(c),
                    p = reserve => Event::Room(p.ok()),
                }
            }
            None => Event::Command(commands.recv().await),
        };
        match event {
            Event::Command(None) | Event::Command(Some(Command::Shutdown)) => break,
            Event::Command(Some(Command::Stop)) => {
                debug!(reason = "stop requested", "source stops polling");
                tx = None;
            }
            Event::Command(Some(Command::Commit(offsets, reply))) => {
                serve_commit(&mut consumer, offsets, reply).await;
            }
            // The stream was dropped.
            Event::Room(None) => tx = None,
            Event::Room(Some(permit)) => match consumer.poll(poll_timeout).await {
                Ok(recs) if recs.is_empty() => {}
                Ok(recs) => {
                    permit.send(Ok(recs));
                }
                Err(e) => {
                    debug!(error = %e, "source poll failed; ending the stream");
                    let shown = Error::Config(format!("consumer poll failed: {e}"));
                    permit.send(Err(e));
                    first_error.get_or_insert(shown);
                    tx = None;
                }
            },
        }
    }
    let closed = consumer.close().await;
    match first_error {
        Some(e) => Err(e),
        None => closed,
    }
}

enum Event {
    Command(Option<Command>),
    Room(Option<mpsc::OwnedPermit<Batch>>),
}

/// The records of a source, one at a time (see [`plain_source`]).
#[derive(Debug)]
pub struct RecordStream {
    rx: mpsc::Receiver<Batch>,
    buf: VecDeque<ConsumerRecord>,
    done: bool,
}

impl Stream for RecordStream {
    type Item = Result<ConsumerRecord, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(r) = self.buf.pop_front() {
                return Poll::Ready(Some(Ok(r)));
            }
            if self.done {
                return Poll::Ready(None);
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(batch))) => self.buf.extend(batch),
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A plain source: the consumer's records as a stream, and its [`Control`]. The consumer
/// should be subscribed or assigned already; the source owns it from now on.
pub fn plain_source(consumer: Consumer, settings: SourceSettings) -> (RecordStream, Control) {
    let (rx, control) = spawn(consumer, settings);
    (
        RecordStream {
            rx,
            buf: VecDeque::new(),
            done: false,
        },
        control,
    )
}

/// The messages of a committable source (see [`committable_source`]).
#[derive(Debug)]
pub struct CommittableStream {
    inner: RecordStream,
    control: Control,
}

impl Stream for CommittableStream {
    type Item = Result<CommittableMessage, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(record))) => {
                Poll::Ready(Some(Ok(CommittableMessage::new(record, &self.control))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A committable source: messages carry the offset to commit after processing them.
pub fn committable_source(
    consumer: Consumer,
    settings: SourceSettings,
) -> (CommittableStream, Control) {
    let (inner, control) = plain_source(consumer, settings);
    (
        CommittableStream {
            inner,
            control: control.clone(),
        },
        control,
    )
}

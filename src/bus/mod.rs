//! The feedback bus behind a trait: coordinators publish, handlers subscribe, neither knows
//! which transport carries the events.

mod counted;
pub mod http;
mod memory;
pub mod nats;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use async_trait::async_trait;
use tokio::sync::oneshot;

use crate::error::{BoxError, Chain};
use crate::event::FeedbackEvent;
pub use crate::fleet::Interest;
use crate::fleet::Observed;
use crate::telemetry::{FEEDBACK_DECODE_ERRORS_TOTAL, FEEDBACK_REFUSED_TOTAL, Readings};

pub use counted::{Counted, FeedbackCounts, MAX_COUNTED_COORDINATORS, OTHER_COORDINATORS};
pub use memory::{MemoryBus, MemorySubscription};

/// A publish that did not reach the bus.
#[derive(Debug, thiserror::Error)]
#[error("cannot publish feedback over {transport}")]
pub struct BusError {
    /// The transport (`nats`, `http`, ...).
    pub transport: &'static str,
    /// Why.
    #[source]
    pub source: BoxError,
}

impl BusError {
    /// `transport` failed because of `source`.
    pub fn new(transport: &'static str, source: impl Into<BoxError>) -> Self {
        Self {
            transport,
            source: source.into(),
        }
    }
}

/// Every failure of a [`Fanout`] publish, each with its cause.
#[derive(Debug, thiserror::Error)]
pub struct Failures(pub Vec<BusError>);

impl std::fmt::Display for Failures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            let separator = if i == 0 { "" } else { "; " };
            write!(f, "{separator}{}", Chain(e))?;
        }
        Ok(())
    }
}

/// The store side of a transport.
#[async_trait]
pub trait FeedbackPublisher: Send + Sync + 'static {
    /// Sends one event. Must not wait on any subscriber.
    async fn publish(&self, event: &FeedbackEvent) -> Result<(), BusError>;
}

/// One decoded event on its way to the handler, with an optional way to tell the sender
/// what became of it (the HTTP receiver answers its client with it).
#[derive(Debug)]
pub struct Delivery {
    /// The event.
    pub event: FeedbackEvent,
    /// More events of the same batch follow at once (the last values read from the
    /// last-value stream): the handler takes them all in before asking its policy, so that a
    /// state an instance has since left — its HARD before its goodbye — is never applied.
    pub more: bool,
    reply: Option<oneshot::Sender<Observed>>,
}

impl Delivery {
    /// A delivery nobody waits on.
    pub fn new(event: FeedbackEvent) -> Self {
        Self {
            event,
            more: false,
            reply: None,
        }
    }

    /// One event of a batch, more of which follow (see [`more`](Self::more)).
    pub fn in_batch(event: FeedbackEvent) -> Self {
        Self {
            more: true,
            ..Self::new(event)
        }
    }

    /// A delivery whose outcome the sender awaits on the returned receiver.
    pub fn with_reply(event: FeedbackEvent) -> (Self, oneshot::Receiver<Observed>) {
        let (tx, rx) = oneshot::channel();
        (
            Self {
                reply: Some(tx),
                ..Self::new(event)
            },
            rx,
        )
    }

    /// Splits into the event and a closure reporting its outcome.
    pub fn into_parts(self) -> (FeedbackEvent, impl FnOnce(Observed)) {
        let reply = self.reply;
        (self.event, move |outcome| {
            if let Some(tx) = reply {
                // The sender may have given up waiting; nothing to do then.
                let _ = tx.send(outcome);
            }
        })
    }
}

/// The agent side of a transport: a stream of decoded, validated events.
///
/// Undecodable messages are counted by the transport and never reach the handler.
#[async_trait]
pub trait FeedbackSubscription: Send + 'static {
    /// The next event, or `None` once the transport has closed for good.
    ///
    /// Must be cancel-safe: the handler drops this future whenever a timer fires first, and
    /// no event may be lost then.
    async fn next(&mut self) -> Option<Delivery>;
}

#[async_trait]
impl<S: FeedbackSubscription + ?Sized> FeedbackSubscription for Box<S> {
    async fn next(&mut self) -> Option<Delivery> {
        (**self).next().await
    }
}

#[async_trait]
impl FeedbackSubscription for tokio::sync::mpsc::Receiver<Delivery> {
    async fn next(&mut self) -> Option<Delivery> {
        self.recv().await
    }
}

/// Reports a transport's receive-side counters: messages that could not be decoded, and
/// those refused for each other reason.
pub(crate) fn read_refusals(
    out: &mut Readings,
    transport: &'static str,
    decode_errors: &AtomicU64,
    refused: &[(&'static str, &AtomicU64)],
) {
    let load = |c: &AtomicU64| c.load(Relaxed) as f64;
    let label = [("transport", transport)];
    out.set(&FEEDBACK_DECODE_ERRORS_TOTAL, &label, load(decode_errors));
    for (reason, c) in refused {
        let labels = [("transport", transport), ("reason", *reason)];
        out.set(&FEEDBACK_REFUSED_TOTAL, &labels, load(c));
    }
}

/// A publisher that drops every event: for a coordinator with feedback disabled.
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

#[async_trait]
impl FeedbackPublisher for Discard {
    async fn publish(&self, _: &FeedbackEvent) -> Result<(), BusError> {
        Ok(())
    }
}

/// Publishes every event on several transports (e.g. NATS and HTTP); fails if any fails,
/// after trying all.
#[derive(Clone, Default)]
pub struct Fanout(pub Vec<std::sync::Arc<dyn FeedbackPublisher>>);

#[async_trait]
impl FeedbackPublisher for Fanout {
    async fn publish(&self, event: &FeedbackEvent) -> Result<(), BusError> {
        let mut errors = Vec::new();
        for p in &self.0 {
            if let Err(e) = p.publish(event).await {
                errors.push(e);
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(BusError::new("several transports", Failures(errors))),
        }
    }
}

/// One stream of deliveries from two transports (e.g. NATS and the HTTP receiver), read in
/// the task that polls it; it ends when both have ended.
pub fn merge<A: FeedbackSubscription, B: FeedbackSubscription>(a: A, b: B) -> Merged<A, B> {
    Merged {
        a,
        b,
        a_open: true,
        b_open: true,
    }
}

/// Two subscriptions as one; from [`merge`].
pub struct Merged<A, B> {
    a: A,
    b: B,
    a_open: bool,
    b_open: bool,
}

#[async_trait]
impl<A: FeedbackSubscription, B: FeedbackSubscription> FeedbackSubscription for Merged<A, B> {
    // Cancel-safe as long as both are, which the trait asks of them.
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            let (delivery, from_a) = tokio::select! {
                d = self.a.next(), if self.a_open => (d, true),
                d = self.b.next(), if self.b_open => (d, false),
                else => return None,
            };
            match delivery {
                Some(d) => return Some(d),
                None if from_a => self.a_open = false,
                None => self.b_open = false,
            }
        }
    }
}

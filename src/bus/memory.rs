//! The in-process bus: fan-out over a broadcast channel, the embedded default.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{BusError, Delivery, FeedbackPublisher, FeedbackSubscription, Interest};
use crate::event::FeedbackEvent;

/// An in-process feedback bus. Cloning gives another handle on the same bus.
///
/// Publishing never waits: each subscriber reads from its own position in a ring of
/// `buffer` events, and one that falls more than `buffer` events behind skips the oldest
/// (counted in [`MemoryBus::lagged`]) instead of slowing the publisher or anyone else. For a
/// control signal that is the right loss: newer events supersede older ones.
#[derive(Debug, Clone)]
pub struct MemoryBus {
    tx: broadcast::Sender<Arc<FeedbackEvent>>,
    lagged: Arc<AtomicU64>,
}

impl MemoryBus {
    /// A bus whose subscribers may fall `buffer` events behind before they skip.
    ///
    /// # Panics
    /// If `buffer` is 0.
    pub fn new(buffer: usize) -> Self {
        let (tx, _) = broadcast::channel(buffer);
        Self {
            tx,
            lagged: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A new subscription, starting with the next published event.
    pub fn subscribe(&self, interest: Interest) -> MemorySubscription {
        MemorySubscription {
            rx: self.tx.subscribe(),
            interest,
            lagged: self.lagged.clone(),
        }
    }

    /// Events skipped by lagging subscribers, all subscribers together.
    pub fn lagged(&self) -> u64 {
        self.lagged.load(Relaxed)
    }

    /// Current number of subscribers.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new(1024)
    }
}

#[async_trait]
impl FeedbackPublisher for MemoryBus {
    async fn publish(&self, event: &FeedbackEvent) -> Result<(), BusError> {
        // No subscriber is not an error: agents may start later.
        let _ = self.tx.send(Arc::new(event.clone()));
        Ok(())
    }
}

/// One subscriber's view of a [`MemoryBus`].
#[derive(Debug)]
pub struct MemorySubscription {
    rx: broadcast::Receiver<Arc<FeedbackEvent>>,
    interest: Interest,
    lagged: Arc<AtomicU64>,
}

#[async_trait]
impl FeedbackSubscription for MemorySubscription {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            match self.rx.recv().await {
                Ok(event) if self.interest.wants(&event.coordinator_id) => {
                    return Some(Delivery::new(Arc::unwrap_or_clone(event)));
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.lagged.fetch_add(n, Relaxed);
                    tracing::debug!(skipped = n, "Feedback subscriber lagged.");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

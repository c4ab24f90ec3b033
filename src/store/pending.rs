//! A row waiting in the store, with the acknowledgement that settles its JetStream message.

use std::borrow::Borrow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::message::Acker;
use async_trait::async_trait;

use crate::coordinator::{DeadLetterReason, DeadLetterSink, Sink, SinkError};
use crate::market::Bar;

/// A row and (when it came from JetStream) the handle that acknowledges its message.
pub struct Pending {
    /// The row.
    pub bar: Bar,
    acker: Option<Acker>,
}

impl Pending {
    /// A row from JetStream.
    pub fn from_stream(bar: Bar, acker: Acker) -> Self {
        Self {
            bar,
            acker: Some(acker),
        }
    }

    /// A row with no message behind it.
    pub fn local(bar: Bar) -> Self {
        Self { bar, acker: None }
    }
}

impl Borrow<Bar> for Pending {
    fn borrow(&self) -> &Bar {
        &self.bar
    }
}

/// Acknowledgement counters.
#[derive(Debug, Default)]
pub(crate) struct AckStats {
    pub(crate) acked: AtomicU64,
    pub(crate) ack_errors: AtomicU64,
    pub(crate) redelivered: AtomicU64,
    pub(crate) terminated: AtomicU64,
}

/// Writes through `inner`, then acknowledges every message of the committed batch: a row is
/// acknowledged only after the database has it (at-least-once; the upsert makes a
/// redelivered row harmless).
pub(crate) struct Acking {
    pub(crate) inner: Arc<dyn Sink<Pending>>,
    pub(crate) stats: Arc<AckStats>,
}

#[async_trait]
impl Sink<Pending> for Acking {
    async fn write(&self, batch: &[Pending]) -> Result<(), SinkError> {
        self.inner.write(batch).await?;
        for p in batch {
            if let Some(acker) = &p.acker {
                match acker.ack().await {
                    Ok(()) => self.stats.acked.fetch_add(1, Relaxed),
                    // The row is committed; if the ack is lost the server redelivers it and
                    // the upsert absorbs it.
                    Err(_) => self.stats.ack_errors.fetch_add(1, Relaxed),
                };
            }
        }
        Ok(())
    }
}

/// Rows the store could not write go back to JetStream: exhausted retries and shutdown are
/// negatively acknowledged (redelivered after `delay`, to this or another pod); rows the
/// database refuses permanently are published on `<prefix>.deadletter.<coordinator_id>` and
/// terminated, so they stop circulating without being lost.
pub(crate) struct Redeliver {
    pub(crate) client: async_nats::Client,
    pub(crate) dead_subject: String,
    pub(crate) delay: Duration,
    pub(crate) stats: Arc<AckStats>,
}

#[async_trait]
impl DeadLetterSink<Pending> for Redeliver {
    async fn dead_letter(
        &self,
        items: Vec<Pending>,
        reason: DeadLetterReason,
    ) -> Result<(), SinkError> {
        for p in items {
            let Some(acker) = &p.acker else { continue };
            let outcome = match reason {
                DeadLetterReason::Rejected => {
                    self.client
                        .publish(self.dead_subject.clone(), p.bar.encode().into())
                        .await
                        .map_err(|e| SinkError::transient(format!("dead-letter publish: {e}")))?;
                    self.stats.terminated.fetch_add(1, Relaxed);
                    acker.ack_with(AckKind::Term).await
                }
                DeadLetterReason::RetriesExhausted | DeadLetterReason::Shutdown => {
                    self.stats.redelivered.fetch_add(1, Relaxed);
                    acker.ack_with(AckKind::Nak(Some(self.delay))).await
                }
            };
            if outcome.is_err() {
                // Unacknowledged messages are redelivered after ack_wait anyway.
                self.stats.ack_errors.fetch_add(1, Relaxed);
            }
        }
        Ok(())
    }
}

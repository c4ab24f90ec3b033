//! A row waiting in the store, with the acknowledgement that settles its JetStream message.

use std::borrow::Borrow;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::AcqRel, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::message::Acker;
use async_trait::async_trait;
use futures_util::future::join_all;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::coordinator::{DeadLetterReason, DeadLetterSink, Sink, SinkError};
use crate::event::CoordinatorId;
use crate::market::Bar;
use crate::telemetry::{self as t, Probe, Readings};

/// The acknowledgement of one message, shared by its rows: acknowledged when the last row
/// is settled, or negatively acknowledged (the whole message redelivered) as soon as one row
/// must be retried later. Whatever happens first settles the message; later outcomes are
/// ignored, and a redelivered row that was already committed is absorbed by the upsert.
pub(crate) struct MessageAck {
    acker: Acker,
    remaining: AtomicUsize,
    settled: AtomicBool,
}

impl MessageAck {
    fn new(acker: Acker, rows: usize) -> Self {
        Self {
            acker,
            remaining: AtomicUsize::new(rows),
            settled: AtomicBool::new(false),
        }
    }

    /// One row is done (committed, or dead-lettered for good); true when it was the last,
    /// and the message is now this caller's to acknowledge.
    fn row_done(&self) -> bool {
        self.remaining.fetch_sub(1, AcqRel) == 1 && !self.settled.swap(true, AcqRel)
    }

    /// Acknowledges the message and waits for the server to confirm it (a double ack): an
    /// acknowledgement still buffered in the client when the store dies would leave the
    /// message pending until `ack_wait`, inflating the lag KEDA reads, although its rows are
    /// committed.
    async fn ack(&self) -> bool {
        self.acker.double_ack().await.is_ok()
    }

    /// Hands the message back for redelivery after `delay`, unless already settled.
    async fn retry_later(&self, delay: Duration) -> Option<bool> {
        if self.settled.swap(true, AcqRel) {
            return None;
        }
        Some(self.acker.ack_with(AckKind::Nak(Some(delay))).await.is_ok())
    }
}

/// A row and (when it came from JetStream) the acknowledgement of its message.
pub struct Pending {
    /// The row.
    pub bar: Bar,
    ack: Option<Arc<MessageAck>>,
}

impl Pending {
    /// The rows of one JetStream message, sharing its acknowledgement.
    pub fn from_message(bars: Vec<Bar>, acker: Acker) -> Vec<Self> {
        let ack = Arc::new(MessageAck::new(acker, bars.len()));
        bars.into_iter()
            .map(|bar| Self {
                bar,
                ack: Some(ack.clone()),
            })
            .collect()
    }

    /// A row with no message behind it.
    pub fn local(bar: Bar) -> Self {
        Self { bar, ack: None }
    }
}

impl Borrow<Bar> for Pending {
    fn borrow(&self) -> &Bar {
        &self.bar
    }
}

/// A store's acknowledgement counters, in messages.
#[derive(Debug, Default)]
pub struct AckStats {
    /// Acknowledged once every row was committed, confirmed by the server.
    pub acked: AtomicU64,
    /// Acknowledgements that failed or went unconfirmed.
    pub ack_errors: AtomicU64,
    /// Handed back for redelivery.
    pub redelivered: AtomicU64,
    /// Terminated after their rows were dead-lettered.
    pub terminated: AtomicU64,
}

/// A store's acknowledgements, as a probe.
#[derive(Debug, Clone)]
pub struct AckProbe {
    /// The store's coordinator.
    pub coordinator_id: CoordinatorId,
    /// Its counters.
    pub stats: Arc<AckStats>,
}

impl Probe for AckProbe {
    fn claims(&self) -> Vec<String> {
        vec![format!("acks of {}", self.coordinator_id)]
    }

    fn read(&self, out: &mut Readings) {
        let label = [("coordinator_id", self.coordinator_id.as_str())];
        let s = &self.stats;
        for (metric, c) in [
            (&t::STORE_MESSAGES_ACKED_TOTAL, &s.acked),
            (&t::STORE_ACK_ERRORS_TOTAL, &s.ack_errors),
            (&t::STORE_MESSAGES_REDELIVERED_TOTAL, &s.redelivered),
        ] {
            out.set(metric, &label, c.load(Relaxed) as f64);
        }
    }
}

/// Acknowledgements at stop: they no longer hold up the drain (the broker may be gone, and
/// each confirmation would wait for it), but run beside it, and the stop then waits for them
/// within a bound of their own. Those still unconfirmed are `acks_unsent`: their rows are
/// committed, the server redelivers the messages, and the upsert absorbs them.
#[derive(Debug, Default)]
pub(crate) struct DeferredAcks {
    on: CancellationToken,
    running: Mutex<JoinSet<bool>>,
    /// Messages whose acknowledgement was deferred.
    pub(crate) deferred: AtomicU64,
    /// Those the server confirmed.
    pub(crate) confirmed: AtomicU64,
}

impl DeferredAcks {
    /// From now on acknowledgements are deferred.
    pub(crate) fn defer(&self) {
        self.on.cancel();
    }

    fn spawn(&self, acks: Vec<Arc<MessageAck>>) {
        self.deferred.fetch_add(acks.len() as u64, Relaxed);
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        for ack in acks {
            running.spawn(async move { ack.ack().await });
        }
    }

    /// Waits for the deferred acknowledgements, counting them as they are confirmed. Dropped
    /// before the end, it abandons the rest.
    pub(crate) async fn settle(&self, stats: &AckStats) {
        let mut running =
            std::mem::take(&mut *self.running.lock().unwrap_or_else(PoisonError::into_inner));
        while let Some(done) = running.join_next().await {
            if matches!(done, Ok(true)) {
                self.confirmed.fetch_add(1, Relaxed);
                stats.acked.fetch_add(1, Relaxed);
            } else {
                stats.ack_errors.fetch_add(1, Relaxed);
            }
        }
    }

    /// Deferred acknowledgements the server did not confirm (yet).
    pub(crate) fn unsent(&self) -> u64 {
        self.deferred
            .load(Relaxed)
            .saturating_sub(self.confirmed.load(Relaxed))
    }
}

/// Writes through `inner`, then settles the rows of the committed batch: a message is
/// acknowledged only once the database has all its rows (at-least-once; the upsert makes a
/// redelivered row harmless).
pub(crate) struct Acking {
    pub(crate) inner: Arc<dyn Sink<Pending>>,
    pub(crate) stats: Arc<AckStats>,
    pub(crate) deferred: Arc<DeferredAcks>,
}

#[async_trait]
impl Sink<Pending> for Acking {
    async fn write(&self, batch: &[Pending]) -> Result<(), SinkError> {
        self.inner.write(batch).await?;
        let complete: Vec<&Arc<MessageAck>> = batch
            .iter()
            .filter_map(|p| p.ack.as_ref())
            .filter(|ack| ack.row_done())
            .collect();
        let complete: Vec<Arc<MessageAck>> = complete.into_iter().cloned().collect();
        if self.deferred.on.is_cancelled() {
            self.deferred.spawn(complete);
            return Ok(());
        }
        // Every message the batch completed is acknowledged at once: one round trip per
        // batch, not one per message. A stop beginning meanwhile takes the wait over, so that
        // an unreachable broker does not hold up the drain (acknowledging twice is harmless).
        let confirmed = tokio::select! {
            confirmed = join_all(complete.iter().map(|ack| ack.ack())) => confirmed,
            () = self.deferred.on.cancelled() => {
                self.deferred.spawn(complete);
                return Ok(());
            }
        };
        for ok in confirmed {
            if ok {
                self.stats.acked.fetch_add(1, Relaxed);
            } else {
                // The rows are committed; the server redelivers the message after ack_wait
                // and the upsert absorbs it.
                self.stats.ack_errors.fetch_add(1, Relaxed);
            }
        }
        Ok(())
    }
}

/// Rows the store could not write go back to JetStream: after exhausted retries or at
/// shutdown their message is negatively acknowledged (redelivered after `delay`, to this or
/// another pod); rows the database refuses permanently are published on
/// `<prefix>.deadletter.<coordinator_id>` and count as settled, so they stop circulating
/// without being lost.
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
            let Some(ack) = &p.ack else { continue };
            let outcome = match reason {
                DeadLetterReason::Rejected => {
                    self.client
                        .publish(self.dead_subject.clone(), p.bar.encode().into())
                        .await
                        .map_err(|e| SinkError::transient(format!("dead-letter publish: {e}")))?;
                    self.stats.terminated.fetch_add(1, Relaxed);
                    if ack.row_done() {
                        Some(ack.ack().await)
                    } else {
                        None
                    }
                }
                DeadLetterReason::RetriesExhausted | DeadLetterReason::Shutdown => {
                    let outcome = ack.retry_later(self.delay).await;
                    if outcome.is_some() {
                        self.stats.redelivered.fetch_add(1, Relaxed);
                    }
                    outcome
                }
            };
            if outcome == Some(false) {
                // Unacknowledged messages are redelivered after ack_wait anyway.
                self.stats.ack_errors.fetch_add(1, Relaxed);
            }
        }
        Ok(())
    }
}

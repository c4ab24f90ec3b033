//! How a store stops: each step within its own bound, so that a stop with the broker gone
//! ends within [`StoreConfig::stop_plan`]'s total and still reports what it could not do.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::StoreReport;
use super::config::StoreConfig;
use super::node::Store;
use crate::coordinator::StopBounds;
use crate::error::Chain;
use crate::process::{StopPlan, StopProgress};

/// Cancelling the feeder: it only has to notice.
const STOP_PULLING: Duration = Duration::from_secs(1);
/// Writes still running when the drain ran out of time: the database's, not the broker's.
const ABANDON: Duration = Duration::from_secs(2);
/// Handing unwritten rows back (negative acknowledgements) to a broker that may be gone.
const HAND_BACK: Duration = Duration::from_secs(1);
/// The last (`leaving`) feedback event.
const LEAVING: Duration = Duration::from_secs(1);
/// Confirmations of the acknowledgements of rows written during the drain.
const ACKS: Duration = Duration::from_secs(2);
/// Pushing what the client still buffers (the `leaving` event, acknowledgements).
const FLUSH: Duration = Duration::from_secs(1);
/// Closing the NATS connection.
const CLOSE: Duration = Duration::from_secs(1);
/// Finishing `/metrics` requests in flight.
const HTTP: Duration = Duration::from_secs(1);

impl StoreConfig {
    /// The steps of a store's stop and their bounds: `store.drain_timeout_ms` for the drain,
    /// 10 s for everything else together. A pod's `terminationGracePeriodSeconds` must exceed
    /// the total.
    pub fn stop_plan(&self) -> StopPlan {
        StopPlan::new()
            .step("stop pulling", STOP_PULLING)
            .step("drain", Duration::from_millis(self.drain_timeout_ms))
            .step("abandon running writes", ABANDON)
            .step("hand back", HAND_BACK)
            .step("leaving event", LEAVING)
            .step("acks", ACKS)
            .step("flush", FLUSH)
            .step("close", CLOSE)
            .step("metrics server", HTTP)
    }
}

impl Store {
    /// Stops step by step through `progress` (see [`StoreConfig::stop_plan`]): stops pulling,
    /// drains the queue, hands back what was not written, says goodbye, waits for the last
    /// acknowledgements, flushes and closes the connection, and stops serving. A step that
    /// runs out of time is logged once and skipped; rows already written stay written, and
    /// messages left unacknowledged are redelivered after `store.ack_wait_ms` and absorbed by
    /// the upsert.
    pub async fn stop_with(self, progress: &StopProgress) -> StoreReport {
        progress.begin(self.plan.clone());
        tracing::info!(
            bound_ms = self.plan.total().as_millis() as u64,
            "Store stopping: draining."
        );
        self.feeding.cancel();
        let queue_wait_p50 = self.coordinator.queue_wait_quantile(0.5);
        let queue_wait_p99 = self.coordinator.queue_wait_quantile(0.99);
        let feeders = self.tasks;
        let aborts: Vec<_> = feeders.iter().map(|t| t.abort_handle()).collect();
        if progress
            .step("stop pulling", async {
                for task in feeders {
                    let _ = task.await;
                }
            })
            .await
            .is_none()
        {
            aborts.iter().for_each(|a| a.abort());
        }
        // From here on acknowledgements run beside the drain instead of holding it up.
        self.deferred.defer();
        let steps = [
            "drain",
            "abandon running writes",
            "hand back",
            "leaving event",
        ];
        let bounds = StopBounds {
            drain: Some(self.drain_timeout),
            abandon: ABANDON,
            hand_back: HAND_BACK,
            leaving: LEAVING,
        };
        let stopped = progress
            .steps(&steps, self.coordinator.stop_within(bounds))
            .await;
        let (drained, mut leaving_event_sent, stats) = match stopped {
            Some(s) => {
                for step in &s.timed_out {
                    progress.timed_out(coordinator_step(step));
                }
                (s.drained, s.leaving_event_sent, s.stats)
            }
            // Never reached: the coordinator bounds each step itself.
            None => (false, false, self.coordinator.stats()),
        };
        progress
            .step("acks", self.deferred.settle(&self.acks))
            .await;
        let acks_unsent = self.deferred.unsent();
        let client = &self.conn.client;
        let flushed = matches!(progress.step("flush", client.flush()).await, Some(Ok(())));
        // Published is not sent: only a flush confirms the last event left the client.
        leaving_event_sent &= flushed;
        if let Some(Err(error)) = progress.step("close", client.drain()).await {
            tracing::debug!(error = %Chain(&error), "Closing the NATS connection failed.");
        }
        self.http_stop.cancel();
        let http = self.http;
        let http_abort = http.abort_handle();
        if progress.step("metrics server", http).await.is_none() {
            http_abort.abort();
        }
        if acks_unsent > 0 || !leaving_event_sent {
            tracing::warn!(
                acks_unsent,
                leaving_event_sent,
                "Stopped without reaching the broker: unacknowledged messages are redelivered later."
            );
        }
        let report = StoreReport {
            received: self.counters.received.load(Relaxed),
            rows: self.counters.rows.load(Relaxed),
            poison: self.counters.poison.load(Relaxed),
            acked: self.acks.acked.load(Relaxed),
            redelivered: self.acks.redelivered.load(Relaxed),
            drained,
            acks_unsent,
            leaving_event_sent,
            stats,
            queue_wait_p50,
            queue_wait_p99,
            stop: progress.summary(),
        };
        tracing::info!(
            took_ms = report.stop.took_ms,
            bound_ms = report.stop.bound_ms,
            "Store stopped."
        );
        report
    }
}

/// The plan's name for a step the coordinator reports.
fn coordinator_step(step: &str) -> &'static str {
    match step {
        "drain" => "drain",
        "abandon" => "abandon running writes",
        "hand_back" => "hand back",
        _ => "leaving event",
    }
}

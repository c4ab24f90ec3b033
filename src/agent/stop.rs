//! How an agent stops: each step within its own bound, so that a stop with the broker gone
//! ends within [`AgentConfig::stop_plan`]'s total.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::AgentReport;
use super::announce::LAST_EVENT_BOUND;
use super::config::AgentConfig;
use super::node::Agent;
use crate::error::Chain;
use crate::process::{StopPlan, StopProgress};

/// Beyond the drain timeout, for the publisher to notice it and return its counters.
const DRAIN_SLACK: Duration = Duration::from_secs(1);
/// Beyond the announcer's own bound on its last event, for it to return.
const LEAVING_SLACK: Duration = Duration::from_millis(500);
/// Producers and the other tasks only have to notice they are cancelled.
const TASKS: Duration = Duration::from_secs(1);
/// Pushing what the client still buffers (the `leaving` event).
const FLUSH: Duration = Duration::from_secs(1);
/// Closing the NATS connection.
const CLOSE: Duration = Duration::from_secs(1);

impl AgentConfig {
    /// The steps of an agent's stop and their bounds: `agent.drain_timeout_ms` (plus 1 s) for
    /// publishing what was produced and waiting for its acknowledgements, 5.5 s for everything
    /// else together. A pod's `terminationGracePeriodSeconds` must exceed the total.
    pub fn stop_plan(&self) -> StopPlan {
        StopPlan::new()
            .step(
                "publish and await acks",
                Duration::from_millis(self.drain_timeout_ms) + DRAIN_SLACK,
            )
            .step("leaving event", LAST_EVENT_BOUND + LEAVING_SLACK)
            .step("producers", TASKS)
            .step("feedback and servers", TASKS)
            .step("flush", FLUSH)
            .step("close", CLOSE)
    }
}

impl Agent {
    /// Stops step by step through `progress` (see [`AgentConfig::stop_plan`]): stops
    /// production, publishes what was produced and waits for its acknowledgements, says
    /// goodbye, stops the handler and the servers, flushes and closes the connection. A step
    /// that runs out of time is logged once and skipped; rows the stream did not acknowledge
    /// are counted as `unacked` (and are not in the ack log).
    pub async fn stop_with(mut self, progress: &StopProgress) -> AgentReport {
        progress.begin(self.plan.clone());
        self.shutdown.cancel();
        let stats = match self.published.take() {
            Some(stats) => stats,
            None => {
                let publishing = self.publishing;
                let abort = publishing.abort_handle();
                match progress.step("publish and await acks", publishing).await {
                    Some(stats) => stats.unwrap_or_default(),
                    None => {
                        abort.abort();
                        Default::default()
                    }
                }
            }
        };
        self.stop.cancel();
        let announcing = self.announcing;
        let abort = announcing.abort_handle();
        let mut leaving_event_sent = match progress.step("leaving event", announcing).await {
            Some(sent) => sent.unwrap_or(false),
            None => {
                abort.abort();
                false
            }
        };
        let mut producers = self.producers;
        progress.step("producers", producers.shutdown()).await;
        let mut tasks = self.tasks;
        progress
            .step("feedback and servers", tasks.shutdown())
            .await;
        let client = &self.client;
        let flushed = matches!(progress.step("flush", client.flush()).await, Some(Ok(())));
        // Published is not sent: only a flush confirms the last event left the client.
        leaving_event_sent &= flushed;
        if let Some(Err(error)) = progress.step("close", client.drain()).await {
            tracing::debug!(error = %Chain(&error), "Closing the NATS connection failed.");
        }
        let report = AgentReport {
            name: self.name,
            produced: self.produced.load(Relaxed),
            acked: stats.acked,
            messages: stats.messages,
            retries: stats.retries,
            unacked: stats.unacked,
            min_scale: self.handler.as_ref().map_or(1.0, |s| s.lowest_scale()),
            adjustments: self.handler.map_or(0, |s| s.adjustments.load(Relaxed)),
            leaving_event_sent,
            stop: progress.summary(),
        };
        tracing::info!(
            unacked = report.unacked,
            leaving_event_sent,
            took_ms = report.stop.took_ms,
            bound_ms = report.stop.bound_ms,
            "Agent stopped."
        );
        report
    }
}

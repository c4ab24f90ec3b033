//! How a bridge stops: each step within its own bound, so that a stop with the broker gone
//! ends within [`BridgeConfig::stop_plan`]'s total.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::BridgeError;
use super::config::BridgeConfig;
use super::lag::lock;
use super::run::{Bridge, BridgeReport};
use crate::error::Chain;
use crate::process::{StopPlan, StopProgress};

/// The tasks only have to notice they are cancelled (a republish may wait for the broker).
const TASKS: Duration = Duration::from_secs(1);
/// Finishing `/metrics` and API requests in flight.
const HTTP: Duration = Duration::from_secs(2);
/// Pushing the last republished states still buffered in the client.
const FLUSH: Duration = Duration::from_secs(1);
/// Closing the NATS connection.
const CLOSE: Duration = Duration::from_secs(1);

impl BridgeConfig {
    /// The steps of a bridge's stop and their bounds, 5 s in all. A pod's
    /// `terminationGracePeriodSeconds` must exceed the total.
    pub fn stop_plan(&self) -> StopPlan {
        StopPlan::new()
            .step("tasks", TASKS)
            .step("metrics server", HTTP)
            .step("flush", FLUSH)
            .step("close", CLOSE)
    }
}

impl Bridge {
    /// Stops step by step through `progress` (see [`BridgeConfig::stop_plan`]): its tasks,
    /// the server, then flushes and closes the connection. A step that runs out of time is
    /// logged once and skipped.
    pub async fn stop_with(self, progress: &StopProgress) -> Result<BridgeReport, BridgeError> {
        progress.begin(self.plan.clone());
        self.stop.cancel();
        let tasks = self.tasks;
        let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
        let joined = progress.step("tasks", async {
            for task in tasks {
                let _ = task.await;
            }
        });
        if joined.await.is_none() {
            aborts.iter().for_each(|a| a.abort());
        }
        let server = self.server;
        let abort = server.abort_handle();
        match progress.step("metrics server", server).await {
            Some(Ok(result)) => result?,
            Some(Err(e)) => return Err(BridgeError::Task(e)),
            None => abort.abort(),
        }
        let client = &self.client;
        if let Some(Err(error)) = progress.step("flush", client.flush()).await {
            tracing::debug!(error = %Chain(&error), "Flushing the NATS connection failed.");
        }
        if let Some(Err(error)) = progress.step("close", client.drain()).await {
            tracing::debug!(error = %Chain(&error), "Closing the NATS connection failed.");
        }
        let report = BridgeReport {
            coordinators: lock(&self.state).coordinators().len() as u64,
            published: self.stats.published.load(Relaxed),
            publish_errors: self.stats.publish_errors.load(Relaxed),
            lag_errors: self.stats.lag_errors.load(Relaxed),
            stop: progress.summary(),
        };
        tracing::info!(?report, "Bridge stopped.");
        Ok(report)
    }
}

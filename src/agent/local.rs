//! `LocalAgent`: an agent inside this process — a rate coordinator with one provider and the
//! feedback handler that scales it — for the demo, the simulator and tests.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bus::FeedbackSubscription;
use crate::event::CoordinatorId;
use crate::feedback::{FeedbackConfig, FeedbackHandler, HandlerStats};
use crate::rate::{ProviderConfig, RateCoordinator, RateError};

/// A rate coordinator and its running feedback handler (none when feedback is off). The
/// caller produces: it acquires from [`rate`](Self::rate) and submits wherever it writes.
pub struct LocalAgent {
    provider: String,
    rate: RateCoordinator,
    handler: Option<Arc<HandlerStats>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LocalAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAgent")
            .field("provider", &self.provider)
            .field("scale", &self.scale())
            .finish_non_exhaustive()
    }
}

impl LocalAgent {
    /// The parts without starting anything: a rate coordinator with `provider` registered at
    /// `limits`, and the handler `feedback` describes for an agent writing to `writes_to`
    /// (`None` when feedback is off). `seed` spreads agents' jitter apart.
    pub fn parts(
        provider: &str,
        limits: ProviderConfig,
        feedback: &FeedbackConfig,
        writes_to: &[CoordinatorId],
        seed: u64,
    ) -> Result<(RateCoordinator, Option<FeedbackHandler>), RateError> {
        let rate = RateCoordinator::new();
        rate.register_provider(provider, limits)?;
        let handler =
            FeedbackHandler::from_config(rate.clone(), [provider], feedback, writes_to, seed)?;
        Ok((rate, handler))
    }

    /// Starts the handler on `subscription` until `stop` is cancelled.
    #[allow(clippy::too_many_arguments)] // the parts' arguments, plus what it runs on
    pub fn start(
        provider: &str,
        limits: ProviderConfig,
        feedback: &FeedbackConfig,
        writes_to: &[CoordinatorId],
        seed: u64,
        subscription: impl FeedbackSubscription,
        stop: CancellationToken,
    ) -> Result<Self, RateError> {
        let (rate, handler) = Self::parts(provider, limits, feedback, writes_to, seed)?;
        let stats = handler.as_ref().map(FeedbackHandler::stats);
        let task = handler.map(|h| {
            tokio::spawn(async move {
                h.run(subscription, stop.cancelled_owned()).await;
            })
        });
        Ok(Self {
            provider: provider.to_owned(),
            rate,
            handler: stats,
            task,
        })
    }

    /// The rate coordinator to acquire from.
    pub fn rate(&self) -> &RateCoordinator {
        &self.rate
    }

    /// The provider's name.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The handler's counters, when feedback is on.
    pub fn stats(&self) -> Option<Arc<HandlerStats>> {
        self.handler.clone()
    }

    /// The scale currently applied.
    pub fn scale(&self) -> f64 {
        match &self.handler {
            Some(s) => s.scale(),
            None => self.rate.scale(&self.provider).unwrap_or(1.0),
        }
    }

    /// Waits for the handler to stop (after `stop` was cancelled).
    pub async fn join(self) {
        if let Some(task) = self.task {
            let _ = task.await;
        }
    }
}

//! One demo agent: a rate-limited producer and its feedback handler.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::DemoConfig;
use crate::bus::MemorySubscription;
use crate::coordinator::WriteCoordinator;
use crate::feedback::{FeedbackHandler, FleetConfig, HandlerStats};
use crate::rate::{ProviderConfig, RateCoordinator};
use crate::settings::FeedbackSettings;

const PROVIDER: &str = "demo";
/// Rows produced per acquire: one unit of upstream work.
const CHUNK: u32 = 50;

pub(super) struct Agent {
    rate: RateCoordinator,
    handler_stats: Option<Arc<HandlerStats>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Agent {
    pub(super) fn start(
        index: usize,
        config: &DemoConfig,
        store: WriteCoordinator<u64>,
        subscription: MemorySubscription,
        offered: Arc<AtomicU64>,
        stop: CancellationToken,
    ) -> Self {
        let rate = RateCoordinator::new();
        let burst = (config.agent_rate / 10.0).max(f64::from(CHUNK)) as u32;
        // Registering a fresh, valid provider on a fresh coordinator cannot fail.
        let _ = rate.register_provider(PROVIDER, ProviderConfig::new(burst, config.agent_rate));
        let mut tasks = Vec::new();
        let mut handler_stats = None;
        if let Some(kind) = config.policy {
            let settings = FeedbackSettings {
                policy: kind,
                ..FeedbackSettings::default()
            };
            let policy = settings.build_policy(index as u64 + 1);
            if let Ok(handler) =
                FeedbackHandler::new(rate.clone(), [PROVIDER], policy, FleetConfig::default())
            {
                handler_stats = Some(handler.stats());
                let stop = stop.clone();
                tasks.push(tokio::spawn(async move {
                    handler.run(subscription, stop.cancelled_owned()).await;
                }));
            }
        }
        let producer = {
            let rate = rate.clone();
            async move {
                let mut next = (index as u64) << 40;
                loop {
                    tokio::select! {
                        r = rate.acquire(PROVIDER, CHUNK) => if r.is_err() { break },
                        () = stop.cancelled() => break,
                    }
                    for _ in 0..CHUNK {
                        next += 1;
                        if store.submit(next).await.is_err() {
                            return;
                        }
                    }
                    offered.fetch_add(u64::from(CHUNK), Relaxed);
                }
            }
        };
        tasks.push(tokio::spawn(producer));
        Self {
            rate,
            handler_stats,
            tasks,
        }
    }

    pub(super) fn scale(&self) -> f64 {
        match &self.handler_stats {
            Some(s) => s.scale(),
            None => self.rate.scale(PROVIDER).unwrap_or(1.0),
        }
    }

    pub(super) async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

//! One demo agent: an in-process agent whose producer submits straight to the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::DemoConfig;
use crate::agent::demand::{Producer, ProducerCounts};
use crate::agent::{LocalAgent, LocalDemand};
use crate::bus::MemorySubscription;
use crate::coordinator::WriteCoordinator;
use crate::event::InstanceId;
use crate::feedback::{FairShareConfig, FeedbackConfig};
use crate::rate::{ProviderConfig, RateError};

const PROVIDER: &str = "demo";
/// Rows produced per acquire: one unit of upstream work.
const CHUNK: u32 = 50;

pub(super) struct Agent {
    local: LocalAgent,
    producer: JoinHandle<()>,
    /// What it produced, for the demand it tells the store.
    pub(super) demand: LocalDemand,
}

impl Agent {
    pub(super) fn start(
        index: usize,
        config: &DemoConfig,
        store: WriteCoordinator<u64>,
        subscription: MemorySubscription,
        offered: Arc<AtomicU64>,
        stop: CancellationToken,
    ) -> Result<Self, RateError> {
        let burst = (config.agent_rate / 10.0).max(f64::from(CHUNK)) as u32;
        let local = LocalAgent::start(
            PROVIDER,
            ProviderConfig::new(burst, config.agent_rate),
            &FeedbackConfig::with_policy(config.policy),
            &[store.coordinator_id().clone()],
            index as u64 + 1,
            subscription,
            stop.clone(),
        )?;
        let rate = local.rate().clone();
        let counts = Arc::new(ProducerCounts::default());
        let demand = LocalDemand {
            agent_id: InstanceId::new(format!("demo-agent-{index}"))
                .unwrap_or_else(|_| InstanceId::generate()),
            producer: Producer {
                counts: counts.clone(),
                base_rate: config.agent_rate,
            },
            share: FairShareConfig::default(),
            presence: None,
        };
        let producer = tokio::spawn(async move {
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
                // Its source always has rows: it never waits for one.
                counts.rows(u64::from(CHUNK), std::time::Duration::ZERO);
            }
        });
        Ok(Self {
            local,
            producer,
            demand,
        })
    }

    pub(super) fn scale(&self) -> f64 {
        self.local.scale()
    }

    pub(super) async fn join(self) {
        let _ = self.producer.await;
        self.local.join().await;
    }
}

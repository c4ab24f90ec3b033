//! One simulated agent: a producer paced by its demand and its real `RateCoordinator`,
//! submitting to the real stores, and its real feedback handler.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::spec::AgentSpec;
use crate::agent::LocalAgent;
use crate::bus::MemorySubscription;
use crate::coordinator::WriteCoordinator;
use crate::feedback::{FeedbackConfig, PolicyKind};
use crate::rate::{RateCoordinator, RateError};

const PROVIDER: &str = "sim";

/// What one agent is asked to do.
pub(super) struct Plan {
    pub(super) index: usize,
    pub(super) spec: AgentSpec,
    /// Each agent's share of the sinks' total capacity, rows per second.
    pub(super) share: f64,
    pub(super) policy: PolicyKind,
    pub(super) feedback: FeedbackConfig,
    pub(super) seed: u64,
}

pub(super) struct Producer {
    agent: LocalAgent,
    /// Rows this agent submitted.
    pub(super) offered: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Producer {
    pub(super) fn start(
        plan: Plan,
        stores: Vec<WriteCoordinator<u64>>,
        subscription: MemorySubscription,
        origin: Instant,
        stop: CancellationToken,
    ) -> Result<Self, RateError> {
        let writes_to: Vec<_> = stores.iter().map(|s| s.coordinator_id().clone()).collect();
        let feedback = FeedbackConfig {
            policy: plan.policy,
            ..plan.feedback.clone()
        };
        let agent = LocalAgent::start(
            PROVIDER,
            plan.spec.limits(plan.share),
            &feedback,
            &writes_to,
            plan.seed ^ (plan.index as u64 + 1),
            subscription,
            stop.clone(),
        )?;
        let offered = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(produce(
            plan,
            agent.rate().clone(),
            stores,
            offered.clone(),
            origin,
            stop,
        ));
        Ok(Self {
            agent,
            offered,
            task,
        })
    }

    /// The scale currently applied.
    pub(super) fn scale(&self) -> f64 {
        self.agent.scale()
    }

    pub(super) async fn join(self) {
        let _ = self.task.await;
        self.agent.join().await;
    }
}

/// Produces `min(demand, base × scale)`: waits for demand (upstream data not yet there),
/// then for the rate limit; demand not taken in time is not made up later (the agent polls
/// its provider less often, as a rate-limited poller does).
async fn produce(
    plan: Plan,
    rate: RateCoordinator,
    stores: Vec<WriteCoordinator<u64>>,
    offered: Arc<AtomicU64>,
    origin: Instant,
    stop: CancellationToken,
) {
    let chunk = plan.spec.chunk;
    let mut due = Instant::now();
    let mut next_item = (plan.index as u64) << 40;
    let mut turn = plan.index;
    let mut rng = fastrand::Rng::with_seed(plan.seed ^ (plan.index as u64).wrapping_mul(0x9e37));
    let noise = plan.spec.noise;
    loop {
        let t = Instant::now()
            .saturating_duration_since(origin)
            .as_secs_f64();
        let demand = plan.spec.factor_at(t) * plan.share;
        if demand <= 0.0 {
            // Nothing to do until the next load step; look again shortly.
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                () = stop.cancelled() => return,
            }
        }
        if due > Instant::now() {
            tokio::select! {
                () = sleep_until(due) => {}
                () = stop.cancelled() => return,
            }
        }
        tokio::select! {
            r = rate.acquire(PROVIDER, chunk) => if r.is_err() { return },
            () = stop.cancelled() => return,
        }
        let store = &stores[turn % stores.len()];
        turn += 1;
        for _ in 0..chunk {
            next_item += 1;
            if store.submit(next_item).await.is_err() {
                return;
            }
        }
        offered.fetch_add(u64::from(chunk), Relaxed);
        let now = Instant::now();
        let gap = f64::from(chunk) / demand * (1.0 + noise * (2.0 * rng.f64() - 1.0));
        due = (due + Duration::from_secs_f64(gap)).max(now);
    }
}

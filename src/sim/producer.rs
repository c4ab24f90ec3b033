//! One simulated agent: a producer paced by its demand and its real `RateCoordinator`,
//! submitting to the real stores, and its real feedback handler.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::scenario::PolicyChoice;
use super::spec::AgentSpec;
use crate::bus::MemorySubscription;
use crate::coordinator::WriteCoordinator;
use crate::feedback::{FeedbackHandler, HandlerStats};
use crate::rate::{ProviderConfig, RateCoordinator};
use crate::settings::{FeedbackSettings, PolicyKind};

const PROVIDER: &str = "sim";

/// What one agent is asked to do.
pub(super) struct Plan {
    pub(super) index: usize,
    pub(super) spec: AgentSpec,
    /// Each agent's share of the sinks' total capacity, rows per second.
    pub(super) share: f64,
    pub(super) policy: PolicyChoice,
    pub(super) feedback: FeedbackSettings,
    pub(super) seed: u64,
}

pub(super) struct Producer {
    rate: RateCoordinator,
    handler: Option<Arc<HandlerStats>>,
    /// Rows this agent submitted.
    pub(super) offered: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

fn kind(policy: PolicyChoice) -> Option<PolicyKind> {
    match policy {
        PolicyChoice::None => None,
        PolicyChoice::Step => Some(PolicyKind::Step),
        PolicyChoice::Hysteresis => Some(PolicyKind::Hysteresis),
        PolicyChoice::Proportional => Some(PolicyKind::Proportional),
    }
}

impl Producer {
    pub(super) fn start(
        plan: Plan,
        stores: Vec<WriteCoordinator<u64>>,
        subscription: MemorySubscription,
        origin: Instant,
        stop: CancellationToken,
    ) -> Self {
        let rate = RateCoordinator::new();
        let base = plan.spec.base_factor() * plan.share;
        let chunk = plan.spec.chunk;
        // A burst of 50 ms at the base rate, never less than one chunk.
        let burst = ((base / 20.0) as u32).max(chunk);
        // A fresh coordinator and a validated scenario: registering cannot fail.
        let _ = rate.register_provider(PROVIDER, ProviderConfig::new(burst, base));
        let mut tasks = Vec::new();
        let mut handler = None;
        if let Some(kind) = kind(plan.policy) {
            let settings = FeedbackSettings {
                policy: kind,
                ..plan.feedback.clone()
            };
            let policy = settings.build_policy(plan.seed ^ (plan.index as u64 + 1));
            let fleet = settings.fleet.clone();
            if let Ok(h) = FeedbackHandler::new(rate.clone(), [PROVIDER], policy, fleet) {
                handler = Some(h.stats());
                let stop = stop.clone();
                tasks.push(tokio::spawn(async move {
                    h.run(subscription, stop.cancelled_owned()).await;
                }));
            }
        }
        let offered = Arc::new(AtomicU64::new(0));
        tasks.push(tokio::spawn(produce(
            plan,
            rate.clone(),
            stores,
            offered.clone(),
            origin,
            stop,
        )));
        Self {
            rate,
            handler,
            offered,
            tasks,
        }
    }

    /// The scale currently applied.
    pub(super) fn scale(&self) -> f64 {
        match &self.handler {
            Some(h) => h.scale(),
            None => self.rate.scale(PROVIDER).unwrap_or(1.0),
        }
    }

    pub(super) async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
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

//! One simulated agent: a producer paced by its demand and its real `RateCoordinator`,
//! submitting to the real stores, and its real feedback handler.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::spec::AgentSpec;
use super::stream::Stream;
use crate::agent::LocalAgent;
use crate::agent::demand::ProducerCounts;
use crate::bus::MemorySubscription;
use crate::coordinator::WriteCoordinator;
use crate::event::CoordinatorId;
use crate::feedback::{FeedbackConfig, PolicyKind};
use crate::rate::{RateCoordinator, RateError};

const PROVIDER: &str = "sim";

/// Where an agent's rows go.
#[derive(Clone)]
pub(super) enum Target {
    /// Straight into these stores, round-robin (one coordinator per store).
    Stores(Vec<WriteCoordinator<u64>>),
    /// Into the write stream, which the replicas of one coordinator pull from.
    Stream(Arc<Stream>),
}

impl Target {
    /// The coordinators the rows go to (an agent follows their feedback).
    fn coordinators(&self) -> Vec<CoordinatorId> {
        match self {
            Self::Stores(stores) => stores.iter().map(|s| s.coordinator_id().clone()).collect(),
            Self::Stream(_) => vec![CoordinatorId::default()],
        }
    }
}

/// What one agent is asked to do.
pub(super) struct Plan {
    pub(super) index: usize,
    pub(super) spec: AgentSpec,
    /// Each agent's share of the sinks' total capacity, rows per second.
    pub(super) share: f64,
    pub(super) policy: PolicyKind,
    pub(super) feedback: FeedbackConfig,
    pub(super) seed: u64,
    /// When the agent is there, seconds (join, leave); always when `None`.
    pub(super) present: Option<(f64, f64)>,
}

pub(super) struct Producer {
    agent: LocalAgent,
    /// Rows this agent submitted.
    pub(super) offered: Arc<AtomicU64>,
    /// What it produced and how long it waited for demand, for the demand it reports.
    pub(super) counts: Arc<ProducerCounts>,
    /// Its base rate, rows per second.
    pub(super) base_rate: f64,
    /// When it is there.
    pub(super) present: Option<(f64, f64)>,
    task: JoinHandle<()>,
}

impl Producer {
    pub(super) fn start(
        plan: Plan,
        target: Target,
        subscription: MemorySubscription,
        origin: Instant,
        stop: CancellationToken,
    ) -> Result<Self, RateError> {
        let writes_to = target.coordinators();
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
        let counts = Arc::new(ProducerCounts::default());
        let base_rate = plan.spec.limits(plan.share).refill_rate;
        let present = plan.present;
        let counters = Counters {
            offered: offered.clone(),
            demand: counts.clone(),
        };
        let rate = agent.rate().clone();
        let task = match target {
            Target::Stores(stores) => {
                tokio::spawn(produce(plan, rate, stores, counters, origin, stop))
            }
            Target::Stream(stream) => {
                tokio::spawn(produce_queued(plan, rate, stream, counters, origin, stop))
            }
        };
        Ok(Self {
            agent,
            offered,
            counts,
            base_rate,
            present,
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

/// What a producer counts.
struct Counters {
    offered: Arc<AtomicU64>,
    demand: Arc<ProducerCounts>,
}

/// Produces `min(demand, base × scale)`: waits for demand (upstream data not yet there),
/// then for the rate limit; demand not taken in time is not made up later (the agent polls
/// its provider less often, as a rate-limited poller does). Time spent waiting for demand is
/// counted as time waiting for the source, from which the agent's demand is estimated as a
/// real agent's is.
async fn produce(
    plan: Plan,
    rate: RateCoordinator,
    stores: Vec<WriteCoordinator<u64>>,
    counters: Counters,
    origin: Instant,
    stop: CancellationToken,
) {
    let chunk = plan.spec.chunk;
    let mut due = Instant::now();
    let mut next_item = (plan.index as u64) << 40;
    let mut turn = plan.index;
    let mut rng = rng(&plan);
    loop {
        let t = seconds(origin);
        let present = plan
            .present
            .is_none_or(|(join, leave)| t >= join && t < leave);
        let demand = plan.spec.factor_at(t) * plan.share;
        if !present || demand <= 0.0 {
            // Nothing to do until the next load step; look again shortly.
            if idle(&counters, &stop).await {
                return;
            }
            continue;
        }
        let waited = Instant::now();
        if due > waited {
            tokio::select! {
                () = sleep_until(due) => {}
                () = stop.cancelled() => return,
            }
        }
        let source_wait = waited.elapsed();
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
        counters.count(chunk, source_wait);
        due = (due + gap(&plan, demand, &mut rng)).max(Instant::now());
    }
}

/// Produces from a queued source (a feed whose rows wait until taken, as a consumer's lag
/// does) into the stream: chunks arrive at the demand's pace while the agent is there, and
/// it takes them as fast as the rate limit allows. The source tells the agent its backlog,
/// from which the agent measures its demand exactly, throttled or not.
async fn produce_queued(
    plan: Plan,
    rate: RateCoordinator,
    stream: Arc<Stream>,
    counters: Counters,
    origin: Instant,
    stop: CancellationToken,
) {
    let chunk = plan.spec.chunk;
    let (mut arrived, mut taken) = (0u64, 0u64);
    let mut next = Instant::now();
    let mut rng = rng(&plan);
    counters.demand.set_backlog(0);
    loop {
        let t = seconds(origin);
        if plan.present.is_some_and(|(_, leave)| t >= leave) {
            // Gone: whatever it held leaves with it (the next agent takes the feed over).
            counters.demand.done.store(true, Relaxed);
            return;
        }
        let present = plan.present.is_none_or(|(join, _)| t >= join);
        let demand = plan.spec.factor_at(t) * plan.share;
        let now = Instant::now();
        if present && demand > 0.0 {
            while next <= now {
                arrived += 1;
                next += gap(&plan, demand, &mut rng);
            }
        }
        counters
            .demand
            .set_backlog((arrived - taken) * u64::from(chunk));
        if arrived == taken {
            let waited = Instant::now();
            if !present || demand <= 0.0 {
                if idle(&counters, &stop).await {
                    return;
                }
                next = next.max(Instant::now());
                continue;
            }
            tokio::select! {
                () = sleep_until(next) => {}
                () = stop.cancelled() => return,
            }
            counters.demand.add_source_wait(waited.elapsed());
            continue;
        }
        tokio::select! {
            r = rate.acquire(PROVIDER, chunk) => if r.is_err() { return },
            () = stop.cancelled() => return,
        }
        stream.publish(u64::from(chunk));
        taken += 1;
        counters.count(chunk, Duration::ZERO);
    }
}

/// Seconds since `origin`.
fn seconds(origin: Instant) -> f64 {
    Instant::now()
        .saturating_duration_since(origin)
        .as_secs_f64()
}

/// This agent's random numbers.
fn rng(plan: &Plan) -> fastrand::Rng {
    fastrand::Rng::with_seed(plan.seed ^ (plan.index as u64).wrapping_mul(0x9e37))
}

/// The time until the next chunk at `demand` rows per second, with the spec's noise.
fn gap(plan: &Plan, demand: f64, rng: &mut fastrand::Rng) -> Duration {
    let noise = plan.spec.noise * (2.0 * rng.f64() - 1.0);
    Duration::from_secs_f64(f64::from(plan.spec.chunk) / demand * (1.0 + noise))
}

/// Waits 100 ms with nothing to do, counted as waiting for the source; true when stopped.
async fn idle(counters: &Counters, stop: &CancellationToken) -> bool {
    let waited = Instant::now();
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(100)) => {
            counters.demand.add_source_wait(waited.elapsed());
            false
        }
        () = stop.cancelled() => true,
    }
}

impl Counters {
    fn count(&self, chunk: u32, source_wait: Duration) {
        self.demand.rows(u64::from(chunk), source_wait);
        self.offered.fetch_add(u64::from(chunk), Relaxed);
    }
}

//! One run of a scenario under one policy: real stores, bus, handlers and rate limiters
//! around simulated sinks and producers, sampled into a trace.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::{Instant, MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;

use super::producer::{Plan, Producer, Target};
use super::scenario::Scenario;
use super::sink::SimSink;
use super::spec::{AgentSpec, Window};
use crate::agent::AgentConfig;
use crate::agent::demand::{self, DemandEstimate};
use crate::bus::{BusError, FeedbackPublisher, Interest, MemoryBus};
use crate::clock::WallClock;
use crate::coordinator::{
    CoordinatorConfig, MemorySink, OverflowStrategy, StatsSnapshot, Watermark, WriteCoordinator,
};
use crate::event::{BackpressureLevel, CoordinatorId, DemandEvent, FeedbackEvent, InstanceId};
use crate::feedback::PolicyKind;

/// One point of a run's trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds since the start.
    pub t: f64,
    /// Each store's depth, rows.
    pub depth: Vec<u64>,
    /// Each store's level.
    pub level: Vec<BackpressureLevel>,
    /// The agents' mean scale.
    pub scale: f64,
    /// Rows submitted so far, all agents.
    pub offered: u64,
    /// Rows written so far, all stores.
    pub written: u64,
    /// Rows dropped so far, all stores.
    pub dropped: u64,
    /// Level changes so far, all stores.
    pub flips: u64,
    /// The sinks' total capacity at this moment, rows per second.
    pub capacity_rate: f64,
}

/// What a store ended with.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreOutcome {
    /// Final counters.
    pub stats: StatsSnapshot,
    /// Median queue wait over the run.
    pub wait_p50: Duration,
    /// 99th percentile queue wait over the run.
    pub wait_p99: Duration,
}

/// Everything one run recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The policy the agents ran.
    pub policy: PolicyKind,
    /// Samples every `sample_ms`, from 0 to the end.
    pub samples: Vec<Sample>,
    /// Rows each agent had submitted at the end of the warm-up.
    pub offered_at_warmup: Vec<u64>,
    /// Rows each agent had submitted at the end.
    pub offered_at_end: Vec<u64>,
    /// Each store's outcome.
    pub stores: Vec<StoreOutcome>,
}

/// Forwards a store's events to the bus, after the bus's delay, except during its silences.
struct Silencing {
    bus: MemoryBus,
    windows: Vec<Window>,
    origin: Instant,
    delay: Duration,
}

#[async_trait]
impl FeedbackPublisher for Silencing {
    async fn publish(&self, event: &FeedbackEvent) -> Result<(), BusError> {
        let t = Instant::now()
            .saturating_duration_since(self.origin)
            .as_secs_f64();
        if self.windows.iter().any(|w| w.contains(t)) {
            return Ok(());
        }
        if self.delay.is_zero() {
            return self.bus.publish(event).await;
        }
        // In flight on its own, so that the store's heartbeats keep their pace.
        let (bus, event, delay) = (self.bus.clone(), event.clone(), self.delay);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = bus.publish(&event).await;
        });
        Ok(())
    }
}

fn start_store(
    scenario: &Scenario,
    index: usize,
    bus: &MemoryBus,
    origin: Instant,
) -> WriteCoordinator<u64> {
    let st = &scenario.store;
    let config = CoordinatorConfig {
        coordinator_id: CoordinatorId::new(format!("store-{index}")).unwrap_or_default(),
        instance_id: InstanceId::new(format!("sim-{index}")).ok(),
        capacity: st.capacity,
        high_watermark: Watermark::Fraction(st.high_watermark),
        low_watermark: Watermark::Fraction(st.low_watermark),
        // Overload must show: a full queue drops its oldest rows, counted.
        overflow: OverflowStrategy::DropOldest,
        workers: st.workers,
        batch_size: st.batch_size,
        flush_interval_ms: st.flush_interval_ms,
        heartbeat_interval_ms: st.heartbeat_ms,
        sojourn_target_ms: st.sojourn_target_ms,
        ..CoordinatorConfig::default()
    };
    let publisher = Silencing {
        bus: bus.clone(),
        windows: st
            .silences
            .iter()
            .filter(|s| s.store == index)
            .map(|s| s.window())
            .collect(),
        origin,
        delay: Duration::from_millis(st.feedback_delay_ms),
    };
    let sink = Arc::new(SimSink::new(
        scenario.sink.clone(),
        scenario.seed ^ index as u64,
    ));
    match WriteCoordinator::builder(config, sink)
        .dead_letter(Arc::new(MemorySink::new()))
        .publisher(Arc::new(publisher))
        .start()
    {
        Ok(store) => store,
        // The scenario was validated; the store settings derived from it are valid.
        Err(e) => unreachable!("simulated store configuration is valid: {e}"),
    }
}

fn sample(
    scenario: &Scenario,
    t: f64,
    stores: &[WriteCoordinator<u64>],
    producers: &[Producer],
) -> Sample {
    let mut s = Sample {
        t,
        depth: Vec::with_capacity(stores.len()),
        level: Vec::with_capacity(stores.len()),
        scale: producers.iter().map(Producer::scale).sum::<f64>() / producers.len() as f64,
        offered: producers
            .iter()
            .map(|p| p.offered.load(std::sync::atomic::Ordering::Relaxed))
            .sum(),
        written: 0,
        dropped: 0,
        flips: 0,
        capacity_rate: scenario.sink.capacity_at(t) * stores.len() as f64,
    };
    for store in stores {
        let h = store.health();
        s.depth.push(h.depth);
        s.level.push(h.level);
        s.written += h.stats.written;
        s.dropped += h.stats.dropped();
        s.flips += h.stats.level_changes;
    }
    s
}

/// Runs `scenario` with every agent on `policy` and returns the trace. Runs on tokio's
/// clock: under paused time a minute of simulated load takes seconds.
pub async fn run(scenario: &Scenario, policy: PolicyKind) -> Trace {
    let origin = Instant::now();
    let bus = MemoryBus::new(4_096);
    let stores: Vec<WriteCoordinator<u64>> = (0..scenario.store.count)
        .map(|i| start_store(scenario, i, &bus, origin))
        .collect();
    let stop = CancellationToken::new();
    let producers = start_producers(scenario, policy, &stores, &bus, origin, &stop);
    let announcing = tokio::spawn(announce(
        scenario.agents.clone(),
        producers
            .iter()
            .map(|p| demand::Producer {
                counts: p.counts.clone(),
                base_rate: p.base_rate,
            })
            .collect(),
        stores.clone(),
        stop.clone(),
    ));
    let (samples, offered_at_warmup) = record(scenario, origin, &stores, &producers).await;
    let offered_at_end = offered(&producers);
    stop.cancel();
    let _ = announcing.await;
    for p in producers {
        p.join().await;
    }
    let mut outcomes = Vec::with_capacity(stores.len());
    for store in &stores {
        let wait_p50 = store.queue_wait_quantile(0.5);
        let wait_p99 = store.queue_wait_quantile(0.99);
        let report = store.stop(false, Duration::from_secs(5)).await;
        outcomes.push(StoreOutcome {
            stats: report.stats,
            wait_p50,
            wait_p99,
        });
    }
    Trace {
        policy,
        samples,
        offered_at_warmup,
        offered_at_end,
        stores: outcomes,
    }
}

/// Rows each producer submitted so far.
fn offered(producers: &[Producer]) -> Vec<u64> {
    producers
        .iter()
        .map(|p| p.offered.load(std::sync::atomic::Ordering::Relaxed))
        .collect()
}

/// One producer per agent, each with its share of the sinks' capacity.
fn start_producers(
    scenario: &Scenario,
    policy: PolicyKind,
    stores: &[WriteCoordinator<u64>],
    bus: &MemoryBus,
    origin: Instant,
    stop: &CancellationToken,
) -> Vec<Producer> {
    let share = scenario.total_capacity() / scenario.agents.count as f64;
    let agents = &scenario.agents;
    (0..agents.count)
        .map(|index| {
            let mut feedback = scenario.feedback.clone();
            feedback.fair_share.class = agents.class_of(index);
            feedback.fair_share.weight = agents.weight_of(index);
            let plan = Plan {
                index,
                spec: agents.clone(),
                share: share * agents.share_of(index),
                policy,
                feedback,
                seed: scenario.seed,
                present: None,
            };
            let subscription = bus.subscribe(Interest::All);
            let target = Target::Stores(stores.to_vec());
            match Producer::start(plan, target, subscription, origin, stop.clone()) {
                Ok(producer) => producer,
                // The scenario was validated, its agents' limits included.
                Err(e) => unreachable!("simulated agent limits are valid: {e}"),
            }
        })
        .collect()
}

/// Tells every store each agent's demand every `demand_ms`, as agents do over the bus (their
/// rows go round-robin to the stores, so each store gets its part), smoothed over the
/// agents' default window.
async fn announce(
    spec: AgentSpec,
    producers: Vec<demand::Producer>,
    stores: Vec<WriteCoordinator<u64>>,
    stop: CancellationToken,
) {
    let every = Duration::from_millis(spec.demand_ms);
    let window = Duration::from_millis(AgentConfig::default().demand_window_ms);
    let mut estimates: Vec<DemandEstimate> = producers
        .into_iter()
        .map(|p| DemandEstimate::new(vec![p], window))
        .collect();
    let wall = WallClock::new();
    let mut tick = interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let split = stores.len() as f64;
    for seq in 1.. {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        for (i, estimate) in estimates.iter_mut().enumerate() {
            let d = estimate.sample(Instant::now());
            let Ok(agent) = InstanceId::new(format!("agent-{i}")) else {
                continue;
            };
            for store in &stores {
                store.observe_demand(DemandEvent {
                    timestamp_ms: wall.now_ms(),
                    heartbeat_ms: u32::try_from(spec.demand_ms).unwrap_or(u32::MAX),
                    weight: spec.weight_of(i),
                    class: Some(spec.class_of(i).as_str().to_owned()),
                    ..DemandEvent::new(
                        store.coordinator_id().clone(),
                        agent.clone(),
                        seq,
                        d.offered / split,
                        d.granted / split,
                    )
                });
            }
        }
    }
}

/// Samples the run every `sample_ms` until `duration_s`; returns the samples and the rows
/// each producer had submitted at the end of the warm-up.
async fn record(
    scenario: &Scenario,
    origin: Instant,
    stores: &[WriteCoordinator<u64>],
    producers: &[Producer],
) -> (Vec<Sample>, Vec<u64>) {
    let mut tick = interval(Duration::from_millis(scenario.sample_ms));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut samples = Vec::new();
    let mut offered_at_warmup = None;
    loop {
        let at = tick.tick().await;
        let t = at.saturating_duration_since(origin).as_secs_f64();
        if offered_at_warmup.is_none() && t >= scenario.warmup_s {
            offered_at_warmup = Some(offered(producers));
        }
        samples.push(sample(scenario, t, stores, producers));
        if t + 1e-9 >= scenario.duration_s {
            break;
        }
    }
    (samples, offered_at_warmup.unwrap_or_default())
}

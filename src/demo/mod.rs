//! The embedded demo: one store and several agents in one process on the in-process bus.

mod agent;
mod nats;
mod report;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;

use crate::agent::{AgentConfig, tell_demand};
use crate::bus::{Interest, MemoryBus};
use crate::coordinator::{
    CoordinatorConfig, MemorySink, NullSink, OverflowStrategy, Throttle, WriteCoordinator,
};
use crate::feedback::PolicyKind;
use crate::rate::RateError;

pub use nats::{NatsDemoError, NatsDemoReport, run_nats};
pub use report::{DemoReport, Progress};

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Number of agents.
    pub agents: usize,
    /// Each agent's base rate, rows per second.
    pub agent_rate: f64,
    /// The sink's write capacity, rows per second.
    pub sink_rate: f64,
    /// The store's queue capacity.
    pub capacity: u64,
    /// How long load is offered.
    pub duration: Duration,
    /// The agents' policy (`none`: no feedback; default: the crate's default policy).
    pub policy: PolicyKind,
    /// How often progress is reported.
    pub progress_every: Duration,
}

impl Default for DemoConfig {
    /// Four agents at 5,000 rows/s each into a sink of 10,000 rows/s: 2× overload.
    fn default() -> Self {
        Self {
            agents: 4,
            agent_rate: 5_000.0,
            sink_rate: 10_000.0,
            capacity: 20_000,
            duration: Duration::from_secs(20),
            policy: PolicyKind::default(),
            progress_every: Duration::from_millis(500),
        }
    }
}

/// Runs the demo, calling `on_progress` every `progress_every`, and returns the summary.
///
/// The store drops its oldest rows when full (`drop_oldest`), so overload without feedback
/// shows up as dropped rows; with feedback the agents slow down instead. Fails only when an
/// agent's rate cannot be expressed (absurdly small or large).
pub async fn run(
    config: DemoConfig,
    on_progress: impl FnMut(&Progress),
) -> Result<DemoReport, RateError> {
    let bus = MemoryBus::new(1024);
    let store = start_store(&config, &bus);
    let stop = CancellationToken::new();
    let offered = Arc::new(AtomicU64::new(0));
    let mut agents = Vec::with_capacity(config.agents);
    for i in 0..config.agents {
        let subscription = bus.subscribe(Interest::All);
        match agent::Agent::start(
            i,
            &config,
            store.clone(),
            subscription,
            offered.clone(),
            stop.clone(),
        ) {
            Ok(a) => agents.push(a),
            Err(e) => {
                stop.cancel();
                store.stop(false, Duration::from_secs(1)).await;
                return Err(e);
            }
        }
    }
    // Agents tell the store their demand, as they do over the bus, so that fair shares work.
    let telling = tokio::spawn(tell_demand(
        agents.iter().map(|a| a.demand.clone()).collect(),
        vec![store.clone()],
        Duration::from_millis(AgentConfig::default().demand_interval_ms),
        stop.clone(),
    ));
    let started = Instant::now();
    let level_time = watch(&config, &store, &agents, &offered, on_progress).await;
    stop.cancel();
    let _ = telling.await;
    let elapsed = started.elapsed();
    let written_in_window = store.stats().written;
    for a in agents {
        a.join().await;
    }
    let stopped = store.stop(true, Duration::from_secs(30)).await;
    Ok(DemoReport::new(
        &config,
        elapsed,
        offered.load(Relaxed),
        written_in_window,
        stopped.stats,
        store.queue_wait_quantile(0.99),
        level_time,
    ))
}

/// The store: a queue in front of a sink throttled to `sink_rate`, dropping its oldest rows
/// when full.
fn start_store(config: &DemoConfig, bus: &MemoryBus) -> WriteCoordinator<u64> {
    let store_config = CoordinatorConfig {
        capacity: config.capacity,
        overflow: OverflowStrategy::DropOldest,
        batch_size: 500,
        workers: 2,
        heartbeat_interval_ms: 500,
        flush_interval_ms: 50,
        ..CoordinatorConfig::default()
    };
    let sink = Arc::new(Throttle::new(NullSink, config.sink_rate));
    match WriteCoordinator::builder(store_config, sink)
        .dead_letter(Arc::new(MemorySink::new()))
        .publisher(Arc::new(bus.clone()))
        .start()
    {
        Ok(store) => store,
        Err(e) => unreachable!("the demo's own store configuration is valid: {e}"),
    }
}

/// Samples the loop every `progress_every` for `duration`; returns the time spent at each
/// level.
async fn watch(
    config: &DemoConfig,
    store: &WriteCoordinator<u64>,
    agents: &[agent::Agent],
    offered: &AtomicU64,
    mut on_progress: impl FnMut(&Progress),
) -> [Duration; 3] {
    let started = Instant::now();
    let mut tick = interval(config.progress_every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    let (mut last_offered, mut last_written, mut last_at) = (0, 0, started);
    let mut level_time = [Duration::ZERO; 3];
    while started.elapsed() < config.duration {
        tick.tick().await;
        let now = Instant::now();
        let stats = store.stats();
        let total_offered = offered.load(Relaxed);
        let dt = now.duration_since(last_at).as_secs_f64().max(1e-9);
        let health = store.health();
        level_time[usize::from(health.level.code())] += now.duration_since(last_at);
        on_progress(&Progress {
            elapsed: now.duration_since(started),
            level: health.level,
            depth: health.depth,
            capacity: health.capacity,
            scale: agents.iter().map(agent::Agent::scale).sum::<f64>() / agents.len().max(1) as f64,
            offered_per_sec: (total_offered - last_offered) as f64 / dt,
            written_per_sec: (stats.written - last_written) as f64 / dt,
            dropped: stats.dropped(),
        });
        (last_offered, last_written, last_at) = (total_offered, stats.written, now);
    }
    level_time
}

#[cfg(test)]
mod tests;

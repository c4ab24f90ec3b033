//! In-process agents telling in-process stores their demand, as agents do over the bus: for
//! the demo and the simulator, whose stores divide their budgets by it.

use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;

use super::AgentConfig;
use super::demand::{DemandEstimate, Producer};
use crate::clock::WallClock;
use crate::coordinator::WriteCoordinator;
use crate::event::{DemandEvent, InstanceId};
use crate::feedback::FairShareConfig;

/// One in-process agent, as its demand events describe it.
#[derive(Debug, Clone)]
pub struct LocalDemand {
    /// Its name.
    pub agent_id: InstanceId,
    /// What its producer did.
    pub producer: Producer,
    /// Its class and weight.
    pub share: FairShareConfig,
    /// When it is there, seconds after the telling starts (join, leave); always when `None`.
    pub presence: Option<(f64, f64)>,
}

/// Tells every store in `stores` each agent's demand every `every` until `stop`, smoothed
/// over the agents' default window. An agent's rows go round-robin to the stores, so each
/// store hears its part. An agent not there yet says nothing; one that left says goodbye
/// once (`leaving`), so its demand goes at once.
pub async fn tell_demand(
    agents: Vec<LocalDemand>,
    stores: Vec<WriteCoordinator<u64>>,
    every: Duration,
    stop: CancellationToken,
) {
    let window = Duration::from_millis(AgentConfig::default().demand_window_ms);
    let mut estimates: Vec<DemandEstimate> = agents
        .iter()
        .map(|a| DemandEstimate::new(vec![a.producer.clone()], window))
        .collect();
    let heartbeat_ms = u32::try_from(every.as_millis()).unwrap_or(u32::MAX);
    let wall = WallClock::new();
    let mut tick = interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let split = stores.len() as f64;
    let origin = Instant::now();
    let mut gone = vec![false; agents.len()];
    for seq in 1.. {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let t = origin.elapsed().as_secs_f64();
        for ((agent, estimate), gone) in agents.iter().zip(&mut estimates).zip(&mut gone) {
            let d = estimate.sample(Instant::now());
            let (joined, left) = agent
                .presence
                .map_or((true, false), |(join, leave)| (t >= join, t >= leave));
            if !joined || *gone {
                continue;
            }
            *gone = left;
            for store in &stores {
                store.observe_demand(DemandEvent {
                    timestamp_ms: wall.now_ms(),
                    heartbeat_ms,
                    weight: agent.share.weight,
                    class: Some(agent.share.class.as_str().to_owned()),
                    leaving: left,
                    ..DemandEvent::new(
                        store.coordinator_id().clone(),
                        agent.agent_id.clone(),
                        seq,
                        d.offered / split,
                        d.granted / split,
                    )
                });
            }
        }
    }
}

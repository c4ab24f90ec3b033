//! One run with both loops closed: agents publishing into a shared stream and obeying the
//! replicas' feedback, the bridge's view of demand and capacity, and a model of KEDA and the
//! HPA scaling the replicas by one ScaledObject's triggers.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;

use super::fleet::Fleet;
use super::producer::{Plan, Producer, Target};
use super::scenario::Scenario;
use super::stream::Stream;
use crate::agent::demand::{DemandEstimate, Producer as Meter};
use crate::autoscale::{Autoscaler, Query, Reading, Replicas, Scaler, Series};
use crate::bridge::FleetState;
use crate::bus::{FeedbackSubscription, Interest, MemoryBus};
use crate::clock::WallClock;
use crate::coordinator::StatsSnapshot;
use crate::event::{CoordinatorId, DemandEvent, InstanceId};
use crate::feedback::PolicyKind;
use crate::fleet::{CoordinatorView, FleetConfig};

/// How often the bridge hears the agents' demand (their `demand_interval_ms`).
const DEMAND_EVERY: Duration = Duration::from_secs(1);
/// How often the autoscaler model is asked whether a loop is due.
const SCALER_EVERY: Duration = Duration::from_secs(1);

/// One point of a fleet run.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSample {
    /// Seconds since the start.
    pub t: f64,
    /// Replicas asked for (running and starting).
    pub replicas: usize,
    /// Replicas running.
    pub ready: usize,
    /// Replicas the true demand needs, with the bridge's headroom.
    pub needed: usize,
    /// The bridge's `coordinator_desired_replicas`, when it has a view.
    pub desired: Option<u64>,
    /// The bridge's measured capacity of one replica, rows per second, once measured.
    pub replica_capacity: Option<f64>,
    /// The demand the agents report, rows per second.
    pub demand: f64,
    /// The demand the agents really have, rows per second.
    pub true_demand: f64,
    /// The replicas' capacity now, rows per second.
    pub capacity: f64,
    /// The present agents' mean scale.
    pub scale: f64,
    /// The deepest replica's depth (its queue and the stream), rows.
    pub depth: u64,
    /// Rows written so far, all replicas.
    pub written: u64,
}

/// Everything one fleet run recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetTrace {
    /// The ScaledObject's name in the scenario.
    pub trigger_set: String,
    /// The agents' policy.
    pub policy: PolicyKind,
    /// Samples every `sample_ms`.
    pub samples: Vec<FleetSample>,
    /// Every replica's final counters.
    pub stores: Vec<StatsSnapshot>,
    /// The worst replica's 99th percentile queue wait.
    pub wait_p99: Duration,
}

/// The bridge's state, fed by the bus and the agents' demand.
type Bridge = Arc<Mutex<FleetState>>;

fn lock(bridge: &Bridge) -> std::sync::MutexGuard<'_, FleetState> {
    bridge.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `scenario` (which has an `autoscale` section) with the agents on `policy` and the
/// replicas scaled by `model`.
pub async fn run_fleet(
    scenario: &Scenario,
    policy: PolicyKind,
    trigger_set: &str,
    mut model: Autoscaler,
) -> FleetTrace {
    let spec = scenario.autoscale.clone().unwrap_or_default();
    let origin = Instant::now();
    let bus = MemoryBus::new(16_384);
    let stream = Arc::new(Stream::default());
    let pod_start = Duration::from_secs_f64(spec.pod_start_s);
    let mut fleet = Fleet::new(
        scenario,
        &bus,
        stream.clone(),
        spec.initial_replicas,
        pod_start,
    );
    let stop = CancellationToken::new();
    let bridge: Bridge = Arc::new(Mutex::new(
        FleetState::new(FleetConfig::bridge(), WallClock::new()).with_scaling(spec.scaling.clone()),
    ));
    let listening = tokio::spawn(listen(
        bus.subscribe(Interest::All),
        bridge.clone(),
        stop.clone(),
    ));
    let producers = start_agents(scenario, policy, &bus, &stream, origin, &stop);
    let mut meters = Meters::new(&producers);
    let mut samples = Vec::new();
    let mut tick = interval(Duration::from_millis(scenario.sample_ms));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let (mut next_demand, mut next_scale) = (origin, origin);
    loop {
        let at = tick.tick().await;
        let t = at.saturating_duration_since(origin).as_secs_f64();
        fleet.tick(at);
        if at >= next_demand {
            meters.publish(&producers, &bridge, &fleet, at, t);
            next_demand = at + DEMAND_EVERY;
        }
        if at >= next_scale {
            let readings = readings(&model, &fleet, &bridge, &stream, spec.rows_per_message);
            let replicas = fleet.replicas() as u32;
            let decision = model.poll(t, Replicas::new(replicas, fleet.ready() as u32), &readings);
            fleet.scale_to(decision.desired as usize, at);
            next_scale = at + SCALER_EVERY;
        }
        let sources = Sources {
            fleet: &fleet,
            producers: &producers,
            bridge: &bridge,
            meters: &meters,
        };
        samples.push(sample(scenario, spec.scaling.headroom, t, &sources));
        if t + 1e-9 >= scenario.duration_s {
            break;
        }
    }
    stop.cancel();
    for p in producers {
        p.join().await;
    }
    let wait_p99 = fleet
        .coordinators()
        .map(|c| c.queue_wait_quantile(0.99))
        .max()
        .unwrap_or_default();
    let stores = fleet.stop().await;
    let _ = listening.await;
    FleetTrace {
        trigger_set: trigger_set.to_owned(),
        policy,
        samples,
        stores,
        wait_p99,
    }
}

/// The bridge's subscription: every replica's feedback, with expiry.
async fn listen(
    mut subscription: crate::bus::MemorySubscription,
    bridge: Bridge,
    stop: CancellationToken,
) {
    let mut tidy = interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            delivery = subscription.next() => match delivery {
                Some(d) => {
                    lock(&bridge).observe(d.event, Instant::now());
                }
                None => return,
            },
            _ = tidy.tick() => {
                let now = Instant::now();
                let mut state = lock(&bridge);
                state.expire(now);
                state.expire_demand(now);
            }
            () = stop.cancelled() => return,
        }
    }
}

/// One agent per `agents.count`, publishing into the stream; the last `churn.agents` of
/// them are present only between `churn.join_s` and `churn.leave_s`.
fn start_agents(
    scenario: &Scenario,
    policy: PolicyKind,
    bus: &MemoryBus,
    stream: &Arc<Stream>,
    origin: Instant,
    stop: &CancellationToken,
) -> Vec<Producer> {
    let ag = &scenario.agents;
    let share = scenario.total_capacity() / ag.count as f64;
    (0..ag.count)
        .map(|index| {
            let present = ag.presence(index);
            let plan = Plan {
                index,
                spec: ag.clone(),
                share,
                policy,
                feedback: scenario.feedback.clone(),
                seed: scenario.seed,
                present,
            };
            let target = Target::Stream(stream.clone());
            match Producer::start(
                plan,
                target,
                bus.subscribe(Interest::All),
                origin,
                stop.clone(),
            ) {
                Ok(p) => p,
                // The scenario was validated, its agents' limits included.
                Err(e) => unreachable!("simulated agent limits are valid: {e}"),
            }
        })
        .collect()
}

/// Each agent's demand estimate and its demand events, as a real agent publishes them.
struct Meters {
    estimates: Vec<DemandEstimate>,
    seq: Vec<u64>,
    last: Vec<f64>,
}

impl Meters {
    fn new(producers: &[Producer]) -> Self {
        let estimates = producers
            .iter()
            .map(|p| {
                let meter = Meter {
                    counts: p.counts.clone(),
                    base_rate: p.base_rate,
                };
                DemandEstimate::new(vec![meter], Duration::from_secs(5))
            })
            .collect();
        Self {
            estimates,
            seq: vec![0; producers.len()],
            last: vec![0.0; producers.len()],
        }
    }

    /// Samples every present agent's demand and hands it to the bridge and to every running
    /// replica (each hears the coordinator's whole demand, as on the bus); an agent that left
    /// says so once.
    fn publish(
        &mut self,
        producers: &[Producer],
        bridge: &Bridge,
        fleet: &Fleet,
        now: Instant,
        t: f64,
    ) {
        let wall = WallClock::new();
        for (i, p) in producers.iter().enumerate() {
            let (joined, left) = match p.present {
                Some((join, leave)) => (t >= join, t >= leave),
                None => (true, false),
            };
            if !joined || (left && self.seq[i] == u64::MAX) {
                continue;
            }
            let d = self.estimates[i].sample(now);
            self.last[i] = if left { 0.0 } else { d.offered };
            let seq = self.seq[i] + 1;
            self.seq[i] = if left { u64::MAX } else { seq };
            let agent =
                InstanceId::new(format!("agent-{i}")).unwrap_or_else(|_| InstanceId::generate());
            let event = DemandEvent {
                timestamp_ms: wall.now_ms(),
                heartbeat_ms: DEMAND_EVERY.as_millis() as u32,
                leaving: left,
                ..DemandEvent::new(CoordinatorId::default(), agent, seq, d.offered, d.granted)
            };
            for replica in fleet.coordinators() {
                replica.observe_demand(event.clone());
            }
            lock(bridge).observe_demand(event, now);
        }
    }

    /// The demand the agents last reported, rows per second.
    fn reported(&self) -> f64 {
        self.last.iter().sum()
    }
}

/// The coordinator's view at the bridge.
fn view(bridge: &Bridge) -> Option<CoordinatorView> {
    lock(bridge).view(&CoordinatorId::default())
}

/// What Prometheus would hold now: every running replica's own series and the bridge's.
fn series(fleet: &Fleet, view: Option<&CoordinatorView>) -> Vec<Series> {
    let label = [("coordinator_id", "default")];
    let mut out = Vec::new();
    for c in fleet.coordinators() {
        let h = c.health();
        out.push(Series::new(
            "coordinator_queue_depth",
            &label,
            h.depth as f64,
        ));
        for (name, level) in [
            (
                "coordinator_backpressure_ok",
                crate::event::BackpressureLevel::Ok,
            ),
            (
                "coordinator_backpressure_soft",
                crate::event::BackpressureLevel::Soft,
            ),
            (
                "coordinator_backpressure_hard",
                crate::event::BackpressureLevel::Hard,
            ),
        ] {
            out.push(Series::new(
                name,
                &label,
                f64::from(u8::from(h.level == level)),
            ));
        }
    }
    if let Some(v) = view {
        for (name, value) in [
            ("coordinator_queue_depth", v.queue_depth as f64),
            (
                "coordinator_backpressure_hard",
                f64::from(v.backpressure_hard),
            ),
            ("coordinator_desired_replicas", v.desired_replicas as f64),
            (
                "coordinator_demand_rows_per_second",
                v.demand_rows_per_second,
            ),
        ] {
            out.push(Series::new(name, &label, value));
        }
    }
    out
}

/// One reading per trigger of `model`'s ScaledObject, as its scaler would get it.
fn readings(
    model: &Autoscaler,
    fleet: &Fleet,
    bridge: &Bridge,
    stream: &Stream,
    rows_per_message: u64,
) -> Vec<Reading> {
    let view = view(bridge);
    let series = series(fleet, view.as_ref());
    let in_queues: u64 = fleet.coordinators().map(|c| c.health().queued).sum();
    let lag_messages = (stream.pending() + in_queues).div_ceil(rows_per_message.max(1));
    model
        .object()
        .triggers
        .iter()
        .map(|t| match &t.scaler {
            Scaler::Prometheus { query, .. } => match Query::parse(query) {
                Ok(q) => q.reading(&series),
                Err(_) => Reading::Failed,
            },
            Scaler::NatsJetStream { .. } => Reading::Value(lag_messages as f64),
            Scaler::MetricsApi { value_location, .. } => view
                .as_ref()
                .and_then(|v| serde_json::to_value(v).ok())
                .and_then(|json| {
                    json.pointer(&format!("/{}", value_location.replace('.', "/")))
                        .and_then(serde_json::Value::as_f64)
                })
                .map_or(Reading::Failed, Reading::Value),
        })
        .collect()
}

/// What a sample reads.
struct Sources<'a> {
    fleet: &'a Fleet,
    producers: &'a [Producer],
    bridge: &'a Bridge,
    meters: &'a Meters,
}

/// The fleet at `t`; `headroom` turns the true demand into the needed count as the bridge
/// does (taken once per run, not cloned out of the scenario at every sample).
fn sample(scenario: &Scenario, headroom: f64, t: f64, at: &Sources<'_>) -> FleetSample {
    let Sources {
        fleet,
        producers,
        bridge,
        meters,
    } = *at;
    let share = scenario.total_capacity() / scenario.agents.count as f64;
    let present: Vec<&Producer> = producers
        .iter()
        .filter(|p| p.present.is_none_or(|(join, leave)| t >= join && t < leave))
        .collect();
    let true_demand = scenario.agents.factor_at(t) * share * present.len() as f64;
    let per_replica = scenario.sink.rows_per_sec;
    let needed = ((true_demand * headroom / per_replica).ceil() as usize).max(1);
    let view = view(bridge);
    let (mut depth, mut written) = (0, 0);
    for c in fleet.coordinators() {
        let h = c.health();
        depth = depth.max(h.depth);
        written += h.stats.written;
    }
    FleetSample {
        t,
        replicas: fleet.replicas(),
        ready: fleet.ready(),
        needed,
        desired: view.as_ref().map(|v| v.desired_replicas),
        replica_capacity: view
            .as_ref()
            .and_then(|v| v.replica_capacity_rows_per_second),
        demand: meters.reported(),
        true_demand,
        capacity: scenario.sink.capacity_at(t) * fleet.ready() as f64,
        scale: if present.is_empty() {
            1.0
        } else {
            present.iter().map(|p| p.scale()).sum::<f64>() / present.len() as f64
        },
        depth,
        written,
    }
}

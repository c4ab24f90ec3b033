//! `CoordinatorView`: one coordinator's instances merged into what `/metrics`, the JSON API
//! and the bus republish show.

use serde::Serialize;

use super::{DemandTotals, Scaling, ScalingConfig};
use crate::event::{BackpressureLevel, CoordinatorId, FairRates, FeedbackEvent};

/// One coordinator as the bridge sees it: what `/metrics`, the JSON API and the bus
/// republish all show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoordinatorView {
    /// The coordinator.
    pub coordinator_id: CoordinatorId,
    /// The most severe level among its instances.
    pub level: BackpressureLevel,
    /// 1 if `level` is ok, else 0.
    pub backpressure_ok: u8,
    /// 1 if `level` is soft, else 0.
    pub backpressure_soft: u8,
    /// 1 if `level` is hard, else 0.
    pub backpressure_hard: u8,
    /// The deepest instance's reported depth (what `max(coordinator_queue_depth)` over the
    /// store pods would give).
    pub queue_depth: u64,
    /// The sum of the instances' reported depths.
    pub fleet_queue_depth: u64,
    /// The write consumer's `num_pending + num_ack_pending`, when known.
    pub consumer_lag: Option<u64>,
    /// `consumer_lag` when known (it counts every row not yet acknowledged, including those
    /// in the stores' memory), else `fleet_queue_depth`.
    pub backlog: u64,
    /// The sum of the instances' capacities.
    pub capacity: u64,
    /// The highest depth / capacity among the instances.
    pub utilization: f64,
    /// Instances in the view (live and silent).
    pub instances: u64,
    /// Instances that missed their heartbeats.
    pub silent_instances: u64,
    /// Timestamp of the newest event, milliseconds since the Unix epoch.
    pub last_event_ms: u64,
    /// Rows per second the coordinator's agents offered before throttling.
    pub demand_rows_per_second: f64,
    /// Rows per second they were granted.
    pub granted_rows_per_second: f64,
    /// Demand not granted: what the fast loop holds back.
    pub unserved_rows_per_second: f64,
    /// Rows per second one replica writes while busy (the mean of the live instances'
    /// measured service rates), when any has been measured.
    pub replica_capacity_rows_per_second: Option<f64>,
    /// The fair rates the live instances grant, summed, when every live instance publishes
    /// them.
    pub fair_rates: Option<FairRates>,
    /// Replicas the demand needs ([`Scaling::compute`]).
    pub desired_replicas: u64,
    /// How `desired_replicas` was computed, with its inputs.
    pub scaling: Scaling,
}

impl CoordinatorView {
    /// Merges `instances` (each event with whether its instance is silent); `None` when
    /// there are none.
    pub fn of<'a>(
        coordinator_id: CoordinatorId,
        instances: impl IntoIterator<Item = (&'a FeedbackEvent, bool)>,
        consumer_lag: Option<u64>,
    ) -> Option<Self> {
        let mut view: Option<Self> = None;
        let (mut rates, mut measured) = (0.0, 0u32);
        // The sum of the live instances' fair rates, or `None` once one has none.
        let mut fair = Some(FairRates::default());
        for (e, silent) in instances {
            let v = view.get_or_insert_with(|| Self {
                coordinator_id: coordinator_id.clone(),
                level: BackpressureLevel::Ok,
                backpressure_ok: 0,
                backpressure_soft: 0,
                backpressure_hard: 0,
                queue_depth: 0,
                fleet_queue_depth: 0,
                consumer_lag,
                backlog: 0,
                capacity: 0,
                utilization: 0.0,
                instances: 0,
                silent_instances: 0,
                last_event_ms: 0,
                demand_rows_per_second: 0.0,
                granted_rows_per_second: 0.0,
                unserved_rows_per_second: 0.0,
                replica_capacity_rows_per_second: None,
                fair_rates: None,
                desired_replicas: 0,
                scaling: Scaling::compute(&ScalingConfig::default(), 0.0, 0, None, 0),
            });
            if let (Some(rate), false) = (e.service_rate, silent) {
                rates += rate;
                measured += 1;
            }
            if !silent {
                fair = match (fair, e.fair_rates) {
                    (Some(mut sum), Some(r)) => {
                        sum.add(&r, 1.0);
                        Some(sum)
                    }
                    _ => None,
                };
            }
            v.level = v.level.max(e.level);
            v.queue_depth = v.queue_depth.max(e.queue_depth);
            v.fleet_queue_depth = v.fleet_queue_depth.saturating_add(e.queue_depth);
            v.capacity = v.capacity.saturating_add(e.capacity);
            v.utilization = v.utilization.max(e.utilization());
            v.instances += 1;
            v.silent_instances += u64::from(silent);
            v.last_event_ms = v.last_event_ms.max(e.timestamp_ms);
        }
        view.map(|mut v| {
            v.backpressure_ok = u8::from(v.level == BackpressureLevel::Ok);
            v.backpressure_soft = u8::from(v.level == BackpressureLevel::Soft);
            v.backpressure_hard = u8::from(v.level == BackpressureLevel::Hard);
            v.backlog = v.consumer_lag.unwrap_or(v.fleet_queue_depth);
            v.replica_capacity_rows_per_second =
                (measured > 0).then(|| rates / f64::from(measured));
            v.fair_rates = fair.filter(|_| v.instances > v.silent_instances);
            v
        })
    }

    /// Adds the agents' `demand` and the replicas it needs.
    ///
    /// The backlog the formula drains is the deepest instance's depth: its own queue plus the
    /// rows still in the stream, which every replica counts (a sum would count them once per
    /// replica).
    pub fn with_demand(mut self, demand: DemandTotals, config: &ScalingConfig) -> Self {
        self.demand_rows_per_second = demand.offered;
        self.granted_rows_per_second = demand.granted;
        self.unserved_rows_per_second = demand.unserved();
        let live = self.instances - self.silent_instances;
        self.scaling = Scaling::compute(
            config,
            demand.offered,
            self.queue_depth,
            self.replica_capacity_rows_per_second,
            live,
        );
        self.desired_replicas = self.scaling.desired_replicas;
        self
    }
}

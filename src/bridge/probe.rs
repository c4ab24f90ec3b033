//! What the bridge reports to `/metrics`: every coordinator's merged view (`coordinator_*`)
//! and its own counters, read at each scrape.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use super::lag::lock;
use super::state::{BridgeStats, FleetState};
use crate::event::{BackpressureLevel, Class};
use crate::fleet::CoordinatorView;
use crate::telemetry::{self as t, Probe, Readings};

/// The bridge's fleet view and counters, as a probe.
#[derive(Debug, Clone)]
pub struct BridgeProbe {
    state: Arc<Mutex<FleetState>>,
    stats: Arc<BridgeStats>,
}

impl BridgeProbe {
    /// Reports `state`'s views and `stats` at each scrape.
    pub fn new(state: Arc<Mutex<FleetState>>, stats: Arc<BridgeStats>) -> Self {
        Self { state, stats }
    }
}

fn read_view(v: &CoordinatorView, out: &mut Readings) {
    let label = [("coordinator_id", v.coordinator_id.as_str())];
    let flag = |level| f64::from(u8::from(v.level == level));
    for (metric, value) in [
        (&t::QUEUE_DEPTH, v.queue_depth as f64),
        (&t::BACKPRESSURE_OK, flag(BackpressureLevel::Ok)),
        (&t::BACKPRESSURE_SOFT, flag(BackpressureLevel::Soft)),
        (&t::BACKPRESSURE_HARD, flag(BackpressureLevel::Hard)),
        (
            &t::COORDINATOR_FLEET_QUEUE_DEPTH,
            v.fleet_queue_depth as f64,
        ),
        (&t::COORDINATOR_BACKLOG, v.backlog as f64),
        (&t::COORDINATOR_CAPACITY, v.capacity as f64),
        (&t::COORDINATOR_UTILIZATION, v.utilization),
        (&t::COORDINATOR_INSTANCES, v.instances as f64),
        (&t::COORDINATOR_SILENT_INSTANCES, v.silent_instances as f64),
        (
            &t::COORDINATOR_DEMAND_ROWS_PER_SECOND,
            v.demand_rows_per_second,
        ),
        (
            &t::COORDINATOR_GRANTED_ROWS_PER_SECOND,
            v.granted_rows_per_second,
        ),
        (
            &t::COORDINATOR_UNSERVED_ROWS_PER_SECOND,
            v.unserved_rows_per_second,
        ),
        (&t::COORDINATOR_DESIRED_REPLICAS, v.desired_replicas as f64),
    ] {
        out.set(metric, &label, value);
    }
    // Absent rather than zero while unknown, so that a query never reads a lag of 0 that
    // nobody measured.
    if let Some(lag) = v.consumer_lag {
        out.set(&t::COORDINATOR_CONSUMER_LAG, &label, lag as f64);
    }
    if let Some(capacity) = v.replica_capacity_rows_per_second {
        out.set(
            &t::COORDINATOR_REPLICA_CAPACITY_ROWS_PER_SECOND,
            &label,
            capacity,
        );
    }
    if let Some(rates) = v.fair_rates {
        for class in Class::ALL {
            let labels = [
                ("coordinator_id", v.coordinator_id.as_str()),
                ("class", class.as_str()),
            ];
            out.set(
                &t::COORDINATOR_FAIR_RATE_ROWS_PER_SECOND,
                &labels,
                rates.get(class),
            );
        }
    }
}

impl Probe for BridgeProbe {
    fn claims(&self) -> Vec<String> {
        vec!["bridge".into()]
    }

    fn read(&self, out: &mut Readings) {
        for view in lock(&self.state).views() {
            read_view(&view, out);
        }
        let load = |c: &AtomicU64| c.load(Relaxed) as f64;
        let s = &self.stats;
        out.set(&t::BRIDGE_PUBLISHED_TOTAL, &[], load(&s.published));
        out.set(
            &t::BRIDGE_PUBLISH_ERRORS_TOTAL,
            &[],
            load(&s.publish_errors),
        );
        out.set(
            &t::BRIDGE_CONSUMER_LAG_ERRORS_TOTAL,
            &[],
            load(&s.lag_errors),
        );
    }
}

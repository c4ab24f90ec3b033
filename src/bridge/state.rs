//! The bridge's state: the fleet view of every coordinator's instances, each coordinator's
//! consumer lag, and the bridge's own counters. Pure apart from the wall clock.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use tokio::time::Instant;

use crate::clock::WallClock;
use crate::event::{CoordinatorId, DemandEvent, FeedbackEvent};
use crate::fleet::{CoordinatorView, DemandView, FleetConfig, FleetView, Observed, ScalingConfig};

/// Counters of the bridge's own work, shared with the metrics.
#[derive(Debug, Default)]
pub struct BridgeStats {
    /// Coordinator states republished on the bus.
    pub published: AtomicU64,
    /// Republishes the bus refused.
    pub publish_errors: AtomicU64,
    /// Failed consumer-lag reads (a missing consumer is not counted).
    pub lag_errors: AtomicU64,
}

/// Every coordinator instance's latest state, ordered, aged and expired like an agent's view,
/// plus each coordinator's consumer lag.
///
/// With the bridge's defaults ([`FleetConfig::bridge`]), silent instances count with their
/// last state until `forget_after_ms`.
#[derive(Debug, Clone)]
pub struct FleetState {
    view: FleetView,
    lags: BTreeMap<CoordinatorId, u64>,
    demand: DemandView,
    scaling: ScalingConfig,
}

impl FleetState {
    /// An empty fleet.
    pub fn new(fleet: FleetConfig, wall: WallClock) -> Self {
        Self {
            view: FleetView::new(fleet, wall),
            lags: BTreeMap::new(),
            demand: DemandView::new(),
            scaling: ScalingConfig::default(),
        }
    }

    /// Computes desired replicas with `scaling` (default: [`ScalingConfig::default`]).
    pub fn with_scaling(mut self, scaling: ScalingConfig) -> Self {
        self.scaling = scaling;
        self
    }

    /// Takes in one event received at `now`.
    pub fn observe(&mut self, event: FeedbackEvent, now: Instant) -> Observed {
        self.view.observe(event, now)
    }

    /// Forgets demand not refreshed in time.
    pub fn expire_demand(&mut self, now: Instant) {
        self.demand.expire(now);
    }

    /// Takes in one agent's demand received at `now`.
    pub fn observe_demand(&mut self, event: DemandEvent, now: Instant) -> Observed {
        self.demand.observe(event, now)
    }

    /// Marks instances silent and drops expired ones and expired demand; true if anything
    /// changed.
    pub fn expire(&mut self, now: Instant) -> bool {
        let changed = self.view.expire(now);
        if changed {
            let view = &self.view;
            self.lags.retain(|id, _| view.knows(id));
        }
        changed
    }

    /// When [`expire`](Self::expire) next has work.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.view.next_expiry()
    }

    /// Records the write consumer's lag of `coordinator` (`None`: unknown).
    pub fn set_consumer_lag(&mut self, coordinator: &CoordinatorId, lag: Option<u64>) {
        match lag {
            Some(lag) => {
                self.lags.insert(coordinator.clone(), lag);
            }
            None => {
                self.lags.remove(coordinator);
            }
        }
    }

    /// Coordinators with at least one instance, sorted.
    pub fn coordinators(&self) -> Vec<CoordinatorId> {
        let mut ids: Vec<CoordinatorId> = self.view.coordinators().cloned().collect();
        ids.sort();
        ids
    }

    /// One coordinator's state, if it has instances; computed from its own instances only,
    /// so that it costs the same in a fleet of any size.
    pub fn view(&self, coordinator: &CoordinatorId) -> Option<CoordinatorView> {
        CoordinatorView::of(
            coordinator.clone(),
            self.view.instances_of(coordinator),
            self.lags.get(coordinator).copied(),
        )
        .map(|v| v.with_demand(self.demand.totals(coordinator), &self.scaling))
    }

    /// Every coordinator's state, sorted by id.
    pub fn views(&self) -> Vec<CoordinatorView> {
        let mut ids: Vec<&CoordinatorId> = self.view.coordinators().collect();
        ids.sort();
        ids.into_iter().filter_map(|id| self.view(id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::event::{BackpressureLevel, InstanceId};

    fn event(
        coordinator: &str,
        instance: &str,
        seq: u64,
        level: BackpressureLevel,
        depth: u64,
    ) -> FeedbackEvent {
        let mut e = FeedbackEvent::new(
            CoordinatorId::new(coordinator).unwrap(),
            InstanceId::new(instance).unwrap(),
            1,
            seq,
            1_000_000,
            level,
            depth,
            10_000,
        );
        e.heartbeat_ms = 1_000;
        e
    }

    fn fleet() -> FleetState {
        let config = FleetConfig {
            max_event_age_ms: 0,
            ..FleetConfig::bridge()
        };
        FleetState::new(config, WallClock::anchored_at(Duration::from_secs(1_000)))
    }

    fn id(s: &str) -> CoordinatorId {
        CoordinatorId::new(s).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn merges_instances_per_coordinator() {
        let mut f = fleet();
        let now = Instant::now();
        f.observe(event("a", "p1", 1, BackpressureLevel::Ok, 1_000), now);
        f.observe(event("a", "p2", 1, BackpressureLevel::Hard, 9_000), now);
        f.observe(event("b", "p1", 1, BackpressureLevel::Soft, 6_000), now);
        let views = f.views();
        assert_eq!(views.len(), 2);
        let a = &views[0];
        assert_eq!(a.coordinator_id, id("a"));
        assert_eq!(a.level, BackpressureLevel::Hard);
        assert_eq!(
            (a.backpressure_ok, a.backpressure_soft, a.backpressure_hard),
            (0, 0, 1)
        );
        assert_eq!(a.queue_depth, 9_000);
        assert_eq!(a.fleet_queue_depth, 10_000);
        assert_eq!(a.backlog, 10_000);
        assert_eq!(a.capacity, 20_000);
        assert_eq!(a.instances, 2);
        assert_eq!(a.utilization, 0.9);
        assert_eq!(views[1].level, BackpressureLevel::Soft);
        assert_eq!(f.view(&id("b")), Some(views[1].clone()));
        assert_eq!(f.view(&id("c")), None);
    }

    #[tokio::test(start_paused = true)]
    async fn consumer_lag_replaces_the_reported_depths_as_backlog() {
        let mut f = fleet();
        f.observe(
            event("a", "p1", 1, BackpressureLevel::Ok, 300),
            Instant::now(),
        );
        f.set_consumer_lag(&id("a"), Some(1_200));
        let v = f.view(&id("a")).unwrap();
        assert_eq!(
            (v.consumer_lag, v.backlog, v.queue_depth),
            (Some(1_200), 1_200, 300)
        );
        f.set_consumer_lag(&id("a"), None);
        assert_eq!(f.view(&id("a")).unwrap().backlog, 300);
    }

    #[tokio::test(start_paused = true)]
    async fn silent_instances_hold_their_state_until_they_expire() {
        let mut f = fleet();
        f.observe(
            event("a", "p1", 1, BackpressureLevel::Hard, 9_000),
            Instant::now(),
        );
        f.set_consumer_lag(&id("a"), Some(5));
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(f.expire(Instant::now()));
        let v = f.view(&id("a")).unwrap();
        assert_eq!((v.silent_instances, v.level), (1, BackpressureLevel::Hard));
        tokio::time::sleep(Duration::from_secs(7)).await;
        assert!(f.expire(Instant::now()));
        assert!(f.views().is_empty());
        assert!(f.coordinators().is_empty());
        // The lag of a coordinator that left is forgotten with it.
        f.observe(
            event("a", "p1", 2, BackpressureLevel::Ok, 0),
            Instant::now(),
        );
        assert_eq!(f.view(&id("a")).unwrap().consumer_lag, None);
    }

    #[tokio::test(start_paused = true)]
    async fn leaving_instances_are_dropped_at_once() {
        let mut f = fleet();
        f.observe(
            event("a", "p1", 1, BackpressureLevel::Hard, 9_000),
            Instant::now(),
        );
        let mut bye = event("a", "p1", 2, BackpressureLevel::Ok, 0);
        bye.leaving = true;
        assert_eq!(f.observe(bye, Instant::now()), Observed::Left);
        assert!(f.views().is_empty());
    }
}

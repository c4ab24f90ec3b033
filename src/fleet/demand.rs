//! `DemandView`: every agent's latest demand per coordinator, ordered and expired like the
//! fleet view, summed per coordinator for the slow loop.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::Observed;
use crate::event::{CoordinatorId, DemandEvent, InstanceId};

/// Heartbeats an agent's demand may miss before it expires.
const MISSED_HEARTBEATS: u64 = 3;

#[derive(Debug, Clone)]
struct Entry {
    last: DemandEvent,
    received: Instant,
}

/// One coordinator's demand, summed over its live agents.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct DemandTotals {
    /// Rows per second the agents' sources offered before throttling.
    pub offered: f64,
    /// Rows per second they were granted.
    pub granted: f64,
    /// Agents reporting.
    pub agents: u64,
}

impl DemandTotals {
    /// Demand not granted.
    pub fn unserved(&self) -> f64 {
        (self.offered - self.granted).max(0.0)
    }
}

/// Every agent's latest demand event, indexed by coordinator so that one coordinator's
/// totals cost the same however many agents report to others.
#[derive(Debug, Clone, Default)]
pub struct DemandView {
    entries: HashMap<CoordinatorId, HashMap<InstanceId, Entry>>,
}

impl DemandView {
    /// An empty view.
    pub fn new() -> Self {
        Self::default()
    }

    fn expires(e: &Entry) -> Instant {
        let beat = Duration::from_millis(u64::from(e.last.heartbeat_ms.max(1)));
        e.received + beat * MISSED_HEARTBEATS as u32
    }

    /// Takes in one event received at `now`.
    pub fn observe(&mut self, event: DemandEvent, now: Instant) -> Observed {
        let known = self
            .entries
            .get(&event.coordinator_id)
            .and_then(|agents| agents.get(&event.agent_id));
        if let Some(known) = known {
            match event.order_key().cmp(&known.last.order_key()) {
                std::cmp::Ordering::Less => return Observed::OutOfOrder,
                std::cmp::Ordering::Equal => return Observed::Duplicate,
                std::cmp::Ordering::Greater => {}
            }
        }
        if event.leaving {
            if let Some(agents) = self.entries.get_mut(&event.coordinator_id) {
                agents.remove(&event.agent_id);
                if agents.is_empty() {
                    self.entries.remove(&event.coordinator_id);
                }
            }
            return Observed::Left;
        }
        self.entries
            .entry(event.coordinator_id.clone())
            .or_default()
            .insert(
                event.agent_id.clone(),
                Entry {
                    last: event,
                    received: now,
                },
            );
        Observed::Applied
    }

    /// Drops demand not refreshed within its heartbeats; true if any went.
    pub fn expire(&mut self, now: Instant) -> bool {
        let mut changed = false;
        self.entries.retain(|_, agents| {
            let before = agents.len();
            agents.retain(|_, e| now < Self::expires(e));
            changed |= agents.len() != before;
            !agents.is_empty()
        });
        changed
    }

    /// When the next demand expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.entries
            .values()
            .flat_map(|a| a.values())
            .map(Self::expires)
            .min()
    }

    /// `coordinator`'s demand.
    pub fn totals(&self, coordinator: &CoordinatorId) -> DemandTotals {
        self.entries
            .get(coordinator)
            .into_iter()
            .flat_map(|agents| agents.values())
            .fold(DemandTotals::default(), |t, e| DemandTotals {
                offered: t.offered + e.last.offered_per_sec,
                granted: t.granted + e.last.granted_per_sec,
                agents: t.agents + 1,
            })
    }

    /// The latest demand event of every live agent of `coordinator`.
    pub fn events_of(&self, coordinator: &CoordinatorId) -> impl Iterator<Item = &DemandEvent> {
        self.entries
            .get(coordinator)
            .into_iter()
            .flat_map(|agents| agents.values().map(|e| &e.last))
    }

    /// Coordinators with demand, sorted.
    pub fn coordinators(&self) -> Vec<CoordinatorId> {
        let mut ids: Vec<CoordinatorId> = self.entries.keys().cloned().collect();
        ids.sort();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(agent: &str, seq: u64, offered: f64, granted: f64) -> DemandEvent {
        DemandEvent::new(
            CoordinatorId::default(),
            InstanceId::new(agent).unwrap(),
            seq,
            offered,
            granted,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn sums_live_agents_and_forgets_silent_and_departed_ones() {
        let mut v = DemandView::new();
        let id = CoordinatorId::default();
        let now = Instant::now();
        assert_eq!(
            v.observe(demand("a", 1, 500.0, 200.0), now),
            Observed::Applied
        );
        assert_eq!(
            v.observe(demand("b", 1, 300.0, 300.0), now),
            Observed::Applied
        );
        assert_eq!(
            v.observe(demand("a", 1, 9.0, 9.0), now),
            Observed::Duplicate
        );
        let t = v.totals(&id);
        assert_eq!((t.offered, t.granted, t.agents), (800.0, 500.0, 2));
        assert_eq!(t.unserved(), 300.0);
        let mut bye = demand("b", 2, 0.0, 0.0);
        bye.leaving = true;
        assert_eq!(v.observe(bye, now), Observed::Left);
        assert_eq!(v.totals(&id).agents, 1);
        // Three missed heartbeats later, `a` expires too.
        assert!(!v.expire(now + Duration::from_millis(2_999)));
        assert!(v.expire(now + Duration::from_secs(3)));
        assert_eq!(v.totals(&id), DemandTotals::default());
        assert!(v.coordinators().is_empty());
    }
}

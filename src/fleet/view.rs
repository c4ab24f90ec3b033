//! `FleetView`: every coordinator instance's latest state, ordered, aged, expired and merged.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::deadlines::Deadlines;
use super::members::{Departed, Instance, Members};
use super::merge::Merge;
use super::{Fallback, FleetConfig, Observed, Signal};
use crate::clock::WallClock;
use crate::event::{CoordinatorId, FeedbackEvent, InstanceId};

mod expiry;

type Key = (CoordinatorId, InstanceId);

/// What a deadline is for.
#[derive(Debug, Clone)]
enum Due {
    /// An instance goes silent, or (once silent) is forgotten.
    Instance(Key),
    /// A goodbye stops being remembered.
    Departed(Key),
}

/// Every instance's latest state; pure apart from the wall clock used to age events.
///
/// Instances are indexed by coordinator, the merge is kept up to date as events arrive, and
/// every instance's next transition waits in a timer queue: one event, one expiry and one
/// coordinator's state cost the same with ten instances or ten thousand.
#[derive(Debug, Clone)]
pub struct FleetView {
    config: FleetConfig,
    wall: WallClock,
    coordinators: HashMap<CoordinatorId, Members>,
    deadlines: Deadlines<Due>,
    merge: Merge,
    len: usize,
    silent: usize,
}

impl FleetView {
    /// An empty view.
    pub fn new(config: FleetConfig, wall: WallClock) -> Self {
        Self {
            config,
            wall,
            coordinators: HashMap::new(),
            deadlines: Deadlines::new(),
            merge: Merge::default(),
            len: 0,
            silent: 0,
        }
    }

    fn silence_after(&self, event: &FeedbackEvent) -> Duration {
        let beat = match event.heartbeat_ms {
            0 => self.config.default_heartbeat_ms,
            ms => u64::from(ms),
        };
        Duration::from_millis(beat.saturating_mul(u64::from(self.config.missed_heartbeats)))
    }

    fn forget_after(&self) -> Duration {
        Duration::from_millis(self.config.forget_after_ms)
    }

    /// When a live instance heard at `received` next changes: it goes silent, unless it is
    /// forgotten first (a `forget_after_ms` shorter than its heartbeats allow).
    fn live_deadline(&self, event: &FeedbackEvent, received: Instant) -> Option<Instant> {
        received.checked_add(self.silence_after(event).min(self.forget_after()))
    }

    fn counts(&self, i: &Instance) -> bool {
        !i.silent || self.config.fallback == Fallback::HoldLast
    }

    /// Takes in one event received at `now`.
    pub fn observe(&mut self, event: FeedbackEvent, now: Instant) -> Observed {
        let delay = i64::try_from(self.wall.now_ms()).unwrap_or(i64::MAX)
            - i64::try_from(event.timestamp_ms).unwrap_or(i64::MAX);
        let members = self.coordinators.get_mut(&event.coordinator_id);
        // Read here, where the coordinator is looked up anyway: only then is its id worth
        // copying for the cleanup after the event is applied.
        let silent_siblings = members.as_ref().is_some_and(|m| m.silent > 0);
        if let Some(gone) = members
            .as_ref()
            .and_then(|m| m.departed.get(&event.instance_id))
        {
            if event.order_key() <= gone.order {
                return Observed::OutOfOrder;
            }
        }
        // A newer life of an instance that left (restarted with the same id).
        if let Some(Departed { timer: Some(t), .. }) =
            members.and_then(|m| m.departed.remove(&event.instance_id))
        {
            self.deadlines.cancel(t);
        }
        let known = self
            .coordinators
            .get(&event.coordinator_id)
            .and_then(|m| m.instances.get(&event.instance_id));
        let baseline = match known {
            Some(known) => {
                match event.order_key().cmp(&known.last.order_key()) {
                    std::cmp::Ordering::Less => return Observed::OutOfOrder,
                    std::cmp::Ordering::Equal => return Observed::Duplicate,
                    std::cmp::Ordering::Greater => {}
                }
                let age = delay.saturating_sub(known.min_delay_ms);
                if self.config.max_event_age_ms > 0
                    && age > i64::try_from(self.config.max_event_age_ms).unwrap_or(i64::MAX)
                {
                    return Observed::TooOld;
                }
                known.min_delay_ms.min(delay)
            }
            None => {
                let skew = self.config.max_clock_skew_ms;
                if skew > 0 && delay.unsigned_abs() > skew {
                    self.drop_if_empty(&event.coordinator_id);
                    return Observed::TooOld;
                }
                delay
            }
        };
        if event.leaving {
            self.depart(event, now);
            return Observed::Left;
        }
        let coordinator = silent_siblings.then(|| event.coordinator_id.clone());
        self.apply(event, now, baseline);
        if let Some(coordinator) = coordinator {
            self.forget_silent_siblings(&coordinator);
        }
        Observed::Applied
    }

    /// Makes `event` its instance's state.
    fn apply(&mut self, event: FeedbackEvent, now: Instant, baseline: i64) {
        let deadline = self.live_deadline(&event, now);
        let hold = self.config.fallback == Fallback::HoldLast;
        // Looked up before inserting, so that known coordinators cost no id copy.
        if !self.coordinators.contains_key(&event.coordinator_id) {
            self.coordinators
                .insert(event.coordinator_id.clone(), Members::default());
        }
        let Some(members) = self.coordinators.get_mut(&event.coordinator_id) else {
            return;
        };
        if let Some(known) = members.instances.get_mut(&event.instance_id) {
            if hold || !known.silent {
                self.merge.remove(&known.last);
            }
            if known.silent {
                known.silent = false;
                members.silent -= 1;
                self.silent -= 1;
            }
            // Move the instance's timer, reusing its key.
            let due = known.timer.take().and_then(|t| self.deadlines.cancel(t));
            let due = due.unwrap_or_else(|| {
                Due::Instance((event.coordinator_id.clone(), event.instance_id.clone()))
            });
            known.timer = deadline.map(|at| self.deadlines.schedule(at, due));
            self.merge.add(&event);
            known.last = event;
            known.received = now;
            known.min_delay_ms = baseline;
            return;
        }
        let key = (event.coordinator_id.clone(), event.instance_id.clone());
        let timer = deadline.map(|at| self.deadlines.schedule(at, Due::Instance(key.clone())));
        self.merge.add(&event);
        members.instances.insert(
            key.1,
            Instance {
                last: event,
                received: now,
                silent: false,
                min_delay_ms: baseline,
                timer,
            },
        );
        self.len += 1;
    }

    /// Forgets `event`'s instance and remembers its goodbye.
    fn depart(&mut self, event: FeedbackEvent, now: Instant) {
        let (coordinator, instance) = (event.coordinator_id, event.instance_id);
        self.remove(&coordinator, &instance);
        let remember = Duration::from_millis(self.config.remember_departed_ms);
        let timer = now.checked_add(remember).map(|at| {
            let key = (coordinator.clone(), instance.clone());
            self.deadlines.schedule(at, Due::Departed(key))
        });
        let gone = Departed {
            order: (event.epoch, event.seq),
            timer,
        };
        let members = self.coordinators.entry(coordinator).or_default();
        if let Some(Departed { timer: Some(t), .. }) = members.departed.insert(instance, gone) {
            self.deadlines.cancel(t);
        }
    }

    /// Forgets one instance (not its goodbye); true if it was known.
    fn remove(&mut self, coordinator: &CoordinatorId, instance: &InstanceId) -> bool {
        let Some(members) = self.coordinators.get_mut(coordinator) else {
            return false;
        };
        let Some(gone) = members.instances.remove(instance) else {
            return false;
        };
        if gone.silent {
            members.silent -= 1;
            self.silent -= 1;
        }
        self.len -= 1;
        if let Some(t) = gone.timer {
            self.deadlines.cancel(t);
        }
        if self.counts(&gone) {
            self.merge.remove(&gone.last);
        }
        self.drop_if_empty(coordinator);
        true
    }

    fn drop_if_empty(&mut self, coordinator: &CoordinatorId) {
        if self
            .coordinators
            .get(coordinator)
            .is_some_and(Members::is_empty)
        {
            self.coordinators.remove(coordinator);
        }
    }

    /// Silent instances of a coordinator that still has a live one carry no information (a
    /// pod that died while its siblings or its replacement report): forget them, so that the
    /// silence fallback only applies when a whole coordinator has gone quiet.
    fn forget_silent_siblings(&mut self, coordinator: &CoordinatorId) -> bool {
        let silent: Vec<InstanceId> = match self.coordinators.get(coordinator) {
            Some(m) if m.silent > 0 && m.has_live() => m
                .instances
                .iter()
                .filter(|(_, i)| i.silent)
                .map(|(id, _)| id.clone())
                .collect(),
            _ => return false,
        };
        for instance in &silent {
            self.remove(coordinator, instance);
        }
        true
    }

    /// The merge: the most severe level and highest utilization among instances that count.
    pub fn signal(&self) -> Signal {
        let mut signal = self.merge.signal(self.cap().unwrap_or(1.0));
        if self.coordinators.len() > 1 {
            // Fair rates of different stores divide different budgets: no sum is right.
            signal.fair = None;
        }
        signal
    }

    /// The ceiling imposed by silent instances under `Fallback::Scale`, if any is silent.
    pub fn cap(&self) -> Option<f64> {
        match self.config.fallback {
            Fallback::Scale(s) => (self.silent > 0).then_some(s),
            Fallback::HoldLast => None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// Instances known (live or silent).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no instance is known.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Instances currently silent.
    pub fn silent(&self) -> usize {
        self.silent
    }

    /// The latest event of every known instance, with whether it is silent.
    pub fn instances(&self) -> impl Iterator<Item = (&FeedbackEvent, bool)> {
        self.coordinators
            .values()
            .flat_map(|m| m.instances.values().map(|i| (&i.last, i.silent)))
    }

    /// The latest event of every known instance of `coordinator`, with whether it is silent.
    pub fn instances_of(
        &self,
        coordinator: &CoordinatorId,
    ) -> impl Iterator<Item = (&FeedbackEvent, bool)> {
        self.coordinators
            .get(coordinator)
            .into_iter()
            .flat_map(|m| m.instances.values().map(|i| (&i.last, i.silent)))
    }

    /// Coordinators with at least one known instance, in no particular order.
    pub fn coordinators(&self) -> impl Iterator<Item = &CoordinatorId> {
        self.coordinators
            .iter()
            .filter(|(_, m)| !m.instances.is_empty())
            .map(|(id, _)| id)
    }

    /// Whether `coordinator` has at least one known instance.
    pub fn knows(&self, coordinator: &CoordinatorId) -> bool {
        self.coordinators
            .get(coordinator)
            .is_some_and(|m| !m.instances.is_empty())
    }
}

//! The agent's view of every coordinator instance: ordering, staleness, expiry and merging.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use super::policy::Signal;
use crate::clock::WallClock;
use crate::event::{CoordinatorId, FeedbackEvent, InstanceId};

/// What happens to an instance that stopped sending heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// Keep obeying its last event until it is forgotten.
    HoldLast,
    /// Drop it from the merge but cap the scale at this value until it is forgotten.
    Scale(f64),
}

/// How the fleet view judges events and silence.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// Heartbeats an instance may miss before it counts as silent.
    pub missed_heartbeats: u32,
    /// Heartbeat interval assumed for events that do not state theirs, in milliseconds.
    pub default_heartbeat_ms: u64,
    /// An event is stale, and ignored, when it is this much older than its instance's
    /// freshest events, in milliseconds; 0 disables the check. Ages are measured against each
    /// instance's own clock (the smallest delay seen from it is its baseline), so a store whose
    /// clock is off still works, while events it queued during an outage and delivered late
    /// are recognised.
    pub max_event_age_ms: u64,
    /// The first event of an unknown instance is ignored when its timestamp is further than
    /// this from the local clock, either way, in milliseconds (old events of long-dead pods
    /// read from the last-value stream); 0 disables the check.
    pub max_clock_skew_ms: u64,
    /// What a silent instance counts as.
    pub fallback: Fallback,
    /// A silent instance is forgotten entirely after this long without events, in
    /// milliseconds (a pod that died without saying goodbye).
    pub forget_after_ms: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            missed_heartbeats: 3,
            default_heartbeat_ms: 1_000,
            max_event_age_ms: 15_000,
            max_clock_skew_ms: 300_000,
            fallback: Fallback::Scale(0.5),
            forget_after_ms: 300_000,
        }
    }
}

impl FleetConfig {
    /// Checks ranges, naming the offending key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.missed_heartbeats == 0 {
            return Err(("missed_heartbeats", "must be at least 1".into()));
        }
        if self.default_heartbeat_ms == 0 {
            return Err(("default_heartbeat_ms", "must be at least 1".into()));
        }
        if self.max_clock_skew_ms > 0 && self.max_clock_skew_ms < self.max_event_age_ms {
            return Err((
                "max_clock_skew_ms",
                "must not be below max_event_age_ms (or 0 to disable)".into(),
            ));
        }
        if let Fallback::Scale(s) = self.fallback {
            if !(0.0..=1.0).contains(&s) {
                return Err(("fallback", format!("scale must be within [0, 1], got {s}")));
            }
        }
        Ok(())
    }
}

/// What the fleet view did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Newer than anything seen from its instance: it is the instance's state now.
    Applied,
    /// The same `(epoch, seq)` as the instance's current state.
    Duplicate,
    /// Older than the instance's current state (a late or replayed event).
    OutOfOrder,
    /// Its timestamp is too old: `max_event_age_ms` behind its instance's freshest events, or
    /// (first event of an instance) `max_clock_skew_ms` away from the local clock.
    TooOld,
    /// The instance said goodbye and was forgotten.
    Left,
}

impl Observed {
    /// Label value for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::OutOfOrder => "out_of_order",
            Self::TooOld => "too_old",
            Self::Left => "left",
        }
    }
}

#[derive(Debug, Clone)]
struct Instance {
    last: FeedbackEvent,
    received: Instant,
    silent: bool,
    /// Smallest (local receive time − event timestamp) seen: the instance's clock baseline.
    min_delay_ms: i64,
}

type Key = (CoordinatorId, InstanceId);

/// Every instance's latest state; pure apart from the wall clock used to age events.
#[derive(Debug, Clone)]
pub struct FleetView {
    config: FleetConfig,
    wall: WallClock,
    instances: HashMap<Key, Instance>,
}

impl FleetView {
    /// An empty view.
    pub fn new(config: FleetConfig, wall: WallClock) -> Self {
        Self {
            config,
            wall,
            instances: HashMap::new(),
        }
    }

    fn silence_after(&self, event: &FeedbackEvent) -> Duration {
        let beat = match event.heartbeat_ms {
            0 => self.config.default_heartbeat_ms,
            ms => u64::from(ms),
        };
        Duration::from_millis(beat.saturating_mul(u64::from(self.config.missed_heartbeats)))
    }

    /// Takes in one event received at `now`.
    pub fn observe(&mut self, event: FeedbackEvent, now: Instant) -> Observed {
        let delay = i64::try_from(self.wall.now_ms()).unwrap_or(i64::MAX)
            - i64::try_from(event.timestamp_ms).unwrap_or(i64::MAX);
        let key = (event.coordinator_id.clone(), event.instance_id.clone());
        let baseline = match self.instances.get(&key) {
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
                    return Observed::TooOld;
                }
                delay
            }
        };
        if event.leaving {
            self.instances.remove(&key);
            return Observed::Left;
        }
        let coordinator = key.0.clone();
        self.instances.insert(
            key,
            Instance {
                last: event,
                received: now,
                silent: false,
                min_delay_ms: baseline,
            },
        );
        self.forget_silent_siblings(&coordinator);
        Observed::Applied
    }

    /// Silent instances of a coordinator that still has a live one carry no information (a
    /// pod that died while its siblings or its replacement report): forget them, so that the
    /// silence fallback only applies when a whole coordinator has gone quiet.
    fn forget_silent_siblings(&mut self, coordinator: &CoordinatorId) -> bool {
        let live = self
            .instances
            .iter()
            .any(|((c, _), i)| c == coordinator && !i.silent);
        if !live {
            return false;
        }
        let before = self.instances.len();
        self.instances
            .retain(|(c, _), i| c != coordinator || !i.silent);
        self.instances.len() != before
    }

    /// Marks instances silent and forgets long-silent ones; true if the merge changed.
    pub fn expire(&mut self, now: Instant) -> bool {
        let forget = Duration::from_millis(self.config.forget_after_ms);
        let before = self.instances.len();
        self.instances
            .retain(|_, i| now.saturating_duration_since(i.received) < forget);
        let mut changed = self.instances.len() != before;
        let limits: Vec<(Key, Duration)> = self
            .instances
            .iter()
            .filter(|(_, i)| !i.silent)
            .map(|(k, i)| (k.clone(), self.silence_after(&i.last)))
            .collect();
        for (key, limit) in limits {
            if let Some(i) = self.instances.get_mut(&key) {
                if now.saturating_duration_since(i.received) >= limit {
                    i.silent = true;
                    changed = true;
                    tracing::warn!(coordinator_id = %key.0, instance_id = %key.1, "Coordinator instance went silent.");
                }
            }
        }
        let coordinators: std::collections::BTreeSet<CoordinatorId> =
            self.instances.keys().map(|(c, _)| c.clone()).collect();
        for c in coordinators {
            changed |= self.forget_silent_siblings(&c);
        }
        changed
    }

    /// When the next instance goes silent or is forgotten.
    pub fn next_expiry(&self) -> Option<Instant> {
        let forget = Duration::from_millis(self.config.forget_after_ms);
        self.instances
            .values()
            .map(|i| {
                if i.silent {
                    i.received + forget
                } else {
                    i.received + self.silence_after(&i.last)
                }
            })
            .min()
    }

    fn counts(&self, i: &Instance) -> bool {
        !i.silent || self.config.fallback == Fallback::HoldLast
    }

    /// The merge: the most severe level and highest utilization among instances that count.
    pub fn signal(&self) -> Signal {
        self.instances
            .values()
            .filter(|i| self.counts(i))
            .fold(Signal::QUIET, |acc, i| Signal {
                level: acc.level.max(i.last.level),
                utilization: acc.utilization.max(i.last.utilization()),
                instances: acc.instances + 1,
            })
    }

    /// The ceiling imposed by silent instances under `Fallback::Scale`, if any is silent.
    pub fn cap(&self) -> Option<f64> {
        match self.config.fallback {
            Fallback::Scale(s) => self.instances.values().any(|i| i.silent).then_some(s),
            Fallback::HoldLast => None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// Instances known (live or silent).
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// Whether no instance is known.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// Instances currently silent.
    pub fn silent(&self) -> usize {
        self.instances.values().filter(|i| i.silent).count()
    }

    /// The latest event of every known instance, with whether it is silent.
    pub fn instances(&self) -> impl Iterator<Item = (&FeedbackEvent, bool)> {
        self.instances.values().map(|i| (&i.last, i.silent))
    }
}

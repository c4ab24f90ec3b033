//! The fleet view as it was before it was indexed (every instance scanned per event and per
//! expiry), kept as the reference the indexed one must agree with and as the bench baseline.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use backflow::clock::WallClock;
use backflow::event::{CoordinatorId, FeedbackEvent, InstanceId};
use backflow::fleet::{Fallback, FleetConfig, Observed, Signal};

#[derive(Debug, Clone)]
struct Instance {
    last: FeedbackEvent,
    received: Instant,
    silent: bool,
    /// Smallest (local receive time − event timestamp) seen: the instance's clock baseline.
    min_delay_ms: i64,
}

type Key = (CoordinatorId, InstanceId);

/// What is remembered of an instance that said goodbye: its last `(epoch, seq)`, so that no
/// older event of it (replayed from the last-value stream, or delivered late) brings it back.
#[derive(Debug, Clone, Copy)]
struct Departed {
    order: (u64, u64),
    at: Instant,
}

/// Every instance's latest state, in one map scanned whole.
#[derive(Debug, Clone)]
pub struct NaiveFleetView {
    config: FleetConfig,
    wall: WallClock,
    instances: HashMap<Key, Instance>,
    departed: HashMap<Key, Departed>,
}

impl NaiveFleetView {
    /// An empty view.
    pub fn new(config: FleetConfig, wall: WallClock) -> Self {
        Self {
            config,
            wall,
            instances: HashMap::new(),
            departed: HashMap::new(),
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
        if let Some(gone) = self.departed.get(&key) {
            if event.order_key() <= gone.order {
                return Observed::OutOfOrder;
            }
            // A newer life of an instance that left (restarted with the same id).
            self.departed.remove(&key);
        }
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
            let order = event.order_key();
            self.departed.insert(key, Departed { order, at: now });
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
        let remember = Duration::from_millis(self.config.remember_departed_ms);
        self.departed
            .retain(|_, d| now.saturating_duration_since(d.at) < remember);
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

    /// When the next instance goes silent or is forgotten, or a departed one is.
    pub fn next_expiry(&self) -> Option<Instant> {
        let forget = Duration::from_millis(self.config.forget_after_ms);
        let remember = Duration::from_millis(self.config.remember_departed_ms);
        let instances = self.instances.values().map(|i| {
            if i.silent {
                i.received + forget
            } else {
                i.received + self.silence_after(&i.last)
            }
        });
        let departed = self.departed.values().map(|d| d.at + remember);
        instances.chain(departed).min()
    }

    fn counts(&self, i: &Instance) -> bool {
        !i.silent || self.config.fallback == Fallback::HoldLast
    }

    /// The merge: the most severe level and highest utilization among instances that count.
    pub fn signal(&self) -> Signal {
        self.instances.values().filter(|i| self.counts(i)).fold(
            Signal {
                cap: self.cap().unwrap_or(1.0),
                ..Signal::QUIET
            },
            |acc, i| Signal {
                level: acc.level.max(i.last.level),
                utilization: acc.utilization.max(i.last.utilization()),
                instances: acc.instances + 1,
                cap: acc.cap,
                fair: None,
            },
        )
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

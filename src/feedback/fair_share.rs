//! The `fair_share` policy: an agent sends at most its weight times the fair rate its store
//! grants its class; without fair rates it steers by depth as the proportional policy does.

use serde::Deserialize;
use tokio::time::Instant;

use super::policy::{Decision, Policy};
use super::proportional::{ProportionalConfig, ProportionalPolicy};
use crate::event::{BackpressureLevel, Class};
use crate::fleet::Signal;
use crate::invalid::{InvalidSetting, positive};

/// Settings of [`FairSharePolicy`] (`feedback.fair_share:`): who this agent is in the fleet's
/// division of a store's budget. The same values go out in its demand events.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FairShareConfig {
    /// Priority class: `critical`, `standard` or `bulk`, served in that strict order.
    pub class: Class,
    /// Share weight within the class (an agent of weight 3 gets three times the rate of one
    /// of weight 1 when both are throttled).
    pub weight: f64,
}

impl Default for FairShareConfig {
    fn default() -> Self {
        Self {
            class: Class::Standard,
            weight: 1.0,
        }
    }
}

impl FairShareConfig {
    /// Checks ranges, naming the offending key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        positive(&[("weight", self.weight)])
    }
}

/// Sends at most `weight × rate(class)` rows per second, the explicit fair rate the store
/// publishes (the sum over its instances), as a scale of the agent's base rate. An agent
/// whose demand is below that rate is not throttled at all; the store's allocation already
/// gave the rest of the budget to the others.
///
/// The fair rate is obeyed at once, up or down: the store computed it for this moment's
/// demand and queue. What the store cannot say falls back to the depth-driven
/// [`ProportionalPolicy`] (run alongside, so the switch is smooth): no fair rates (an older
/// store, no capacity estimate yet, no demand heard), several coordinators followed, or an
/// unknown base rate. SOFT and HARD still cap at once as in the proportional policy, and the
/// silence cap still applies.
#[derive(Debug, Clone)]
pub struct FairSharePolicy {
    config: FairShareConfig,
    fallback: ProportionalPolicy,
    base_rate: Option<f64>,
    /// The scale the fair rate allows, while fair rates are known.
    fair: Option<f64>,
    level: BackpressureLevel,
    cap: f64,
}

impl FairSharePolicy {
    /// A policy whose fallback's jitter comes from `seed`.
    pub fn new(config: FairShareConfig, fallback: ProportionalConfig, seed: u64) -> Self {
        Self {
            config,
            fallback: ProportionalPolicy::new(fallback, seed),
            base_rate: None,
            fair: None,
            level: BackpressureLevel::Ok,
            cap: 1.0,
        }
    }

    /// Combines the fair scale (when known) with the fallback's decision.
    fn combine(&self, fallback: Decision) -> Decision {
        let Some(fair) = self.fair else {
            return fallback;
        };
        let mut scale = fair.min(self.cap);
        if self.level > BackpressureLevel::Ok {
            // An emergency: the levels' caps (pressure cut, HARD scale) hold as before.
            scale = scale.min(fallback.scale);
        }
        Decision {
            scale,
            wake_at: fallback.wake_at,
        }
    }
}

impl Policy for FairSharePolicy {
    fn name(&self) -> &'static str {
        "fair_share"
    }

    fn set_base_rate(&mut self, rows_per_sec: f64) {
        self.base_rate = (rows_per_sec > 0.0 && rows_per_sec.is_finite()).then_some(rows_per_sec);
    }

    fn on_signal(&mut self, signal: &Signal, now: Instant) -> Decision {
        let fallback = self.fallback.on_signal(signal, now);
        self.level = signal.level;
        self.cap = signal.cap;
        self.fair = match (signal.fair, self.base_rate) {
            (Some(rates), Some(base)) => {
                Some((self.config.weight * rates.get(self.config.class) / base).clamp(0.0, 1.0))
            }
            _ => None,
        };
        self.combine(fallback)
    }

    fn on_tick(&mut self, now: Instant) -> Decision {
        let fallback = self.fallback.on_tick(now);
        self.combine(fallback)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::event::FairRates;

    fn policy(class: Class, weight: f64, base: f64) -> FairSharePolicy {
        let mut p = FairSharePolicy::new(
            FairShareConfig { class, weight },
            ProportionalConfig {
                jitter: 0.0,
                ..ProportionalConfig::default()
            },
            1,
        );
        p.set_base_rate(base);
        p
    }

    fn fair(level: BackpressureLevel, utilization: f64, rates: FairRates) -> Signal {
        Signal {
            utilization,
            fair: Some(rates),
            ..Signal::at(level)
        }
    }

    const RATES: FairRates = FairRates {
        critical: 1_000.0,
        standard: 250.0,
        bulk: 50.0,
    };

    #[tokio::test(start_paused = true)]
    async fn the_scale_is_the_weighted_fair_rate_over_the_base_rate() {
        let t0 = Instant::now();
        let mut p = policy(Class::Standard, 2.0, 1_000.0);
        // 2 × 250 of 1,000: half, although the queue is long enough for the depth map to
        // say otherwise.
        let d = p.on_signal(&fair(BackpressureLevel::Ok, 0.3, RATES), t0);
        assert!((d.scale - 0.5).abs() < 1e-12, "{d:?}");
        // Rises are obeyed at once: the store computed the rate for now.
        let up = FairRates {
            standard: 400.0,
            ..RATES
        };
        let d = p.on_signal(
            &fair(BackpressureLevel::Ok, 0.3, up),
            t0 + Duration::from_millis(100),
        );
        assert!((d.scale - 0.8).abs() < 1e-12);
        let mut critical = policy(Class::Critical, 1.0, 500.0);
        assert_eq!(
            critical
                .on_signal(&fair(BackpressureLevel::Ok, 0.3, RATES), t0)
                .scale,
            1.0
        );
        let mut bulk = policy(Class::Bulk, 1.0, 500.0);
        let d = bulk.on_signal(&fair(BackpressureLevel::Ok, 0.3, RATES), t0);
        assert!((d.scale - 0.1).abs() < 1e-12);
    }

    #[tokio::test(start_paused = true)]
    async fn without_fair_rates_it_steers_as_the_proportional_policy() {
        let t0 = Instant::now();
        let mut p = policy(Class::Standard, 1.0, 1_000.0);
        let mut q = ProportionalPolicy::new(
            ProportionalConfig {
                jitter: 0.0,
                ..ProportionalConfig::default()
            },
            1,
        );
        let s = Signal {
            utilization: 0.3,
            ..Signal::at(BackpressureLevel::Ok)
        };
        assert_eq!(p.on_signal(&s, t0), q.on_signal(&s, t0));
        // Nor without a base rate to divide by.
        let mut unknown =
            FairSharePolicy::new(FairShareConfig::default(), ProportionalConfig::default(), 1);
        let d = unknown.on_signal(&fair(BackpressureLevel::Ok, 0.3, RATES), t0);
        assert!(d.scale < 0.5, "the depth map at 0.3: {d:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn levels_and_silence_still_cap_at_once() {
        let t0 = Instant::now();
        let mut p = policy(Class::Critical, 1.0, 500.0);
        let d = p.on_signal(&fair(BackpressureLevel::Hard, 0.9, RATES), t0);
        assert_eq!(d.scale, 0.0, "HARD pauses whatever the fair rate");
        let silent = Signal {
            cap: 0.3,
            ..fair(BackpressureLevel::Ok, 0.0, RATES)
        };
        let mut p = policy(Class::Critical, 1.0, 500.0);
        assert!((p.on_signal(&silent, t0).scale - 0.3).abs() < 1e-12);
    }
}

//! The default policy: the scale falls exponentially with the store's queue depth, so the
//! queue settles below the low watermark with the sink busy; SOFT/HARD still tighten at once.

use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use super::policy::{Decision, Policy};
use crate::event::BackpressureLevel;
use crate::fleet::Signal;
use crate::invalid::{InvalidSetting, fractions, positive};

/// Settings of [`ProportionalPolicy`] (`feedback.proportional:`).
///
/// Choosing values: the queue settles at `offset + ln(overload) / gain` of its capacity,
/// where `overload` is the agents' base rate over the sink's rate (with the defaults: 8 % at
/// 1.2×, 17 % at 2×, 32 % at 5×, the low watermark only beyond 15×). `offset` must leave a
/// few batches queued so the sink never idles; a higher `gain` holds the queue lower but
/// reacts harder to noise; the loop is stable while one heartbeat is short next to the time
/// the queue takes to fill at the sink's rate (heartbeats of 100–250 ms for queues of 1–4 s).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProportionalConfig {
    /// Queue utilization (depth / capacity) below which agents run at their full rate.
    pub offset: f64,
    /// Fall of ln(scale) per unit of utilization above `offset`.
    pub gain: f64,
    /// On a rise of the merged level to SOFT or HARD, the scale is capped at once at this
    /// fraction of its value, until the level eases and the dwell has passed.
    pub pressure_cut: f64,
    /// Ceiling of the scale while any coordinator is HARD (0 pauses).
    pub hard_scale: f64,
    /// Time after SOFT/HARD pressure before the scale may rise again, in milliseconds.
    pub dwell_ms: u64,
    /// Largest rise of the scale per second (0.5 = from 0 to 1 in 2 s): ramps are gradual.
    pub max_rise_per_sec: f64,
    /// Fraction by which each agent stretches its dwell and ramp steps at random (0..=1), so
    /// that a fleet does not surge back in lockstep.
    pub jitter: f64,
}

impl Default for ProportionalConfig {
    fn default() -> Self {
        Self {
            offset: 0.05,
            gain: 6.0,
            pressure_cut: 0.5,
            hard_scale: 0.0,
            dwell_ms: 1_000,
            max_rise_per_sec: 0.5,
            jitter: 0.2,
        }
    }
}

impl ProportionalConfig {
    /// Checks ranges, naming the offending key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if !(0.0..1.0).contains(&self.offset) {
            return Err(InvalidSetting::new(
                "offset",
                format!("must be within [0, 1), got {}", self.offset),
            ));
        }
        positive(&[
            ("gain", self.gain),
            ("max_rise_per_sec", self.max_rise_per_sec),
        ])?;
        if !(self.pressure_cut > 0.0 && self.pressure_cut <= 1.0) {
            return Err(InvalidSetting::new(
                "pressure_cut",
                format!("must be within (0, 1], got {}", self.pressure_cut),
            ));
        }
        fractions(&[("hard_scale", self.hard_scale), ("jitter", self.jitter)])
    }
}

/// Time between ramp steps when no coordinator is known.
const RAMP_TICK: Duration = Duration::from_millis(100);
/// One signal justifies at most this much rising: sparse signals must not let the scale
/// climb on stale news (with 1 s heartbeats that made the loop oscillate).
const RISE_WINDOW_S: f64 = 0.25;

/// Maps the merged queue utilization `u` to `exp(−gain × (u − offset))`: full rate while
/// the queue is short, less the longer it grows. Because the map acts on the logarithm, the
/// queue settles at `offset + ln(overload) / gain` whatever the overload: the sink stays busy,
/// the store stays OK (no level flips), and the queue wait is a fraction of what a step map
/// that only reacts at the watermarks costs. All agents apply the same map to the same
/// signal, so they share the sink fairly, and an agent that joins late converges at once.
///
/// The levels stay in charge of emergencies: a rise to SOFT or HARD caps the scale at once
/// at `pressure_cut` of its value (HARD also at `hard_scale`) and starts a dwell, stretched
/// at random per agent, during which the scale does not rise. Falls are immediate; rises are
/// limited to `max_rise_per_sec`, and one signal never justifies more than 250 ms of rising.
/// With no coordinator known the scale ramps back to 1 on timer ticks.
#[derive(Debug, Clone)]
pub struct ProportionalPolicy {
    config: ProportionalConfig,
    rng: fastrand::Rng,
    scale: f64,
    /// Where the map wants the scale.
    target: f64,
    /// The cap set by the last rise in pressure, until the level eases and the dwell passes.
    ceiling: f64,
    /// The cap silent coordinators impose (1 when none).
    cap: f64,
    level: BackpressureLevel,
    /// No coordinator is known: ramp towards 1 on ticks.
    quiet: bool,
    last_update: Option<Instant>,
    hold_until: Option<Instant>,
    next_tick: Option<Instant>,
}

impl ProportionalPolicy {
    /// A policy whose jitter comes from `seed` (give each agent its own).
    pub fn new(config: ProportionalConfig, seed: u64) -> Self {
        Self {
            config,
            rng: fastrand::Rng::with_seed(seed),
            scale: 1.0,
            target: 1.0,
            ceiling: 1.0,
            cap: 1.0,
            level: BackpressureLevel::Ok,
            quiet: true,
            last_update: None,
            hold_until: None,
            next_tick: None,
        }
    }

    /// The map: 1 up to `offset`, then falling exponentially.
    pub fn map(&self, utilization: f64) -> f64 {
        let over = (utilization - self.config.offset).max(0.0);
        (-self.config.gain * over).exp()
    }

    fn stretch(&mut self, d: Duration) -> Duration {
        d.mul_f64(1.0 + self.config.jitter * self.rng.f64())
    }

    fn holding(&self, now: Instant) -> bool {
        self.hold_until.is_some_and(|t| now < t)
    }

    fn decision(&self) -> Decision {
        let scale = if self.level == BackpressureLevel::Hard {
            self.scale.min(self.config.hard_scale)
        } else {
            self.scale
        };
        Decision {
            scale,
            wake_at: self.next_tick,
        }
    }

    /// Moves the scale towards `min(target, ceiling)`: down at once, up no faster than the
    /// ramp allows and not during a dwell. Asks for a tick at the end of a dwell that holds
    /// a rise back, and every ramp step while no coordinator is known.
    fn update(&mut self, now: Instant) -> Decision {
        let dt = self
            .last_update
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        self.last_update = Some(now);
        let holding = self.holding(now);
        if self.level == BackpressureLevel::Ok && !holding {
            self.ceiling = 1.0;
        }
        let goal = self.target.min(self.ceiling).min(self.cap);
        if goal <= self.scale {
            self.scale = goal;
        } else if !holding {
            let window = if self.quiet {
                dt
            } else {
                dt.min(RISE_WINDOW_S)
            };
            self.scale = goal.min(self.scale + self.config.max_rise_per_sec * window);
        }
        let held_back = self.scale < self.target && self.level != BackpressureLevel::Hard;
        self.next_tick = match self.hold_until {
            Some(until) if holding && held_back => Some(until),
            _ if self.quiet && held_back => Some(now + self.stretch(RAMP_TICK)),
            _ => None,
        };
        self.decision()
    }
}

impl Policy for ProportionalPolicy {
    fn name(&self) -> &'static str {
        "proportional"
    }

    fn on_signal(&mut self, signal: &Signal, now: Instant) -> Decision {
        if signal.level > self.level && signal.level > BackpressureLevel::Ok {
            // Pressure rose: tighten now, below whatever the map says, and hold.
            self.ceiling = self.ceiling.min(self.scale * self.config.pressure_cut);
            let dwell = self.stretch(Duration::from_millis(self.config.dwell_ms));
            self.hold_until = Some(now + dwell);
        } else if signal.level > BackpressureLevel::Ok {
            // Pressure goes on: the dwell restarts from now.
            let dwell = Duration::from_millis(self.config.dwell_ms);
            self.hold_until = self.hold_until.max(Some(now + dwell));
        }
        if signal.cap > self.cap {
            // A silent coordinator spoke again: rise from the cap as after pressure, once a
            // dwell stretched at random has passed, so that a fleet does not return at once.
            let dwell = self.stretch(Duration::from_millis(self.config.dwell_ms));
            self.hold_until = self.hold_until.max(Some(now + dwell));
        }
        self.cap = signal.cap;
        self.level = signal.level;
        self.quiet = signal.instances == 0;
        self.target = if self.quiet {
            1.0
        } else {
            self.map(signal.utilization)
        };
        self.update(now)
    }

    fn on_tick(&mut self, now: Instant) -> Decision {
        if self.next_tick.is_some_and(|t| now < t) {
            return self.decision();
        }
        self.update(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BackpressureLevel::*;

    fn signal(level: BackpressureLevel, utilization: f64) -> Signal {
        Signal {
            utilization,
            ..Signal::at(level)
        }
    }

    fn no_jitter() -> ProportionalPolicy {
        ProportionalPolicy::new(
            ProportionalConfig {
                jitter: 0.0,
                ..ProportionalConfig::default()
            },
            1,
        )
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_settles_where_the_map_matches_the_overload() {
        let p = no_jitter();
        assert_eq!(p.map(0.0), 1.0);
        assert_eq!(p.map(0.05), 1.0);
        for overload in [1.2f64, 2.0, 5.0] {
            // At rest, agents at base × overload × scale fill exactly the sink.
            let u = 0.05 + overload.ln() / 6.0;
            assert!((p.map(u) * overload - 1.0).abs() < 1e-12, "{overload}");
            assert!(u < 0.4, "{overload}: {u}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn falls_at_once_and_rises_gradually() {
        let mut p = no_jitter();
        let t0 = Instant::now();
        let d = p.on_signal(&signal(Ok, 0.3), t0);
        assert!((d.scale - p.map(0.3)).abs() < 1e-12);
        assert_eq!(d.wake_at, None, "regular signals need no timer");
        // The queue empties: the map says 1, but the scale climbs 0.5/s, 250 ms per signal.
        let d = p.on_signal(&signal(Ok, 0.0), t0 + ms(100));
        assert!((d.scale - (p.map(0.3) + 0.05)).abs() < 1e-9, "{}", d.scale);
        let d = p.on_signal(&signal(Ok, 0.0), t0 + ms(1_100));
        assert!(
            (d.scale - (p.map(0.3) + 0.05 + 0.125)).abs() < 1e-9,
            "{}",
            d.scale
        );
    }

    #[tokio::test(start_paused = true)]
    async fn soft_and_hard_tighten_at_once_and_hold_for_the_dwell() {
        let mut p = no_jitter();
        let t0 = Instant::now();
        p.on_signal(&signal(Ok, 0.1), t0);
        let before = p.map(0.1);
        // SOFT caps at half the scale even where the map would allow more (low watermarks
        // may sit below where the map bites).
        let d = p.on_signal(&signal(Soft, 0.1), t0 + ms(10));
        assert!((d.scale - before * 0.5).abs() < 1e-12);
        assert_eq!(p.on_signal(&signal(Hard, 0.9), t0 + ms(20)).scale, 0.0);
        // Back to OK with an empty queue: nothing rises during the dwell from the last HARD.
        let d = p.on_signal(&signal(Ok, 0.0), t0 + ms(500));
        assert!(d.scale <= before * 0.5 + 1e-12);
        assert_eq!(d.wake_at, Some(t0 + ms(1_020)), "a tick ends the dwell");
        let held = d.scale;
        let d = p.on_tick(t0 + ms(1_020));
        // One tick justifies at most 250 ms of rising at 0.5/s.
        assert!(
            (d.scale - (held + 0.125)).abs() < 1e-9,
            "{held} -> {}",
            d.scale
        );
    }

    #[tokio::test(start_paused = true)]
    async fn renewed_pressure_restarts_the_dwell() {
        let mut p = no_jitter();
        let t0 = Instant::now();
        p.on_signal(&signal(Soft, 0.6), t0);
        let d = p.on_signal(&signal(Soft, 0.6), t0 + ms(800));
        p.on_signal(&signal(Ok, 0.0), t0 + ms(1_500));
        assert!(p.holding(t0 + ms(1_700)), "{d:?}");
        assert!(!p.holding(t0 + ms(1_800)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_agent_converges_to_the_same_scale() {
        let t0 = Instant::now();
        let mut old = no_jitter();
        let mut late = ProportionalPolicy::new(ProportionalConfig::default(), 99);
        for i in 0..50 {
            old.on_signal(&signal(Ok, 0.2), t0 + ms(100 * i));
        }
        let d = late.on_signal(&signal(Ok, 0.2), t0 + ms(5_000));
        assert_eq!(
            d.scale,
            old.on_signal(&signal(Ok, 0.2), t0 + ms(5_000)).scale
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_coordinators_it_ramps_back_on_ticks() {
        let mut p = no_jitter();
        let t0 = Instant::now();
        p.on_signal(&signal(Ok, 0.5), t0);
        let mut d = p.on_signal(&Signal::QUIET, t0 + ms(100));
        let mut at = t0 + ms(100);
        let mut steps = 0;
        while let Some(wake) = d.wake_at {
            at = wake;
            d = p.on_tick(wake);
            steps += 1;
        }
        assert_eq!(d.scale, 1.0);
        // From map(0.5) ≈ 0.07 at 0.5/s: a little under 2 s of 100 ms ticks.
        assert!((17..=20).contains(&steps), "{steps}");
        assert!(at - t0 < Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_spreads_the_dwell_of_agents_apart() {
        let t0 = Instant::now();
        let ends: std::collections::BTreeSet<_> = (0..5)
            .map(|seed| {
                let mut p = ProportionalPolicy::new(ProportionalConfig::default(), seed);
                p.on_signal(&signal(Hard, 0.9), t0);
                p.hold_until
            })
            .collect();
        assert_eq!(ends.len(), 5);
        assert!(
            ends.iter()
                .all(|e| e.is_some_and(|e| e >= t0 + ms(1_000) && e <= t0 + ms(1_200)))
        );
    }
}

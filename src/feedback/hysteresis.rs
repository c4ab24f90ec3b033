//! The hysteresis policy: tighten at once to a ceiling per level, relax only after a dwell
//! time, ramp back gradually, with per-agent jitter.

use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use super::policy::{Decision, Policy};
use crate::event::BackpressureLevel;
use crate::fleet::Signal;
use crate::invalid::{InvalidSetting, at_least_one, fractions};

/// Settings of [`HysteresisPolicy`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HysteresisConfig {
    /// Ceiling of the scale while any coordinator is SOFT.
    pub soft_scale: f64,
    /// Ceiling of the scale while any coordinator is HARD (0 pauses).
    pub hard_scale: f64,
    /// Time the pressure must have eased before the scale rises, in milliseconds.
    pub dwell_ms: u64,
    /// Scale added per ramp step.
    pub ramp_step: f64,
    /// Time between ramp steps, in milliseconds.
    pub ramp_interval_ms: u64,
    /// Fraction by which each agent stretches its dwell and ramp intervals at random
    /// (0..=1), so that a fleet does not surge back in lockstep.
    pub jitter: f64,
}

impl Default for HysteresisConfig {
    fn default() -> Self {
        Self {
            soft_scale: 0.5,
            hard_scale: 0.0,
            dwell_ms: 2_000,
            ramp_step: 0.1,
            ramp_interval_ms: 250,
            jitter: 0.2,
        }
    }
}

impl HysteresisConfig {
    /// Checks ranges, naming the offending key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        fractions(&[
            ("soft_scale", self.soft_scale),
            ("hard_scale", self.hard_scale),
            ("jitter", self.jitter),
        ])?;
        if self.hard_scale > self.soft_scale {
            return Err(InvalidSetting::new(
                "hard_scale",
                "must not exceed soft_scale",
            ));
        }
        if !(self.ramp_step > 0.0 && self.ramp_step <= 1.0) {
            return Err(InvalidSetting::new(
                "ramp_step",
                format!("must be within (0, 1], got {}", self.ramp_step),
            ));
        }
        at_least_one(&[("ramp_interval_ms", self.ramp_interval_ms)])
    }
}

/// Tightens at once to the ceiling of the current level; once the level eases, waits
/// `dwell` (repeated pressure restarts the wait), then raises the scale by `ramp_step` every
/// `ramp_interval` up to the new ceiling. Each agent stretches its intervals by a random
/// fraction up to `jitter`, fixed by its seed.
#[derive(Debug, Clone)]
pub struct HysteresisPolicy {
    config: HysteresisConfig,
    rng: fastrand::Rng,
    scale: f64,
    ceiling: f64,
    next_step: Option<Instant>,
}

impl HysteresisPolicy {
    /// A policy whose jitter comes from `seed` (give each agent its own).
    pub fn new(config: HysteresisConfig, seed: u64) -> Self {
        Self {
            config,
            rng: fastrand::Rng::with_seed(seed),
            scale: 1.0,
            ceiling: 1.0,
            next_step: None,
        }
    }

    fn stretch(&mut self, ms: u64) -> Duration {
        let f = 1.0 + self.config.jitter * self.rng.f64();
        Duration::from_secs_f64(ms as f64 * f / 1_000.0)
    }

    fn ceiling_for(&self, level: BackpressureLevel) -> f64 {
        match level {
            BackpressureLevel::Ok => 1.0,
            BackpressureLevel::Soft => self.config.soft_scale,
            BackpressureLevel::Hard => self.config.hard_scale,
        }
    }

    fn decision(&self) -> Decision {
        Decision {
            scale: self.scale,
            wake_at: self.next_step,
        }
    }
}

impl Policy for HysteresisPolicy {
    fn name(&self) -> &'static str {
        "hysteresis"
    }

    fn on_signal(&mut self, signal: &Signal, now: Instant) -> Decision {
        self.ceiling = self.ceiling_for(signal.level).min(signal.cap);
        if self.ceiling <= self.scale {
            // Pressure at or above what we already obey: tighten now and restart the dwell.
            self.scale = self.ceiling;
            let dwell = self.stretch(self.config.dwell_ms);
            self.next_step = None;
            self.next_step = (self.scale < 1.0).then_some(now + dwell);
        } else if self.next_step.is_none() {
            let dwell = self.stretch(self.config.dwell_ms);
            self.next_step = Some(now + dwell);
        }
        self.decision()
    }

    fn on_tick(&mut self, now: Instant) -> Decision {
        match self.next_step {
            Some(at) if now >= at && self.scale < self.ceiling => {
                let next = self.scale + self.config.ramp_step;
                // Snap to the ceiling so float steps (0.1 × 10) land on it exactly.
                self.scale = if next >= self.ceiling - 1e-9 {
                    self.ceiling
                } else {
                    next
                };
                let step = self.stretch(self.config.ramp_interval_ms);
                self.next_step = (self.scale < self.ceiling).then_some(now + step);
            }
            Some(at) if now >= at => self.next_step = None,
            _ => {}
        }
        self.decision()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BackpressureLevel::*;

    fn signal(level: BackpressureLevel) -> Signal {
        Signal::at(level)
    }

    fn no_jitter() -> HysteresisPolicy {
        HysteresisPolicy::new(
            HysteresisConfig {
                jitter: 0.0,
                ..HysteresisConfig::default()
            },
            1,
        )
    }

    /// Ticks whenever asked until `until`, returning (time since t0 in ms, scale) per change.
    fn run_ticks(
        p: &mut HysteresisPolicy,
        mut d: Decision,
        t0: Instant,
        until: Instant,
    ) -> Vec<(u128, f64)> {
        let mut out = vec![];
        while let Some(at) = d.wake_at.filter(|at| *at <= until) {
            d = p.on_tick(at);
            out.push(((at - t0).as_millis(), (d.scale * 100.0).round() / 100.0));
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn tightens_at_once_and_ramps_after_dwell() {
        let mut p = no_jitter();
        let t0 = Instant::now();
        assert_eq!(p.on_signal(&signal(Hard), t0).scale, 0.0);
        let d = p.on_signal(&signal(Ok), t0 + Duration::from_millis(100));
        // Still paused: relaxing waits for the dwell that started at the HARD.
        assert_eq!(d.scale, 0.0);
        assert_eq!(d.wake_at, Some(t0 + Duration::from_millis(2_000)));
        let steps = run_ticks(&mut p, d, t0, t0 + Duration::from_secs(10));
        assert_eq!(steps.first(), Some(&(2_000, 0.1)));
        assert_eq!(steps.last(), Some(&(4_250, 1.0)));
        assert_eq!(steps.len(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_pressure_restarts_the_dwell() {
        let mut p = no_jitter();
        let t0 = Instant::now();
        p.on_signal(&signal(Soft), t0);
        let d = p.on_signal(&signal(Soft), t0 + Duration::from_millis(1_500));
        assert_eq!(d.scale, 0.5);
        assert_eq!(d.wake_at, Some(t0 + Duration::from_millis(3_500)));
    }

    #[tokio::test(start_paused = true)]
    async fn soft_after_ok_caps_the_ramp() {
        let mut p = no_jitter();
        let t0 = Instant::now();
        p.on_signal(&signal(Hard), t0);
        let d = p.on_signal(&signal(Soft), t0);
        let steps = run_ticks(&mut p, d, t0, t0 + Duration::from_secs(10));
        assert_eq!(steps.last().map(|s| s.1), Some(0.5));
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_spreads_agents_apart() {
        let t0 = Instant::now();
        let wakes: Vec<_> = (0..5)
            .map(|seed| {
                let mut p = HysteresisPolicy::new(HysteresisConfig::default(), seed);
                p.on_signal(&signal(Hard), t0).wake_at.unwrap()
            })
            .collect();
        let distinct: std::collections::BTreeSet<_> = wakes.iter().collect();
        assert_eq!(distinct.len(), 5);
        assert!(
            wakes.iter().all(|w| *w >= t0 + Duration::from_millis(2_000)
                && *w <= t0 + Duration::from_millis(2_400))
        );
    }
}

//! The step policy of the predecessor (v0): a fixed scale per level.

use serde::Deserialize;
use tokio::time::Instant;

use super::policy::{Decision, Policy};
use crate::event::BackpressureLevel;
use crate::fleet::Signal;
use crate::invalid::{InvalidSetting, fractions};

/// Scale per level: OK 1.0, SOFT 0.5, HARD 0.0 by default (the predecessor's map).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StepPolicy {
    /// Scale at `ok`.
    pub ok: f64,
    /// Scale at `soft`.
    pub soft: f64,
    /// Scale at `hard`.
    pub hard: f64,
    #[serde(skip)]
    current: f64,
}

impl Default for StepPolicy {
    fn default() -> Self {
        Self::new(1.0, 0.5, 0.0)
    }
}

impl StepPolicy {
    /// A step map; values are clamped into [0, 1].
    pub fn new(ok: f64, soft: f64, hard: f64) -> Self {
        Self {
            ok: ok.clamp(0.0, 1.0),
            soft: soft.clamp(0.0, 1.0),
            hard: hard.clamp(0.0, 1.0),
            current: 1.0,
        }
    }

    /// Checks that every scale lies within [0, 1] (values read from settings are not clamped).
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        fractions(&[("ok", self.ok), ("soft", self.soft), ("hard", self.hard)])
    }

    /// The scale for `level`.
    pub fn scale_for(&self, level: BackpressureLevel) -> f64 {
        match level {
            BackpressureLevel::Ok => self.ok,
            BackpressureLevel::Soft => self.soft,
            BackpressureLevel::Hard => self.hard,
        }
    }
}

impl Policy for StepPolicy {
    fn name(&self) -> &'static str {
        "step"
    }

    fn on_signal(&mut self, signal: &Signal, _: Instant) -> Decision {
        // The predecessor's map has no ramp: a silence cap applies and lifts at once.
        self.current = self.scale_for(signal.level).min(signal.cap);
        Decision::hold(self.current)
    }

    fn on_tick(&mut self, _: Instant) -> Decision {
        Decision::hold(self.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(level: BackpressureLevel) -> Signal {
        Signal::at(level)
    }

    #[tokio::test]
    async fn maps_each_level_to_its_scale() {
        let mut p = StepPolicy::default();
        let now = Instant::now();
        assert_eq!(
            p.on_signal(&signal(BackpressureLevel::Soft), now).scale,
            0.5
        );
        assert_eq!(
            p.on_signal(&signal(BackpressureLevel::Hard), now).scale,
            0.0
        );
        assert_eq!(p.on_signal(&signal(BackpressureLevel::Ok), now).scale, 1.0);
        let mut custom = StepPolicy::new(1.0, 0.7, 0.2);
        assert_eq!(
            custom
                .on_signal(&signal(BackpressureLevel::Soft), now)
                .scale,
            0.7
        );
    }
}

//! `HandlerStats`: what a feedback handler did, shared with whoever reads it, and its probe.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::fleet::Observed;
use crate::histogram::Histogram;
use crate::telemetry::{self as t, Probe, Readings};

/// Counters of a handler, shared with whoever exports them.
#[derive(Debug, Default)]
pub struct HandlerStats {
    /// Events received, whatever became of them.
    pub received: AtomicU64,
    /// Events that became their instance's state.
    pub applied: AtomicU64,
    /// Duplicates ignored.
    pub duplicates: AtomicU64,
    /// Late or replayed events ignored.
    pub out_of_order: AtomicU64,
    /// Events ignored for their age.
    pub too_old: AtomicU64,
    /// Instances that said goodbye.
    pub left: AtomicU64,
    /// Events of coordinators this agent does not follow.
    pub unfollowed: AtomicU64,
    /// Scale changes applied to the rate coordinator.
    pub adjustments: AtomicU64,
    /// Current scale, as `f64` bits.
    scale_bits: AtomicU64,
    /// The deepest cut applied so far, `1 − scale`, as `f64` bits (non-negative floats order
    /// as their bits, and zero bits, the default, mean no cut).
    deepest_cut_bits: AtomicU64,
    /// Current merged level (0 ok, 1 soft, 2 hard).
    pub level: AtomicU64,
    /// Instances currently silent.
    pub silent_instances: AtomicU64,
    /// Time from an event's timestamp to its application (wall clocks of two hosts).
    pub latency: Histogram,
}

impl HandlerStats {
    /// The scale currently applied.
    pub fn scale(&self) -> f64 {
        f64::from_bits(self.scale_bits.load(Relaxed))
    }

    /// The lowest scale applied so far (1 if never cut).
    pub fn lowest_scale(&self) -> f64 {
        1.0 - f64::from_bits(self.deepest_cut_bits.load(Relaxed))
    }

    pub(super) fn set_scale(&self, scale: f64) {
        self.scale_bits.store(scale.to_bits(), Relaxed);
        let cut = (1.0 - scale).clamp(0.0, 1.0);
        self.deepest_cut_bits.fetch_max(cut.to_bits(), Relaxed);
    }

    /// The counter of `outcome`.
    fn outcome(&self, outcome: Observed) -> &AtomicU64 {
        match outcome {
            Observed::Applied => &self.applied,
            Observed::Duplicate => &self.duplicates,
            Observed::OutOfOrder => &self.out_of_order,
            Observed::TooOld => &self.too_old,
            Observed::Left => &self.left,
            Observed::Unfollowed => &self.unfollowed,
        }
    }

    pub(super) fn count(&self, outcome: Observed) {
        self.outcome(outcome).fetch_add(1, Relaxed);
    }
}

impl Probe for HandlerStats {
    fn claims(&self) -> Vec<String> {
        vec!["feedback handler".into()]
    }

    fn read(&self, out: &mut Readings) {
        let load = |c: &AtomicU64| c.load(Relaxed) as f64;
        for outcome in Observed::ALL {
            let labels = [("outcome", outcome.as_str())];
            out.set(
                &t::AGENT_FEEDBACK_OUTCOMES_TOTAL,
                &labels,
                load(self.outcome(outcome)),
            );
        }
        out.set(
            &t::AGENT_FEEDBACK_ADJUSTMENTS_TOTAL,
            &[],
            load(&self.adjustments),
        );
        out.set(
            &t::AGENT_FEEDBACK_SILENT_INSTANCES,
            &[],
            load(&self.silent_instances),
        );
        out.histogram(&t::FEEDBACK_LATENCY_SECONDS, &[], &self.latency);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_scale_is_remembered_and_one_until_cut() {
        let s = HandlerStats::default();
        assert_eq!(s.lowest_scale(), 1.0);
        s.set_scale(1.0);
        s.set_scale(0.3);
        s.set_scale(0.8);
        assert!((s.lowest_scale() - 0.3).abs() < 1e-12);
        assert_eq!(s.scale(), 0.8);
    }
}

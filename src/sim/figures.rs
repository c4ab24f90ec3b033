//! The figures of one run: utilisation, drops, queue wait, level flips, settling and
//! overshoot per load step, and fairness between agents.

use crate::feedback::PolicyKind;

/// Half-width of the band the queue must stay in to count as settled, as a fraction of
/// capacity.
pub const SETTLE_BAND: f64 = 0.05;
/// How the loop reacted to one change of load (the start counts as a change from 0).
#[derive(Debug, Clone, PartialEq)]
pub struct StepFigures {
    /// When the load changed, seconds.
    pub at_s: f64,
    /// Load factor before.
    pub from: f64,
    /// Load factor after.
    pub to: f64,
    /// Time until the (1 s averaged) queue utilization entered and stayed within
    /// ±[`SETTLE_BAND`] of its level at the end of the phase; infinite if it never did.
    pub settle_s: f64,
    /// Highest queue utilization in the phase above that final level (0 after a drop).
    pub overshoot: f64,
}

impl StepFigures {
    /// Whether the load fell.
    pub fn is_drop(&self) -> bool {
        self.to < self.from
    }
}

/// Every figure of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// The policy.
    pub policy: PolicyKind,
    /// Rows written after the warm-up / the sinks' capacity in that time.
    pub utilisation: f64,
    /// Rows dropped over the whole run (overflow).
    pub drops: u64,
    /// Median queue wait over the run (worst store), milliseconds.
    pub p50_wait_ms: f64,
    /// 99th percentile queue wait over the run (worst store), milliseconds.
    pub p99_wait_ms: f64,
    /// Level changes per minute after the warm-up, all stores.
    pub flips_per_min: f64,
    /// Jain's index over the rows each agent submitted after the warm-up (1 = equal).
    pub fairness: f64,
    /// The agents' mean scale after the warm-up.
    pub mean_scale: f64,
    /// Over the agents whose max-min fair allocation (of the sinks' capacity, by class and
    /// weight) is their whole demand: the least fraction of its demand one got.
    pub served_min: f64,
    /// Over the others: the largest relative distance of what one got from its allocation.
    pub share_error: f64,
    /// One entry per load change, the start first.
    pub steps: Vec<StepFigures>,
}

impl Figures {
    /// The figures of a run too short to measure anything.
    pub fn empty(policy: PolicyKind) -> Self {
        Self {
            policy,
            utilisation: 0.0,
            drops: 0,
            p50_wait_ms: 0.0,
            p99_wait_ms: 0.0,
            flips_per_min: 0.0,
            fairness: 1.0,
            mean_scale: 1.0,
            served_min: 1.0,
            share_error: 0.0,
            steps: vec![],
        }
    }

    /// The longest settling time over all steps.
    pub fn settle_max_s(&self) -> f64 {
        self.steps.iter().map(|s| s.settle_s).fold(0.0, f64::max)
    }

    /// The largest overshoot over all steps.
    pub fn overshoot_max(&self) -> f64 {
        self.steps.iter().map(|s| s.overshoot).fold(0.0, f64::max)
    }
}

/// Jain's fairness index: (Σx)² / (n Σx²); 1 when all equal, 1/n when one takes all.
pub fn jain(values: &[f64]) -> f64 {
    let sum: f64 = values.iter().sum();
    let squares: f64 = values.iter().map(|v| v * v).sum();
    if squares == 0.0 {
        return 1.0;
    }
    sum * sum / (values.len() as f64 * squares)
}

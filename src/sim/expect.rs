//! Expected `[min, max]` ranges of a run's figures, absolute and relative to the step
//! policy's run of the same scenario, checked all at once.

use serde::Deserialize;

use super::figures::Figures;

/// An inclusive range; YAML `[0.97, .inf]` leaves the top open.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Range(pub f64, pub f64);

impl Range {
    /// Whether `v` lies within (NaN never does).
    pub fn contains(&self, v: f64) -> bool {
        v >= self.0 && v <= self.1
    }
}

/// Ranges for one policy's figures; absent keys are not checked.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Rows written / sink capacity after the warm-up.
    pub utilisation: Option<Range>,
    /// Rows dropped.
    pub drops: Option<Range>,
    /// Median queue wait, ms.
    pub p50_wait_ms: Option<Range>,
    /// 99th percentile queue wait, ms.
    pub p99_wait_ms: Option<Range>,
    /// Level changes per minute.
    pub flips_per_min: Option<Range>,
    /// Jain's index between agents.
    pub fairness: Option<Range>,
    /// Longest settling time over the load steps, seconds.
    pub settle_max_s: Option<Range>,
    /// Largest overshoot of queue utilization after a rise.
    pub overshoot_max: Option<Range>,
    /// The agents' mean scale after the warm-up.
    pub mean_scale: Option<Range>,
    /// Least fraction of its demand an agent below its fair allocation got.
    pub served_min: Option<Range>,
    /// Largest relative distance of a throttled agent's throughput from its allocation.
    pub share_error: Option<Range>,
    /// p99 queue wait / the step policy's.
    pub p99_wait_ratio_to_step: Option<Range>,
    /// Level flips / the step policy's (0 / 0 counts as 0).
    pub flips_ratio_to_step: Option<Range>,
    /// Worst settling time after a load drop minus the step policy's, seconds.
    pub settle_drop_excess_over_step_s: Option<Range>,
    /// p99 queue wait / the proportional policy's.
    pub p99_wait_ratio_to_proportional: Option<Range>,
}

/// `a / b`, where 0 / 0 is 0 and x / 0 is infinite.
fn ratio(a: f64, b: f64) -> f64 {
    if a == 0.0 {
        0.0
    } else if b == 0.0 {
        f64::INFINITY
    } else {
        a / b
    }
}

/// The relative figures of `run` against the step policy's `step` run: (name, value).
pub fn relative(run: &Figures, step: &Figures) -> Vec<(&'static str, f64)> {
    let excess = run
        .steps
        .iter()
        .zip(&step.steps)
        .filter(|(r, _)| r.is_drop())
        .map(|(r, s)| match (r.settle_s, s.settle_s) {
            (a, b) if a.is_infinite() && b.is_infinite() => 0.0,
            (a, b) => a - b,
        })
        .fold(f64::NEG_INFINITY, f64::max);
    vec![
        (
            "p99_wait_ratio_to_step",
            ratio(run.p99_wait_ms, step.p99_wait_ms),
        ),
        (
            "flips_ratio_to_step",
            ratio(run.flips_per_min, step.flips_per_min),
        ),
        (
            "settle_drop_excess_over_step_s",
            // No drop in the scenario: nothing to compare.
            if excess == f64::NEG_INFINITY {
                0.0
            } else {
                excess
            },
        ),
    ]
}

impl Expect {
    /// Every out-of-range figure of `run`, described; `step` is the step policy's run of the
    /// same scenario (relative ranges cannot be checked without it, which is itself reported).
    pub fn violations(
        &self,
        run: &Figures,
        step: Option<&Figures>,
        proportional: Option<&Figures>,
    ) -> Vec<String> {
        let absolute = [
            ("utilisation", self.utilisation, run.utilisation),
            ("drops", self.drops, run.drops as f64),
            ("p50_wait_ms", self.p50_wait_ms, run.p50_wait_ms),
            ("p99_wait_ms", self.p99_wait_ms, run.p99_wait_ms),
            ("flips_per_min", self.flips_per_min, run.flips_per_min),
            ("fairness", self.fairness, run.fairness),
            ("settle_max_s", self.settle_max_s, run.settle_max_s()),
            ("overshoot_max", self.overshoot_max, run.overshoot_max()),
            ("mean_scale", self.mean_scale, run.mean_scale),
            ("served_min", self.served_min, run.served_min),
            ("share_error", self.share_error, run.share_error),
        ];
        let mut out = Vec::new();
        if let Some(r) = self.p99_wait_ratio_to_proportional {
            match proportional {
                Some(p) => {
                    let v = ratio(run.p99_wait_ms, p.p99_wait_ms);
                    if !r.contains(v) {
                        out.push(format!(
                            "{}: p99_wait_ratio_to_proportional = {v:.4} outside [{}, {}]",
                            run.policy, r.0, r.1
                        ));
                    }
                }
                None => out.push(format!(
                    "{}: p99_wait_ratio_to_proportional needs the proportional policy in `policies`",
                    run.policy
                )),
            }
        }
        for (name, range, value) in absolute {
            if let Some(r) = range {
                if !r.contains(value) {
                    out.push(format!(
                        "{}: {name} = {value:.4} outside [{}, {}]",
                        run.policy, r.0, r.1
                    ));
                }
            }
        }
        let wanted = [
            ("p99_wait_ratio_to_step", self.p99_wait_ratio_to_step),
            ("flips_ratio_to_step", self.flips_ratio_to_step),
            (
                "settle_drop_excess_over_step_s",
                self.settle_drop_excess_over_step_s,
            ),
        ];
        if wanted.iter().all(|(_, r)| r.is_none()) {
            return out;
        }
        let Some(step) = step else {
            out.push(format!(
                "{}: relative ranges need the step policy in `policies`",
                run.policy
            ));
            return out;
        };
        let values = relative(run, step);
        for (name, range) in wanted {
            let value = values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
            if let (Some(r), Some(v)) = (range, value) {
                if !r.contains(v) {
                    out.push(format!(
                        "{}: {name} = {v:.4} outside [{}, {}]",
                        run.policy, r.0, r.1
                    ));
                }
            }
        }
        out
    }
}

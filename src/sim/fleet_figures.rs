//! The figures of one fleet run: how fast the replicas followed a rise in demand, whether they
//! flapped while it was steady, what they cost against the ideal, how the agents fared once
//! scaled, and how the fleet came back down.

use super::autoscaling::{FleetSample, FleetTrace};
use super::fleet_spec::FleetExpect;
use crate::feedback::PolicyKind;

/// How long the needed replicas must have run before the agents' scale counts as "once
/// scaled": the fast loop lets go over a few heartbeats and the backlog built meanwhile
/// drains first.
pub const SCALED_GRACE_S: f64 = 10.0;

/// Every figure of one fleet run.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetFigures {
    /// The ScaledObject's name in the scenario.
    pub trigger_set: String,
    /// The agents' policy.
    pub policy: PolicyKind,
    /// Longest time from a rise in the needed count until that many replicas ran, seconds
    /// (infinite if some rise was never met).
    pub reach_max_s: f64,
    /// Replica count changes that reverse the one before and move away from the needed
    /// count, per hour.
    pub reversals_per_hour: f64,
    /// Replica count changes over the run, either way.
    pub changes: usize,
    /// Replica-seconds (running and starting) over those of the needed count at every
    /// moment.
    pub replica_seconds_ratio: f64,
    /// The agents' mean scale while more than one replica was needed and the needed replicas
    /// had run for [`SCALED_GRACE_S`]
    /// (NaN, shown as "never", when that never happened).
    pub mean_scale_scaled: f64,
    /// The agents' mean scale over the run.
    pub mean_scale: f64,
    /// From the last fall in the needed count to the first removal below the count needed
    /// before it, seconds (infinite when none was).
    pub first_down_s: f64,
    /// From the last fall in the needed count until the replicas equalled it, seconds.
    pub down_settle_s: f64,
    /// Most replicas asked for at once.
    pub peak_replicas: usize,
    /// Rows dropped, all replicas.
    pub drops: u64,
    /// 99th percentile queue wait, worst replica, milliseconds.
    pub p99_wait_ms: f64,
}

/// The figures of `trace`.
pub fn fleet_figures(trace: &FleetTrace) -> FleetFigures {
    let s = &trace.samples;
    let dt = |i: usize| s.get(i + 1).map_or(0.0, |n| n.t - s[i].t);
    let replica_s: f64 = (0..s.len()).map(|i| s[i].replicas as f64 * dt(i)).sum();
    let ideal_s: f64 = (0..s.len()).map(|i| s[i].needed as f64 * dt(i)).sum();
    FleetFigures {
        trigger_set: trace.trigger_set.clone(),
        policy: trace.policy,
        reach_max_s: reach_max_s(s),
        reversals_per_hour: reversals_per_hour(s),
        changes: s
            .windows(2)
            .filter(|w| w[1].replicas != w[0].replicas)
            .count(),
        replica_seconds_ratio: if ideal_s > 0.0 {
            replica_s / ideal_s
        } else {
            f64::INFINITY
        },
        mean_scale_scaled: mean_scale_scaled(s),
        mean_scale: mean(s.iter().map(|x| x.scale)).unwrap_or(1.0),
        first_down_s: down(s).0,
        down_settle_s: down(s).1,
        peak_replicas: s.iter().map(|x| x.replicas).max().unwrap_or(0),
        drops: trace
            .stores
            .iter()
            .map(|st| st.dropped_overflow + st.dropped_dead_letter_failed + st.dropped_abandoned)
            .sum(),
        p99_wait_ms: trace.wait_p99.as_secs_f64() * 1e3,
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// For every sample where the needed count rose, the time until that many replicas ran (or
/// the need fell back below what ran); the longest.
fn reach_max_s(s: &[FleetSample]) -> f64 {
    let mut worst: f64 = 0.0;
    for i in 1..s.len() {
        let need = s[i].needed;
        if need <= s[i - 1].needed || s[i].ready >= need {
            continue;
        }
        let met = s[i..].iter().find(|x| x.ready >= need || x.needed < need);
        worst = worst.max(met.map_or(f64::INFINITY, |x| x.t - s[i].t));
    }
    worst
}

/// Changes of the replica count that reverse the change before and move away from the
/// needed count (up while at least that many were asked for, down while at most), per hour
/// of the run: a fleet that follows the demand up and later down does not count; one that
/// bounces around a steady need does.
fn reversals_per_hour(s: &[FleetSample]) -> f64 {
    let mut before = std::cmp::Ordering::Equal;
    let mut reversals = 0usize;
    for w in s.windows(2) {
        let direction = w[1].replicas.cmp(&w[0].replicas);
        if direction.is_eq() {
            continue;
        }
        let towards = match direction {
            std::cmp::Ordering::Greater => w[1].replicas <= w[1].needed,
            _ => w[1].replicas >= w[1].needed,
        };
        if !before.is_eq() && direction != before && !towards {
            reversals += 1;
        }
        before = direction;
    }
    let hours = s.last().map_or(0.0, |x| x.t) / 3_600.0;
    if reversals == 0 {
        0.0
    } else {
        reversals as f64 / hours.max(1e-9)
    }
}

/// The agents' mean scale over the samples where more than one replica was needed and the
/// needed replicas had run for the grace time (a demand one replica serves says nothing about
/// scaling).
fn mean_scale_scaled(s: &[FleetSample]) -> f64 {
    let mut since: Option<f64> = None;
    let scaled = s.iter().filter(|x| {
        if x.needed > 1 && x.ready >= x.needed {
            let start = *since.get_or_insert(x.t);
            x.t - start >= SCALED_GRACE_S
        } else {
            since = None;
            false
        }
    });
    mean(scaled.map(|x| x.scale)).unwrap_or(f64::NAN)
}

/// From the last fall in the needed count: (seconds until the replicas first went below the
/// count needed before the fall (removing a surplus beyond it does not count),
/// seconds until the replicas equalled the need and stayed there); both 0 when the need never
/// fell, infinite when the fleet did not follow.
fn down(s: &[FleetSample]) -> (f64, f64) {
    let Some(fall) = (1..s.len()).rev().find(|&i| s[i].needed < s[i - 1].needed) else {
        return (0.0, 0.0);
    };
    let (t0, before) = (s[fall].t, s[fall - 1].needed);
    let first = (fall..s.len())
        .find(|&i| s[i].replicas < s[i - 1].replicas && s[i].replicas < before)
        .map_or(f64::INFINITY, |i| s[i].t - t0);
    let settled = s[fall..]
        .iter()
        .position(|x| x.replicas <= x.needed)
        .filter(|&p| s[fall + p..].iter().all(|x| x.replicas <= x.needed))
        .map_or(f64::INFINITY, |p| s[fall + p].t - t0);
    (first, settled)
}

impl FleetExpect {
    /// Every out-of-range figure of `run`, described.
    pub fn violations(&self, run: &FleetFigures) -> Vec<String> {
        let checks = [
            ("reach_max_s", self.reach_max_s, run.reach_max_s),
            (
                "reversals_per_hour",
                self.reversals_per_hour,
                run.reversals_per_hour,
            ),
            (
                "replica_seconds_ratio",
                self.replica_seconds_ratio,
                run.replica_seconds_ratio,
            ),
            (
                "mean_scale_scaled",
                self.mean_scale_scaled,
                run.mean_scale_scaled,
            ),
            ("mean_scale", self.mean_scale, run.mean_scale),
            ("first_down_s", self.first_down_s, run.first_down_s),
            ("down_settle_s", self.down_settle_s, run.down_settle_s),
            ("drops", self.drops, run.drops as f64),
            ("p99_wait_ms", self.p99_wait_ms, run.p99_wait_ms),
        ];
        checks
            .into_iter()
            .filter_map(|(name, range, value)| {
                let r = range?;
                (!r.contains(value)).then(|| {
                    format!(
                        "{}/{}: {name} = {value:.4} outside [{}, {}]",
                        run.trigger_set, run.policy, r.0, r.1
                    )
                })
            })
            .collect()
    }
}

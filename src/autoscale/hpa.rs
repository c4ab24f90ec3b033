//! One sync of the HPA controller for one autoscaler (Kubernetes `horizontal.go`,
//! `reconcileAutoscaler` and `computeReplicasForMetrics`): per-metric proposals in, the new
//! replica count out, through the max over metrics, stabilization, policies and min/max.

use super::behavior_spec::Behavior;
use super::history::{History, Stabilization};
use super::limits::{Events, legacy_scale_up_limit, scale_down_limit, scale_up_limit};
use super::replicas::Tolerances;
use super::scaled_object::ScaledObject;

/// The HPA controller's flags and feature gates the model follows (kube-controller-manager).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelParams {
    /// `--horizontal-pod-autoscaler-sync-period`: how often the HPA syncs (15 s).
    pub hpa_sync_period_s: f64,
    /// `--horizontal-pod-autoscaler-tolerance`: the default band around a ratio of 1 (0.1).
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-downscale-stabilization`: the scale-down window when the
    /// object sets none (300 s).
    pub downscale_stabilization_s: f64,
    /// The `HPAConfigurableTolerance` feature gate (beta; on): whether a `behavior`'s
    /// `tolerance` fields apply.
    pub configurable_tolerance: bool,
}

impl Default for ModelParams {
    fn default() -> Self {
        Self {
            hpa_sync_period_s: 15.0,
            tolerance: 0.1,
            downscale_stabilization_s: 300.0,
            configurable_tolerance: true,
        }
    }
}

/// Which bound or policy decided the final count of a sync (the HPA's `ScalingLimited`
/// condition reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The stabilized recommendation was allowed as is.
    DesiredWithinRange,
    /// A scale-up policy (or, without `behavior`, the doubling limit) held it down.
    ScaleUpLimit,
    /// A scale-down policy held it up.
    ScaleDownLimit,
    /// `maxReplicaCount` held it down.
    TooManyReplicas,
    /// `minReplicaCount` held it up.
    TooFewReplicas,
}

/// What one HPA sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpaVerdict {
    /// The target has 0 replicas: the HPA does not act (KEDA scales from zero).
    ScalingDisabled,
    /// The target had more than `maxReplicaCount`: set to it, metrics unread.
    AboveMax,
    /// The target had fewer than the HPA's minimum: set to it, metrics unread.
    BelowMin,
    /// Every metric failed, or some failed and the others ask for fewer replicas than now:
    /// the HPA does not scale (it never scales down on partial data).
    InvalidMetrics {
        /// Metrics that failed.
        invalid: usize,
        /// The largest proposal of the others, if any.
        recommendation: Option<u32>,
    },
    /// The metrics were read and the count normalized.
    Normalized {
        /// The largest proposal over the metrics.
        recommendation: u32,
        /// After the stabilization windows.
        stabilized: u32,
        /// What the windows did.
        stabilization: Stabilization,
        /// What bounded the final count.
        limit: Limit,
    },
}

/// The outcome of one sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HpaSync {
    /// The count before.
    pub current: u32,
    /// The count after (equal to `current` when the HPA did not scale).
    pub desired: u32,
    /// Why.
    pub verdict: HpaVerdict,
}

/// The HPA KEDA creates for a ScaledObject, with its controller's memory.
#[derive(Debug, Clone)]
pub(crate) struct Hpa {
    min: u32,
    max: u32,
    behavior: Option<Behavior>,
    down_window_s: f64,
    up_window_s: f64,
    tolerances: Tolerances,
    history: History,
}

impl Hpa {
    pub(crate) fn new(object: &ScaledObject, params: &ModelParams) -> Self {
        let behavior = object.behavior.clone();
        let tolerance_of = |t: Option<f64>| match t {
            Some(t) if params.configurable_tolerance => t,
            _ => params.tolerance,
        };
        let tolerances = match &behavior {
            Some(b) => Tolerances {
                scale_up: tolerance_of(b.scale_up.tolerance),
                scale_down: tolerance_of(b.scale_down.tolerance),
            },
            None => Tolerances::uniform(params.tolerance),
        };
        let window = |w: Option<u32>, default: f64| w.map_or(default, f64::from);
        Self {
            min: object.hpa_min_replicas(),
            max: object.max_replica_count,
            down_window_s: behavior
                .as_ref()
                .map_or(params.downscale_stabilization_s, |b| {
                    window(
                        b.scale_down.stabilization_window_s,
                        params.downscale_stabilization_s,
                    )
                }),
            up_window_s: behavior
                .as_ref()
                .map_or(0.0, |b| window(b.scale_up.stabilization_window_s, 0.0)),
            behavior,
            tolerances,
            history: History::default(),
        }
    }

    pub(crate) fn tolerances(&self) -> Tolerances {
        self.tolerances
    }

    pub(crate) fn stabilization_windows_s(&self) -> (f64, f64) {
        (self.up_window_s, self.down_window_s)
    }

    /// One sync at `now_s` with the target at `current` replicas; `proposals` holds each
    /// metric's proposal, `None` for a metric that could not be read.
    pub(crate) fn sync(&mut self, now_s: f64, current: u32, proposals: &[Option<u32>]) -> HpaSync {
        self.history.record_initial(now_s, current);
        let (desired, verdict) = if current == 0 {
            // KEDA's HPA minimum is at least 1, so 0 replicas always means "disabled".
            (0, HpaVerdict::ScalingDisabled)
        } else if current > self.max {
            (self.max, HpaVerdict::AboveMax)
        } else if current < self.min {
            (self.min, HpaVerdict::BelowMin)
        } else {
            let invalid = proposals.iter().filter(|p| p.is_none()).count();
            let recommendation = proposals.iter().flatten().copied().max();
            match recommendation {
                Some(r) if invalid == 0 || r >= current => self.normalize(now_s, current, r),
                _ => (
                    current,
                    HpaVerdict::InvalidMetrics {
                        invalid,
                        recommendation,
                    },
                ),
            }
        };
        if desired != current && self.behavior.is_some() {
            let longest = self.behavior.as_ref().map_or(0, |b| {
                if desired > current {
                    b.scale_up.longest_period_s()
                } else {
                    b.scale_down.longest_period_s()
                }
            });
            self.history
                .store_event(now_s, current, desired, f64::from(longest));
        }
        HpaSync {
            current,
            desired,
            verdict,
        }
    }

    fn normalize(&mut self, now_s: f64, current: u32, recommendation: u32) -> (u32, HpaVerdict) {
        let (stabilized, stabilization, (desired, limit)) = match &self.behavior {
            Some(behavior) => {
                let (stabilized, why) = self.history.stabilize(
                    now_s,
                    current,
                    recommendation,
                    self.up_window_s,
                    self.down_window_s,
                );
                let events = Events {
                    up: &self.history.scale_up_events,
                    down: &self.history.scale_down_events,
                };
                let bounded = with_behavior(
                    behavior, events, now_s, current, stabilized, self.min, self.max,
                );
                (stabilized, why, bounded)
            }
            None => {
                let stabilized =
                    self.history
                        .stabilize_legacy(now_s, recommendation, self.down_window_s);
                let why = match stabilized == recommendation {
                    true => Stabilization::None,
                    false => Stabilization::ScaleDownStabilized,
                };
                (
                    stabilized,
                    why,
                    legacy(current, stabilized, self.min, self.max),
                )
            }
        };
        let verdict = HpaVerdict::Normalized {
            recommendation,
            stabilized,
            stabilization,
            limit,
        };
        (desired, verdict)
    }
}

/// `convertDesiredReplicasWithBehaviorRate`: the policies bound a move, min/max the result.
fn with_behavior(
    behavior: &Behavior,
    events: Events<'_>,
    now_s: f64,
    current: u32,
    desired: u32,
    min: u32,
    max: u32,
) -> (u32, Limit) {
    if desired > current {
        // Never below `current`: a used-up period stops the rise, it does not undo it.
        let limit =
            scale_up_limit(current, events, &behavior.scale_up, now_s).max(i64::from(current));
        let (allowed, why) = match i64::from(max) > limit {
            true => (limit as u32, Limit::ScaleUpLimit),
            false => (max, Limit::TooManyReplicas),
        };
        if desired > allowed {
            return (allowed, why);
        }
    } else if desired < current {
        let limit =
            scale_down_limit(current, events, &behavior.scale_down, now_s).min(i64::from(current));
        let (allowed, why) = match i64::from(min) < limit {
            true => (limit as u32, Limit::ScaleDownLimit),
            false => (min, Limit::TooFewReplicas),
        };
        if desired < allowed {
            return (allowed, why);
        }
    }
    (desired, Limit::DesiredWithinRange)
}

/// `convertDesiredReplicasWithRules`, without `behavior`: min/max and the doubling limit.
fn legacy(current: u32, desired: u32, min: u32, max: u32) -> (u32, Limit) {
    let up_limit = legacy_scale_up_limit(current);
    let (allowed, why) = match max > up_limit {
        true => (up_limit, Limit::ScaleUpLimit),
        false => (max, Limit::TooManyReplicas),
    };
    if desired < min {
        (min, Limit::TooFewReplicas)
    } else if desired > allowed {
        (allowed, why)
    } else {
        (desired, Limit::DesiredWithinRange)
    }
}

#[cfg(test)]
#[path = "hpa_tests.rs"]
mod tests;

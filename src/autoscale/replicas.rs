//! The HPA's replica calculator for the External metrics KEDA serves: one trigger's value
//! and target in, a replica proposal out (Kubernetes `replica_calculator.go`,
//! `GetExternalPerPodMetricReplicas` and `GetExternalMetricReplicas`).

use super::reading::Replicas;
use super::trigger::MetricType;

/// The band around a usage ratio of 1 in which the HPA keeps the current count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    /// How far below 1 the ratio may fall (`scaleDown.tolerance`, default 0.1).
    pub scale_down: f64,
    /// How far above 1 it may rise (`scaleUp.tolerance`, default 0.1).
    pub scale_up: f64,
}

impl Tolerances {
    /// The same tolerance both ways.
    pub fn uniform(tolerance: f64) -> Self {
        Self {
            scale_down: tolerance,
            scale_up: tolerance,
        }
    }

    /// Whether `ratio` lies within `[1 - scale_down, 1 + scale_up]` (bounds included).
    pub fn is_within(self, ratio: f64) -> bool {
        (1.0 - self.scale_down) <= ratio && ratio <= (1.0 + self.scale_up)
    }
}

/// A number as KEDA hands it to the HPA: a quantity in milli-units, rounded to three decimals
/// (`quantityFromFloat64` formats with `%.3f`); NaN, infinities and negatives become 0.
pub fn milli(value: f64) -> i64 {
    if !value.is_finite() || value < 0.0 {
        return 0;
    }
    // Saturates at i64::MAX for absurd values, as the HPA caps its own sums.
    (value * 1000.0).round() as i64
}

/// One metric's replica proposal and how it was reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proposal {
    /// The replicas this metric asks for.
    pub replicas: u32,
    /// The usage ratio the tolerance is applied to: `value / (target × current)` for
    /// `AverageValue`, `value / target` for `Value`.
    pub ratio: f64,
    /// Whether the ratio fell within the tolerance, so that the proposal is the current count.
    pub within_tolerance: bool,
}

/// The HPA's proposal for an External metric of `metric_type` whose value is `usage` and
/// target `target` (both in milli-units, see [`milli`]).
///
/// - `AverageValue`: the ratio is `usage / (target × current)`; outside the tolerance the
///   proposal is `ceil(usage / target)`, whatever the current count; inside, the current count.
/// - `Value`: the ratio is `usage / target`; outside the tolerance the proposal is
///   `ceil(ratio × ready)`, inside the current count; with 0 replicas it is `ceil(ratio)`.
pub(crate) fn external(
    metric_type: MetricType,
    usage: i64,
    target: i64,
    replicas: Replicas,
    tolerances: Tolerances,
) -> Proposal {
    let usage = usage as f64;
    let target = target.max(1) as f64;
    match metric_type {
        MetricType::AverageValue => {
            let ratio = usage / (target * f64::from(replicas.current));
            let within_tolerance = tolerances.is_within(ratio);
            let replicas = if within_tolerance {
                replicas.current
            } else {
                saturate((usage / target).ceil())
            };
            Proposal {
                replicas,
                ratio,
                within_tolerance,
            }
        }
        MetricType::Value => {
            let ratio = usage / target;
            if replicas.current == 0 {
                // Kubernetes: scale from zero to ceil(ratio), no tolerance.
                return Proposal {
                    replicas: saturate(ratio.ceil()),
                    ratio,
                    within_tolerance: false,
                };
            }
            let within_tolerance = tolerances.is_within(ratio);
            let replicas = if within_tolerance {
                replicas.current
            } else {
                saturate((ratio * f64::from(replicas.ready)).ceil())
            };
            Proposal {
                replicas,
                ratio,
                within_tolerance,
            }
        }
    }
}

/// Kubernetes caps a proposal at `MaxInt32`; so does the model (and at 0 from below).
fn saturate(replicas: f64) -> u32 {
    if replicas.is_nan() || replicas <= 0.0 {
        0
    } else if replicas >= f64::from(i32::MAX) {
        i32::MAX as u32
    } else {
        replicas as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Tolerances = Tolerances {
        scale_down: 0.1,
        scale_up: 0.1,
    };

    fn average(value: f64, target: f64, current: u32) -> Proposal {
        external(
            MetricType::AverageValue,
            milli(value),
            milli(target),
            current.into(),
            TOL,
        )
    }

    #[test]
    fn average_value_asks_for_the_value_over_the_target_whatever_the_current_count() {
        // The case: 5 replicas, max depth 1900 against 2000 per replica -> 1.
        let p = average(1_900.0, 2_000.0, 5);
        assert_eq!(p.replicas, 1);
        assert!((p.ratio - 0.19).abs() < 1e-9);
        // 9000 queued rows at 2000 per replica -> 5, from 1 or from 3 replicas alike.
        assert_eq!(average(9_000.0, 2_000.0, 1).replicas, 5);
        assert_eq!(average(9_000.0, 2_000.0, 3).replicas, 5);
    }

    #[test]
    fn a_ratio_within_ten_percent_keeps_the_current_count() {
        // 4 replicas, 8400 / (2000 × 4) = 1.05: within; ceil(4.2) = 5 is not asked.
        assert_eq!(average(8_400.0, 2_000.0, 4).replicas, 4);
        // 1.1 exactly is still within (the bounds are inclusive) ...
        assert!(average(8_800.0, 2_000.0, 4).within_tolerance);
        // ... and 1.1 + a little is not: ceil(8801 / 2000) = 5.
        assert_eq!(average(8_801.0, 2_000.0, 4).replicas, 5);
        // Downwards alike: 0.9 within, below it out.
        assert_eq!(average(7_200.0, 2_000.0, 4).replicas, 4);
        assert_eq!(average(7_100.0, 2_000.0, 4).replicas, 4); // ceil(3.55) = 4 anyway
        assert_eq!(average(5_000.0, 2_000.0, 4).replicas, 3);
    }

    #[test]
    fn value_targets_scale_the_ready_count_by_the_ratio() {
        // Kubernetes docs: current 200m against a 100m target doubles the replicas.
        let p = external(
            MetricType::Value,
            milli(0.2),
            milli(0.1),
            Replicas::new(3, 3),
            TOL,
        );
        assert_eq!((p.replicas, p.ratio), (6, 2.0));
        // 50m against 100m halves them.
        let p = external(
            MetricType::Value,
            milli(0.05),
            milli(0.1),
            Replicas::new(4, 4),
            TOL,
        );
        assert_eq!(p.replicas, 2);
        // Only ready pods are multiplied: 4 replicas, 2 ready, ratio 2 -> 4.
        let p = external(MetricType::Value, 200, 100, Replicas::new(4, 2), TOL);
        assert_eq!(p.replicas, 4);
        // Within the tolerance the current (spec) count stays.
        let p = external(MetricType::Value, 105, 100, Replicas::new(4, 2), TOL);
        assert_eq!((p.replicas, p.within_tolerance), (4, true));
    }

    #[test]
    fn per_direction_tolerances_apply_to_their_side_only() {
        let tol = Tolerances {
            scale_down: 0.0,
            scale_up: 0.5,
        };
        assert!(tol.is_within(1.4) && !tol.is_within(0.99) && !tol.is_within(1.51));
    }

    #[test]
    fn quantities_round_to_milli_units_and_refuse_negatives() {
        assert_eq!(milli(0.5), 500);
        assert_eq!(milli(1.0004), 1_000);
        assert_eq!(milli(1.0006), 1_001);
        assert_eq!(milli(-3.0), 0);
        assert_eq!(milli(f64::NAN), 0);
        assert_eq!(saturate(1e12), i32::MAX as u32);
    }
}

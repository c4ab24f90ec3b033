//! The HPA's sync: policies per period, stabilization windows, invalid metrics, min/max, the path without behavior.

use super::*;

/// A ScaledObject between `min` and `max` with `behavior` (YAML under `behavior:`, or none).
fn object(min: u32, max: u32, behavior: Option<&str>) -> ScaledObject {
    let mut yaml = format!(
        "kind: ScaledObject\nspec:\n  minReplicaCount: {min}\n  maxReplicaCount: {max}\n  triggers:\n    \
         - type: prometheus\n      metadata: {{serverAddress: x, query: 'max(m)', threshold: '1'}}\n"
    );
    if let Some(b) = behavior {
        yaml.push_str("  advanced:\n    horizontalPodAutoscalerConfig:\n      behavior:\n");
        for line in b.lines() {
            yaml.push_str(&format!("        {line}\n"));
        }
    }
    ScaledObject::from_yaml(&yaml).expect("test object")
}

/// A behavior with 30 s periods (deployed before issue 13): up +100 % or +2 pods per 30 s (Max);
/// down after 300 s, 1 pod/60 s.
const DEPLOYED: &str = "\
scaleUp:
  stabilizationWindowSeconds: 0
  selectPolicy: Max
  policies: [{type: Percent, value: 100, periodSeconds: 30}, {type: Pods, value: 2, periodSeconds: 30}]
scaleDown:
  stabilizationWindowSeconds: 300
  selectPolicy: Min
  policies: [{type: Pods, value: 1, periodSeconds: 60}]";

/// Syncs every 15 s from `from_s` while the metric keeps asking for `wanted`; returns the
/// counts after each sync.
fn run(hpa: &mut Hpa, from_s: f64, syncs: usize, mut current: u32, wanted: u32) -> Vec<u32> {
    (0..syncs)
        .map(|i| {
            current = hpa
                .sync(from_s + 15.0 * i as f64, current, &[Some(wanted)])
                .desired;
            current
        })
        .collect()
}

#[test]
fn scale_up_is_limited_by_the_policies_of_each_period() {
    let mut hpa = Hpa::new(&object(1, 10, Some(DEPLOYED)), &ModelParams::default());
    // 1 -> 3 (+2 pods beats +100 %), held for the 30 s period, 3 -> 6, then capped at 10.
    assert_eq!(run(&mut hpa, 0.0, 7, 1, 10), [3, 3, 6, 6, 10, 10, 10]);
    let sync = hpa.sync(105.0, 10, &[Some(40)]);
    assert_eq!(sync.desired, 10);
    assert!(matches!(
        sync.verdict,
        HpaVerdict::Normalized {
            limit: Limit::DesiredWithinRange | Limit::TooManyReplicas,
            ..
        }
    ));
}

#[test]
fn kubernetes_default_scale_up_adds_four_pods_or_doubles_every_fifteen_seconds() {
    let defaults = "scaleDown: {stabilizationWindowSeconds: 300}";
    let mut hpa = Hpa::new(&object(1, 100, Some(defaults)), &ModelParams::default());
    let sync = hpa.sync(0.0, 1, &[Some(30)]);
    assert_eq!(sync.desired, 5);
    assert!(matches!(
        sync.verdict,
        HpaVerdict::Normalized {
            limit: Limit::ScaleUpLimit,
            recommendation: 30,
            ..
        }
    ));
    assert_eq!(run(&mut hpa, 15.0, 3, 5, 30), [10, 20, 30]);
}

#[test]
fn scale_down_waits_for_the_stabilization_window_then_follows_the_policy() {
    let mut hpa = Hpa::new(&object(1, 10, Some(DEPLOYED)), &ModelParams::default());
    // The fleet is at 5 and the metric asks for 5, then from t=60 s for 1.
    assert_eq!(run(&mut hpa, 0.0, 4, 5, 5), [5; 4]);
    let counts = run(&mut hpa, 60.0, 30, 5, 1);
    // The last recommendation of 5 (t=45 s) leaves the 300 s window at t=345 s; from then
    // on one pod per 60 s.
    let first_drop = counts.iter().position(|&c| c < 5).expect("a scale-down");
    assert_eq!(60.0 + 15.0 * first_drop as f64, 345.0);
    assert_eq!(
        counts[first_drop..first_drop + 9],
        [4, 4, 4, 4, 3, 3, 3, 3, 2]
    );
    let sync = hpa.sync(510.0, 2, &[Some(1)]);
    assert_eq!(sync.desired, 2);
    assert!(matches!(
        sync.verdict,
        HpaVerdict::Normalized {
            stabilization: Stabilization::None,
            limit: Limit::ScaleDownLimit,
            ..
        }
    ));
}

#[test]
fn a_new_hpa_does_not_scale_down_before_a_whole_window() {
    let mut hpa = Hpa::new(&object(1, 10, Some(DEPLOYED)), &ModelParams::default());
    let sync = hpa.sync(0.0, 6, &[Some(1)]);
    assert_eq!(sync.desired, 6);
    assert!(matches!(
        sync.verdict,
        HpaVerdict::Normalized {
            stabilization: Stabilization::ScaleDownStabilized,
            stabilized: 6,
            ..
        }
    ));
}

#[test]
fn the_largest_proposal_wins_and_failed_metrics_never_scale_down() {
    let mut hpa = Hpa::new(&object(1, 10, Some(DEPLOYED)), &ModelParams::default());
    assert_eq!(hpa.sync(0.0, 2, &[Some(1), Some(4), Some(3)]).desired, 4);
    // One metric failed and the others want fewer than now: no scaling at all.
    let sync = hpa.sync(600.0, 4, &[None, Some(1), Some(2)]);
    assert_eq!(sync.desired, 4);
    assert_eq!(
        sync.verdict,
        HpaVerdict::InvalidMetrics {
            invalid: 1,
            recommendation: Some(2)
        }
    );
    // All failed: no scaling.
    let sync = hpa.sync(615.0, 4, &[None, None, None]);
    assert_eq!(
        sync.verdict,
        HpaVerdict::InvalidMetrics {
            invalid: 3,
            recommendation: None
        }
    );
    // One failed, the others want more: the HPA scales up on them.
    assert_eq!(hpa.sync(630.0, 4, &[None, Some(6), Some(2)]).desired, 6);
}

#[test]
fn min_and_max_bound_every_outcome() {
    let mut hpa = Hpa::new(&object(2, 6, Some(DEPLOYED)), &ModelParams::default());
    assert_eq!(
        hpa.sync(0.0, 9, &[Some(9)]),
        HpaSync {
            current: 9,
            desired: 6,
            verdict: HpaVerdict::AboveMax
        }
    );
    assert_eq!(
        hpa.sync(15.0, 1, &[Some(1)]),
        HpaSync {
            current: 1,
            desired: 2,
            verdict: HpaVerdict::BelowMin
        }
    );
    assert_eq!(
        hpa.sync(30.0, 0, &[Some(5)]).verdict,
        HpaVerdict::ScalingDisabled
    );
    let sync = hpa.sync(2000.0, 5, &[Some(50)]);
    assert_eq!(sync.desired, 6);
    assert!(matches!(
        sync.verdict,
        HpaVerdict::Normalized {
            limit: Limit::TooManyReplicas,
            ..
        }
    ));
    let sync = hpa.sync(4000.0, 3, &[Some(0)]);
    assert_eq!(sync.desired, 2);
    assert!(matches!(
        sync.verdict,
        HpaVerdict::Normalized {
            limit: Limit::TooFewReplicas,
            ..
        }
    ));
}

#[test]
fn without_behavior_the_controller_doubles_at_most_and_holds_the_highest_recent_recommendation() {
    let params = ModelParams {
        downscale_stabilization_s: 120.0,
        ..ModelParams::default()
    };
    let mut hpa = Hpa::new(&object(1, 50, None), &params);
    // max(2 × current, 4) per sync, no periods: 1 -> 4 -> 8 -> 16.
    assert_eq!(run(&mut hpa, 0.0, 3, 1, 40), [4, 8, 16]);
    // The older path takes the highest recommendation of the last 120 s in either
    // direction: the earlier 40s keep the count rising after the metric fell to 2, and it
    // drops all at once when they leave the window (t=165 s).
    assert_eq!(
        run(&mut hpa, 45.0, 10, 16, 2),
        [32, 40, 40, 40, 40, 40, 40, 40, 2, 2]
    );
}

#[test]
fn per_direction_tolerances_follow_the_feature_gate() {
    let tolerant = "scaleUp: {tolerance: 0.5}\nscaleDown: {tolerance: 0.01}";
    let hpa = Hpa::new(&object(1, 10, Some(tolerant)), &ModelParams::default());
    assert_eq!(
        hpa.tolerances(),
        Tolerances {
            scale_up: 0.5,
            scale_down: 0.01
        }
    );
    let gated = ModelParams {
        configurable_tolerance: false,
        ..ModelParams::default()
    };
    assert_eq!(
        Hpa::new(&object(1, 10, Some(tolerant)), &gated).tolerances(),
        Tolerances::uniform(0.1)
    );
}

//! Both loops together on the deployed ScaledObject and on small ones, numbers from issue 13 and the Kubernetes docs.

use super::*;
use crate::autoscale::hpa::{HpaVerdict, Limit};
use crate::autoscale::keda::Source;

fn deployed() -> Autoscaler {
    let file = format!(
        "{}/deploy/keda/scaledobject-coordinator.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let yaml = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    Autoscaler::from_yaml(&yaml).unwrap_or_else(|e| panic!("{}", crate::error::Chain(&e)))
}

/// The former triggers (queue depth instead of desired replicas), kept as a fixture.
fn queue_depth_fixture() -> Autoscaler {
    let file = format!(
        "{}/tests/data/keda/scaledobject-queue-depth.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let yaml = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    Autoscaler::from_yaml(&yaml).unwrap_or_else(|e| panic!("{}", crate::error::Chain(&e)))
}

/// Closed loop: polls every `step_s` for `until_s`, feeding `readings(t)` and the model's
/// own count back; returns (time, count) after each poll that changed it.
fn drive(
    model: &mut Autoscaler,
    mut current: u32,
    from_s: f64,
    until_s: f64,
    step_s: f64,
    readings: impl Fn(f64) -> Vec<Reading>,
) -> (u32, Vec<(f64, u32)>) {
    let mut changes = Vec::new();
    let mut t = from_s;
    while t <= until_s {
        let d = model.poll(t, current, &readings(t));
        if d.changed() {
            changes.push((t, d.desired));
        }
        current = d.desired;
        t += step_s;
    }
    (current, changes)
}

/// Three triggers' readings: the first (desired replicas deployed, queue depth in the
/// fixture), hard (0/1), lag.
fn three(first: f64, hard: f64, lag: f64) -> Vec<Reading> {
    vec![
        Reading::Value(first),
        Reading::Value(hard),
        Reading::Value(lag),
    ]
}

#[test]
fn loops_run_at_the_first_poll_then_each_on_its_own_period() {
    let mut model = deployed();
    let d = model.poll(0.0, 2, &three(2.0, 0.0, 0.0));
    assert!(d.keda.is_some() && d.hpa.is_some());
    assert_eq!(model.next_due_s(), 15.0);
    let d = model.poll(7.0, 2, &three(4.0, 0.0, 0.0));
    assert_eq!((d.why, d.desired), (Why::NotDue, 2));
    assert!(d.per_trigger.is_empty());
    let d = model.poll(15.0, 2, &three(4.0, 0.0, 0.0));
    assert_eq!(d.desired, 4);
}

#[test]
fn the_largest_trigger_wins_and_each_verdict_says_why() {
    let mut model = deployed();
    // desired 2 / 1 -> 2, HARD 1 / 0.5 -> 2, lag 12000 / 5000 -> 3.
    let d = model.poll(0.0, 1, &three(2.0, 1.0, 12_000.0));
    let proposals: Vec<u32> = d
        .per_trigger
        .iter()
        .filter_map(|t| t.proposal.map(|p| p.replicas))
        .collect();
    assert_eq!(proposals, [2, 2, 3]);
    assert_eq!(d.desired, 3);
    assert!(matches!(
        d.why,
        Why::Hpa(HpaVerdict::Normalized {
            recommendation: 3,
            limit: Limit::DesiredWithinRange,
            ..
        })
    ));
    assert_eq!(d.per_trigger[2].value, Ok(12_000.0));
    assert_eq!(d.per_trigger[2].source, Some(Source::Live));
    let line = d.to_string();
    assert!(
        line.contains("write-consumer-lag 12000/5000 ratio 2.40 -> 3"),
        "{line}"
    );
}

#[test]
fn a_step_to_five_replicas_is_taken_in_one_step_and_the_old_policy_took_two() {
    // Deployed: +10 pods or +100 % per 15 s, so 1 -> 5 at once.
    let (end, changes) = drive(&mut deployed(), 1, 0.0, 120.0, 1.0, |_| {
        three(5.0, 0.0, 0.0)
    });
    assert_eq!((changes.as_slice(), end), ([(0.0, 5)].as_slice(), 5));
    // The former: 10,000 rows of depth against 2000 per replica asks for 5, but +2 pods or
    // +100 % per 30 s goes 1 -> 3 at once and 3 -> 5 one period later.
    let (end, changes) = drive(&mut queue_depth_fixture(), 1, 0.0, 120.0, 1.0, |_| {
        three(10_000.0, 0.0, 0.0)
    });
    assert_eq!(changes, [(0.0, 3), (30.0, 5)]);
    assert_eq!(end, 5);
}

#[test]
fn max_of_a_uniformly_loaded_fleet_shrinks_it_after_the_window_one_pod_a_minute() {
    // Why the queue-depth trigger went (issue 13): 5 replicas at 1900 rows each,
    // `max(depth)` against 2000 -> desired 1, however loaded the fleet.
    let mut model = queue_depth_fixture();
    let (end, changes) = drive(&mut model, 5, 0.0, 600.0, 1.0, |_| three(1_900.0, 0.0, 0.0));
    assert_eq!(changes.first(), Some(&(300.0, 4)));
    assert_eq!(changes, [(300.0, 4), (360.0, 3), (420.0, 2), (480.0, 1)]);
    assert_eq!(end, 1);
}

#[test]
fn tolerance_keeps_a_ten_percent_change_from_scaling() {
    let mut model = deployed();
    // 4 replicas; lag 21,000 is 1.05 × 4 × 5000 (ceil would be 5): within tolerance.
    let d = model.poll(0.0, 4, &three(0.0, 0.0, 21_000.0));
    let p = d.per_trigger[2].proposal.expect("a proposal");
    assert!(p.within_tolerance);
    assert_eq!((p.replicas, d.desired), (4, 4));
    let d = model.poll(15.0, 4, &three(0.0, 0.0, 22_500.0));
    assert_eq!(d.desired, 5);
}

#[test]
fn fallback_replaces_a_failing_trigger_after_both_loops_count_its_failures() {
    let mut model = deployed();
    let failing = |_| vec![Reading::Failed, Reading::Value(0.0), Reading::Value(0.0)];
    // pollingInterval 15 = HPA sync 15: each poll reads the trigger twice (KEDA, then HPA).
    let d = model.poll(0.0, 2, &failing(0.0));
    assert_eq!(d.per_trigger[0].failures, 2);
    // The HPA does not scale down on partial data: the others ask for 1, it stays at 2.
    assert!(matches!(
        d.why,
        Why::Hpa(HpaVerdict::InvalidMetrics { invalid: 1, .. })
    ));
    let d = model.poll(15.0, 2, &failing(15.0));
    // 4th consecutive failure > failureThreshold 3: fallback, currentReplicasIfHigher -> 4.
    assert_eq!(
        d.per_trigger[0].source,
        Some(Source::Fallback { replicas: 4 })
    );
    assert_eq!(d.desired, 4);
    // Recovered: the failure count resets.
    let d = model.poll(30.0, 4, &three(4.0, 0.0, 0.0));
    assert_eq!(d.per_trigger[0].failures, 0);
}

#[test]
fn value_metrics_multiply_the_ready_count() {
    let yaml = "kind: ScaledObject\nspec:\n  minReplicaCount: 1\n  maxReplicaCount: 20\n  triggers:\n    \
                - type: prometheus\n      metricType: Value\n      metadata: {serverAddress: x, query: q, threshold: '100'}\n";
    let mut model = Autoscaler::from_yaml(yaml).expect("model");
    // Ratio 200 / 100 = 2 over the 3 ready of 4 pods: 6 (AverageValue would ask for 1).
    let d = model.poll(0.0, Replicas::new(4, 3), &[200.0]);
    assert_eq!(d.per_trigger[0].proposal.map(|p| p.replicas), Some(6));
    assert_eq!(d.desired, 6);
}

#[test]
fn keda_activates_a_target_at_zero_and_the_hpa_takes_over() {
    let yaml = "kind: ScaledObject\nspec:\n  pollingInterval: 30\n  cooldownPeriod: 120\n  \
                advanced:\n    horizontalPodAutoscalerConfig:\n      behavior:\n        \
                scaleDown: {stabilizationWindowSeconds: 60}\n  triggers:\n    \
                - type: prometheus\n      metadata: {serverAddress: x, query: q, threshold: '10', activationThreshold: '5'}\n";
    let mut model = Autoscaler::from_yaml(yaml).expect("model");
    let d = model.poll(0.0, 0, &[Some(3.0)]);
    assert_eq!(
        (d.desired, d.why),
        (0, Why::Hpa(HpaVerdict::ScalingDisabled))
    );
    let d = model.poll(30.0, 0, &[Some(45.0)]);
    // KEDA: 0 -> 1 (45 > activation 5); the HPA at the same instant: ceil(45 / 10) = 5,
    // and Kubernetes' default scale-up (+4 pods or +100 % per 15 s) allows 1 -> 5.
    assert!(
        matches!(d.why, Why::KedaThenHpa(KedaAction::Activated(1), _)),
        "{d}"
    );
    assert_eq!(d.desired, 5);
    // Inactive from 60 s (value 0 <= 5): the HPA goes down to its minimum 1 once the 5 has
    // left its 60 s window, KEDA to 0 once the last active time (30 s) is 120 s past.
    let (end, changes) = drive(&mut model, 5, 60.0, 400.0, 5.0, |_| {
        vec![Reading::Value(0.0)]
    });
    assert_eq!(changes, [(90.0, 1), (180.0, 0)]);
    assert_eq!(end, 0);
}

#[test]
fn unmodelled_features_and_bad_parameters_are_refused_by_key() {
    let yaml = "kind: ScaledObject\nspec:\n  idleReplicaCount: 0\n  triggers:\n    \
                - type: prometheus\n      metadata: {serverAddress: x, query: q, threshold: '1'}\n";
    let object = ScaledObject::from_yaml(yaml).expect("object");
    let err = Autoscaler::new(&object, ModelParams::default()).expect_err("refused");
    assert_eq!(err.key, "spec.idleReplicaCount");
    let mut ok = object;
    ok.idle_replica_count = None;
    let params = ModelParams {
        hpa_sync_period_s: 0.0,
        ..ModelParams::default()
    };
    assert_eq!(
        Autoscaler::new(&ok, params).expect_err("refused").key,
        "hpa_sync_period_s"
    );
}

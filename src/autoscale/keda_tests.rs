//! KEDA's side: failure counts and fallback, empty answers, the metrics cache, activation and scale to zero.

use super::*;

fn object(spec: &str, triggers: &str) -> ScaledObject {
    let yaml = format!("kind: ScaledObject\nspec:\n{spec}  triggers:\n{triggers}");
    ScaledObject::from_yaml(&yaml).expect("test object")
}

const DEPTH: &str = "    - type: prometheus\n      metadata: {serverAddress: x, query: 'max(m)', threshold: '2000', ignoreNullValues: 'false'}\n";
const LAG: &str = "    - type: nats-jetstream\n      metadata: {stream: S, consumer: c, account: A, natsServerMonitoringEndpoint: n:8222, lagThreshold: '5000', activationLagThreshold: '10'}\n";

fn with_fallback(behavior: &str) -> ScaledObject {
    object(
        &format!(
            "  minReplicaCount: 1\n  fallback: {{failureThreshold: 3, replicas: 4, behavior: {behavior}}}\n"
        ),
        DEPTH,
    )
}

#[test]
fn fallback_applies_once_failures_exceed_the_threshold() {
    let mut keda = Keda::new(&with_fallback("static"));
    let pods = Replicas::from(2);
    // failureThreshold 3: the 1st to 3rd consecutive failures are errors, the 4th falls back.
    for n in 1..=3 {
        assert_eq!(
            keda.serve(0, Reading::Failed, pods),
            Err(TriggerError::Failed)
        );
        assert_eq!(keda.failures(0), n);
    }
    let metric = keda.serve(0, Reading::Failed, pods).expect("fallback");
    // target × replicas: the HPA's ceil(value / target) then asks for exactly 4.
    assert_eq!(
        metric,
        Metric {
            milli: 8_000_000,
            source: Source::Fallback { replicas: 4 }
        }
    );
    // One success resets the count.
    assert!(keda.serve(0, Reading::Value(10.0), pods).is_ok());
    assert_eq!(keda.failures(0), 0);
    assert_eq!(
        keda.serve(0, Reading::Failed, pods),
        Err(TriggerError::Failed)
    );
}

#[test]
fn fallback_behaviors_relate_the_count_to_the_current_one() {
    let fall_back = |behavior: &str, current: u32| {
        let mut keda = Keda::new(&with_fallback(behavior));
        for _ in 0..3 {
            let _ = keda.serve(0, Reading::Failed, current.into());
        }
        match keda.serve(0, Reading::Failed, current.into()) {
            Ok(Metric {
                source: Source::Fallback { replicas },
                ..
            }) => replicas,
            other => panic!("{behavior}: {other:?}"),
        }
    };
    assert_eq!(fall_back("static", 7), 4);
    assert_eq!(fall_back("currentReplicas", 7), 7);
    assert_eq!(fall_back("currentReplicasIfHigher", 7), 7);
    assert_eq!(fall_back("currentReplicasIfHigher", 2), 4);
    assert_eq!(fall_back("currentReplicasIfLower", 7), 4);
    assert_eq!(fall_back("currentReplicasIfLower", 2), 2);
}

#[test]
fn a_value_fallback_is_divided_by_the_ready_replicas() {
    let so = object(
        "  fallback: {failureThreshold: 0, replicas: 6}\n",
        "    - type: prometheus\n      metricType: Value\n      metadata: {serverAddress: x, query: q, threshold: '100'}\n",
    );
    let mut keda = Keda::new(&so);
    // Threshold 0: the first failure already falls back. 6 replicas over 3 ready: 2 × target.
    let metric = keda
        .serve(0, Reading::Failed, Replicas::new(4, 3))
        .expect("fallback");
    assert_eq!(metric.milli, 200_000);
    assert_eq!(
        keda.serve(0, Reading::Failed, Replicas::new(4, 0)),
        Err(TriggerError::NoReadyReplicas)
    );
}

#[test]
fn without_fallback_failures_are_not_counted_and_stay_errors() {
    let mut keda = Keda::new(&object("", DEPTH));
    for _ in 0..10 {
        assert_eq!(
            keda.serve(0, Reading::Empty, 3.into()),
            Err(TriggerError::Empty)
        );
    }
    assert_eq!(keda.failures(0), 0);
}

#[test]
fn empty_prometheus_answers_read_as_zero_unless_ignore_null_values_is_false() {
    let lenient = object(
        "",
        "    - type: prometheus\n      metadata: {serverAddress: x, query: q, threshold: '1'}\n",
    );
    let mut keda = Keda::new(&lenient);
    assert_eq!(
        keda.serve(0, Reading::Empty, 1.into()).map(|m| m.milli),
        Ok(0)
    );
    assert_eq!(
        keda.serve(0, Reading::Value(f64::NAN), 1.into())
            .map(|m| m.milli),
        Ok(0)
    );
    assert_eq!(
        keda.serve(0, Reading::Failed, 1.into()),
        Err(TriggerError::Failed)
    );
    let strict = object("", DEPTH);
    assert_eq!(
        Keda::new(&strict).serve(0, Reading::Empty, 1.into()),
        Err(TriggerError::Empty)
    );
    // A missing consumer is an error for the nats-jetstream scaler, whatever the settings.
    assert_eq!(
        Keda::new(&object("", LAG)).serve(0, Reading::Empty, 1.into()),
        Err(TriggerError::Empty)
    );
}

#[test]
fn cached_metrics_answer_from_the_last_poll_and_both_paths_count_failures() {
    let cached = DEPTH.replace(
        "- type: prometheus\n",
        "- type: prometheus\n      useCachedMetrics: true\n",
    );
    let mut keda = Keda::new(&object(
        "  fallback: {failureThreshold: 3, replicas: 4}\n",
        &cached,
    ));
    keda.poll(0.0, 2.into(), &[Reading::Value(6_000.0)]);
    // The HPA gets the polled value, whatever the source says now.
    let metric = keda
        .serve(0, Reading::Value(100.0), 2.into())
        .expect("cached");
    assert_eq!((metric.milli, metric.source), (6_000_000, Source::Cached));
    // A failed poll is cached as a failure; the loop and each HPA read of it both count.
    keda.poll(15.0, 2.into(), &[Reading::Failed]);
    assert_eq!(keda.failures(0), 1);
    assert!(keda.serve(0, Reading::Value(1.0), 2.into()).is_err());
    assert_eq!(keda.failures(0), 2);
}

#[test]
fn the_polling_loop_scales_from_zero_on_activation_and_to_zero_after_the_cooldown() {
    let so = object("  minReplicaCount: 0\n  cooldownPeriod: 60\n", LAG);
    let mut keda = Keda::new(&so);
    // Lag 5 is below activationLagThreshold 10: inactive; at 0 replicas nothing happens.
    assert_eq!(
        keda.poll(0.0, 0.into(), &[Reading::Value(5.0)]).action,
        KedaAction::None
    );
    let poll = keda.poll(30.0, 0.into(), &[Reading::Value(11.0)]);
    assert_eq!((poll.active, poll.action), (true, KedaAction::Activated(1)));
    assert_eq!(
        keda.poll(60.0, 3.into(), &[Reading::Value(20.0)]).action,
        KedaAction::None
    );
    // Inactive from 90 s; last active at 60 s: scaled to 0 once 60 + 60 < now, straight
    // from 3 (KEDA does not step down).
    assert_eq!(
        keda.poll(90.0, 3.into(), &[Reading::Value(0.0)]).action,
        KedaAction::None
    );
    assert_eq!(
        keda.poll(120.0, 3.into(), &[Reading::Value(0.0)]).action,
        KedaAction::None
    );
    assert_eq!(
        keda.poll(150.0, 3.into(), &[Reading::Value(0.0)]).action,
        KedaAction::Deactivated
    );
}

#[test]
fn failing_triggers_block_the_scale_to_zero_and_min_is_restored() {
    let so = object("  minReplicaCount: 0\n  cooldownPeriod: 0\n", LAG);
    let mut keda = Keda::new(&so);
    let poll = keda.poll(100.0, 2.into(), &[Reading::Failed]);
    assert_eq!((poll.error, poll.action), (true, KedaAction::None));
    let so = object("  minReplicaCount: 2\n", LAG);
    assert_eq!(
        Keda::new(&so)
            .poll(0.0, 1.into(), &[Reading::Value(0.0)])
            .action,
        KedaAction::RaisedToMin(2)
    );
}

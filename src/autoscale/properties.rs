//! Property: whatever the settings and readings, the model keeps the count within
//! `[minReplicaCount, maxReplicaCount]` once it has acted, and never reaches zero unless
//! `minReplicaCount` is 0 or the target was already at zero.

use proptest::prelude::*;

use super::{Autoscaler, ModelParams, Reading};

fn policy() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("Pods"), Just("Percent")],
        1u32..200,
        1u32..120,
    )
        .prop_map(|(kind, value, period)| {
            format!("{{type: {kind}, value: {value}, periodSeconds: {period}}}")
        })
}

fn rules() -> impl Strategy<Value = String> {
    (
        0u32..400,
        prop_oneof![Just("Max"), Just("Min"), Just("Disabled")],
        prop::collection::vec(policy(), 1..3),
    )
        .prop_map(|(window, select, policies)| {
            format!(
                "{{stabilizationWindowSeconds: {window}, selectPolicy: {select}, policies: [{}]}}",
                policies.join(", ")
            )
        })
}

prop_compose! {
    fn scaled_object()(
        min in 0u32..4,
        span in 0u32..10,
        polling in 1u32..40,
        behavior in prop::option::of((rules(), rules())),
        fallback in prop::option::of((0u32..4, 0u32..12, prop_oneof![
            Just("static"), Just("currentReplicas"), Just("currentReplicasIfHigher"), Just("currentReplicasIfLower"),
        ])),
        value_metric in any::<bool>(),
    ) -> String {
        let max = min.max(1) + span;
        let mut yaml = format!("kind: ScaledObject\nspec:\n  minReplicaCount: {min}\n  maxReplicaCount: {max}\n  pollingInterval: {polling}\n");
        if let Some((threshold, replicas, behavior)) = fallback {
            yaml.push_str(&format!("  fallback: {{failureThreshold: {threshold}, replicas: {replicas}, behavior: {behavior}}}\n"));
        }
        if let Some((up, down)) = behavior {
            yaml.push_str(&format!("  advanced:\n    horizontalPodAutoscalerConfig:\n      behavior:\n        scaleUp: {up}\n        scaleDown: {down}\n"));
        }
        let metric_type = if value_metric { "Value" } else { "AverageValue" };
        yaml.push_str(&format!(
            "  triggers:\n    - type: prometheus\n      metricType: {metric_type}\n      metadata: {{serverAddress: x, query: q, threshold: '100', activationThreshold: '50'}}\n    \
             - type: nats-jetstream\n      metadata: {{stream: s, consumer: c, account: a, natsServerMonitoringEndpoint: n, lagThreshold: '1000'}}\n"
        ));
        yaml
    }
}

fn reading() -> impl Strategy<Value = Reading> {
    prop_oneof![
        6 => (0.0f64..20_000.0).prop_map(Reading::Value),
        1 => Just(Reading::Empty),
        1 => Just(Reading::Failed),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn desired_stays_within_min_and_max(
        yaml in scaled_object(),
        start in 0u32..30,
        steps in prop::collection::vec((1.0f64..40.0, reading(), reading(), 0u32..3), 1..60),
    ) {
        let mut model = Autoscaler::from_yaml(&yaml).expect("generated object");
        let (min, max) = (model.object().min_replica_count, model.object().max_replica_count);
        let params = ModelParams::default();
        prop_assert!(params.hpa_sync_period_s > 0.0);
        let (mut t, mut current) = (0.0, start);
        for (dt, depth, lag, unready) in steps {
            let ready = current.saturating_sub(unready);
            let d = model.poll(t, super::Replicas::new(current, ready), &[depth, lag]);
            // The first poll runs both loops, so from then on the count is in range...
            prop_assert!(d.desired <= max, "{d} above max {max}\n{yaml}");
            // ...and only at zero if allowed, or if KEDA could not read its triggers to
            // bring a target at zero up to its minimum.
            prop_assert!(d.desired >= min || (d.desired == 0 && d.current == 0), "{d} below min {min}\n{yaml}");
            current = d.desired;
            t += dt;
        }
    }
}

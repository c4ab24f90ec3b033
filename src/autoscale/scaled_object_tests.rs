//! Reading ScaledObjects: the deployed files, KEDA's and Kubernetes' defaults, errors by key.

use super::*;
use crate::autoscale::behavior_spec::{PolicyType, ScalingPolicy, ScalingRules, SelectPolicy};
use crate::autoscale::trigger::{MetricType, Scaler};

fn deploy(path: &str) -> ScaledObject {
    let file = format!("{}/deploy/keda/{path}", env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    ScaledObject::from_yaml(&yaml).unwrap_or_else(|e| panic!("{file}: {}", crate::error::Chain(&e)))
}

fn invalid_key(yaml: &str) -> String {
    match ScaledObject::from_yaml(yaml) {
        Err(ScaledObjectError::Invalid(e)) => e.key,
        Err(ScaledObjectError::Yaml { key, .. }) => key,
        other => panic!("expected an error naming a key, got {other:?}"),
    }
}

const MINIMAL: &str = "
kind: ScaledObject
spec:
  triggers:
    - type: prometheus
      metadata: {serverAddress: http://p:9090, query: 'max(m)', threshold: '10'}
";

#[test]
fn reads_the_deployed_coordinator_object() {
    let so = deploy("scaledobject-coordinator.yaml");
    assert_eq!(so.name, "mds-coordinator-scale");
    assert_eq!((so.min_replica_count, so.max_replica_count), (1, 10));
    assert_eq!((so.polling_interval_s, so.cooldown_period_s), (15, 60));
    let fallback = so.fallback.expect("a fallback");
    assert_eq!((fallback.failure_threshold, fallback.replicas), (3, 4));
    assert_eq!(fallback.behavior, FallbackBehavior::CurrentReplicasIfHigher);
    let behavior = so.behavior.expect("a behavior");
    assert_eq!(behavior.scale_up.stabilization_window_s, Some(0));
    assert_eq!(behavior.scale_up.select_policy, SelectPolicy::Max);
    assert_eq!(
        behavior.scale_up.policies,
        [
            ScalingPolicy {
                kind: PolicyType::Percent,
                value: 100,
                period_s: 15
            },
            ScalingPolicy {
                kind: PolicyType::Pods,
                value: 10,
                period_s: 15
            },
        ]
    );
    assert_eq!(behavior.scale_down.stabilization_window_s, Some(300));
    assert_eq!(behavior.scale_down.select_policy, SelectPolicy::Min);
    assert_eq!(
        behavior.scale_down.policies,
        [ScalingPolicy {
            kind: PolicyType::Pods,
            value: 1,
            period_s: 60
        }]
    );
    let labels: Vec<String> = so
        .triggers
        .iter()
        .enumerate()
        .map(|(i, t)| t.label(i))
        .collect();
    assert_eq!(
        labels,
        ["desired-replicas", "hard-pressure", "write-consumer-lag"]
    );
    assert!(
        so.triggers
            .iter()
            .all(|t| t.metric_type == MetricType::AverageValue)
    );
    match &so.triggers[0].scaler {
        Scaler::Prometheus {
            query,
            threshold,
            ignore_null_values,
            ..
        } => {
            assert_eq!(
                query,
                r#"max(coordinator_desired_replicas{coordinator_id="default"})"#
            );
            assert_eq!((*threshold, *ignore_null_values), (1.0, false));
        }
        other => panic!("desired-replicas is {other:?}"),
    }
    assert_eq!(so.triggers[1].target(), 0.5);
    match &so.triggers[2].scaler {
        Scaler::NatsJetStream {
            stream,
            consumer,
            lag_threshold,
            ..
        } => {
            assert_eq!(
                (stream.as_str(), consumer.as_str(), *lag_threshold),
                ("BACKFLOW_WRITES", "store-default", 5000)
            );
        }
        other => panic!("write-consumer-lag is {other:?}"),
    }
}

#[test]
fn reads_the_alternatives() {
    let auth = deploy("alternatives/scaledobject-coordinator-auth.yaml");
    assert_eq!(auth.triggers.len(), 3);
    // The NATS account and endpoint come from the TriggerAuthentication there.
    assert!(auth.triggers[2].authenticated);
    assert!(matches!(
        &auth.triggers[2].scaler,
        Scaler::NatsJetStream {
            account: None,
            monitoring_endpoint: None,
            ..
        }
    ));
    let api = deploy("alternatives/scaledobject-metrics-api.yaml");
    match &api.triggers[0].scaler {
        Scaler::MetricsApi {
            value_location,
            target_value,
            format,
            ..
        } => {
            assert_eq!(
                (value_location.as_str(), *target_value, format.as_str()),
                ("desired_replicas", 1.0, "json")
            );
        }
        other => panic!("{other:?}"),
    }
    // Only scale-up's Percent policy is set there; the rest of scale-up keeps Kubernetes'.
    let up = &api.behavior.expect("a behavior").scale_up;
    assert_eq!(up.policies.len(), 1);
}

#[test]
fn keda_and_kubernetes_defaults_fill_what_is_unset() {
    let so = ScaledObject::from_yaml(MINIMAL).expect("minimal object");
    assert_eq!(so.min_replica_count, 0);
    assert_eq!(so.hpa_min_replicas(), 1);
    assert_eq!(so.max_replica_count, DEFAULT_MAX_REPLICA_COUNT);
    assert_eq!(so.polling_interval_s, DEFAULT_POLLING_INTERVAL_S);
    assert_eq!(so.cooldown_period_s, DEFAULT_COOLDOWN_PERIOD_S);
    assert!(so.fallback.is_none() && so.behavior.is_none());
    match &so.triggers[0].scaler {
        Scaler::Prometheus {
            activation_threshold,
            ignore_null_values,
            ..
        } => {
            assert_eq!((*activation_threshold, *ignore_null_values), (0.0, true));
        }
        other => panic!("{other:?}"),
    }
    // A behavior with only a scale-down window gets Kubernetes' scale-up rules and policies.
    let yaml = format!(
        "{MINIMAL}  advanced:\n    horizontalPodAutoscalerConfig:\n      behavior:\n        scaleDown:\n          stabilizationWindowSeconds: 60\n"
    );
    let b = ScaledObject::from_yaml(&yaml)
        .expect("object")
        .behavior
        .expect("behavior");
    assert_eq!(b.scale_up, ScalingRules::default_scale_up());
    assert_eq!(b.scale_down.stabilization_window_s, Some(60));
    assert_eq!(
        b.scale_down.policies,
        ScalingRules::default_scale_down().policies
    );
    // An unset scale-down window is left to the controller's flag.
    let yaml = format!(
        "{MINIMAL}  advanced:\n    horizontalPodAutoscalerConfig:\n      behavior:\n        scaleUp:\n          selectPolicy: Min\n"
    );
    let b = ScaledObject::from_yaml(&yaml)
        .expect("object")
        .behavior
        .expect("behavior");
    assert_eq!(b.scale_down.stabilization_window_s, None);
    assert_eq!(b.scale_up.select_policy, SelectPolicy::Min);
}

#[test]
fn tolerances_and_value_metrics_are_read() {
    let yaml = "
kind: ScaledObject
spec:
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleUp: {tolerance: '50m'}
        scaleDown: {tolerance: 0.2}
  triggers:
    - type: metrics-api
      metricType: Value
      useCachedMetrics: true
      metadata: {url: 'http://b/x', valueLocation: a.b, targetValue: '3'}
";
    let so = ScaledObject::from_yaml(yaml).expect("object");
    let b = so.behavior.expect("behavior");
    assert_eq!(
        (b.scale_up.tolerance, b.scale_down.tolerance),
        (Some(0.05), Some(0.2))
    );
    assert_eq!(so.triggers[0].metric_type, MetricType::Value);
    assert!(so.triggers[0].use_cached_metrics);
}

#[test]
fn errors_name_the_offending_key() {
    let with = |extra: &str| format!("{MINIMAL}{extra}");
    assert_eq!(
        invalid_key(&with("  minReplicaCount: 5\n  maxReplicaCount: 2\n")),
        "spec.minReplicaCount"
    );
    assert_eq!(
        invalid_key(&with("  pollingInterval: 0\n")),
        "spec.pollingInterval"
    );
    assert_eq!(
        invalid_key(&with(
            "  fallback: {failureThreshold: 3, replicas: 2, behavior: sometimes}\n"
        )),
        "spec.fallback.behavior"
    );
    assert_eq!(
        invalid_key(&with("  fallback: {failureThreshold: -1, replicas: 2}\n")),
        "spec.fallback.failureThreshold"
    );
    let policy = "  advanced:\n    horizontalPodAutoscalerConfig:\n      behavior:\n        scaleUp:\n          policies: [{type: Pods, value: 0, periodSeconds: 15}]\n";
    assert_eq!(
        invalid_key(&with(policy)),
        "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp.policies[0].value"
    );
    let window = "  advanced:\n    horizontalPodAutoscalerConfig:\n      behavior:\n        scaleDown: {stabilizationWindowSeconds: 4000}\n";
    assert_eq!(
        invalid_key(&with(window)),
        "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds"
    );
    let trigger = |t: &str| format!("kind: ScaledObject\nspec:\n  triggers:\n    - {t}\n");
    assert_eq!(
        invalid_key(&trigger(
            "{type: prometheus, metadata: {serverAddress: x, query: q, threshold: lots}}"
        )),
        "spec.triggers[0].metadata.threshold"
    );
    assert_eq!(
        invalid_key(&trigger(
            "{type: prometheus, metadata: {serverAddress: x, threshold: '1'}}"
        )),
        "spec.triggers[0].metadata.query"
    );
    assert_eq!(
        invalid_key(&trigger(
            "{type: prometheus, metadata: {serverAddress: x, query: q, threshold: '1', ignoreNullValues: maybe}}"
        )),
        "spec.triggers[0].metadata.ignoreNullValues"
    );
    assert_eq!(
        invalid_key(&trigger("{type: kafka, metadata: {}}")),
        "spec.triggers[0].type"
    );
    assert_eq!(
        invalid_key(&trigger(
            "{type: nats-jetstream, metadata: {stream: s, consumer: c, lagThreshold: '1.5', account: a, natsServerMonitoringEndpoint: n}}"
        )),
        "spec.triggers[0].metadata.lagThreshold"
    );
    assert_eq!(
        invalid_key(&trigger(
            "{type: prometheus, metricType: Utilization, metadata: {}}"
        )),
        "spec.triggers[0].metricType"
    );
    // Metadata values are strings in the CRD; a bare number is refused where it stands.
    assert_eq!(
        invalid_key(&trigger(
            "{type: prometheus, metadata: {serverAddress: x, query: q, threshold: 5}}"
        )),
        "spec.triggers[0].metadata.threshold"
    );
    assert_eq!(
        invalid_key("kind: ScaledObject\nspec:\n  triggers: []\n"),
        "spec.triggers"
    );
}

#[test]
fn finds_the_scaled_object_among_other_documents() {
    let yaml = format!("kind: Secret\nmetadata: {{name: s}}\n---\n{MINIMAL}");
    assert!(ScaledObject::from_yaml(&yaml).is_ok());
    match ScaledObject::from_yaml("kind: Deployment\n") {
        Err(ScaledObjectError::NotFound { found }) => assert_eq!(found, "Deployment"),
        other => panic!("{other:?}"),
    }
}

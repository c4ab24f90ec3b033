//! The manifests agree with each other and with the code: what KEDA scales and queries, the
//! names the store creates, the settings the binaries parse, the ports and secrets the pods
//! use, the labels Prometheus adds.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use backflow::bus::nats::Subjects;
use backflow::event::CoordinatorId;
use backflow::settings::Settings;
use backflow::telemetry::CATALOG;
use serde_json::Value;

use crate::load::{Doc, manifests, parse_yaml, root};

fn find<'a>(docs: &'a [Doc], kind: &str, name: &str) -> Option<&'a Doc> {
    docs.iter().find(|d| d.kind() == kind && d.name() == name)
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Metric names a PromQL expression mentions (ours start with `coordinator_` or `backflow_`).
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        let word = &expr[start..i];
        let before = expr[..start].chars().last();
        let label = CATALOG.iter().any(|m| m.labels.contains(&word));
        if (word.starts_with("coordinator_") || word.starts_with("backflow_"))
            && before != Some('$')
            && !label
        {
            out.insert(word.to_owned());
        }
        i = i.max(start + 1);
    }
    out
}

/// Whether `name` is in the catalog (histograms: with a `_bucket`, `_sum` or `_count` suffix).
pub fn exported(name: &str) -> bool {
    CATALOG.iter().any(|m| {
        m.name == name
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name.strip_suffix(s) == Some(m.name))
    })
}

#[test]
fn the_coordinator_scaled_object_is_what_the_issue_and_the_store_say() {
    let docs = manifests();
    let so = docs
        .iter()
        .find(|d| d.file == "deploy/keda/scaledobject-coordinator.yaml")
        .expect("deploy/keda/scaledobject-coordinator.yaml");
    let spec = &so.value["spec"];
    assert_eq!(spec["scaleTargetRef"]["name"], "mds-coordinator");
    assert_eq!(spec["minReplicaCount"], 1);
    assert_eq!(spec["maxReplicaCount"], 10);
    assert_eq!(spec["cooldownPeriod"], 60);
    assert_eq!(spec["pollingInterval"], 15);
    let behavior = &spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"];
    assert!(behavior["scaleDown"]["stabilizationWindowSeconds"].as_u64() >= Some(60));
    assert!(behavior["scaleUp"]["policies"].is_array());

    let triggers = spec["triggers"].as_array().unwrap();
    let prometheus: Vec<(&str, &str)> = triggers
        .iter()
        .filter(|t| t["type"] == "prometheus")
        .map(|t| {
            (
                str_of(&t["metadata"]["query"]),
                str_of(&t["metadata"]["threshold"]),
            )
        })
        .collect();
    assert_eq!(
        prometheus,
        [
            (
                r#"max(coordinator_desired_replicas{coordinator_id="default"})"#,
                "1"
            ),
            (
                r#"max(coordinator_backpressure_hard{coordinator_id="default"})"#,
                "0.5"
            ),
        ]
    );
    // The nats-jetstream trigger names the stream and consumer exactly as backflow-store
    // creates them (Subjects, with the prefix of the store's ConfigMap).
    let store = settings_of(&docs, "mds-coordinator");
    let subjects = Subjects::new(&store.nats.prefix).unwrap();
    let id = &store.coordinator.coordinator_id;
    assert_eq!(id, &CoordinatorId::default());
    let js: Vec<&Value> = triggers
        .iter()
        .filter(|t| t["type"] == "nats-jetstream")
        .collect();
    assert_eq!(js.len(), 1);
    let meta = &js[0]["metadata"];
    assert_eq!(meta["stream"], subjects.write_stream());
    assert_eq!(meta["consumer"], subjects.write_consumer(id));
    assert_eq!(meta["stream"], "BACKFLOW_WRITES");
    assert_eq!(meta["consumer"], "store-default");
    // ... on the account and monitoring port the NATS values define.
    let nats = nats_values();
    assert!(nats["config"]["merge"]["accounts"][str_of(&meta["account"])].is_object());
    let port = nats["config"]["monitor"]["port"].as_u64().unwrap();
    assert!(
        str_of(&meta["natsServerMonitoringEndpoint"]).ends_with(&format!(":{port}")),
        "{meta}"
    );
}

#[test]
fn every_scaled_object_targets_a_deployment_and_keeps_outages_from_reading_as_zero() {
    let docs = manifests();
    let mut checked = 0;
    for so in docs.iter().filter(|d| d.kind() == "ScaledObject") {
        checked += 1;
        let spec = &so.value["spec"];
        let target = str_of(&spec["scaleTargetRef"]["name"]);
        assert!(
            find(&docs, "Deployment", target).is_some(),
            "{}: no Deployment {target} under deploy/",
            so.at()
        );
        for t in spec["triggers"].as_array().unwrap() {
            // KEDA's webhook refuses a fallback unless every trigger says AverageValue.
            if spec["fallback"].is_object() {
                assert_eq!(t["metricType"], "AverageValue", "{}: {t}", so.at());
            }
            if t["type"] == "prometheus" {
                assert_eq!(
                    t["metadata"]["ignoreNullValues"],
                    "false",
                    "{}: {t}",
                    so.at()
                );
                let query = str_of(&t["metadata"]["query"]);
                assert!(
                    query.starts_with("max("),
                    "{}: aggregate to one series: {query}",
                    so.at()
                );
                let names = metric_names(query);
                assert!(!names.is_empty(), "{query}");
                for n in names {
                    assert!(exported(&n), "{}: {n} is not exported", so.at());
                }
            }
            if let Some(auth) = t["authenticationRef"]["name"].as_str() {
                assert!(
                    find(&docs, "TriggerAuthentication", auth).is_some(),
                    "{}: no TriggerAuthentication {auth}",
                    so.at()
                );
            }
        }
    }
    assert!(
        checked >= 3,
        "expected the main ScaledObject and two alternatives"
    );
}

/// The environment the first container of `deployment` gets (secrets from the examples).
fn env_of(docs: &[Doc], deployment: &Doc) -> Vec<(String, String)> {
    let container = &deployment.value["spec"]["template"]["spec"]["containers"][0];
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let secret = &e["valueFrom"]["secretKeyRef"];
            let value = if secret.is_object() {
                let s = find(docs, "Secret", str_of(&secret["name"]))
                    .unwrap_or_else(|| panic!("{}: no Secret {secret}", deployment.at()));
                str_of(&s.value["stringData"][str_of(&secret["key"])]).to_owned()
            } else {
                str_of(&e["value"]).to_owned()
            };
            (str_of(&e["name"]).to_owned(), value)
        })
        .collect()
}

/// The settings `deployment`'s binary loads: its ConfigMap's `backflow.yaml` and its
/// environment, through the same parser the binaries use.
fn settings_of(docs: &[Doc], deployment: &str) -> Settings {
    let d = find(docs, "Deployment", deployment)
        .unwrap_or_else(|| panic!("no Deployment {deployment}"));
    let volumes = d.value["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let config_map = volumes
        .iter()
        .find_map(|v| v["configMap"]["name"].as_str())
        .unwrap_or_else(|| panic!("{}: no ConfigMap volume", d.at()));
    let cm = find(docs, "ConfigMap", config_map)
        .unwrap_or_else(|| panic!("{}: no ConfigMap {config_map}", d.at()));
    let text = str_of(&cm.value["data"]["backflow.yaml"]);
    Settings::parse(text, cm.at(), env_of(docs, d))
        .unwrap_or_else(|e| panic!("{}: backflow.yaml does not load: {e}", cm.at()))
}

fn nats_values() -> Value {
    let text = std::fs::read_to_string(root().join("deploy/nats/values.yaml")).unwrap();
    parse_yaml("deploy/nats/values.yaml", &text)
        .unwrap()
        .remove(0)
        .value
}

#[test]
fn pods_load_their_settings_and_use_existing_config_maps_secrets_and_ports() {
    let docs = manifests();
    let secrets: Vec<&Doc> = docs.iter().filter(|d| d.kind() == "Secret").collect();
    let mut deployments = 0;
    for d in docs.iter().filter(|d| d.kind() == "Deployment") {
        deployments += 1;
        let pod = &d.value["spec"]["template"];
        // The selector selects the pod template.
        let labels = &pod["metadata"]["labels"];
        for (k, v) in d.value["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap()
        {
            assert_eq!(&labels[k], v, "{}: selector {k}", d.at());
        }
        for c in pod["spec"]["containers"].as_array().unwrap() {
            let ports: Vec<&str> = c["ports"]
                .as_array()
                .map(|p| p.iter().map(|p| str_of(&p["name"])).collect())
                .unwrap_or_default();
            for probe in ["readinessProbe", "livenessProbe"] {
                let port = str_of(&c[probe]["httpGet"]["port"]);
                assert!(ports.contains(&port), "{}: {probe} port {port}", d.at());
            }
            for env in c["env"].as_array().into_iter().flatten() {
                let secret = &env["valueFrom"]["secretKeyRef"];
                if secret.is_object() {
                    let (name, key) = (str_of(&secret["name"]), str_of(&secret["key"]));
                    assert!(
                        secrets
                            .iter()
                            .any(|s| s.name() == name && s.value["stringData"][key].is_string()),
                        "{}: secret {name}/{key} is not in the examples",
                        d.at()
                    );
                }
            }
        }
        let settings = settings_of(&docs, d.name());
        // The binaries serve /metrics and the probes where the pod exposes them.
        let port = settings.metrics.listen.port();
        let exposed = pod["spec"]["containers"][0]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "metrics" && p["containerPort"] == port);
        assert!(
            exposed,
            "{}: metrics.listen port {port} is not exposed",
            d.at()
        );
        assert!(
            settings.nats.password.is_some(),
            "{}: no NATS password",
            d.at()
        );
    }
    assert_eq!(deployments, 3, "store, agent, bridge");
    assert!(find(&docs, "Deployment", "mds-coordinator").is_some());
}

#[test]
fn grace_periods_exceed_each_binary_s_documented_stop_bound() {
    let docs = manifests();
    for d in docs.iter().filter(|d| d.kind() == "Deployment") {
        let pod = &d.value["spec"]["template"]["spec"];
        let command = str_of(&pod["containers"][0]["command"][0]);
        let settings = settings_of(&docs, d.name());
        let plan = match command {
            "backflow-store" => settings.store.stop_plan(),
            "backflow-agent" => settings.agent.stop_plan(),
            "backflow-bridge" => settings.bridge.stop_plan(),
            other => panic!("{}: unknown binary {other:?}", d.at()),
        };
        let grace = pod["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: no terminationGracePeriodSeconds", d.at()));
        // Kubernetes' default (30 s) is not assumed: each pod states its own.
        let bound = plan.total();
        assert!(
            std::time::Duration::from_secs(grace) > bound,
            "{}: terminationGracePeriodSeconds {grace} does not exceed {command}'s stop bound \
             {bound:?} ({:?})",
            d.at(),
            plan.steps()
        );
    }
}

#[test]
fn services_and_service_monitors_select_what_exists() {
    let docs = manifests();
    let pods: Vec<&Value> = docs
        .iter()
        .filter(|d| d.kind() == "Deployment")
        .map(|d| &d.value["spec"]["template"])
        .collect();
    let services: Vec<&Doc> = docs.iter().filter(|d| d.kind() == "Service").collect();
    for s in &services {
        let selector = s.value["spec"]["selector"].as_object().unwrap();
        let pod = pods
            .iter()
            .find(|p| {
                selector
                    .iter()
                    .all(|(k, v)| &p["metadata"]["labels"][k] == v)
            })
            .unwrap_or_else(|| panic!("{}: selects no pod", s.at()));
        for port in s.value["spec"]["ports"].as_array().unwrap() {
            let target = str_of(&port["targetPort"]);
            assert!(
                pod["spec"]["containers"][0]["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["name"] == target),
                "{}: targetPort {target}",
                s.at()
            );
        }
    }
    let monitors: Vec<&Doc> = docs
        .iter()
        .filter(|d| d.kind() == "ServiceMonitor")
        .collect();
    assert_eq!(monitors.len(), 3);
    for m in monitors {
        let selector = m.value["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap();
        let service = services
            .iter()
            .find(|s| {
                selector
                    .iter()
                    .all(|(k, v)| &s.value["metadata"]["labels"][k] == v)
            })
            .unwrap_or_else(|| panic!("{}: selects no Service", m.at()));
        for e in m.value["spec"]["endpoints"].as_array().unwrap() {
            let port = str_of(&e["port"]);
            assert!(
                service.value["spec"]["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["name"] == port),
                "{}: port {port}",
                m.at()
            );
        }
    }
}

fn promtool() -> PathBuf {
    if let Ok(path) = std::env::var("PROMTOOL") {
        return path.into();
    }
    ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "promtool not found: it comes with Prometheus (Debian: `apt-get install \
                 prometheus`, or run ./test.sh which does) or set PROMTOOL"
            )
        })
}

#[test]
fn the_prometheus_scrape_config_is_valid_and_never_renames_metric_labels() {
    let docs = manifests();
    let cm = find(&docs, "ConfigMap", "backflow-prometheus-scrape").expect("the scrape config");
    let text = str_of(&cm.value["data"]["prometheus.yml"]);
    let mut config = parse_yaml("prometheus.yml", text).unwrap().remove(0).value;
    // Debian builds Prometheus without Kubernetes discovery, so its promtool refuses
    // kubernetes_sd_configs: check their shape here and let promtool check the rest (global
    // settings, relabelling) with a static target in their place.
    for job in config["scrape_configs"].as_array_mut().unwrap() {
        let job = job.as_object_mut().unwrap();
        if let Some(sd) = job.remove("kubernetes_sd_configs") {
            for c in sd.as_array().unwrap() {
                assert!(
                    ["pod", "endpoints", "endpointslice", "service"].contains(&str_of(&c["role"])),
                    "{c}"
                );
                assert!(c["namespaces"]["names"].is_array(), "{c}");
            }
            job.insert(
                "static_configs".into(),
                serde_json::json!([{"targets": ["127.0.0.1:9464"]}]),
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, serde_json::to_string(&config).unwrap()).unwrap();
    let out = Command::new(promtool())
        .args(["check", "config"])
        .arg(&file)
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check config failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A target label named like a metric label makes Prometheus rename the metric's own
    // (coordinator_id → exported_coordinator_id) and breaks every query.
    let ours: BTreeSet<&str> = CATALOG
        .iter()
        .flat_map(|m| m.labels.iter().copied())
        .collect();
    for job in config["scrape_configs"].as_array().unwrap() {
        for r in job["relabel_configs"].as_array().into_iter().flatten() {
            let target = str_of(&r["target_label"]);
            assert!(!ours.contains(target), "relabelling writes {target}");
        }
    }
}

#[test]
fn the_dashboard_only_queries_exported_metrics() {
    let text = std::fs::read_to_string(root().join("deploy/keda/grafana-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let exprs = crate::dashboard_exprs(&dashboard);
    assert!(exprs.len() >= 10, "{exprs:?}");
    for e in &exprs {
        let names = metric_names(e);
        assert!(!names.is_empty(), "{e}");
        for n in names {
            assert!(
                exported(&n),
                "the dashboard queries {n}, which nothing exports: {e}"
            );
        }
    }
    // Every metric KEDA scales on is on the dashboard, and what the desired count is made of.
    for needed in [
        "coordinator_desired_replicas",
        "coordinator_demand_rows_per_second",
        "coordinator_replica_capacity_rows_per_second",
        "coordinator_backpressure_hard",
        "coordinator_consumer_lag",
    ] {
        assert!(exprs.iter().any(|e| e.contains(needed)), "{needed}");
    }
}

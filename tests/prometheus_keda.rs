//! KEDA's view, end to end: a real Prometheus scrapes a real bridge and store, and every
//! PromQL query found in `deploy/keda/` answers exactly one series carrying the value the test
//! drove (depth 2500 → 2500; HARD → 1; back to OK → 0). The nats-jetstream trigger's lag,
//! computed from the server's `/jsz` exactly as KEDA computes it, equals the backlog the test
//! created, on the stream and consumer the store creates. The metrics-api alternative reads the
//! same values from the bridge's JSON, and every dashboard query parses.
//!
//! The NATS server runs `nats/accounts.conf`: the store, agent and bridge use their own users
//! and permissions, as deployed.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use backflow::bridge::{Bridge, BridgeConfig, BridgeSetup};
use backflow::bus::nats::{
    NatsConnection, NatsOptions, NatsPublisher, Secret, ensure_state_stream,
};
use backflow::coordinator::{CoordinatorConfig, NullSink, WriteCoordinator};
use backflow::event::CoordinatorId;
use backflow::metrics::{Metrics, MetricsConfig, serve};
use backflow::store::{StoreConfig, WriteStreamConfig, ensure_write_consumer, ensure_write_stream};
use common::nats::NatsServer;
use common::prometheus::{PrometheusServer, client};
use common::within;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);
/// Rows published to the write stream, of which `TAKEN` are delivered and not acknowledged.
const ROWS: u64 = 1_500;
const TAKEN: u64 = 300;

/// The value each metric a KEDA query reads must have.
type Expected = &'static [(&'static str, f64)];

/// What the test drives, phase by phase: the store's depth, and what the queries then return.
const PHASES: [(&str, u64, Expected); 3] = [
    (
        "depth 2500 (ok)",
        2_500,
        &[
            ("coordinator_queue_depth", 2_500.0),
            ("coordinator_backpressure_hard", 0.0),
            ("coordinator_desired_replicas", 1.0),
        ],
    ),
    (
        "depth 9000 (hard)",
        9_000,
        &[
            ("coordinator_queue_depth", 9_000.0),
            ("coordinator_backpressure_hard", 1.0),
            ("coordinator_desired_replicas", 1.0),
        ],
    ),
    (
        "drained (ok)",
        0,
        &[
            ("coordinator_queue_depth", 0.0),
            ("coordinator_backpressure_hard", 0.0),
            ("coordinator_desired_replicas", 1.0),
        ],
    ),
];

/// metrics-api `valueLocation`s and the metric they mirror.
const VALUE_LOCATIONS: [(&str, &str); 3] = [
    ("queue_depth", "coordinator_queue_depth"),
    ("backpressure_hard", "coordinator_backpressure_hard"),
    ("desired_replicas", "coordinator_desired_replicas"),
];

/// Every trigger of every ScaledObject under `deploy/keda/`, with its file.
fn keda_triggers() -> Vec<(String, Value)> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/keda"),
        &mut files,
    );
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap();
            if v["kind"] == "ScaledObject" {
                for t in v["spec"]["triggers"].as_array().unwrap() {
                    out.push((f.display().to_string(), t.clone()));
                }
            }
        }
    }
    assert!(!out.is_empty(), "no ScaledObject trigger under deploy/keda");
    out
}

/// The distinct PromQL queries of the prometheus triggers.
fn queries(triggers: &[(String, Value)]) -> Vec<String> {
    let mut q: Vec<String> = triggers
        .iter()
        .filter(|(_, t)| t["type"] == "prometheus")
        .map(|(_, t)| t["metadata"]["query"].as_str().unwrap().to_owned())
        .collect();
    q.sort();
    q.dedup();
    assert!(q.len() >= 2, "{q:?}");
    q
}

/// The value `query` must return in a phase: the one of the metric it reads.
fn expected(query: &str, phase: &[(&str, f64)]) -> f64 {
    let hits: Vec<f64> = phase
        .iter()
        .filter(|(metric, _)| query.contains(&format!("{metric}{{")))
        .map(|(_, v)| *v)
        .collect();
    match hits.as_slice() {
        [v] => *v,
        _ => panic!(
            "no expectation for the KEDA query {query}: add the metric it reads to PHASES \
             in tests/prometheus_keda.rs"
        ),
    }
}

fn user(server: &NatsServer, name: &str, password: &str) -> NatsOptions {
    NatsOptions {
        user: Some(name.into()),
        password: Some(Secret::new(password)),
        inbox_prefix: Some(format!("_INBOX_{name}")),
        ..NatsOptions::for_url(server.url())
    }
}

async fn connect(options: &NatsOptions) -> NatsConnection {
    options.connect("test").await.expect("connects")
}

/// KEDA's nats-jetstream scaler, step by step: GET `/jsz?acc=<account>&consumers=true&
/// config=true` on the monitoring endpoint, find the account, the stream and the consumer by
/// name, and read `num_pending + num_ack_pending` (a consumer it cannot find reads as the
/// stream's last sequence, which the test refuses).
async fn keda_jetstream_lag(monitor: SocketAddr, meta: &Value) -> (u64, u64) {
    let account = meta["account"].as_str().unwrap();
    let url = format!("http://{monitor}/jsz?acc={account}&consumers=true&config=true");
    let body = client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let jsz: Value = serde_json::from_str(&body).unwrap();
    let account = jsz["account_details"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == meta["account"]))
        .unwrap_or_else(|| panic!("account {} not in /jsz: {body}", meta["account"]));
    let stream = account["stream_detail"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == meta["stream"]))
        .unwrap_or_else(|| panic!("stream {} not in /jsz: {body}", meta["stream"]));
    let consumer = stream["consumer_detail"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == meta["consumer"]))
        .unwrap_or_else(|| panic!("consumer {} not in /jsz: {body}", meta["consumer"]));
    let pending = consumer["num_pending"].as_u64().unwrap();
    let ack_pending = consumer["num_ack_pending"].as_u64().unwrap();
    (pending + ack_pending, ack_pending)
}

/// Follows a metrics-api `valueLocation` (dotted GJSON path) in `json`.
fn value_at(json: &Value, location: &str) -> f64 {
    location
        .split('.')
        .fold(json, |v, key| &v[key])
        .as_f64()
        .unwrap_or_else(|| panic!("{location} is not a number in {json}"))
}

/// Asks the bridge what KEDA's metrics-api scaler would, for every metrics-api trigger.
async fn metrics_api(bridge: SocketAddr, triggers: &[(String, Value)], phase: &[(&str, f64)]) {
    for (file, t) in triggers.iter().filter(|(_, t)| t["type"] == "metrics-api") {
        let url = t["metadata"]["url"].as_str().unwrap();
        let path = &url[url.find("/api/").unwrap_or_else(|| panic!("{file}: {url}"))..];
        let location = t["metadata"]["valueLocation"].as_str().unwrap();
        let metric = VALUE_LOCATIONS
            .iter()
            .find(|(l, _)| *l == location)
            .map(|(_, m)| *m)
            .unwrap_or_else(|| panic!("{file}: no expectation for valueLocation {location}"));
        let want = phase.iter().find(|(m, _)| *m == metric).unwrap().1;
        within(WAIT, "the metrics-api value", async {
            loop {
                let r = client()
                    .get(format!("http://{bridge}{path}"))
                    .send()
                    .await
                    .unwrap();
                if r.status() == 200 {
                    let json: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
                    if value_at(&json, location) == want {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
    }
}

/// A store as `backflow-store` runs it, reduced to what the metrics see: its write
/// coordinator publishing feedback as user store-default, and its `/metrics`.
struct Store {
    coordinator: WriteCoordinator<u64>,
    addr: SocketAddr,
    stop: CancellationToken,
}

async fn store(conn: &NatsConnection) -> Store {
    let coordinator = WriteCoordinator::builder(
        CoordinatorConfig {
            heartbeat_interval_ms: 200,
            ..CoordinatorConfig::new(CoordinatorId::default())
        },
        Arc::new(NullSink),
    )
    .publisher(Arc::new(NatsPublisher::new(conn)))
    .start()
    .unwrap();
    let metrics = Metrics::new().unwrap();
    metrics.register(coordinator.clone()).unwrap();
    let stop = CancellationToken::new();
    let config = MetricsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
    };
    let (addr, _task) = serve(
        &config,
        metrics.router(|| true),
        stop.clone().cancelled_owned(),
    )
    .await
    .unwrap();
    Store {
        coordinator,
        addr,
        stop,
    }
}

/// Publishes `ROWS` rows for `default` as an agent and takes `TAKEN` of them as the store
/// would, without acknowledging: the lag KEDA must see is `ROWS`.
async fn backlog(server: &NatsServer, store: &NatsConnection) {
    let id = CoordinatorId::default();
    ensure_write_stream(store, &WriteStreamConfig::default())
        .await
        .expect("store-default may create the write stream");
    let consumer = ensure_write_consumer(store, &id, &StoreConfig::default())
        .await
        .expect("store-default may create its consumer");
    let agent = connect(&user(server, "agent", "agent-secret")).await;
    let js = async_nats::jetstream::new(agent.client.clone());
    for i in 0..ROWS {
        js.publish(agent.subjects.writes(&id), i.to_string().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut batch = consumer
        .fetch()
        .max_messages(TAKEN as usize)
        .messages()
        .await
        .unwrap();
    let mut taken = 0;
    while let Some(m) = batch.next().await {
        m.unwrap();
        taken += 1;
    }
    assert_eq!(taken, TAKEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_queries_answer_one_series_with_the_driven_value() {
    let triggers = keda_triggers();
    let queries = queries(&triggers);
    let server = NatsServer::with_config("nats/accounts.conf");
    let store_conn = connect(&user(&server, "store-default", "store-default-secret")).await;
    ensure_state_stream(&store_conn).await.unwrap();

    // The nats-jetstream trigger: the names the store creates, and KEDA's arithmetic.
    backlog(&server, &store_conn).await;
    let js_triggers: Vec<&Value> = triggers
        .iter()
        .filter(|(_, t)| t["type"] == "nats-jetstream" && t["metadata"]["account"].is_string())
        .map(|(_, t)| &t["metadata"])
        .collect();
    assert!(!js_triggers.is_empty());
    let monitor = SocketAddr::from(([127, 0, 0, 1], server.monitor_port));
    for meta in js_triggers {
        let id = CoordinatorId::default();
        assert_eq!(meta["stream"], store_conn.subjects.write_stream());
        assert_eq!(meta["consumer"], store_conn.subjects.write_consumer(&id));
        let (lag, ack_pending) = keda_jetstream_lag(monitor, meta).await;
        assert_eq!((lag, ack_pending), (ROWS, TAKEN), "{meta}");
    }

    // A store, the bridge (as user bridge), and Prometheus scraping both.
    let store = store(&store_conn).await;
    let settings = BridgeSetup {
        nats: user(&server, "bridge", "bridge-secret"),
        metrics: MetricsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
        },
        bridge: BridgeConfig {
            lag_poll_interval_ms: 200,
            ..BridgeConfig::default()
        },
    };
    let bridge = Bridge::start(&settings).await.unwrap();
    let prometheus =
        PrometheusServer::start(&[("bridge", bridge.local_addr()), ("store", store.addr)]).await;

    let mut results = Vec::new();
    for (name, depth, values) in PHASES {
        store.coordinator.set_external_backlog(depth);
        for q in &queries {
            let want = expected(q, values);
            let series = prometheus.expect_single(q, want, WAIT).await;
            results.push(format!("{name:>18}  {q} = {}", series.value));
        }
        metrics_api(bridge.local_addr(), &triggers, values).await;
    }

    // Names and labels through a real scrape: each source exports the KEDA metrics with
    // exactly one label of its own, coordinator_id (Prometheus adds instance and job).
    for metric in [
        "coordinator_queue_depth",
        "coordinator_backpressure_ok",
        "coordinator_backpressure_soft",
        "coordinator_backpressure_hard",
    ] {
        let series = prometheus
            .query(&format!(r#"{metric}{{coordinator_id="default"}}"#))
            .await;
        let jobs: Vec<&str> = series.iter().map(|s| s.labels["job"].as_str()).collect();
        assert_eq!(
            series.len(),
            2,
            "{metric}: one series per source: {series:?}"
        );
        assert!(
            jobs.contains(&"bridge") && jobs.contains(&"store"),
            "{jobs:?}"
        );
        for s in &series {
            let labels: Vec<&str> = s.labels.keys().map(String::as_str).collect();
            assert_eq!(
                labels,
                ["__name__", "coordinator_id", "instance", "job"],
                "{s:?}"
            );
            assert_eq!(s.labels["__name__"], metric);
        }
    }
    // The bridge's backlog counts the write consumer's lag, as KEDA's trigger does.
    for q in [
        r#"max(coordinator_consumer_lag{coordinator_id="default"})"#,
        r#"max(coordinator_backlog{coordinator_id="default"})"#,
    ] {
        let s = prometheus.expect_single(q, ROWS as f64, WAIT).await;
        results.push(format!("{:>18}  {q} = {}", "write backlog", s.value));
    }

    // Every dashboard query is valid PromQL for this Prometheus.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/keda/grafana-dashboard.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut exprs = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$coordinator_id", "default")
                .replace("$__rate_interval", "1m");
            prometheus.query(&expr).await;
            exprs += 1;
        }
    }
    assert!(exprs >= 10);

    // For the record (run with --nocapture): what KEDA reads, and the bridge's scrape.
    let scrape = client()
        .get(format!("http://{}/metrics", bridge.local_addr()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let keda_lines: BTreeMap<&str, ()> = scrape
        .lines()
        .filter(|l| l.starts_with("coordinator_"))
        .map(|l| (l, ()))
        .collect();
    eprintln!("query results:\n{}", results.join("\n"));
    eprintln!(
        "bridge scrape (coordinator_*):\n{}",
        keda_lines.keys().copied().collect::<Vec<_>>().join("\n")
    );

    bridge.stop().await.unwrap();
    store.stop.cancel();
    store.coordinator.stop(true, Duration::from_secs(5)).await;
}

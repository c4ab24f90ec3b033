//! `backflow explain` against real components: nats-server (with `nats/accounts.conf`), the
//! bridge hearing a store and two agents' demand, and a real Prometheus scraping the bridge.
//! The deployed ScaledObject reads desired replicas 4 from Prometheus and the write
//! consumer's lag from `/jsz`; the metrics-api alternative reads the bridge's JSON; sources
//! that are down or refuse give that trigger an error, and the command still answers.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use backflow::autoscale::{Replicas, ScaledObject};
use backflow::bridge::{Bridge, BridgeConfig, BridgeSetup};
use backflow::bus::FeedbackPublisher;
use backflow::bus::nats::{NatsConnection, NatsOptions, NatsPublisher, Secret};
use backflow::event::{BackpressureLevel, CoordinatorId, DemandEvent, InstanceId, encode_demand};
use backflow::explain::{Answer, Explanation, ReadError, Sources, explain};
use backflow::metrics::MetricsConfig;
use backflow::store::{StoreConfig, WriteStreamConfig, ensure_write_consumer, ensure_write_stream};
use common::nats::{NatsServer, free_port};
use common::prometheus::PrometheusServer;
use common::{event, within};
use serde_json::Value;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(15);
/// Rows waiting for the store's consumer: the lag KEDA's nats-jetstream trigger reads.
const ROWS: u64 = 600;
const DESIRED: &str = r#"max(coordinator_desired_replicas{coordinator_id="default"})"#;

fn file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn object(relative: &str) -> ScaledObject {
    let text = std::fs::read_to_string(file(relative)).unwrap();
    ScaledObject::from_yaml(&text).unwrap()
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
    options.connect("test").await.unwrap()
}

fn demand(agent: &str, seq: u64) -> DemandEvent {
    DemandEvent::new(
        CoordinatorId::default(),
        InstanceId::new(agent).unwrap(),
        seq,
        3_000.0,
        1_000.0,
    )
}

/// Everything explain reads, running.
struct Rig {
    server: NatsServer,
    bridge: Bridge,
    prometheus: PrometheusServer,
    heartbeats: JoinHandle<()>,
}

impl Rig {
    /// `ROWS` rows waiting on the store's consumer; a store writing 2,000 rows/s (queue 1,200,
    /// OK) and two agents offering 3,000 rows/s each, heartbeating as they do in production,
    /// so that the bridge asks for ceil(6000 × 1.25 / 2000 + backlog / (2000 × 60)) = 4
    /// replicas; Prometheus scraping the bridge until it answers 4.
    async fn start() -> Self {
        let server = NatsServer::with_config("nats/accounts.conf");
        let store = connect(&user(&server, "store-default", "store-default-secret")).await;
        let agent = connect(&user(&server, "agent", "agent-secret")).await;
        let id = CoordinatorId::default();
        ensure_write_stream(&store, &WriteStreamConfig::default())
            .await
            .unwrap();
        ensure_write_consumer(&store, &id, &StoreConfig::default())
            .await
            .unwrap();
        let js = async_nats::jetstream::new(agent.client.clone());
        for i in 0..ROWS {
            js.publish(agent.subjects.writes(&id), i.to_string().into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        let bridge = Bridge::start(&BridgeSetup {
            nats: user(&server, "bridge", "bridge-secret"),
            metrics: MetricsConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
            },
            bridge: BridgeConfig {
                lag_poll_interval_ms: 200,
                ..BridgeConfig::default()
            },
        })
        .await
        .unwrap();
        let heartbeats = tokio::spawn(async move {
            let publisher = NatsPublisher::new(&store);
            let subject = agent.subjects.demand(&CoordinatorId::default());
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            for seq in 1.. {
                tick.tick().await;
                let mut e = event(
                    "default",
                    "pod-1",
                    seq,
                    BackpressureLevel::Ok,
                    1_200,
                    10_000,
                );
                e.heartbeat_ms = 250;
                e.service_rate = Some(2_000.0);
                let _ = publisher.publish(&e).await;
                for name in ["agent-1", "agent-2"] {
                    let payload = encode_demand(&demand(name, seq));
                    let _ = agent.client.publish(subject.clone(), payload.into()).await;
                }
            }
        });
        let prometheus = PrometheusServer::start(&[("bridge", bridge.local_addr())]).await;
        prometheus.expect_single(DESIRED, 4.0, WAIT).await;
        Self {
            server,
            bridge,
            prometheus,
            heartbeats,
        }
    }

    fn nats_monitor(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.monitor_port)
    }

    fn bridge_url(&self) -> String {
        format!("http://{}", self.bridge.local_addr())
    }

    async fn stop(self) {
        self.heartbeats.abort();
        self.bridge.stop().await.unwrap();
    }
}

/// Runs the `backflow` binary with `args`; returns its stdout, failing on a non-zero exit.
async fn backflow(args: Vec<String>) -> String {
    let run = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_backflow"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    });
    let out = within(WAIT, "backflow explain", run).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "backflow explain failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// The value, ratio and proposal the model saw for trigger `i`.
fn seen(e: &Explanation, i: usize) -> (Option<f64>, Option<f64>, Option<u32>) {
    let t = &e.triggers[i];
    let value = match t.observation.answer {
        Answer::Value(v) => Some(v),
        _ => None,
    };
    let proposal = t.verdict.as_ref().and_then(|v| v.proposal);
    (
        value,
        proposal.map(|p| p.ratio),
        proposal.map(|p| p.replicas),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_reads_prometheus_the_bridge_and_jsz_and_says_why_it_scales() {
    let rig = Rig::start().await;

    // The deployed ScaledObject, through the library: desired replicas 4 at 1 replica is a
    // ratio of 4 and asks for 4; HARD is 0; the lag 600 / (5000 × 1) asks for 1. The
    // scale-up policies allow +100 % or +10 pods per 15 s: 1 -> 4 at once.
    let deployed = object("deploy/keda/scaledobject-coordinator.yaml");
    let sources = Sources {
        prometheus: Some(rig.prometheus.url()),
        nats_monitor: Some(rig.nats_monitor()),
        ..Sources::default()
    };
    let e = within(
        WAIT,
        "explain",
        explain(&deployed, sources, Replicas::from(1)),
    )
    .await
    .unwrap();
    let names: Vec<&str> = e.triggers.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["desired-replicas", "hard-pressure", "write-consumer-lag"]
    );
    assert_eq!(seen(&e, 0), (Some(4.0), Some(4.0), Some(4)), "{e}");
    assert_eq!(seen(&e, 1), (Some(0.0), Some(0.0), Some(0)), "{e}");
    assert_eq!(seen(&e, 2), (Some(ROWS as f64), Some(0.12), Some(1)), "{e}");
    assert_eq!(e.decision.desired, 4, "{e}");
    let asked = e.triggers[0].observation.asked.as_deref().unwrap_or("");
    assert!(asked.starts_with(&format!("{}/api/v1/query?query=", rig.prometheus.url())));

    // The same through the command, as text and as JSON.
    let args = [
        "explain",
        "--scaled-object",
        "deploy/keda/scaledobject-coordinator.yaml",
        "--prometheus",
        &rig.prometheus.url(),
        "--nats-monitor",
        &rig.nats_monitor(),
        "--replicas",
        "1",
    ];
    let text = backflow(strings(&args)).await;
    eprintln!("$ backflow {}\n{text}", args.join(" "));
    assert!(
        text.contains(
            "desired-replicas (prometheus, target 1 AverageValue): value 4, ratio 4 / (1 × 1) = \
             4.00, outside 0.90..1.10 -> ceil(4 / 1) = 4 replicas"
        ),
        "{text}"
    );
    assert!(
        text.contains("write-consumer-lag (nats-jetstream, target 5000 AverageValue): value 600"),
        "{text}"
    );
    assert!(
        text.trim_end()
            .ends_with("result: 1 -> 4 replicas: HPA recommends 4, within policies and min/max"),
        "{text}"
    );
    let mut json_args = strings(&args);
    json_args.push("--json".into());
    let json: Value = serde_json::from_str(&backflow(json_args).await).unwrap();
    assert_eq!(json["triggers"][0]["value"], 4.0);
    assert_eq!(json["triggers"][0]["ratio"], 4.0);
    assert_eq!(json["triggers"][0]["proposal"], 4);
    assert_eq!(json["triggers"][0]["source"], "live");
    assert_eq!(json["desired"], 4);

    // The metrics-api alternative reads the bridge's JSON. Its scale-up policy allows only
    // +100 % per 30 s: 4 are asked, 1 -> 2 now.
    let alternative = "deploy/keda/alternatives/scaledobject-metrics-api.yaml";
    let sources = Sources {
        bridge: Some(rig.bridge_url()),
        nats_monitor: Some(rig.nats_monitor()),
        ..Sources::default()
    };
    let e = within(
        WAIT,
        "explain",
        explain(&object(alternative), sources, Replicas::from(1)),
    )
    .await
    .unwrap();
    assert_eq!(seen(&e, 0), (Some(4.0), Some(4.0), Some(4)), "{e}");
    assert_eq!(seen(&e, 1), (Some(0.0), Some(0.0), Some(0)), "{e}");
    assert_eq!(e.decision.desired, 2, "{e}");
    assert!(
        e.to_string()
            .ends_with("result: 1 -> 2 replicas: HPA recommends 4, limited by the scale-up policy"),
        "{e}"
    );
    let args = [
        "explain",
        "--scaled-object",
        alternative,
        "--bridge",
        &rig.bridge_url(),
        "--nats-monitor",
        &rig.nats_monitor(),
        "--replicas",
        "1",
    ];
    let text = backflow(strings(&args)).await;
    eprintln!("$ backflow {}\n{text}", args.join(" "));
    assert!(text.contains("desired-replicas (metrics-api, target 1 AverageValue): value 4"));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_down_or_refusing_fail_their_trigger_and_the_command_still_answers() {
    // A bridge that knows no coordinator (404), and nothing listening on the other ports.
    let server = NatsServer::start();
    let bridge = Bridge::start(&BridgeSetup {
        nats: NatsOptions::for_url(server.url()),
        metrics: MetricsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
        },
        bridge: BridgeConfig::default(),
    })
    .await
    .unwrap();
    let closed = format!("http://127.0.0.1:{}", free_port());

    let deployed = object("deploy/keda/scaledobject-coordinator.yaml");
    let sources = Sources {
        prometheus: Some(closed.clone()),
        nats_monitor: Some(closed.clone()),
        ..Sources::default()
    };
    let e = within(
        WAIT,
        "explain",
        explain(&deployed, sources, Replicas::from(3)),
    )
    .await
    .unwrap();
    for t in &e.triggers {
        assert!(
            matches!(
                t.observation.answer,
                Answer::Failed(ReadError::Request { .. })
            ),
            "{t:?}"
        );
    }
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "desired-replicas (prometheus, target 1 AverageValue): failed: cannot reach \
             {closed}/api/v1/query: "
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("failed: cannot reach {closed}/jsz: ")),
        "{text}"
    );
    // Every metric failed: the HPA keeps 3; after 3 failures KEDA would report
    // max(3, fallback 4) = 4 (currentReplicasIfHigher).
    assert!(
        text.contains("after more than 3 failures in a row KEDA falls back to 4 replicas"),
        "{text}"
    );
    assert!(
        text.ends_with("result: 3 -> 3 replicas: HPA did not scale: 3 metric(s) failed"),
        "{text}"
    );

    // The bridge answers 404 for a coordinator it does not know: KEDA's error, quoted.
    let args = [
        "explain",
        "--scaled-object",
        "deploy/keda/alternatives/scaledobject-metrics-api.yaml",
        "--bridge",
        &format!("http://{}", bridge.local_addr()),
        "--nats-monitor",
        &closed,
        "--replicas",
        "2",
    ];
    let text = backflow(strings(&args)).await;
    eprintln!("$ backflow {}\n{text}", args.join(" "));
    assert!(
        text.contains(&format!(
            "desired-replicas (metrics-api, target 1 AverageValue): failed: http://{}/api/v1/\
             coordinators/default answered 404: ",
            bridge.local_addr()
        )),
        "{text}"
    );
    assert!(
        text.contains("no live instance of coordinator default"),
        "{text}"
    );
    assert!(
        text.trim_end()
            .ends_with("result: 2 -> 2 replicas: HPA did not scale: 3 metric(s) failed"),
        "{text}"
    );
    bridge.stop().await.unwrap();
}

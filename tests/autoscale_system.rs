//! Both loops for real: agents at 3× one store's capacity throttle on feedback while they
//! publish their demand; the bridge turns it into `coordinator_desired_replicas`; a real
//! Prometheus scrapes the bridge and the store pods it discovers; the autoscaler model reads
//! the deployed ScaledObject's triggers from Prometheus and JetStream and starts and stops
//! real `backflow-store` processes (SIGTERM: drain). Timings are compressed (polling and HPA
//! sync 2 s, scale-down window 10 s, one pod per 4 s); everything else is as deployed.
//!
//! Longer runs: `BACKFLOW_AUTOSCALE_HOLD_S=120 cargo test --release --test autoscale_system
//! -- --nocapture` holds the load that many seconds once the fleet is up and prints every
//! decision.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use backflow::autoscale::{
    Autoscaler, Decision, ModelParams, PolicyType, Reading, Replicas, ScaledObject, Scaler,
    ScalingPolicy, Source,
};
use common::prometheus::PrometheusServer;
use common::rig::{Db, LONG, Rig, assert_exactly_acked, drop_table, num, pg_table};
use common::system::{Proc, http_get, sample};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};

/// One store's sink, rows per second.
const STORE_RATE: u32 = 500;
/// Each of the two agents' base rate: together 3× one store.
const AGENT_RATE: u32 = 750;
/// How often the model is asked whether a loop is due.
const TICK: Duration = Duration::from_millis(500);
/// Replicas 3× one store's capacity needs with the bridge's 25 % headroom: ceil(3.75).
const NEEDED: usize = 4;

/// The deployed ScaledObject with its clocks compressed.
fn compressed_model() -> Autoscaler {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/keda/scaledobject-coordinator.yaml"
    );
    let yaml = std::fs::read_to_string(path).unwrap();
    let mut object = ScaledObject::from_yaml(&yaml).unwrap();
    object.polling_interval_s = 2;
    let behavior = object
        .behavior
        .as_mut()
        .expect("the deployed object sets a behavior");
    for p in &mut behavior.scale_up.policies {
        p.period_s = 2;
    }
    behavior.scale_down.stabilization_window_s = Some(10);
    behavior.scale_down.policies = vec![ScalingPolicy {
        kind: PolicyType::Pods,
        value: 1,
        period_s: 4,
    }];
    let params = ModelParams {
        hpa_sync_period_s: 2.0,
        downscale_stabilization_s: 10.0,
        ..ModelParams::default()
    };
    Autoscaler::new(&object, params).unwrap()
}

/// The store Deployment: running replicas (ready once they serve metrics), and those
/// draining after a SIGTERM.
struct Fleet<'a> {
    rig: &'a Rig,
    db: &'a Db,
    prometheus: &'a PrometheusServer,
    running: Vec<(Proc, String)>,
    draining: Vec<JoinHandle<serde_json::Value>>,
    started: usize,
}

impl Fleet<'_> {
    async fn start_one(&mut self) {
        let name = format!("store-{}", self.started);
        self.started += 1;
        let proc = self.rig.store_sized(&name, self.db, STORE_RATE, 5_000);
        let addr = proc.metrics_addr().await;
        self.running.push((proc, addr));
        self.publish_targets();
    }

    fn stop_newest(&mut self) {
        if let Some((proc, _)) = self.running.pop() {
            self.publish_targets();
            self.draining.push(tokio::spawn(proc.terminate(LONG)));
        }
    }

    fn publish_targets(&self) {
        let addrs: Vec<String> = self.running.iter().map(|(_, a)| a.clone()).collect();
        self.prometheus.discover("stores", &addrs);
    }

    async fn scale_to(&mut self, n: usize) {
        while self.running.len() < n {
            self.start_one().await;
        }
        while self.running.len() > n.max(1) {
            self.stop_newest();
        }
    }

    /// Waits for every stopped replica; each must have drained what it took.
    async fn reports(&mut self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for handle in self.draining.drain(..) {
            let report = handle.await.unwrap();
            assert_eq!(
                report["drained"], true,
                "a replica stopped undrained: {report}"
            );
            out.push(report);
        }
        out
    }
}

/// One poll of the model with live readings; the fleet follows its decision.
async fn poll(
    model: &mut Autoscaler,
    fleet: &mut Fleet<'_>,
    js: &async_nats::jetstream::Context,
    origin: Instant,
) -> Decision {
    let readings = readings(model, fleet.prometheus, js).await;
    let t = origin.elapsed().as_secs_f64();
    let d = model.poll(t, Replicas::from(fleet.running.len() as u32), &readings);
    assert_live(&d);
    if d.changed() {
        println!("{t:6.1} s  {d}");
    }
    fleet.scale_to(d.desired as usize).await;
    d
}

/// One reading per trigger, from the source KEDA's scaler would ask.
async fn readings(
    model: &Autoscaler,
    prometheus: &PrometheusServer,
    js: &async_nats::jetstream::Context,
) -> Vec<Reading> {
    let mut out = Vec::new();
    for trigger in &model.object().triggers {
        out.push(match &trigger.scaler {
            Scaler::Prometheus { query, .. } => match prometheus.query(query).await.as_slice() {
                [] => Reading::Empty,
                [one] => Reading::Value(one.value),
                _ => Reading::Failed,
            },
            Scaler::NatsJetStream {
                stream, consumer, ..
            } => lag(js, stream, consumer).await,
            Scaler::MetricsApi { .. } => Reading::Failed,
        });
    }
    out
}

/// The consumer's pending and unacknowledged messages, as the nats-jetstream scaler adds them.
async fn lag(js: &async_nats::jetstream::Context, stream: &str, consumer: &str) -> Reading {
    let Ok(stream) = js.get_stream(stream).await else {
        return Reading::Failed;
    };
    let Ok(mut consumer) = stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(consumer)
        .await
    else {
        return Reading::Failed;
    };
    match consumer.info().await {
        Ok(info) => Reading::Value((info.num_pending + info.num_ack_pending as u64) as f64),
        Err(_) => Reading::Failed,
    }
}

/// The agents' mean budget scale, from their own `/metrics`.
async fn mean_scale(agents: &[(Proc, PathBuf, String)]) -> f64 {
    let mut sum = 0.0;
    for (_, _, addr) in agents {
        let scrape = http_get(addr, "/metrics").await.unwrap_or_default();
        sum += sample(&scrape, "backflow_agent_rate_scale{provider=\"feed\"}").unwrap_or(0.0);
    }
    sum / agents.len() as f64
}

/// Every trigger the HPA read came from its source, never from KEDA's fallback (which
/// would scale to 4 whatever the demand).
fn assert_live(d: &Decision) {
    for t in &d.per_trigger {
        assert!(
            !matches!(t.source, Some(Source::Fallback { .. })),
            "trigger {} fell back: {d}",
            t.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demand_scales_real_stores_up_to_the_need_and_back_to_one_losing_nothing() {
    let hold = Duration::from_secs(
        std::env::var("BACKFLOW_AUTOSCALE_HOLD_S")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    );
    let rig = Rig::new();
    let table = pg_table();
    let db = Db::Postgres(table.clone());
    let bridge = rig.bridge("bridge");
    let bridge_addr: std::net::SocketAddr = bridge.metrics_addr().await.parse().unwrap();
    let prometheus =
        PrometheusServer::start_discovering(&[("bridge", bridge_addr)], &["stores"]).await;
    let mut fleet = Fleet {
        rig: &rig,
        db: &db,
        prometheus: &prometheus,
        running: Vec::new(),
        draining: Vec::new(),
        started: 0,
    };
    fleet.start_one().await;
    rig.stream_ready().await;
    let mut agents = Vec::new();
    for name in ["a1", "a2"] {
        let (proc, log) = rig.agent(name, AGENT_RATE, 100_000_000);
        let addr = proc.metrics_addr().await;
        agents.push((proc, log, addr));
    }
    // The model starts once Prometheus holds the bridge's signal: before that, the empty
    // answers would count as failures towards the fallback.
    prometheus
        .expect_single_where(
            r#"max(coordinator_desired_replicas{coordinator_id="default"})"#,
            |v| v >= 1.0,
            LONG,
        )
        .await;
    let js = rig.js().await;
    let mut model = compressed_model();
    let origin = Instant::now();
    // Up: to the needed count, and the agents back near their full rate.
    let mut peak = 0;
    let mut scale = 0.0;
    common::within(
        LONG,
        "the fleet to reach the need and the agents to recover",
        async {
            loop {
                poll(&mut model, &mut fleet, &js, origin).await;
                peak = peak.max(fleet.running.len());
                scale = mean_scale(&agents).await;
                if fleet.running.len() >= NEEDED && scale >= 0.9 {
                    return;
                }
                sleep(TICK).await;
            }
        },
    )
    .await;
    let up_s = origin.elapsed().as_secs_f64();
    println!(
        "up: {} replicas (peak {peak}), agents' scale {scale:.2}, after {up_s:.1} s",
        fleet.running.len()
    );
    let held = Instant::now();
    while held.elapsed() < hold {
        poll(&mut model, &mut fleet, &js, origin).await;
        sleep(TICK).await;
    }

    // The load goes: the agents stop (and say so) while the model keeps polling, so the
    // window counts from the last recommendation made under load; the fleet returns to one
    // replica.
    let down_from = Instant::now();
    let mut stopping = Vec::new();
    let mut logs = Vec::new();
    for (proc, log, _) in agents {
        stopping.push(tokio::spawn(proc.terminate(LONG)));
        logs.push(log);
    }
    common::within(LONG, "the fleet to return to one replica", async {
        while fleet.running.len() > 1 || stopping.iter().any(|s| !s.is_finished()) {
            poll(&mut model, &mut fleet, &js, origin).await;
            sleep(TICK).await;
        }
    })
    .await;
    let down_s = down_from.elapsed().as_secs_f64();
    println!("down to 1 replica {down_s:.1} s after the load went");
    // Not before the (compressed) stabilization window.
    assert!(down_s >= 10.0, "scaled down after {down_s:.1} s");
    for agent in stopping {
        let report = agent.await.unwrap();
        assert!(num(&report, &["acked"]) > 0.0, "{report}");
        // The lone store held them back first: the demand the fleet grew on was hidden from
        // its queue.
        assert!(
            num(&report, &["min_scale"]) < 0.9,
            "never throttled: {report}"
        );
    }
    let reports = fleet.reports().await;
    assert_eq!(
        reports.len() + 1,
        fleet.started,
        "every replica but one stopped"
    );
    assert!(
        reports.iter().all(|r| num(r, &["received"]) > 0.0),
        "every added replica took work: {reports:?}"
    );
    rig.consumer_drained().await;
    let (last, _) = fleet.running.pop().unwrap();
    let report = last.terminate(LONG).await;
    assert_eq!(report["drained"], true, "{report}");
    assert_exactly_acked(&db, &logs).await;
    drop_table(&table).await;
    drop(bridge);
}

/// Waits until the bridge at `addr` reports a demand for coordinator `default`.
async fn demand_heard(addr: &str, what: &str) -> f64 {
    let mut demand = 0.0;
    common::within(LONG, what, async {
        loop {
            let scrape = http_get(addr, "/metrics").await.unwrap_or_default();
            demand = sample(
                &scrape,
                "coordinator_demand_rows_per_second{coordinator_id=\"default\"}",
            )
            .unwrap_or(0.0);
            if demand > 0.0 {
                return;
            }
            sleep(TICK).await;
        }
    })
    .await;
    demand
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demand_reaches_a_restarted_bridge_and_resumes_after_a_broker_restart() {
    let mut rig = Rig::new();
    let db = Db::Sqlite(rig.path("bars.db"));
    let store = rig.store("store-0", &db, STORE_RATE);
    rig.stream_ready().await;
    let (agent, _log) = rig.agent("a1", AGENT_RATE, 100_000_000);
    let first = rig.bridge("bridge-1");
    let heard = demand_heard(&first.metrics_addr().await, "the demand at the bridge").await;
    // Throttled by a store of 500 rows/s, the agent still reports what its source offered.
    assert!(heard > f64::from(STORE_RATE), "demand {heard}");
    first.stop(LONG).await;
    let second = rig.bridge("bridge-2");
    demand_heard(
        &second.metrics_addr().await,
        "the demand at a restarted bridge",
    )
    .await;
    second.stop(LONG).await;
    // The broker restarts; a bridge started afterwards can only hear demand published since.
    rig.nats.restart();
    let third = rig.bridge("bridge-3");
    demand_heard(
        &third.metrics_addr().await,
        "the demand after a broker restart",
    )
    .await;
    third.stop(LONG).await;
    agent.terminate(LONG).await;
    store.terminate(LONG).await;
}

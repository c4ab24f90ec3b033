//! The metrics bridge over a real nats-server: the fleet view on `/metrics` and the JSON API,
//! last values at start, republishing on the bus, expiry of silent instances, consumer lag.

mod common;

use std::time::Duration;

use backflow::bridge::{Bridge, BridgeConfig, BridgeSetup};
use backflow::bus::FeedbackPublisher;
use backflow::bus::nats::{NatsConnection, NatsOptions, NatsPublisher, ensure_state_stream};
use backflow::event::{
    BackpressureLevel, CoordinatorId, DemandEvent, FairRates, FeedbackEvent, InstanceId,
    encode_demand,
};
use backflow::fleet::FleetConfig;
use backflow::metrics::MetricsConfig;
use backflow::store::{StoreConfig, WriteStreamConfig, ensure_write_consumer, ensure_write_stream};
use common::nats::NatsServer;
use common::prometheus::{Exposition, client};
use common::{event, within};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::time::sleep;

const WAIT: Duration = Duration::from_secs(10);

fn settings(server: &NatsServer, bridge: BridgeConfig) -> BridgeSetup {
    BridgeSetup {
        nats: NatsOptions::for_url(server.url()),
        metrics: MetricsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
        },
        bridge,
    }
}

fn fast() -> BridgeConfig {
    BridgeConfig {
        publish_interval_ms: 200,
        lag_poll_interval_ms: 100,
        ..BridgeConfig::default()
    }
}

async fn connect(server: &NatsServer) -> NatsConnection {
    NatsOptions::for_url(server.url())
        .connect("test")
        .await
        .unwrap()
}

async fn get(bridge: &Bridge, path: &str) -> (u16, String) {
    let r = client()
        .get(format!("http://{}{path}", bridge.local_addr()))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn scrape(bridge: &Bridge) -> Exposition {
    let (status, body) = get(bridge, "/metrics").await;
    assert_eq!(status, 200);
    Exposition::parse(&body)
}

/// Polls the bridge's `/metrics` until `check` holds.
async fn until(bridge: &Bridge, what: &str, check: impl Fn(&Exposition) -> bool) -> Exposition {
    within(WAIT, what, async {
        loop {
            let e = scrape(bridge).await;
            if check(&e) {
                return e;
            }
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn one(e: &Exposition, name: &str, coordinator: &str) -> Option<f64> {
    e.find(name, &[("coordinator_id", coordinator)])
        .first()
        .map(|s| s.value)
}

fn with_heartbeat(mut e: FeedbackEvent, ms: u32) -> FeedbackEvent {
    e.heartbeat_ms = ms;
    e
}

#[tokio::test]
async fn bridge_exports_one_merged_state_per_coordinator() {
    let server = NatsServer::start();
    let conn = connect(&server).await;
    let bridge = Bridge::start(&settings(&server, fast())).await.unwrap();
    let publisher = NatsPublisher::new(&conn);
    for e in [
        event("a", "pod-1", 1, BackpressureLevel::Ok, 1_000, 10_000),
        event("a", "pod-2", 1, BackpressureLevel::Hard, 8_500, 10_000),
        event("b", "pod-1", 1, BackpressureLevel::Soft, 6_000, 10_000),
    ] {
        publisher.publish(&e).await.unwrap();
    }

    let e = until(&bridge, "both coordinators", |e| {
        one(e, "coordinator_instances", "a") == Some(2.0)
            && one(e, "coordinator_instances", "b") == Some(1.0)
    })
    .await;
    assert_eq!(one(&e, "coordinator_queue_depth", "a"), Some(8_500.0));
    assert_eq!(one(&e, "coordinator_fleet_queue_depth", "a"), Some(9_500.0));
    assert_eq!(one(&e, "coordinator_backlog", "a"), Some(9_500.0));
    assert_eq!(one(&e, "coordinator_capacity", "a"), Some(20_000.0));
    assert_eq!(one(&e, "coordinator_utilization", "a"), Some(0.85));
    assert_eq!(one(&e, "coordinator_backpressure_hard", "a"), Some(1.0));
    assert_eq!(one(&e, "coordinator_backpressure_ok", "a"), Some(0.0));
    assert_eq!(one(&e, "coordinator_backpressure_soft", "b"), Some(1.0));
    assert_eq!(
        one(&e, "coordinator_consumer_lag", "a"),
        None,
        "no write stream here"
    );
    assert_eq!(
        e.value(
            "backflow_feedback_events_total",
            &[("coordinator_id", "a"), ("level", "hard")]
        ),
        1.0
    );

    // The JSON API: every coordinator, one coordinator, unknown and invalid ids.
    let (status, body) = get(&bridge, "/api/v1/coordinators").await;
    assert_eq!(status, 200);
    let all: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(all["coordinators"]["a"]["queue_depth"], 8_500);
    assert_eq!(all["coordinators"]["b"]["level"], "soft");
    let (status, body) = get(&bridge, "/api/v1/coordinators/a").await;
    assert_eq!(status, 200);
    let a: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(a["backpressure_hard"], 1);
    assert_eq!(a["instances"], 2);
    assert_eq!(a["consumer_lag"], Value::Null);
    assert_eq!(get(&bridge, "/api/v1/coordinators/zzz").await.0, 404);
    assert_eq!(get(&bridge, "/api/v1/coordinators/a.b").await.0, 400);
    assert_eq!(get(&bridge, "/healthz").await.0, 200);
    assert_eq!(get(&bridge, "/readyz").await.0, 200);
    bridge.stop().await.unwrap();
}

#[tokio::test]
async fn bridge_knows_the_fleet_at_start_from_the_last_value_stream() {
    let server = NatsServer::start();
    let conn = connect(&server).await;
    ensure_state_stream(&conn).await.unwrap();
    NatsPublisher::new(&conn)
        .publish(&with_heartbeat(
            event(
                "default",
                "pod-1",
                1,
                BackpressureLevel::Hard,
                9_000,
                10_000,
            ),
            60_000,
        ))
        .await
        .unwrap();
    conn.client.flush().await.unwrap();
    sleep(Duration::from_millis(100)).await;

    // Started after the event: it learns it from the stream, not from a new event.
    let bridge = Bridge::start(&settings(&server, fast())).await.unwrap();
    let e = until(&bridge, "the kept event", |e| {
        one(e, "coordinator_backpressure_hard", "default") == Some(1.0)
    })
    .await;
    assert_eq!(one(&e, "coordinator_queue_depth", "default"), Some(9_000.0));
    bridge.stop().await.unwrap();
}

#[tokio::test]
async fn bridge_republishes_each_coordinator_on_the_bus() {
    let server = NatsServer::start();
    let conn = connect(&server).await;
    let mut metrics = conn.client.subscribe("backflow.metrics.>").await.unwrap();
    let bridge = Bridge::start(&settings(
        &server,
        BridgeConfig {
            // Only level changes: what arrives was caused by the event below.
            publish_interval_ms: 0,
            ..fast()
        },
    ))
    .await
    .unwrap();
    NatsPublisher::new(&conn)
        .publish(&event(
            "a",
            "pod-1",
            1,
            BackpressureLevel::Hard,
            9_000,
            10_000,
        ))
        .await
        .unwrap();
    let msg = within(WAIT, "a republished state", metrics.next())
        .await
        .unwrap();
    assert_eq!(msg.subject.as_str(), "backflow.metrics.a");
    let view: Value = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(view["coordinator_id"], "a");
    assert_eq!(view["level"], "hard");
    assert_eq!(view["queue_depth"], 9_000);
    assert_eq!(view["backlog"], 9_000);
    until(&bridge, "the publish counted", |e| {
        e.value("backflow_bridge_published_total", &[]) == 1.0
    })
    .await;
    bridge.stop().await.unwrap();
}

#[tokio::test]
async fn silent_instances_are_reported_then_expire_and_leaving_ones_go_at_once() {
    let server = NatsServer::start();
    let conn = connect(&server).await;
    let bridge = Bridge::start(&settings(
        &server,
        BridgeConfig {
            fleet: FleetConfig {
                missed_heartbeats: 2,
                forget_after_ms: 800,
                ..FleetConfig::bridge()
            },
            ..fast()
        },
    ))
    .await
    .unwrap();
    let publisher = NatsPublisher::new(&conn);
    publisher
        .publish(&with_heartbeat(
            event("a", "pod-1", 1, BackpressureLevel::Hard, 9_000, 10_000),
            100,
        ))
        .await
        .unwrap();
    let mut leaving = event("b", "pod-1", 1, BackpressureLevel::Soft, 6_000, 10_000);
    publisher.publish(&leaving).await.unwrap();
    until(&bridge, "both known", |e| {
        one(e, "coordinator_instances", "a").is_some()
            && one(e, "coordinator_instances", "b").is_some()
    })
    .await;
    leaving.seq = 2;
    leaving.leaving = true;
    publisher.publish(&leaving).await.unwrap();

    let e = until(&bridge, "a silent", |e| {
        one(e, "coordinator_silent_instances", "a") == Some(1.0)
    })
    .await;
    // A silent instance still counts with its last state...
    assert_eq!(one(&e, "coordinator_backpressure_hard", "a"), Some(1.0));
    assert_eq!(one(&e, "coordinator_instances", "b"), None, "b left");
    // ...until it expires: then the coordinator's series are gone, so that KEDA reads "no
    // data" (an error with ignoreNullValues: false), not zero.
    until(&bridge, "a expired", |e| {
        one(e, "coordinator_queue_depth", "a").is_none()
    })
    .await;
    assert_eq!(get(&bridge, "/api/v1/coordinators/a").await.0, 404);
    bridge.stop().await.unwrap();
}

#[tokio::test]
async fn backlog_is_the_write_consumers_lag_when_there_is_one() {
    let server = NatsServer::start();
    let conn = connect(&server).await;
    let id = CoordinatorId::default();
    ensure_write_stream(&conn, &WriteStreamConfig::default())
        .await
        .unwrap();
    let consumer = ensure_write_consumer(&conn, &id, &StoreConfig::default())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(conn.client.clone());
    for i in 0..120u32 {
        js.publish(conn.subjects.writes(&id), i.to_string().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // 20 delivered and not acknowledged: KEDA counts them too.
    let mut batch = consumer.fetch().max_messages(20).messages().await.unwrap();
    let mut taken = 0;
    while let Some(m) = batch.next().await {
        m.unwrap();
        taken += 1;
    }
    assert_eq!(taken, 20);

    let bridge = Bridge::start(&settings(&server, fast())).await.unwrap();
    NatsPublisher::new(&conn)
        .publish(&event(
            "default",
            "pod-1",
            1,
            BackpressureLevel::Ok,
            300,
            10_000,
        ))
        .await
        .unwrap();
    let e = until(&bridge, "the lag", |e| {
        one(e, "coordinator_consumer_lag", "default") == Some(120.0)
    })
    .await;
    assert_eq!(one(&e, "coordinator_backlog", "default"), Some(120.0));
    assert_eq!(one(&e, "coordinator_queue_depth", "default"), Some(300.0));
    assert_eq!(
        e.value("backflow_bridge_consumer_lag_errors_total", &[]),
        0.0
    );
    bridge.stop().await.unwrap();
}

fn demand(agent: &str, seq: u64, offered: f64, granted: f64) -> DemandEvent {
    DemandEvent::new(
        CoordinatorId::new("a").unwrap(),
        InstanceId::new(agent).unwrap(),
        seq,
        offered,
        granted,
    )
}

#[tokio::test]
async fn demand_the_fast_loop_holds_back_becomes_the_replicas_it_needs() {
    let server = NatsServer::start();
    let conn = connect(&server).await;
    let bridge = Bridge::start(&settings(&server, fast())).await.unwrap();
    // One replica that writes 2,000 rows/s while busy, holding its queue short (OK), and two
    // agents offering 3,000 rows/s each, granted a third of it: each heartbeats until the
    // bridge has heard it (a core NATS message sent before the bridge's subscription
    // reaches the server is not delivered; real heartbeats repeat the same way).
    let subject = conn.subjects.demand(&CoordinatorId::new("a").unwrap());
    let e = within(WAIT, "the store and the demand of both agents", async {
        for seq in 1.. {
            let mut store = with_heartbeat(
                event("a", "pod-1", seq, BackpressureLevel::Ok, 1_200, 10_000),
                250,
            );
            store.service_rate = Some(2_000.0);
            store.fair_rates = Some(FairRates {
                critical: 2_000.0,
                standard: 1_000.0,
                bulk: 0.0,
            });
            NatsPublisher::new(&conn).publish(&store).await.unwrap();
            for agent in ["agent-1", "agent-2"] {
                let payload = encode_demand(&demand(agent, seq, 3_000.0, 1_000.0));
                conn.client
                    .publish(subject.clone(), payload.into())
                    .await
                    .unwrap();
            }
            let e = scrape(&bridge).await;
            let heard = one(&e, "coordinator_demand_rows_per_second", "a") == Some(6_000.0)
                && one(&e, "coordinator_replica_capacity_rows_per_second", "a").is_some();
            if heard {
                return e;
            }
            sleep(Duration::from_millis(250)).await;
        }
        unreachable!("the loop above runs until it returns")
    })
    .await;
    assert_eq!(
        one(&e, "coordinator_granted_rows_per_second", "a"),
        Some(2_000.0)
    );
    assert_eq!(
        one(&e, "coordinator_unserved_rows_per_second", "a"),
        Some(4_000.0)
    );
    assert_eq!(
        one(&e, "coordinator_replica_capacity_rows_per_second", "a"),
        Some(2_000.0)
    );
    // The fair rates the store grants, per class.
    let fair = |class: &str| {
        e.find(
            "coordinator_fair_rate_rows_per_second",
            &[("coordinator_id", "a"), ("class", class)],
        )
        .first()
        .map(|s| s.value)
    };
    assert_eq!(
        [fair("critical"), fair("standard"), fair("bulk")],
        [Some(2_000.0), Some(1_000.0), Some(0.0)]
    );
    // ceil(6000 × 1.25 / 2000 + 1200 / (2000 × 60)) = ceil(3.76) = 4, though the queue is short.
    assert_eq!(one(&e, "coordinator_desired_replicas", "a"), Some(4.0));
    let (_, body) = get(&bridge, "/api/v1/coordinators/a").await;
    let a: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(a["desired_replicas"], 4);
    assert_eq!(a["scaling"]["headroom"], 1.25);
    assert_eq!(a["fair_rates"]["standard"], 1_000.0);
    assert!(
        a["scaling"]["formula"].as_str().unwrap().ends_with("= 4"),
        "{a}"
    );

    // One agent stops: its demand goes at once.
    let mut bye = demand("agent-2", u64::from(u32::MAX), 0.0, 0.0);
    bye.leaving = true;
    conn.client
        .publish(subject, encode_demand(&bye).into())
        .await
        .unwrap();
    let e = until(&bridge, "the departed agent's demand gone", |e| {
        one(e, "coordinator_demand_rows_per_second", "a") == Some(3_000.0)
    })
    .await;
    assert_eq!(one(&e, "coordinator_desired_replicas", "a"), Some(2.0));
    bridge.stop().await.unwrap();
}

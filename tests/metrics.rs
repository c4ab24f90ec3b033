//! The metrics API: what a store, an agent and a bridge export, read back from the text a
//! scrape returns, with every name, type and label set pinned.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backflow::bridge::{BridgeProbe, BridgeStats, FleetState};
use backflow::bus::http::HttpReceiverStats;
use backflow::bus::nats::SubscriberStats;
use backflow::bus::{Counted, FeedbackPublisher, FeedbackSubscription, Interest, MemoryBus};
use backflow::clock::WallClock;
use backflow::coordinator::{CoordinatorConfig, OverflowStrategy, WriteCoordinator};
use backflow::event::{BackpressureLevel, CoordinatorId};
use backflow::feedback::{FeedbackHandler, StepPolicy};
use backflow::fleet::FleetConfig;
use backflow::metrics::{CONTENT_TYPE, Metrics, MetricsConfig, MetricsError, ReadyFlag, serve};
use backflow::rate::{ProviderConfig, RateCoordinator, RateError};
use backflow::telemetry::{CATALOG, MetricKind};
use common::prometheus::{Exposition, client};
use common::sink::TestSink;
use common::{event, within};
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

/// Every family a scrape can show: name, type, label names. These are interfaces (KEDA
/// queries, dashboards, alerts): a change here must be deliberate, and this list is written
/// out by hand so that a change to the catalog alone fails.
const PINNED: &[(&str, &str, &[&str])] = &[
    ("backflow_build_info", "gauge", &["version"]),
    ("coordinator_queue_depth", "gauge", &["coordinator_id"]),
    ("coordinator_backpressure_ok", "gauge", &["coordinator_id"]),
    (
        "coordinator_backpressure_soft",
        "gauge",
        &["coordinator_id"],
    ),
    (
        "coordinator_backpressure_hard",
        "gauge",
        &["coordinator_id"],
    ),
    (
        "backflow_store_queue_capacity",
        "gauge",
        &["coordinator_id"],
    ),
    ("backflow_store_queued_items", "gauge", &["coordinator_id"]),
    (
        "backflow_store_external_backlog",
        "gauge",
        &["coordinator_id"],
    ),
    (
        "backflow_store_in_flight_items",
        "gauge",
        &["coordinator_id"],
    ),
    (
        "backflow_store_workers_running",
        "gauge",
        &["coordinator_id"],
    ),
    ("backflow_store_breaker_state", "gauge", &["coordinator_id"]),
    (
        "backflow_store_items_submitted_total",
        "counter",
        &["coordinator_id"],
    ),
    (
        "backflow_store_items_refused_total",
        "counter",
        &["coordinator_id"],
    ),
    (
        "backflow_store_items_written_total",
        "counter",
        &["coordinator_id"],
    ),
    (
        "backflow_store_batches_written_total",
        "counter",
        &["coordinator_id"],
    ),
    (
        "backflow_store_write_failures_total",
        "counter",
        &["coordinator_id"],
    ),
    (
        "backflow_store_items_dropped_total",
        "counter",
        &["coordinator_id", "reason"],
    ),
    (
        "backflow_store_items_dead_lettered_total",
        "counter",
        &["coordinator_id", "reason"],
    ),
    (
        "backflow_store_level_changes_total",
        "counter",
        &["coordinator_id"],
    ),
    (
        "backflow_store_feedback_published_total",
        "counter",
        &["coordinator_id"],
    ),
    (
        "backflow_store_feedback_publish_errors_total",
        "counter",
        &["coordinator_id"],
    ),
    (
        "backflow_store_messages_acked_total",
        "counter",
        &["coordinator_id"],
    ),
    (
        "backflow_store_ack_errors_total",
        "counter",
        &["coordinator_id"],
    ),
    (
        "backflow_store_messages_redelivered_total",
        "counter",
        &["coordinator_id"],
    ),
    (
        "backflow_store_batch_write_seconds",
        "histogram",
        &["coordinator_id"],
    ),
    (
        "backflow_store_queue_wait_seconds",
        "histogram",
        &["coordinator_id"],
    ),
    ("backflow_agent_rate_scale", "gauge", &["provider"]),
    ("backflow_agent_rate_limit", "gauge", &["provider"]),
    ("backflow_agent_pressure_level", "gauge", &["provider"]),
    ("backflow_agent_breaker_state", "gauge", &["provider"]),
    (
        "backflow_agent_items_granted_total",
        "counter",
        &["provider"],
    ),
    (
        "backflow_agent_acquire_wait_seconds",
        "histogram",
        &["provider"],
    ),
    (
        "backflow_agent_feedback_outcomes_total",
        "counter",
        &["outcome"],
    ),
    ("backflow_agent_feedback_adjustments_total", "counter", &[]),
    ("backflow_agent_feedback_silent_instances", "gauge", &[]),
    ("backflow_agent_feedback_latency_seconds", "histogram", &[]),
    (
        "backflow_feedback_events_total",
        "counter",
        &["coordinator_id", "level"],
    ),
    (
        "backflow_feedback_decode_errors_total",
        "counter",
        &["transport"],
    ),
    (
        "backflow_feedback_refused_total",
        "counter",
        &["reason", "transport"],
    ),
    (
        "coordinator_fleet_queue_depth",
        "gauge",
        &["coordinator_id"],
    ),
    ("coordinator_consumer_lag", "gauge", &["coordinator_id"]),
    ("coordinator_backlog", "gauge", &["coordinator_id"]),
    ("coordinator_capacity", "gauge", &["coordinator_id"]),
    ("coordinator_utilization", "gauge", &["coordinator_id"]),
    ("coordinator_instances", "gauge", &["coordinator_id"]),
    ("coordinator_silent_instances", "gauge", &["coordinator_id"]),
    (
        "coordinator_demand_rows_per_second",
        "gauge",
        &["coordinator_id"],
    ),
    (
        "coordinator_granted_rows_per_second",
        "gauge",
        &["coordinator_id"],
    ),
    (
        "coordinator_unserved_rows_per_second",
        "gauge",
        &["coordinator_id"],
    ),
    (
        "coordinator_replica_capacity_rows_per_second",
        "gauge",
        &["coordinator_id"],
    ),
    (
        "coordinator_fair_rate_rows_per_second",
        "gauge",
        &["class", "coordinator_id"],
    ),
    ("coordinator_desired_replicas", "gauge", &["coordinator_id"]),
    ("backflow_bridge_published_total", "counter", &[]),
    ("backflow_bridge_publish_errors_total", "counter", &[]),
    ("backflow_bridge_consumer_lag_errors_total", "counter", &[]),
];

fn store_config(capacity: u64) -> CoordinatorConfig {
    CoordinatorConfig {
        capacity,
        workers: 1,
        batch_size: 10,
        flush_interval_ms: 10,
        heartbeat_interval_ms: 0,
        ..CoordinatorConfig::default()
    }
}

fn store(config: CoordinatorConfig) -> (WriteCoordinator<u64>, Arc<TestSink>) {
    let sink = Arc::new(TestSink::default());
    let store = WriteCoordinator::builder(config, sink.clone())
        .start()
        .unwrap();
    (store, sink)
}

fn scrape(metrics: &Metrics) -> Exposition {
    Exposition::parse(&metrics.render().expect("renders"))
}

/// The family a sample belongs to (histogram series carry a suffix).
fn family_of<'a>(e: &Exposition, name: &'a str) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if e.types.get(base).is_some_and(|t| t == "histogram") {
                return base;
            }
        }
    }
    name
}

/// Exports an agent's provider `ibkr`, its handler and its NATS subscriber.
fn register_agent(
    metrics: &Metrics,
    rate: &RateCoordinator,
    handler: &FeedbackHandler,
    subscriber: Arc<SubscriberStats>,
) {
    metrics
        .register(rate.probe(&["ibkr".to_owned()]).unwrap())
        .unwrap();
    metrics.register(handler.stats()).unwrap();
    metrics.register(subscriber).unwrap();
}

/// `subscription`, its events counted in `metrics`.
fn counted<S: FeedbackSubscription>(metrics: &Metrics, subscription: S) -> Counted<S> {
    let counted = Counted::new(subscription);
    metrics.register(counted.counts()).unwrap();
    counted
}

/// A registry with one of everything registered.
async fn everything() -> (Metrics, CancellationToken) {
    let metrics = Metrics::new().unwrap();
    let (coordinator, _sink) = store(store_config(100));
    metrics.register(coordinator.clone()).unwrap();

    let (rate, handler) = common::step_agent("ibkr", 100);
    register_agent(&metrics, &rate, &handler, Arc::<SubscriberStats>::default());
    metrics
        .register(Arc::<HttpReceiverStats>::default())
        .unwrap();
    let bus = MemoryBus::new(16);
    let stop = CancellationToken::new();
    tokio::spawn(handler.run(
        counted(&metrics, bus.subscribe(Interest::All)),
        stop.clone().cancelled_owned(),
    ));
    bus.publish(&event(
        "default",
        "pod-1",
        1,
        BackpressureLevel::Soft,
        60,
        100,
    ))
    .await
    .unwrap();

    metrics
        .register(backflow::store::AckProbe {
            coordinator_id: CoordinatorId::default(),
            stats: Arc::default(),
        })
        .unwrap();
    let mut fleet = FleetState::new(FleetConfig::bridge(), WallClock::new());
    let mut measured = event("default", "pod-1", 1, BackpressureLevel::Hard, 90, 100);
    measured.service_rate = Some(2_000.0);
    measured.fair_rates = Some(backflow::event::FairRates::default());
    fleet.observe(measured, Instant::now());
    fleet.set_consumer_lag(&CoordinatorId::default(), Some(7));
    metrics
        .register(BridgeProbe::new(
            Arc::new(Mutex::new(fleet)),
            Arc::new(BridgeStats::default()),
        ))
        .unwrap();
    within(WAIT, "the event counted", async {
        while scrape(&metrics)
            .find("backflow_feedback_events_total", &[])
            .is_empty()
        {
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    (metrics, stop)
}

#[tokio::test]
async fn every_metric_is_scraped_with_its_pinned_name_type_and_labels() {
    let (metrics, _stop) = everything().await;
    let e = scrape(&metrics);

    for (name, kind, _) in PINNED {
        assert_eq!(
            e.types.get(*name).map(String::as_str),
            Some(*kind),
            "{name} missing or of another type; families: {:?}",
            e.types.keys()
        );
    }
    assert_eq!(
        e.types.len(),
        PINNED.len(),
        "unpinned families: {:?}",
        e.types
    );
    for s in &e.samples {
        let family = family_of(&e, &s.name);
        let (_, _, labels) = PINNED
            .iter()
            .find(|(n, _, _)| *n == family)
            .unwrap_or_else(|| panic!("sample {} of an unpinned family", s.name));
        let mut got: Vec<&str> = s.labels.keys().map(String::as_str).collect();
        if s.name.ends_with("_bucket") {
            got.retain(|l| *l != "le");
        }
        assert_eq!(&got, labels, "labels of {}", s.name);
    }
    // Nothing of opentelemetry's own shows: no scope labels, no target_info, no suffixes.
    assert!(!e.types.contains_key("target_info"));
    assert!(e.samples.iter().all(|s| !s.name.contains("_total_total")));

    // The catalog (which the docs are written from) says the same as the pinned list.
    assert_eq!(CATALOG.len(), PINNED.len());
    for m in CATALOG {
        let (_, kind, labels) = PINNED
            .iter()
            .find(|(n, _, _)| *n == m.name)
            .unwrap_or_else(|| panic!("{} is not pinned", m.name));
        assert_eq!(m.kind.as_str(), *kind, "{}", m.name);
        let mut catalog_labels = m.labels.to_vec();
        catalog_labels.sort_unstable();
        assert_eq!(&catalog_labels, labels, "{}", m.name);
        assert!(
            e.help.get(m.name).is_some_and(|h| h == m.help),
            "help of {}",
            m.name
        );
        if m.kind == MetricKind::Histogram {
            let count = format!("{}_count", m.name);
            assert!(!e.find(&count, &[]).is_empty(), "{count}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn store_metrics_follow_the_coordinator() {
    let metrics = Metrics::new().unwrap();
    let (coordinator, sink) = store(CoordinatorConfig {
        overflow: OverflowStrategy::DropOldest,
        batch_size: 1,
        ..store_config(10)
    });
    metrics.register(coordinator.clone()).unwrap();
    let id = [("coordinator_id", "default")];

    let e = scrape(&metrics);
    assert_eq!(e.value("coordinator_queue_depth", &id), 0.0);
    assert_eq!(e.value("coordinator_backpressure_ok", &id), 1.0);
    assert_eq!(e.value("coordinator_backpressure_hard", &id), 0.0);
    assert_eq!(e.value("backflow_store_queue_capacity", &id), 10.0);
    assert_eq!(e.value("backflow_store_workers_running", &id), 1.0);

    // External backlog alone drives the depth over the high watermark (8 of 10).
    coordinator.set_external_backlog(9);
    let e = scrape(&metrics);
    assert_eq!(e.value("coordinator_queue_depth", &id), 9.0);
    assert_eq!(e.value("backflow_store_external_backlog", &id), 9.0);
    assert_eq!(
        (
            e.value("coordinator_backpressure_ok", &id),
            e.value("coordinator_backpressure_soft", &id),
            e.value("coordinator_backpressure_hard", &id)
        ),
        (0.0, 0.0, 1.0)
    );
    coordinator.set_external_backlog(0);
    let e = scrape(&metrics);
    assert_eq!(e.value("coordinator_backpressure_ok", &id), 1.0);
    assert_eq!(e.value("backflow_store_level_changes_total", &id), 2.0);

    // Writes: counted, and timed in the batch latency histogram.
    for i in 0..8 {
        coordinator.submit(i).await.unwrap();
    }
    within(WAIT, "8 items written", async {
        while coordinator.stats().written < 8 {
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let e = scrape(&metrics);
    assert_eq!(e.value("backflow_store_items_submitted_total", &id), 8.0);
    assert_eq!(e.value("backflow_store_items_written_total", &id), 8.0);
    let batches = e.value("backflow_store_batches_written_total", &id);
    assert!(batches >= 2.0, "{batches}");
    assert_eq!(
        e.value("backflow_store_batch_write_seconds_count", &id),
        batches
    );
    assert_eq!(
        e.value(
            "backflow_store_batch_write_seconds_bucket",
            &[("le", "+Inf")]
        ),
        batches
    );
    assert_eq!(e.value("backflow_store_queue_wait_seconds_count", &id), 8.0);

    // A held sink and drop_oldest: evictions are counted by reason.
    sink.hold();
    for i in 0..30 {
        coordinator.try_submit(i).unwrap();
    }
    let e = scrape(&metrics);
    let dropped = coordinator.stats().dropped_overflow;
    assert!(dropped > 0);
    assert_eq!(
        e.value(
            "backflow_store_items_dropped_total",
            &[("coordinator_id", "default"), ("reason", "overflow")]
        ),
        dropped as f64
    );
    for reason in ["dead_letter_failed", "abandoned_in_flight"] {
        let labels = [("coordinator_id", "default"), ("reason", reason)];
        assert_eq!(e.value("backflow_store_items_dropped_total", &labels), 0.0);
    }
    for reason in ["retries_exhausted", "rejected", "shutdown"] {
        let labels = [("coordinator_id", "default"), ("reason", reason)];
        assert_eq!(
            e.value("backflow_store_items_dead_lettered_total", &labels),
            0.0
        );
    }
    assert_eq!(e.value("coordinator_backpressure_hard", &id), 1.0);
    assert_eq!(e.value("backflow_store_breaker_state", &id), 0.0);
    sink.release();
    coordinator.stop(true, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn agent_metrics_follow_rates_and_feedback() {
    let metrics = Metrics::new().unwrap();
    let rate = RateCoordinator::new();
    rate.register_provider("ibkr", ProviderConfig::new(100, 100.0))
        .unwrap();
    let handler = FeedbackHandler::new(
        rate.clone(),
        ["ibkr"],
        Box::new(StepPolicy::default()),
        FleetConfig::default(),
    )
    .unwrap();
    let subscriber = Arc::new(SubscriberStats::default());
    let http = Arc::new(HttpReceiverStats::default());
    register_agent(&metrics, &rate, &handler, subscriber.clone());
    metrics.register(http.clone()).unwrap();
    let bus = MemoryBus::new(16);
    let stop = CancellationToken::new();
    tokio::spawn(handler.run(
        counted(&metrics, bus.subscribe(Interest::All)),
        stop.clone().cancelled_owned(),
    ));
    let p = [("provider", "ibkr")];

    rate.acquire("ibkr", 3).await.unwrap();
    let e = scrape(&metrics);
    assert_eq!(e.value("backflow_agent_rate_scale", &p), 1.0);
    assert_eq!(e.value("backflow_agent_rate_limit", &p), 100.0);
    assert_eq!(e.value("backflow_agent_items_granted_total", &p), 3.0);
    assert_eq!(
        e.value("backflow_agent_acquire_wait_seconds_count", &p),
        1.0
    );

    bus.publish(&event(
        "default",
        "pod-1",
        1,
        BackpressureLevel::Hard,
        90,
        100,
    ))
    .await
    .unwrap();
    bus.publish(&event(
        "default",
        "pod-1",
        1,
        BackpressureLevel::Hard,
        90,
        100,
    ))
    .await
    .unwrap();
    within(WAIT, "the hard level applied", async {
        while rate.scale("ibkr").unwrap() != 0.0 {
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    within(WAIT, "the duplicate handled", async {
        while scrape(&metrics)
            .find(
                "backflow_agent_feedback_outcomes_total",
                &[("outcome", "duplicate")],
            )
            .first()
            .is_none_or(|s| s.value < 1.0)
        {
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    subscriber.decode_errors.fetch_add(3, Relaxed);
    subscriber.oversize.fetch_add(1, Relaxed);
    http.invalid.fetch_add(2, Relaxed);

    let e = scrape(&metrics);
    assert_eq!(e.value("backflow_agent_rate_scale", &p), 0.0);
    assert_eq!(e.value("backflow_agent_rate_limit", &p), 0.0);
    assert_eq!(e.value("backflow_agent_pressure_level", &p), 2.0);
    assert_eq!(e.value("backflow_agent_breaker_state", &p), 0.0);
    let hard = [("coordinator_id", "default"), ("level", "hard")];
    assert_eq!(e.value("backflow_feedback_events_total", &hard), 2.0);
    let outcome = |o| e.value("backflow_agent_feedback_outcomes_total", &[("outcome", o)]);
    assert_eq!((outcome("applied"), outcome("duplicate")), (1.0, 1.0));
    assert_eq!(
        e.value("backflow_agent_feedback_adjustments_total", &[]),
        1.0
    );
    assert_eq!(
        e.value("backflow_agent_feedback_silent_instances", &[]),
        0.0
    );
    assert_eq!(
        e.value("backflow_agent_feedback_latency_seconds_count", &[]),
        1.0
    );
    let decode = |t| e.value("backflow_feedback_decode_errors_total", &[("transport", t)]);
    assert_eq!((decode("nats"), decode("http")), (3.0, 2.0));
    let refused = [("transport", "nats"), ("reason", "oversize")];
    assert_eq!(e.value("backflow_feedback_refused_total", &refused), 1.0);
    stop.cancel();
}

#[tokio::test]
async fn router_serves_metrics_health_and_readiness() {
    let metrics = Metrics::new().unwrap();
    let (coordinator, _sink) = store(store_config(100));
    metrics.register(coordinator.clone()).unwrap();
    let ready = ReadyFlag::new();
    let stop = CancellationToken::new();
    let config = MetricsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
    };
    let (addr, server) = serve(
        &config,
        metrics.router(ready.probe()),
        stop.clone().cancelled_owned(),
    )
    .await
    .unwrap();
    let http = client();
    let get = |path: &str| http.get(format!("http://{addr}{path}")).send();

    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 503);
    ready.set(true);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let response = get("/metrics").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], CONTENT_TYPE);
    let e = Exposition::parse(&response.text().await.unwrap());
    assert_eq!(
        e.value("coordinator_queue_depth", &[("coordinator_id", "default")]),
        0.0
    );
    assert_eq!(get("/nowhere").await.unwrap().status(), 404);

    stop.cancel();
    within(WAIT, "the server to stop", server)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn registering_the_same_thing_twice_is_refused() {
    let metrics = Metrics::new().unwrap();
    let (coordinator, _sink) = store(store_config(100));
    metrics.register(coordinator.clone()).unwrap();
    let (twin, _sink) = store(store_config(100));
    assert!(matches!(
        metrics.register(twin.clone()),
        Err(MetricsError::AlreadyRegistered(_))
    ));

    let rate = RateCoordinator::new();
    rate.register_provider("ibkr", ProviderConfig::new(10, 10.0))
        .unwrap();
    assert!(matches!(
        rate.probe(&["polygon".to_owned()]),
        Err(RateError::UnknownProvider(p)) if p == "polygon"
    ));
    metrics
        .register(rate.probe(&["ibkr".to_owned()]).unwrap())
        .unwrap();
    assert!(matches!(
        metrics.register(rate.probe(&["ibkr".to_owned()]).unwrap()),
        Err(MetricsError::AlreadyRegistered(_))
    ));
    let bridge = || {
        BridgeProbe::new(
            Arc::new(Mutex::new(FleetState::new(
                FleetConfig::bridge(),
                WallClock::new(),
            ))),
            Arc::default(),
        )
    };
    metrics.register(bridge()).unwrap();
    assert!(metrics.register(bridge()).is_err());
}

#[test]
fn every_metric_is_documented() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs: String = ["docs/metrics.md"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(root.join(f)).ok())
        .collect();
    for m in CATALOG {
        assert!(
            docs.contains(&format!("| `{}` | {} |", m.name, m.kind.as_str())),
            "{} ({}) is not in the metrics reference table of docs/metrics.md",
            m.name,
            m.kind.as_str()
        );
    }
}

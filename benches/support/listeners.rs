//! Shared by the NATS latency benches: bare subscriber connections and in-process agents that
//! each report the instant a message arrives or a scale changes, and the store that toggles.

use std::sync::Arc;
use std::time::Duration;

use backflow::bus::Interest;
use backflow::bus::nats::{NatsConnection, NatsOptions, NatsPublisher, NatsSubscriber};
use backflow::coordinator::{CoordinatorConfig, NullSink, WriteCoordinator};
use backflow::event::{BackpressureLevel, CoordinatorId, FeedbackEvent, InstanceId, encode};
use backflow::feedback::{FeedbackHandler, StepPolicy};
use backflow::fleet::{Fallback, FleetConfig};
use backflow::rate::{ProviderConfig, RateCoordinator};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

pub async fn connect(url: &str, name: &str) -> NatsConnection {
    NatsOptions::for_url(url)
        .connect(name)
        .await
        .expect("nats connects")
}

/// `n` plain subscribers to `bench.bare` on their own connections, each reporting when a
/// message arrives.
pub async fn bare_subscribers(url: &str, n: usize) -> mpsc::UnboundedReceiver<Instant> {
    let (tx, rx) = mpsc::unbounded_channel();
    for i in 0..n {
        let conn = connect(url, &format!("bare-{i}")).await;
        let mut sub = conn
            .client
            .subscribe("bench.bare")
            .await
            .expect("subscribe");
        conn.client.flush().await.expect("flush");
        let tx = tx.clone();
        tokio::spawn(async move {
            let _keep = conn;
            while sub.next().await.is_some() {
                let _ = tx.send(Instant::now());
            }
        });
    }
    rx
}

/// `n` agents on their own connections (subscriber → step-policy handler → rate
/// coordinator), each reporting when its scale changes.
pub async fn agents(url: &str, n: usize) -> mpsc::UnboundedReceiver<Instant> {
    let (tx, rx) = mpsc::unbounded_channel();
    for i in 0..n {
        let conn = connect(url, &format!("agent-{i}")).await;
        let rate = RateCoordinator::new();
        rate.register_provider("p", ProviderConfig::new(10, 10.0))
            .expect("provider");
        let (sub, _) = NatsSubscriber::start(&conn, Interest::All)
            .await
            .expect("subscribe");
        let fleet = FleetConfig {
            fallback: Fallback::HoldLast,
            ..FleetConfig::default()
        };
        let handler =
            FeedbackHandler::new(rate.clone(), ["p"], Box::new(StepPolicy::default()), fleet)
                .expect("handler");
        tokio::spawn(handler.run(sub, std::future::pending::<()>()));
        let mut scale = rate.watch_scale("p").expect("watch");
        let tx = tx.clone();
        tokio::spawn(async move {
            let _keep = (conn, rate);
            while scale.changed().await.is_ok() {
                let _ = tx.send(Instant::now());
            }
        });
    }
    rx
}

/// A store (capacity 100, no heartbeat) publishing on NATS as `instance`, whose level the
/// bench toggles with `set_external_backlog(90 / 10)`, and a HARD event of the same shape as
/// the bare payload.
pub async fn toggling_store(url: &str, instance: &str) -> (WriteCoordinator<u64>, Vec<u8>) {
    let conn = connect(url, "store").await;
    let id = InstanceId::new(instance).expect("id");
    let store = WriteCoordinator::builder(
        CoordinatorConfig {
            capacity: 100,
            heartbeat_interval_ms: 0,
            instance_id: Some(id.clone()),
            ..CoordinatorConfig::default()
        },
        Arc::new(NullSink),
    )
    .publisher(Arc::new(NatsPublisher::new(&conn)))
    .start()
    .expect("store");
    let payload = encode(&FeedbackEvent::new(
        CoordinatorId::default(),
        id,
        1,
        1,
        1,
        BackpressureLevel::Hard,
        90,
        100,
    ));
    (store, payload)
}

/// Receives `n` reports and appends each one's delay after `t0` to `out`.
pub async fn collect(
    rx: &mut mpsc::UnboundedReceiver<Instant>,
    n: usize,
    t0: Instant,
    out: &mut Vec<Duration>,
) {
    for _ in 0..n {
        match timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(t)) => out.push(t.saturating_duration_since(t0)),
            _ => panic!("a receiver missed a message"),
        }
    }
}

pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

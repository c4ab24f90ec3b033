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
use futures_util::stream;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

/// Connections opened at once. One at a time, every agent waits in turn for its handshake,
/// its subscription's round trip and its last-value read; a few dozen in flight keep the
/// servers and this process busy without making handshakes queue past the connect timeout.
const CONNECTING: usize = 64;

pub async fn connect(url: &str, name: &str) -> NatsConnection {
    NatsOptions {
        // A loaded 2-core machine accepting thousands of connections can be slower than the
        // 2 s a service allows itself.
        connect_timeout_ms: 20_000,
        ..NatsOptions::for_url(url)
    }
    .connect(name)
    .await
    .unwrap_or_else(|e| panic!("{name} cannot connect to {url}: {e}"))
}

/// Connection `i`'s server: `urls` is one URL or several separated by commas (the nodes of a
/// cluster), dealt round-robin.
fn url_of(urls: &str, i: usize) -> &str {
    let n = urls.split(',').count();
    urls.split(',').nth(i % n).unwrap_or(urls)
}

/// `n` plain subscribers to `bench.bare` on their own connections (spread over the
/// comma-separated `urls`), each reporting when a message arrives.
pub async fn bare_subscribers(urls: &str, n: usize) -> mpsc::UnboundedReceiver<Instant> {
    let (tx, rx) = mpsc::unbounded_channel();
    stream::iter(0..n)
        .for_each_concurrent(CONNECTING, |i| {
            bare_subscriber(url_of(urls, i), i, tx.clone())
        })
        .await;
    rx
}

async fn bare_subscriber(url: &str, i: usize, tx: mpsc::UnboundedSender<Instant>) {
    let conn = connect(url, &format!("bare-{i}")).await;
    let mut sub = conn
        .client
        .subscribe("bench.bare")
        .await
        .unwrap_or_else(|e| panic!("bare-{i} cannot subscribe: {e}"));
    conn.client
        .flush()
        .await
        .unwrap_or_else(|e| panic!("bare-{i} cannot flush: {e}"));
    tokio::spawn(async move {
        let _keep = conn;
        while sub.next().await.is_some() {
            let _ = tx.send(Instant::now());
        }
    });
}

/// `n` agents on their own connections (spread over the comma-separated `urls`; subscriber →
/// step-policy handler → rate coordinator), each reporting when its scale changes.
pub async fn agents(urls: &str, n: usize) -> mpsc::UnboundedReceiver<Instant> {
    let (tx, rx) = mpsc::unbounded_channel();
    stream::iter(0..n)
        .for_each_concurrent(CONNECTING, |i| agent(url_of(urls, i), i, tx.clone()))
        .await;
    rx
}

async fn agent(url: &str, i: usize, tx: mpsc::UnboundedSender<Instant>) {
    let conn = connect(url, &format!("agent-{i}")).await;
    let rate = RateCoordinator::new();
    rate.register_provider("p", ProviderConfig::new(10, 10.0))
        .expect("provider");
    let (sub, _) = NatsSubscriber::start(&conn, Interest::All)
        .await
        .unwrap_or_else(|e| panic!("agent-{i} cannot subscribe: {e}"));
    let fleet = FleetConfig {
        fallback: Fallback::HoldLast,
        ..FleetConfig::default()
    };
    let handler = FeedbackHandler::new(rate.clone(), ["p"], Box::new(StepPolicy::default()), fleet)
        .expect("handler");
    tokio::spawn(handler.run(sub, std::future::pending::<()>()));
    let mut scale = rate.watch_scale("p").expect("watch");
    tokio::spawn(async move {
        let _keep = (conn, rate);
        while scale.changed().await.is_ok() {
            let _ = tx.send(Instant::now());
        }
    });
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
            instance_id: Some(id),
            ..CoordinatorConfig::default()
        },
        Arc::new(NullSink),
    )
    .publisher(Arc::new(NatsPublisher::new(&conn)))
    .start()
    .expect("store");
    (store, hard_event(instance))
}

/// The encoded HARD event `instance` publishes at 90 of 100: the bare baseline's payload, so
/// that both paths carry the same bytes.
pub fn hard_event(instance: &str) -> Vec<u8> {
    encode(&FeedbackEvent::new(
        CoordinatorId::default(),
        InstanceId::new(instance).expect("id"),
        1,
        1,
        1,
        BackpressureLevel::Hard,
        90,
        100,
    ))
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

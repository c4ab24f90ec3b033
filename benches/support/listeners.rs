//! Shared by the NATS latency benches: bare subscriber connections and in-process agents that
//! each note the instant a message arrives or their handler decides a new scale, and the store
//! that toggles.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use backflow::bus::Interest;
use backflow::bus::nats::{NatsConnection, NatsOptions, NatsPublisher, NatsSubscriber};
use backflow::coordinator::{CoordinatorConfig, NullSink, WriteCoordinator};
use backflow::event::{BackpressureLevel, CoordinatorId, FeedbackEvent, InstanceId, encode};
use backflow::feedback::{Decision, FeedbackHandler, Policy, StepPolicy};
use backflow::fleet::{Fallback, FleetConfig, Signal};
use backflow::rate::{ProviderConfig, RateCoordinator};
use futures_util::StreamExt;
use futures_util::stream;
use tokio::sync::Notify;
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

/// When each of `n` receivers last had a message (or applied a change), written by the
/// receivers themselves where it happens: an atomic store and a count per arrival, and one
/// wake-up per round (of the bench, by the last one), so that measuring adds no task, channel
/// or wake-up per receiver to either side.
pub struct Arrivals {
    base: Instant,
    /// Nanoseconds after `base` of each receiver's last arrival.
    at: Vec<AtomicU64>,
    /// Receivers yet to arrive this round.
    pending: AtomicUsize,
    all_in: Notify,
}

impl Arrivals {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            at: (0..n).map(|_| AtomicU64::new(0)).collect(),
            pending: AtomicUsize::new(usize::MAX),
            all_in: Notify::new(),
        })
    }

    /// Receiver `i` has it now.
    fn arrived(&self, i: usize) {
        let nanos = self.base.elapsed().as_nanos() as u64;
        self.at[i].store(nanos, Ordering::Relaxed);
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.all_in.notify_one();
        }
    }

    /// Starts a round: every receiver is to arrive once more after the returned instant.
    pub fn arm(&self) -> Instant {
        self.pending.store(self.at.len(), Ordering::Release);
        Instant::now()
    }

    /// Waits until every receiver arrived after `t0` (from [`arm`](Self::arm)) and appends
    /// each one's delay to `out`.
    pub async fn collect(&self, t0: Instant, out: &mut Vec<Duration>) {
        if timeout(Duration::from_secs(10), self.all_in.notified())
            .await
            .is_err()
        {
            let missing = self.pending.load(Ordering::Acquire);
            panic!("{missing} receivers missed a message");
        }
        let from = t0.saturating_duration_since(self.base);
        out.extend(
            self.at
                .iter()
                .map(|a| Duration::from_nanos(a.load(Ordering::Relaxed)).saturating_sub(from)),
        );
    }
}

/// `n` plain subscribers to `bench.bare` on their own connections (spread over the
/// comma-separated `urls`), each noting when a message arrives, in its own subscriber task.
pub async fn bare_subscribers(urls: &str, n: usize) -> Arc<Arrivals> {
    let arrivals = Arrivals::new(n);
    stream::iter(0..n)
        .for_each_concurrent(CONNECTING, |i| {
            bare_subscriber(url_of(urls, i), i, arrivals.clone())
        })
        .await;
    arrivals
}

async fn bare_subscriber(url: &str, i: usize, arrivals: Arc<Arrivals>) {
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
            arrivals.arrived(i);
        }
    });
}

/// The step policy, noting the instant it answers a new scale: the handler stores that scale
/// into the rate coordinator in the same synchronous call, so this is when the agent applied
/// the change, seen from inside the agent's own task (no watcher task per agent).
struct Noted {
    step: StepPolicy,
    scale: f64,
    arrivals: Arc<Arrivals>,
    i: usize,
}

impl Noted {
    fn note(&mut self, decision: Decision) -> Decision {
        if decision.scale != self.scale {
            self.scale = decision.scale;
            self.arrivals.arrived(self.i);
        }
        decision
    }
}

impl Policy for Noted {
    fn name(&self) -> &'static str {
        self.step.name()
    }

    fn on_signal(&mut self, signal: &Signal, now: Instant) -> Decision {
        let decision = self.step.on_signal(signal, now);
        self.note(decision)
    }

    fn on_tick(&mut self, now: Instant) -> Decision {
        let decision = self.step.on_tick(now);
        self.note(decision)
    }
}

/// `n` agents on their own connections (spread over the comma-separated `urls`; subscriber →
/// step-policy handler → rate coordinator), each noting when its handler applies a new scale.
pub async fn agents(urls: &str, n: usize) -> Arc<Arrivals> {
    let arrivals = Arrivals::new(n);
    stream::iter(0..n)
        .for_each_concurrent(CONNECTING, |i| agent(url_of(urls, i), i, arrivals.clone()))
        .await;
    arrivals
}

async fn agent(url: &str, i: usize, arrivals: Arc<Arrivals>) {
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
    let policy = Noted {
        step: StepPolicy::default(),
        scale: 1.0,
        arrivals,
        i,
    };
    let handler = FeedbackHandler::new(rate, ["p"], Box::new(policy), fleet).expect("handler");
    tokio::spawn(async move {
        let _keep = conn;
        handler.run(sub, std::future::pending::<()>()).await
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

pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

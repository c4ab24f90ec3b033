//! Feedback latency through a real nats-server on loopback: from a WriteCoordinator's level
//! change to each agent's RateCoordinator having applied the new scale, for 1 and 100 agents,
//! measured in the same run as the bare async-nats publish→receive hop of the same payload to
//! the same number of subscriber connections.
//!
//! `cargo bench --bench feedback_latency` (ROUNDS=<n> to change the number of rounds).

#[path = "../tests/common/nats.rs"]
#[allow(dead_code, unreachable_pub)]
mod nats;

use std::sync::Arc;
use std::time::Duration;

use backflow::bus::Interest;
use backflow::bus::nats::{NatsConnection, NatsOptions, NatsPublisher, NatsSubscriber};
use backflow::coordinator::{CoordinatorConfig, NullSink, WriteCoordinator};
use backflow::event::{BackpressureLevel, CoordinatorId, FeedbackEvent, InstanceId, encode};
use backflow::feedback::{Fallback, FeedbackHandler, FleetConfig, StepPolicy};
use backflow::rate::{ProviderConfig, RateCoordinator};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};

const WARMUP: usize = 50;

async fn connect(url: &str, name: &str) -> NatsConnection {
    NatsOptions::for_url(url)
        .connect(name)
        .await
        .expect("nats connects")
}

/// N bare subscribers on their own connections, each reporting when a message arrives.
async fn bare_subscribers(url: &str, n: usize) -> mpsc::UnboundedReceiver<Instant> {
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

/// N agents on their own connections, each reporting when its scale changes.
async fn agents(url: &str, n: usize) -> mpsc::UnboundedReceiver<Instant> {
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

async fn collect(
    rx: &mut mpsc::UnboundedReceiver<Instant>,
    n: usize,
    t0: Instant,
    out: &mut Vec<Duration>,
) {
    for _ in 0..n {
        match timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(t)) => out.push(t.saturating_duration_since(t0)),
            _ => panic!("a receiver missed a message"),
        }
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1_000.0)
}

async fn measure(url: &str, n: usize, rounds: usize) {
    let mut bare_rx = bare_subscribers(url, n).await;
    let mut agent_rx = agents(url, n).await;
    let store_conn = connect(url, "store").await;
    let store: WriteCoordinator<u64> = WriteCoordinator::builder(
        CoordinatorConfig {
            capacity: 100,
            heartbeat_interval_ms: 0,
            instance_id: Some(InstanceId::new("bench-store").expect("id")),
            ..CoordinatorConfig::default()
        },
        Arc::new(NullSink),
    )
    .publisher(Arc::new(NatsPublisher::new(&store_conn)))
    .start()
    .expect("store");
    let payload = encode(&FeedbackEvent::new(
        CoordinatorId::default(),
        InstanceId::new("bench-store").expect("id"),
        1,
        1,
        1,
        BackpressureLevel::Hard,
        90,
        100,
    ));
    let bare_client = connect(url, "bare-publisher").await.client;
    sleep(Duration::from_millis(500)).await; // subscriptions settle; agents read last values
    let (mut bare, mut fed, mut all_bare, mut all_fed) = (vec![], vec![], vec![], vec![]);
    for round in 0..WARMUP + rounds {
        let (mut b, mut f) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let t0 = Instant::now();
        bare_client
            .publish("bench.bare", payload.clone().into())
            .await
            .expect("publish");
        collect(&mut bare_rx, n, t0, &mut b).await;
        sleep(Duration::from_millis(2)).await;
        let t0 = Instant::now();
        store.set_external_backlog(if round % 2 == 0 { 90 } else { 10 });
        collect(&mut agent_rx, n, t0, &mut f).await;
        sleep(Duration::from_millis(2)).await;
        if round >= WARMUP {
            all_bare.push(b.iter().copied().max().unwrap_or_default());
            all_fed.push(f.iter().copied().max().unwrap_or_default());
            bare.extend(b);
            fed.extend(f);
        }
    }
    for v in [&mut bare, &mut fed, &mut all_bare, &mut all_fed] {
        v.sort_unstable();
    }
    let row = |what: &str, v: &[Duration], base: &[Duration]| {
        let ratio = quantile(v, 0.99).as_secs_f64() / quantile(base, 0.99).as_secs_f64();
        println!(
            "| {n:>3} | {what:<34} | {:>7} | {:>7} | {:>7} | {:>5.2} |",
            ms(quantile(v, 0.5)),
            ms(quantile(v, 0.99)),
            ms(quantile(v, 0.999)),
            ratio
        );
    };
    row("bare publish→receive, per receiver", &bare, &bare);
    row("level change→scale applied, per agent", &fed, &bare);
    if n > 1 {
        row("bare, until all received", &all_bare, &all_bare);
        row("feedback, until all agents applied", &all_fed, &all_bare);
    }
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1_000);
    let server = nats::NatsServer::start();
    let url = server.url();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "feedback latency, nats-server on loopback, {rounds} rounds after {WARMUP} warm-up (ms; ratio = p99 / bare p99)"
    );
    println!("| agents | path | p50 | p99 | p99.9 | ratio |");
    println!("|---|---|---|---|---|---|");
    runtime.block_on(async {
        measure(&url, 1, rounds).await;
        measure(&url, 100, rounds / 4).await;
    });
}

//! Feedback latency through a real nats-server on loopback: from a WriteCoordinator's level
//! change to each agent's RateCoordinator having applied the new scale, for 1 and 100 agents,
//! measured in the same run as the bare async-nats publish→receive hop of the same payload to
//! the same number of subscriber connections.
//!
//! `cargo bench --bench feedback_latency` (ROUNDS=<n> to change the number of rounds).

#[path = "support/listeners.rs"]
mod listeners;
#[path = "../tests/common/nats.rs"]
#[allow(dead_code, unreachable_pub)]
mod nats;

use std::time::Duration;

use listeners::{agents, bare_subscribers, connect, quantile, toggling_store};
use tokio::time::sleep;

const WARMUP: usize = 50;

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1_000.0)
}

async fn measure(url: &str, n: usize, rounds: usize) {
    let bare_arrivals = bare_subscribers(url, n).await;
    let agent_arrivals = agents(url, n).await;
    let (store, payload) = toggling_store(url, "bench-store").await;
    let bare_client = connect(url, "bare-publisher").await.client;
    sleep(Duration::from_millis(500)).await; // subscriptions settle; agents read last values
    let (mut bare, mut fed, mut all_bare, mut all_fed) = (vec![], vec![], vec![], vec![]);
    for round in 0..WARMUP + rounds {
        let (mut b, mut f) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let t0 = bare_arrivals.arm();
        bare_client
            .publish("bench.bare", payload.clone().into())
            .await
            .expect("publish");
        bare_arrivals.collect(t0, &mut b).await;
        sleep(Duration::from_millis(2)).await;
        let t0 = agent_arrivals.arm();
        store.set_external_backlog(if round % 2 == 0 { 90 } else { 10 });
        agent_arrivals.collect(t0, &mut f).await;
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

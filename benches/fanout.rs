//! Fan-out through one real nats-server: one store toggles its level, 1,000 agents (each its
//! own NATS connection, subscriber, feedback handler and rate coordinator) apply it. Reports
//! the time until *all* agents applied a change (p50/p99/max over rounds) beside the bare
//! async-nats publish until all of as many plain subscriber connections received it, and the
//! memory each connection costs (VmRSS of this process before and after connecting; the
//! server's own memory is not included).
//!
//! `cargo bench --bench fanout` (AGENTS=<n>, ROUNDS=<n> to change the defaults 1000 and
//! 200). Needs about 4 open files per agent in this process and the server it starts (which
//! inherits the limit): `ulimit -n 8192` if the bench says so.

#[path = "support/listeners.rs"]
mod listeners;
#[path = "../tests/common/nats.rs"]
#[allow(dead_code, unreachable_pub)]
mod nats;

use std::time::Duration;

use listeners::{agents, bare_subscribers, collect, connect, quantile, toggling_store};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep};

const WARMUP: usize = 10;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A `/proc/self/status` or `/proc/self/limits` figure.
fn proc_field(file: &str, key: &str, column: usize) -> Option<u64> {
    std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|rest| rest.split_whitespace().nth(column))
            .and_then(|v| v.parse().ok())
    })
}

fn rss_kib() -> u64 {
    proc_field("/proc/self/status", "VmRSS:", 0).unwrap_or(0)
}

/// Waits for `n` reports and returns the last one's delay after `t0`.
async fn all_of(rx: &mut mpsc::UnboundedReceiver<Instant>, n: usize, t0: Instant) -> Duration {
    let mut delays = Vec::with_capacity(n);
    collect(rx, n, t0, &mut delays).await;
    delays.into_iter().max().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1_000.0)
}

async fn run(url: &str, n: usize, rounds: usize) {
    let before = rss_kib();
    let mut bare_rx = bare_subscribers(url, n).await;
    let after_bare = rss_kib();
    let mut agent_rx = agents(url, n).await;
    let after_agents = rss_kib();
    let (store, payload) = toggling_store(url, "fanout-store").await;
    let publisher = connect(url, "bare-publisher").await.client;
    sleep(Duration::from_secs(1)).await; // subscriptions settle; agents read last values
    while agent_rx.try_recv().is_ok() {}
    let (mut bare_all, mut fed_all) = (vec![], vec![]);
    for round in 0..WARMUP + rounds {
        let t0 = Instant::now();
        publisher
            .publish("bench.bare", payload.clone().into())
            .await
            .expect("publish");
        let b = all_of(&mut bare_rx, n, t0).await;
        sleep(Duration::from_millis(5)).await;
        let t0 = Instant::now();
        store.set_external_backlog(if round % 2 == 0 { 90 } else { 10 });
        let f = all_of(&mut agent_rx, n, t0).await;
        sleep(Duration::from_millis(5)).await;
        if round >= WARMUP {
            bare_all.push(b);
            fed_all.push(f);
        }
    }
    bare_all.sort_unstable();
    fed_all.sort_unstable();
    println!(
        "| path, until all {n} received/applied | p50 ms | p99 ms | max ms | p99 / bare p99 |"
    );
    println!("|---|---|---|---|---|");
    let bare_p99 = quantile(&bare_all, 0.99).as_secs_f64();
    for (what, v) in [
        ("bare async-nats publish → all subscribers", &bare_all),
        ("store level change → all agents' scale applied", &fed_all),
    ] {
        println!(
            "| {what} | {} | {} | {} | {:.2} |",
            ms(quantile(v, 0.5)),
            ms(quantile(v, 0.99)),
            ms(*v.last().expect("rounds")),
            quantile(v, 0.99).as_secs_f64() / bare_p99
        );
    }
    let per = |kib: u64| kib as f64 / n as f64;
    println!();
    println!("| memory (VmRSS of the bench process) | total MiB | per connection KiB |");
    println!("|---|---|---|");
    println!(
        "| {n} bare async-nats subscriber connections | {:.1} | {:.1} |",
        after_bare.saturating_sub(before) as f64 / 1024.0,
        per(after_bare.saturating_sub(before))
    );
    println!(
        "| {n} agents (connection + subscriber + handler + rate coordinator) | {:.1} | {:.1} |",
        after_agents.saturating_sub(after_bare) as f64 / 1024.0,
        per(after_agents.saturating_sub(after_bare))
    );
}

fn main() {
    let n = env_or("AGENTS", 1_000);
    let rounds = env_or("ROUNDS", 200).max(1);
    let need = (4 * n + 256) as u64;
    let limit = proc_field("/proc/self/limits", "Max open files", 0).unwrap_or(0);
    assert!(
        limit >= need,
        "{n} agents need about {need} open files; the limit is {limit}: run `ulimit -n {}` first",
        need.next_power_of_two()
    );
    let server = nats::NatsServer::start();
    let url = server.url();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "fan-out through one nats-server on loopback: {n} agents, {rounds} rounds after {WARMUP} warm-up, {} CPUs",
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    runtime.block_on(run(&url, n, rounds));
}

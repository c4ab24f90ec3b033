//! Fan-out through real nats-servers: one store toggles its level, N agents (each its own NATS
//! connection, subscriber, feedback handler and rate coordinator) apply it. Reports the time
//! until *all* agents applied a change (p50/p99/max over rounds) beside the bare async-nats
//! publish until all of as many plain subscriber connections received it, alternating round
//! by round, the memory each connection costs, in the client and in the servers, and the CPU
//! time each side's process spends per round.
//!
//! `cargo bench --bench fanout`: 1,000 agents on one server it starts (AGENTS=<n>,
//! ROUNDS=<n> change the defaults 1000 and 200). With CLUSTER=1 it starts the 3-node cluster
//! of `nats/cluster/` instead and deals every connection round-robin over the nodes; the store
//! and the bare publisher use the first node:
//! `CLUSTER=1 AGENTS=10000 ROUNDS=100 cargo bench --bench fanout`.
//!
//! What each side times, from the instant before its trigger (the bare publish; the store's
//! `set_external_backlog`) to the last of its receivers: a bare subscriber notes the instant
//! its own task takes the message off its subscription; an agent notes the instant its
//! handler's policy answers the new scale, inside the handler's task, which stores it into the
//! rate coordinator in the same synchronous call. Noting is an atomic store and a count on
//! both sides, with one wake-up per round for the last receiver: no task, channel or wake-up
//! per receiver that the bare subscriber or the real agent would not have.
//!
//! Each side (bare subscribers; agents with their store) runs in a child process of its own,
//! timing its rounds itself, so that each process holds N connections, not 2N: 20,000 sockets
//! in one process would not fit under a 20,000 open-file hard limit. The bench raises its soft
//! limit to the hard one; the sides and the servers inherit it.

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/listeners.rs"]
mod listeners;
#[path = "../tests/common/nats.rs"]
#[allow(dead_code, unreachable_pub)]
mod nats;
#[path = "support/process.rs"]
mod process;
#[path = "support/sides.rs"]
mod sides;

use std::time::Duration;

use listeners::quantile;
use nats::NatsServer;
use process::{OpenFiles, cpu_time, raise_open_files, rss_of};
use sides::{Kind, Side};

const WARMUP: usize = 10;

/// Files a process needs beside its connections (runtime, pipes, logs, the JetStream store).
const SPARE_FILES: usize = 256;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1_000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn per(kib: u64, n: usize) -> String {
    format!("{:.1}", kib as f64 / n as f64)
}

/// VmRSS of every server, summed, KiB.
fn servers_rss(servers: &[NatsServer]) -> u64 {
    servers.iter().map(|s| rss_of(s.pid())).sum()
}

/// What the open-file limit allows: each side process holds `n` connections and each of the
/// `nodes` servers a share of both sides' `2n`.
fn check_open_files(files: OpenFiles, n: usize, nodes: usize) {
    let side = n + SPARE_FILES;
    let server = (2 * n).div_ceil(nodes) + SPARE_FILES;
    let most = (files.soft as usize).saturating_sub(SPARE_FILES);
    let allows = most.min(most * nodes / 2);
    println!(
        "open files: soft limit {} (raised from {}), hard limit {}; a side process needs {side}, \
         each server {server}; this limit allows up to {allows} agents on {nodes} node(s)",
        files.soft, files.was, files.hard
    );
    assert!(
        files.soft as usize >= side.max(server),
        "{n} agents need {} open files per process; the hard limit is {}: lower AGENTS, use \
         CLUSTER=1 to spread the servers' share, or raise the hard limit (as root: \
         `ulimit -Hn {}`)",
        side.max(server),
        files.hard,
        side.max(server).next_power_of_two()
    );
}

fn main() {
    if sides::serve_if_side() {
        return;
    }
    let n = env_or("AGENTS", 1_000).max(1);
    let rounds = env_or("ROUNDS", 200).max(1);
    let on_cluster = std::env::var("CLUSTER").is_ok_and(|v| v == "1");
    let files = raise_open_files();
    check_open_files(files, n, if on_cluster { 3 } else { 1 });
    let servers = if on_cluster {
        cluster::start()
    } else {
        vec![NatsServer::start()]
    };
    let urls = servers
        .iter()
        .map(NatsServer::url)
        .collect::<Vec<_>>()
        .join(",");
    if on_cluster {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let list: Vec<String> = urls.split(',').map(str::to_owned).collect();
        runtime.block_on(cluster::ready(&list, Duration::from_secs(30)));
    }
    println!(
        "fan-out through {}: {n} agents, {rounds} rounds after {WARMUP} warm-up, {} CPUs",
        if on_cluster {
            "the 3-node cluster of nats/cluster/ on loopback"
        } else {
            "one nats-server on loopback"
        },
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    let servers_idle = servers_rss(&servers);
    let mut bare = Side::spawn(Kind::Bare, &urls, n);
    let servers_bare = servers_rss(&servers);
    let mut agents = Side::spawn(Kind::Agents, &urls, n);
    let servers_agents = servers_rss(&servers);
    println!(
        "connecting: {n} bare subscribers in {:.1} s, {n} agents in {:.1} s",
        bare.ready.connecting.as_secs_f64(),
        agents.ready.connecting.as_secs_f64()
    );
    // CPU time during the rounds says where the agents' extra time goes: each side process
    // is idle while the other side's round runs, the servers serve both.
    let cpu = |sides: [&Side; 2]| {
        let servers: Duration = servers.iter().map(|s| cpu_time(s.pid())).sum();
        (cpu_time(sides[0].pid()), cpu_time(sides[1].pid()), servers)
    };
    let cpu_before = cpu([&bare, &agents]);
    let (mut bare_all, mut fed_all) = (vec![], vec![]);
    for round in 0..WARMUP + rounds {
        let b = bare.round();
        let f = agents.round();
        if round >= WARMUP {
            bare_all.push(b);
            fed_all.push(f);
        }
    }
    let cpu_after = cpu([&bare, &agents]);
    bare_all.sort_unstable();
    fed_all.sort_unstable();
    println!();
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
    let per_round = |after: Duration, before: Duration| {
        ms(after.saturating_sub(before) / (WARMUP + rounds) as u32)
    };
    println!();
    println!(
        "CPU time per round (user + system, 10 ms ticks): bare side {} ms, agents side {} ms; \
         servers {} ms per pair of rounds",
        per_round(cpu_after.0, cpu_before.0),
        per_round(cpu_after.1, cpu_before.1),
        per_round(cpu_after.2, cpu_before.2)
    );
    let (b, a) = (bare.ready, agents.ready);
    let bare_client = b.rss_after.saturating_sub(b.rss_before);
    let agent_client = a.rss_after.saturating_sub(a.rss_before);
    let bare_server = servers_bare.saturating_sub(servers_idle);
    let agent_server = servers_agents.saturating_sub(servers_bare);
    println!();
    println!(
        "| memory (VmRSS growth while connecting) | client MiB | client KiB / connection | \
         servers MiB | servers KiB / connection |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {n} bare async-nats subscriber connections | {} | {} | {} | {} |",
        mib(bare_client),
        per(bare_client, n),
        mib(bare_server),
        per(bare_server, n)
    );
    println!(
        "| {n} agents (connection + subscriber + handler + rate coordinator) | {} | {} | {} | {} |",
        mib(agent_client),
        per(agent_client, n),
        mib(agent_server),
        per(agent_server, n)
    );
    println!(
        "servers' VmRSS, summed: {} MiB idle, {} MiB at the end",
        mib(servers_idle),
        mib(servers_rss(&servers))
    );
}

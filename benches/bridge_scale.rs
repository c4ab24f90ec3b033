//! The real `backflow-bridge` fed by a fleet of stores: C coordinators × 3 instances, each
//! sending a heartbeat every 250 ms (the stores' 4 Hz), with the bridge's CPU time (from
//! `/proc/<pid>/stat`) and resident memory measured while it keeps up, then its exported view
//! checked against the last events: every coordinator's deepest depth, sum, instance count
//! and level.
//!
//! `cargo bench --bench bridge_scale` (1,000 coordinators for 20 s);
//! `BRIDGE_SCALE_COORDINATORS=300 BRIDGE_SCALE_SECONDS=12 cargo bench --bench bridge_scale`.
//! `BRIDGE_SCALE_BIN=<path>` runs another build of the bridge (e.g. an older one) instead.

#[path = "support/cpu.rs"]
#[allow(dead_code)]
mod cpu;
#[path = "../tests/common/nats.rs"]
#[allow(dead_code, unreachable_pub)]
mod nats;
#[path = "../tests/common/system.rs"]
#[allow(dead_code, unreachable_pub)]
mod system;

use std::collections::BTreeMap;
use std::time::Duration;

use backflow::bus::FeedbackPublisher;
use backflow::bus::nats::{NatsOptions, NatsPublisher};
use backflow::clock::WallClock;
use backflow::event::{BackpressureLevel, CoordinatorId, FeedbackEvent, InstanceId};
use serde_json::Value;
use system::{Proc, http_get};
use tokio::time::{Instant, MissedTickBehavior, interval};

const BRIDGE: &str = env!("CARGO_BIN_EXE_backflow-bridge");
const PER_COORDINATOR: usize = 3;
const HEARTBEAT: Duration = Duration::from_millis(250);
/// Each heartbeat period is sent in this many slices, so that the load is even, as many
/// independent stores make it.
const SLICES: usize = 25;

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (user + system CPU ticks, resident KiB) of a process.
fn usage(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks, rss))
}

/// The simulated stores: each instance's last event.
struct Stores {
    events: Vec<FeedbackEvent>,
    wall: WallClock,
}

impl Stores {
    fn new(coordinators: usize) -> Self {
        let wall = WallClock::new();
        let events = (0..coordinators * PER_COORDINATOR)
            .map(|i| {
                let c = CoordinatorId::new(format!("coord-{}", i / PER_COORDINATOR));
                let p = InstanceId::new(format!("store-{}", i % PER_COORDINATOR));
                let mut e = FeedbackEvent::new(
                    c.expect("valid id"),
                    p.expect("valid id"),
                    1,
                    0,
                    0,
                    BackpressureLevel::Ok,
                    0,
                    10_000,
                );
                e.heartbeat_ms = HEARTBEAT.as_millis() as u32;
                e
            })
            .collect();
        Self { events, wall }
    }

    /// Instance `i`'s next heartbeat; its state changes with every round unless `frozen`.
    fn next(&mut self, i: usize, round: u64, frozen: bool) -> &FeedbackEvent {
        let e = &mut self.events[i];
        e.seq += 1;
        e.timestamp_ms = self.wall.now_ms();
        if !frozen {
            e.queue_depth = (round * 7_919 + i as u64 * 104_729) % 10_000;
            e.level = match e.queue_depth {
                0..6_000 => BackpressureLevel::Ok,
                6_000..8_500 => BackpressureLevel::Soft,
                _ => BackpressureLevel::Hard,
            };
        }
        e
    }

    /// What every coordinator's exported state must be: (deepest, sum, instances, level).
    fn expected(&self) -> BTreeMap<String, (u64, u64, u64, BackpressureLevel)> {
        let mut out: BTreeMap<String, (u64, u64, u64, BackpressureLevel)> = BTreeMap::new();
        for e in &self.events {
            let v =
                out.entry(e.coordinator_id.to_string())
                    .or_insert((0, 0, 0, BackpressureLevel::Ok));
            *v = (
                v.0.max(e.queue_depth),
                v.1 + e.queue_depth,
                v.2 + 1,
                v.3.max(e.level),
            );
        }
        out
    }
}

/// Sends every instance's heartbeat once per period, for `rounds` periods.
async fn heartbeats(
    stores: &mut Stores,
    publisher: &NatsPublisher,
    first_round: u64,
    rounds: u64,
    frozen: bool,
) {
    let n = stores.events.len();
    let mut tick = interval(HEARTBEAT / SLICES as u32);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    for round in first_round..first_round + rounds {
        for slice in 0..SLICES {
            tick.tick().await;
            for i in (slice * n / SLICES)..((slice + 1) * n / SLICES) {
                let e = stores.next(i, round, frozen);
                if let Err(error) = publisher.publish(e).await {
                    eprintln!("publish failed: {error}");
                }
            }
        }
    }
}

/// Compares the bridge's JSON API with the last events; returns the mismatches.
fn check(api: &Value, stores: &Stores, fresh_since_ms: u64) -> Vec<String> {
    let mut wrong = Vec::new();
    let exported = &api["coordinators"];
    for (id, (deepest, sum, instances, level)) in stores.expected() {
        let v = &exported[&id];
        let got = (
            v["queue_depth"].as_u64(),
            v["fleet_queue_depth"].as_u64(),
            v["instances"].as_u64(),
            v["level"].as_str(),
            v["silent_instances"].as_u64(),
        );
        let want = (
            Some(deepest),
            Some(sum),
            Some(instances),
            Some(level.as_str()),
            Some(0),
        );
        let fresh = v["last_event_ms"]
            .as_u64()
            .is_some_and(|t| t >= fresh_since_ms);
        if got != want || !fresh {
            wrong.push(format!(
                "{id}: exported {got:?}, last events {want:?}, fresh {fresh}"
            ));
        }
    }
    let known = exported.as_object().map_or(0, |o| o.len());
    if known != stores.expected().len() {
        wrong.push(format!("{known} coordinators exported"));
    }
    wrong
}

fn main() {
    let coordinators = env_or("BRIDGE_SCALE_COORDINATORS", 1_000) as usize;
    let seconds = env_or("BRIDGE_SCALE_SECONDS", 20);
    let bin = std::env::var("BRIDGE_SCALE_BIN").unwrap_or_else(|_| BRIDGE.to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let server = nats::NatsServer::start();
        let dir = tempfile::tempdir().expect("temp dir");
        let var = |k: &str, v: String| (k.to_owned(), v);
        let env = [
            var("BACKFLOW_NATS__SERVERS", format!("['{}']", server.url())),
            var("BACKFLOW_METRICS__LISTEN", "127.0.0.1:0".into()),
        ];
        let bridge = Proc::start_with_env(&bin, "bridge", &env, dir.path());
        let addr = bridge.metrics_addr().await;
        let conn = NatsOptions::for_url(server.url())
            .connect("bench-stores")
            .await
            .expect("connect");
        let publisher = NatsPublisher::new(&conn);
        let mut stores = Stores::new(coordinators);
        let instances = stores.events.len();
        let rounds_per_s = (Duration::from_secs(1).as_millis() / HEARTBEAT.as_millis()) as u64;

        // Warm up: every instance known, allocations made.
        heartbeats(&mut stores, &publisher, 0, 3 * rounds_per_s, false).await;
        let (ticks0, _) = usage(bridge.pid()).expect("bridge stats");
        let started = Instant::now();
        let measured_rounds = seconds * rounds_per_s;
        heartbeats(&mut stores, &publisher, 1_000, measured_rounds, false).await;
        let elapsed = started.elapsed();
        let (ticks1, rss_kib) = usage(bridge.pid()).expect("bridge stats");
        // Then the last states stay put while heartbeats go on, so the check below compares
        // the export with known final events while every instance is still live.
        let fresh_since_ms = stores.wall.now_ms();
        heartbeats(&mut stores, &publisher, 10_000, 2 * rounds_per_s, true).await;
        let api = http_get(&addr, "/api/v1/coordinators").await.unwrap_or_default();
        let api: Value = serde_json::from_str(&api).unwrap_or(Value::Null);
        let wrong = check(&api, &stores, fresh_since_ms);

        let cpu_s = (ticks1 - ticks0) as f64 / cpu::clock_ticks();
        let events = measured_rounds * instances as u64;
        println!(
            "bridge_scale: {coordinators} coordinators × {PER_COORDINATOR} = {instances} instances at 4 Hz, {:.1} s",
            elapsed.as_secs_f64()
        );
        println!(
            "  events {events}, bridge CPU {cpu_s:.2} s = {:.1} % of one core, {:.1} µs per event, RSS {:.1} MiB",
            100.0 * cpu_s / elapsed.as_secs_f64(),
            1e6 * cpu_s / events as f64,
            rss_kib as f64 / 1024.0
        );
        println!(
            "  exported view exact: {} ({} of {coordinators} coordinators wrong)",
            if wrong.is_empty() { "yes" } else { "no" },
            wrong.len()
        );
        for w in wrong.iter().take(5) {
            println!("    {w}");
        }
        bridge.stop(Duration::from_secs(10)).await;
        drop(server);
    });
}

//! Soak: the whole system at steady overload for a while, sampling every process's resident
//! memory and open file descriptors, then reporting their growth.
//!
//! `SOAK_MINUTES=10 cargo bench --bench soak` (default 10 minutes; not run in CI). The
//! nats-server is `$NATS_SERVER` when set, else Debian's (the shared test harness), so
//! `NATS_SERVER=.venv-nats/bin/nats-server SOAK_MINUTES=10 cargo bench --bench soak` soaks a
//! current server. Every minute it also reads the server's own counters from its monitoring
//! port (`/varz`, `/subsz`, `/connz`, `/jsz`), to tell the server's growth from what we make
//! it hold (subscriptions, consumers, messages).

#[path = "../tests/common/nats.rs"]
#[allow(dead_code, unreachable_pub)]
mod nats;
#[path = "../tests/common/system.rs"]
#[allow(dead_code, unreachable_pub)]
mod system;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use system::{Proc, http_get};
use tokio::time::{Instant, sleep};

const STORE: &str = env!("CARGO_BIN_EXE_backflow-store");
const AGENT: &str = env!("CARGO_BIN_EXE_backflow-agent");
const BRIDGE: &str = env!("CARGO_BIN_EXE_backflow-bridge");

/// (resident set in KiB, open file descriptors) of a process.
fn usage(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((rss, fds))
}

fn mean(v: &[u64]) -> f64 {
    v.iter().sum::<u64>() as f64 / v.len().max(1) as f64
}

/// The server's own view, from its monitoring endpoints: `(column, value)` pairs.
async fn server_counters(monitor: &str) -> Vec<(&'static str, f64)> {
    let get = |path: &'static str| async move {
        http_get(monitor, path)
            .await
            .and_then(|body| serde_json::from_str::<Value>(&body).ok())
            .unwrap_or(Value::Null)
    };
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let varz = get("/varz").await;
    let subsz = get("/subsz").await;
    let jsz = get("/jsz").await;
    let connz = get("/connz?subs=1").await;
    let conn_subs: f64 = connz["connections"].as_array().map_or(f64::NAN, |c| {
        c.iter().map(|c| num(&c["subscriptions"])).sum()
    });
    vec![
        ("mem MiB (/varz)", num(&varz["mem"]) / 1_048_576.0),
        ("subscriptions", num(&subsz["num_subscriptions"])),
        ("subs of clients (/connz)", conn_subs),
        ("sublist cache", num(&subsz["num_cache"])),
        ("sublist inserts", num(&subsz["num_inserts"])),
        ("sublist removes", num(&subsz["num_removes"])),
        ("connections", num(&varz["connections"])),
        ("streams", num(&jsz["streams"])),
        ("consumers", num(&jsz["consumers"])),
        ("stream messages", num(&jsz["messages"])),
        ("stream MiB", num(&jsz["bytes"]) / 1_048_576.0),
        ("JS API calls", num(&jsz["api"]["total"])),
    ]
}

fn main() {
    let minutes: f64 = std::env::var("SOAK_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0);
    let server = nats::NatsServer::start();
    let (major, minor, patch) = nats::version();
    let server_name = format!("nats-server {major}.{minor}.{patch}");
    let monitor = format!("127.0.0.1:{}", server.monitor_port);
    let dir = tempfile::TempDir::new().expect("temp dir");
    let common = format!(
        "nats: {{servers: ['{}']}}\nmetrics: {{listen: '127.0.0.1:0'}}\n",
        server.url()
    );
    let write = |name: &str, yaml: String| {
        let p = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&p, yaml + &common).expect("config");
        p
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = Proc::start(
            STORE,
            "store",
            &write(
                "store",
                format!(
                    "coordinator: {{capacity: 10000}}\nstore: {{sink: {{kind: sqlite, path: {}}}, throttle: {{rows_per_sec: 2000}}}}\n",
                    dir.path().join("soak.db").display()
                ),
            ),
            dir.path(),
        );
        sleep(Duration::from_secs(2)).await;
        let agent = |name: &str| {
            Proc::start(
                AGENT,
                name,
                &write(
                    name,
                    format!("rate_coordinator: {{providers: {{p: {{capacity: 100, refill_rate: 1500}}}}}}\nfeedback: {{provider_name: p}}\nagent: {{name: {name}}}\n"),
                ),
                dir.path(),
            )
        };
        let procs = vec![
            ("store", store),
            ("agent-1", agent("agent-1")),
            ("agent-2", agent("agent-2")),
            ("bridge", Proc::start(BRIDGE, "bridge", &write("bridge", String::new()), dir.path())),
        ];
        let mut pids: Vec<(&str, u32)> = procs.iter().map(|(n, p)| (*n, p.pid())).collect();
        pids.push((&server_name, server.pid()));
        let mut samples: BTreeMap<&str, Vec<(f64, u64, u64)>> = BTreeMap::new();
        let mut counters = Vec::new();
        let start = Instant::now();
        let end = start + Duration::from_secs_f64(minutes * 60.0);
        let mut next_counters = start;
        while Instant::now() < end {
            let t = start.elapsed().as_secs_f64();
            if Instant::now() >= next_counters {
                next_counters += Duration::from_secs(60);
                counters.push((t, server_counters(&monitor).await));
            }
            for (name, pid) in &pids {
                if let Some((rss, fds)) = usage(*pid) {
                    samples.entry(name).or_default().push((t, rss, fds));
                }
            }
            sleep(Duration::from_secs(5)).await;
        }
        println!("soak: {minutes} min at 1.5x overload (2 agents x 1500 rows/s into a 2000 rows/s store), sampled every 5 s");
        println!("| process | RSS first minute (MiB) | RSS minute 3 (MiB) | RSS last minute (MiB) | growth | growth since minute 3 | fds first | fds last |");
        println!("|---|---|---|---|---|---|---|---|");
        let window = 60.0f64.min(minutes * 60.0 / 3.0);
        let last_from = minutes * 60.0 - window;
        // Minute 3: after the write stream's 2-minute de-duplication window has filled.
        let warm = (120.0f64.min(last_from), 180.0f64.min(minutes * 60.0));
        let avg = |s: &[(f64, u64, u64)], from: f64, to: f64, field: fn(&(f64, u64, u64)) -> u64| {
            mean(&s.iter().filter(|x| x.0 >= from && x.0 < to).map(field).collect::<Vec<_>>())
        };
        let end_s = minutes * 60.0 + 1.0;
        for (name, s) in &samples {
            let rss_a = avg(s, 0.0, window, |x| x.1);
            let rss_w = avg(s, warm.0, warm.1, |x| x.1);
            let rss_b = avg(s, last_from, end_s, |x| x.1);
            let fd_a = avg(s, 0.0, window, |x| x.2);
            let fd_b = avg(s, last_from, end_s, |x| x.2);
            println!(
                "| {name} | {:.1} | {:.1} | {:.1} | {:+.1}% | {:+.1}% | {fd_a:.0} | {fd_b:.0} |",
                rss_a / 1024.0,
                rss_w / 1024.0,
                rss_b / 1024.0,
                (rss_b / rss_a - 1.0) * 100.0,
                (rss_b / rss_w - 1.0) * 100.0
            );
        }
        counters.push((start.elapsed().as_secs_f64(), server_counters(&monitor).await));
        println!("\n{server_name}'s own counters (monitoring port), once a minute:");
        if let Some((_, first)) = counters.first() {
            let header: Vec<&str> = first.iter().map(|(k, _)| *k).collect();
            println!("| minute | {} |", header.join(" | "));
            println!("|---|{}", "---|".repeat(header.len()));
        }
        for (t, row) in &counters {
            let cells: Vec<String> = row.iter().map(|(_, v)| format!("{v:.1}")).collect();
            println!("| {:.0} | {} |", t / 60.0, cells.join(" | "));
        }
        println!();
        for (name, p) in procs {
            if name == "bridge" {
                p.stop(Duration::from_secs(30)).await;
            } else {
                let report = p.terminate(Duration::from_secs(120)).await;
                println!("{name}: {report}");
            }
        }
    });
}

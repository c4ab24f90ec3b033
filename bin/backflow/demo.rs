//! `backflow demo`: the embedded one-process demo with live progress.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Result;
use backflow::demo::{self, DemoConfig};
use backflow::feedback::PolicyKind;

#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    /// Number of agents.
    #[arg(long, default_value_t = 4)]
    agents: usize,
    /// Each agent's base rate, rows per second.
    #[arg(long, default_value_t = 5_000.0)]
    agent_rate: f64,
    /// The sink's write capacity, rows per second.
    #[arg(long, default_value_t = 10_000.0)]
    sink_rate: f64,
    /// The store's queue capacity, rows.
    #[arg(long, default_value_t = 20_000)]
    capacity: u64,
    /// How long to run, seconds.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Run the same scenario through this NATS server with the real store and agent code
    /// paths (JetStream write stream, SQLite in a temp file) instead of in-process.
    #[arg(long)]
    nats_url: Option<String>,
    /// The agents' feedback policy: proportional (the default: the scale follows the store's
    /// queue depth, exp(-gain x (utilization - offset)), cut at once on SOFT/HARD, risen
    /// gradually after a dwell), hysteresis (level ceilings: tighten at once, relax after a
    /// dwell, ramp back gradually), step (the predecessor's fixed map: OK 1.0, SOFT 0.5, HARD
    /// 0.0), fair_share (each agent sends at most its weight times the fair rate its store
    /// publishes for its class; proportional while no store publishes one) or none (agents run
    /// at their base rate).
    #[arg(long, default_value = "proportional")]
    policy: PolicyKind,
}

pub(crate) async fn run(args: DemoArgs) -> Result<()> {
    anyhow::ensure!(args.agents > 0, "--agents must be at least 1");
    anyhow::ensure!(
        args.duration > 0.0 && args.duration.is_finite(),
        "--duration must be positive"
    );
    anyhow::ensure!(args.agent_rate > 0.0, "--agent-rate must be positive");
    anyhow::ensure!(args.sink_rate > 0.0, "--sink-rate must be positive");
    anyhow::ensure!(args.capacity >= 10, "--capacity must be at least 10");
    let config = DemoConfig {
        agents: args.agents,
        agent_rate: args.agent_rate,
        sink_rate: args.sink_rate,
        capacity: args.capacity,
        duration: Duration::from_secs_f64(args.duration),
        policy: args.policy,
        ..DemoConfig::default()
    };
    println!(
        "backflow demo: {} agents x {:.0} rows/s into a sink of {:.0} rows/s ({:.1}x overload), queue {} rows",
        config.agents,
        config.agent_rate,
        config.sink_rate,
        config.agents as f64 * config.agent_rate / config.sink_rate,
        config.capacity
    );
    if let Some(url) = args.nats_url {
        return run_nats(&config, &url).await;
    }
    let live = std::io::stdout().is_terminal();
    let report = demo::run(config, |p| {
        let mut out = std::io::stdout().lock();
        // On a terminal one line refreshes in place; in a log every sample is a line.
        let _ = if live {
            write!(out, "\r{p}\x1b[K")
        } else {
            writeln!(out, "{p}")
        };
        let _ = out.flush();
    })
    .await?;
    if live {
        println!();
    }
    println!("\n{report}");
    Ok(())
}

async fn run_nats(config: &DemoConfig, url: &str) -> Result<()> {
    let db = std::env::temp_dir().join(format!("backflow-demo-{}.db", std::process::id()));
    println!("through NATS at {url}; rows go to {}", db.display());
    let start = tokio::time::Instant::now();
    // The store is up (and the agents start) with its first event: utilization counts from
    // there to the end of the stop, whose drain keeps the sink busy.
    let mut up: Option<tokio::time::Instant> = None;
    let report = demo::run_nats(config, url, &db, |e| {
        up.get_or_insert_with(tokio::time::Instant::now);
        println!(
            "{:>6.1}s  {}/{}  {:<4}  depth={}/{}  {}{}",
            start.elapsed().as_secs_f64(),
            e.coordinator_id,
            e.instance_id,
            e.level.as_str().to_uppercase(),
            e.queue_depth,
            e.capacity,
            e.reason.as_deref().unwrap_or(""),
            e.fair_rates
                .map(|r| format!("  fair standard={:.0}/s", r.standard))
                .unwrap_or_default()
        );
    })
    .await?;
    let s = &report.store;
    let elapsed = up.unwrap_or(start).elapsed().as_secs_f64();
    println!(
        "\nsink utilization:  {:.1}% (rows written / ({:.0} rows/s x {elapsed:.1} s from the store's first event, the stop's drain included))\nqueue wait p50:    {:.0} ms\nqueue wait p99:    {:.0} ms",
        s.stats.written as f64 / (config.sink_rate * elapsed) * 100.0,
        config.sink_rate,
        s.queue_wait_p50.as_secs_f64() * 1_000.0,
        s.queue_wait_p99.as_secs_f64() * 1_000.0,
    );
    println!(
        "\nstore: received {}, written {}, acked {}, dead-lettered {}, dropped {}, level changes {}, drained {}",
        s.received,
        s.stats.written,
        s.acked,
        s.stats.dead_lettered(),
        s.stats.dropped(),
        s.stats.level_changes,
        s.drained
    );
    for a in &report.agents {
        println!(
            "agent {}: produced {}, acked {}, retries {}, lowest scale {:.2}, adjustments {}",
            a.name, a.produced, a.acked, a.retries, a.min_scale, a.adjustments
        );
    }
    Ok(())
}

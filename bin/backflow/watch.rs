//! `backflow watch`: live decoded feedback events, one line each or a table per instance.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use backflow::bus::nats::NatsSubscriber;
use backflow::bus::{FeedbackSubscription, Interest};
use backflow::clock::WallClock;
use backflow::event::{CoordinatorId, FeedbackEvent};
use backflow::settings::Settings;

#[derive(clap::Args)]
pub(crate) struct WatchArgs {
    /// Settings file (for the `nats:` section: servers, credentials, prefix).
    #[arg(long, short, env = "BACKFLOW_CONFIG")]
    config: Option<PathBuf>,
    /// NATS server URL (overrides the settings' server list).
    #[arg(long)]
    nats_url: Option<String>,
    /// Only these coordinators (repeatable; default all).
    #[arg(long = "coordinator")]
    coordinators: Vec<CoordinatorId>,
    /// Redraw a table of every coordinator instance each second instead of printing lines.
    #[arg(long)]
    table: bool,
}

fn line(e: &FeedbackEvent, now_ms: u64) -> String {
    format!(
        "{}/{} #{} {:<4} depth {}/{} ({:.0}%) {}{} age {}ms",
        e.coordinator_id,
        e.instance_id,
        e.seq,
        e.level.as_str().to_uppercase(),
        e.queue_depth,
        e.capacity,
        e.utilization() * 100.0,
        e.reason.as_deref().unwrap_or("-"),
        if e.leaving { " LEAVING" } else { "" },
        now_ms.saturating_sub(e.timestamp_ms),
    )
}

pub(crate) async fn run(args: WatchArgs) -> Result<()> {
    let mut settings = Settings::load(args.config.as_deref()).context("loading settings")?;
    if let Some(url) = args.nats_url {
        settings.nats.servers = vec![url];
    }
    let conn = settings.nats.connect("backflow-watch").await?;
    let (mut events, stats) = NatsSubscriber::start(&conn, Interest::of(args.coordinators)).await?;
    let wall = WallClock::new();
    if !args.table {
        while let Some(d) = events.next().await {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) ends the watch quietly.
            if writeln!(out, "{}", line(&d.event, wall.now_ms()))
                .and_then(|()| out.flush())
                .is_err()
            {
                return Ok(());
            }
        }
        return Ok(());
    }
    let mut latest: BTreeMap<(String, String), FeedbackEvent> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            d = events.next() => match d {
                Some(d) => {
                    let e = d.event;
                    let key = (e.coordinator_id.to_string(), e.instance_id.to_string());
                    if latest.get(&key).is_none_or(|old| e.order_key() > old.order_key()) {
                        latest.insert(key, e);
                    }
                }
                None => return Ok(()),
            },
            _ = tick.tick() => {
                let now = wall.now_ms();
                let mut out = std::io::stdout().lock();
                write!(out, "\x1b[2J\x1b[H")?;
                writeln!(out, "{:<24} {:<28} {:>8} {:<5} {:>16} {:>9}", "coordinator", "instance", "seq", "level", "depth/capacity", "age")?;
                for e in latest.values() {
                    writeln!(out, "{:<24} {:<28} {:>8} {:<5} {:>16} {:>7}ms",
                        e.coordinator_id.as_str(), e.instance_id.as_str(), e.seq,
                        e.level.as_str().to_uppercase(), format!("{}/{}", e.queue_depth, e.capacity),
                        now.saturating_sub(e.timestamp_ms))?;
                }
                let bad: u64 = [
                    &stats.decode_errors, &stats.invalid_subject, &stats.oversize,
                    &stats.unsigned, &stats.untrusted_key, &stats.bad_signature,
                ]
                .iter()
                .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
                .sum();
                writeln!(out, "\n{} instances, {bad} rejected messages", latest.len())?;
                out.flush()?;
            }
        }
    }
}

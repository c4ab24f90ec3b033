//! `backflow publish`: send one hand-made feedback event (drills, operators).

use std::path::PathBuf;

use anyhow::{Context, Result};
use backflow::bus::FeedbackPublisher;
use backflow::bus::http::{HttpEmitterConfig, HttpPublisher};
use backflow::bus::nats::NatsPublisher;
use backflow::clock::WallClock;
use backflow::event::{BackpressureLevel, CoordinatorId, FeedbackEvent, InstanceId};
use backflow::settings::Settings;

#[derive(clap::Args)]
pub(crate) struct PublishArgs {
    /// Settings file (for the `nats:` section: servers, credentials, prefix).
    #[arg(long, short, env = "BACKFLOW_CONFIG")]
    config: Option<PathBuf>,
    /// NATS server URL (overrides the settings' server list).
    #[arg(long)]
    nats_url: Option<String>,
    /// POST the event to this HTTP receiver (e.g. http://agent:8080/feedback) instead of NATS.
    #[arg(long)]
    http_url: Option<String>,
    /// Bearer token for --http-url.
    #[arg(long, env = "BACKFLOW_HTTP_TOKEN")]
    http_token: Option<String>,
    /// Coordinator the event speaks for.
    #[arg(long, default_value = "default")]
    coordinator: CoordinatorId,
    /// Instance name (default: cli-<random>; each run is a new incarnation).
    #[arg(long)]
    instance: Option<InstanceId>,
    /// Level: ok, soft or hard.
    #[arg(long)]
    level: BackpressureLevel,
    /// Queue depth to report.
    #[arg(long, default_value_t = 0)]
    depth: u64,
    /// Queue capacity to report.
    #[arg(long, default_value_t = 10_000)]
    capacity: u64,
    /// Reason label.
    #[arg(long, default_value = "manual")]
    reason: String,
    /// Heartbeat interval to advertise, ms (agents treat the instance as silent after a few
    /// missed ones; 0 uses their default).
    #[arg(long, default_value_t = 0)]
    heartbeat_ms: u32,
    /// Mark the event as the instance's last (agents forget it at once).
    #[arg(long)]
    leaving: bool,
}

pub(crate) async fn run(args: PublishArgs) -> Result<()> {
    let wall = WallClock::new();
    let instance = args.instance.unwrap_or_else(|| {
        InstanceId::new(format!("cli-{:06x}", fastrand::u32(..0xff_ffff)))
            .unwrap_or_else(|_| InstanceId::generate())
    });
    let mut event = FeedbackEvent::new(
        args.coordinator,
        instance,
        wall.now_us(),
        1,
        wall.now_ms(),
        args.level,
        args.depth,
        args.capacity,
    )
    .with_reason(args.reason);
    event.heartbeat_ms = args.heartbeat_ms;
    event.leaving = args.leaving;
    if let Some(url) = args.http_url {
        let publisher = HttpPublisher::new(&HttpEmitterConfig {
            urls: vec![url],
            token: args.http_token,
            ..HttpEmitterConfig::default()
        })?;
        publisher.publish(&event).await?;
    } else {
        let mut settings = Settings::load(args.config.as_deref()).context("loading settings")?;
        if let Some(url) = args.nats_url {
            settings.nats.servers = vec![url];
        }
        let conn = settings.nats.connect("backflow-publish").await?;
        NatsPublisher::new(&conn).publish(&event).await?;
        conn.client.flush().await.context("flushing to NATS")?;
    }
    println!("{}", backflow::event::encode_json(&event));
    Ok(())
}

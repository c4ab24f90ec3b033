//! `backflow-bridge`: the metrics bridge, serving every coordinator's state to Prometheus and
//! KEDA from the feedback bus.

use std::path::PathBuf;

use anyhow::{Context, Result};
use backflow::settings::Settings;
use clap::Parser;

/// Subscribes to every coordinator's feedback on NATS (reading the last values first), keeps
/// the fleet view, and serves `/metrics` (coordinator_queue_depth,
/// coordinator_backpressure_*, coordinator_backlog, ...), `/healthz`, `/readyz` and
/// `/api/v1/coordinators` on `metrics.listen`; republishes each coordinator's state on
/// `<prefix>.metrics.<coordinator_id>`.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Settings file (YAML; see README "Configuration"). BACKFLOW_* variables override it
    /// (e.g. BACKFLOW_NATS__SERVERS, BACKFLOW_METRICS__LISTEN, BACKFLOW_BRIDGE__COORDINATORS).
    #[arg(long, short, env = "BACKFLOW_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    backflow::process::init_tracing("info");
    let args = Args::parse();
    let settings = Settings::load(args.config.as_deref()).context("loading settings")?;
    backflow::bridge::run(settings, backflow::process::shutdown_signal())
        .await
        .context("bridge failed")
}

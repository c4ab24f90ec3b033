//! `backflow-agent`: a pipeline agent producing market data at its providers' rates,
//! publishing it to the write stream and slowing down on feedback.

use std::path::PathBuf;

use anyhow::{Context, Result};
use backflow::settings::Settings;
use clap::Parser;

/// Produces bars for each provider in `rate_coordinator.providers` (synthetic by default, or
/// a CSV replay), acquires from the rate coordinator before each row, publishes rows to
/// `<prefix>.writes.<coordinator_id>` with acknowledgements, and applies backpressure
/// feedback to the rates. SIGTERM stops production and waits for outstanding
/// acknowledgements; the final report is printed as one JSON line.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Settings file (YAML; see README "Configuration"). MDP_* and BACKFLOW_* variables
    /// override it.
    #[arg(long, short, env = "BACKFLOW_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    backflow::process::init_tracing("info");
    let args = Args::parse();
    let settings = Settings::load(args.config.as_deref()).context("loading settings")?;
    let report = backflow::agent::run(settings, backflow::process::shutdown_signal())
        .await
        .context("agent failed")?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

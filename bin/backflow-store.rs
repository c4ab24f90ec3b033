//! `backflow-store`: a store node (write coordinator) pulling rows from its JetStream
//! consumer into the database and publishing backpressure feedback.

use std::path::PathBuf;

use anyhow::{Context, Result};
use backflow::settings::Settings;
use clap::Parser;

/// Pulls rows from the write stream's consumer `store-<coordinator_id>`, writes them in
/// batches to SQLite or PostgreSQL, acknowledges each row once it is committed, and
/// publishes the queue's backpressure level on `<prefix>.feedback.<coordinator_id>`.
/// SIGTERM drains the queue before exiting; the final report is printed as one JSON line.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Settings file (YAML; see README "Configuration"). MDS_* and BACKFLOW_* variables
    /// override it.
    #[arg(long, short, env = "BACKFLOW_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    backflow::process::init_tracing("info");
    let args = Args::parse();
    let settings = Settings::load(args.config.as_deref()).context("loading settings")?;
    let report = backflow::store::run(settings, backflow::process::shutdown_signal())
        .await
        .context("store failed")?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

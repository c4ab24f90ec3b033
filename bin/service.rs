//! What the three service binaries share: the `--config` argument, logging, settings, the
//! run until SIGTERM or SIGINT (a second one ends the process at once), and the final report
//! printed as one JSON line.

use std::future::Future;
use std::path::PathBuf;

use anyhow::{Context, Result};
use backflow::process::Shutdown;
use backflow::settings::Settings;
use serde::Serialize;

/// The settings file argument.
#[derive(clap::Args)]
pub(crate) struct ConfigArg {
    /// Settings file (YAML; see docs/configuration.md). Environment variables override it.
    #[arg(long, short, env = "BACKFLOW_CONFIG")]
    pub(crate) config: Option<PathBuf>,
}

/// Sets up logging, loads the settings, runs `service` until a shutdown signal, and prints
/// its report (if any) as one JSON line. Signals are handled from the start, so that a
/// second one always ends the process, even in a stop that would otherwise wait its bounds.
pub(crate) async fn main<R, E, F, Fut>(what: &str, arg: ConfigArg, service: F) -> Result<()>
where
    R: Serialize,
    E: std::error::Error + Send + Sync + 'static,
    F: FnOnce(Settings, Shutdown) -> Fut,
    Fut: Future<Output = Result<R, E>>,
{
    backflow::process::init_tracing("info");
    let settings = Settings::load(arg.config.as_deref()).context("loading settings")?;
    let report = service(settings, Shutdown::on_signals())
        .await
        .with_context(|| format!("{what} failed"))?;
    if serde_json::to_value(&report)? != serde_json::Value::Null {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

/// Ends the process with `result`: status 0, or the error with its causes on one stderr line
/// and status 1. It exits here instead of returning from `main`, because dropping the runtime
/// waits for blocking tasks still running (a sink write, a lookup), and prints no backtrace:
/// with `RUST_BACKTRACE` set, symbolizing one in a debug build took seconds, past the stop's
/// documented bound.
pub(crate) fn exit(result: Result<()>) -> ! {
    let code = match result {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("Error: {error:#}");
            1
        }
    };
    std::process::exit(code)
}

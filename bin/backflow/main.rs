//! The `backflow` command: the embedded demo and operator tools. Each subcommand lives in its
//! own file and calls into the library.

mod demo;
mod explain;
mod nkey;
mod publish;
mod simulate;
mod watch;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Closed-loop backpressure for market-data pipelines")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a store and several agents in this process on the in-process bus, with a sink of
    /// limited capacity, and show the loop at work. Needs no external service.
    Demo(demo::DemoArgs),
    /// Print live feedback events from NATS, one line each or as a table per instance.
    Watch(watch::WatchArgs),
    /// Send one hand-made feedback event over NATS or HTTP (operators, drills).
    Publish(publish::PublishArgs),
    /// Run closed-loop scenarios for several policies side by side (paused time); print the
    /// comparison and write CSV and SVG.
    Simulate(simulate::SimulateArgs),
    /// Generate the NKey a store signs its feedback with: the seed goes in the store's
    /// `nats.signing.seed_file`, the public key in readers' `nats.signing.trusted_keys`.
    Nkey(nkey::NkeyArgs),
    /// Why did (didn't) KEDA scale: read a ScaledObject's triggers from their live sources
    /// and print, per trigger, value, target, ratio and proposal, then the policies' effect
    /// and the resulting replica count.
    Explain(explain::ExplainArgs),
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Demo(args) => demo::run(args).await,
        Command::Watch(args) => watch::run(args).await,
        Command::Publish(args) => publish::run(args).await,
        Command::Simulate(args) => simulate::spawn(args).await,
        Command::Nkey(args) => nkey::run(args),
        Command::Explain(args) => explain::run(args).await,
    }
}

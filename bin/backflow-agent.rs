//! `backflow-agent`: a pipeline agent producing market data at its providers' rates,
//! publishing it to the write stream and slowing down on feedback.

#[path = "service.rs"]
mod service;

use clap::Parser;

/// Produces bars for each provider in `rate_coordinator.providers` (synthetic by default, or
/// a CSV replay), acquires from the rate coordinator before each row, publishes rows to
/// `<prefix>.writes.<coordinator_id>` with acknowledgements, and applies backpressure
/// feedback to the rates. SIGTERM stops production and waits for outstanding
/// acknowledgements, within `agent.drain_timeout_ms` + 6.5 s even with the broker gone; a
/// second SIGTERM exits at once. The final report is printed as one JSON line. MDP_* and
/// BACKFLOW_* variables override the settings file.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: service::ConfigArg,
}

#[tokio::main]
async fn main() {
    service::exit(
        service::main("agent", Args::parse().config, |settings, shutdown| {
            backflow::agent::run(settings.agent_setup(), shutdown)
        })
        .await,
    )
}

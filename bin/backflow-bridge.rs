//! `backflow-bridge`: the metrics bridge, serving every coordinator's state to Prometheus and
//! KEDA from the feedback bus.

#[path = "service.rs"]
mod service;

use clap::Parser;

/// Subscribes to every coordinator's feedback on NATS (reading the last values first), keeps
/// the fleet view, and serves `/metrics` (coordinator_queue_depth,
/// coordinator_backpressure_*, coordinator_backlog, ...), `/healthz`, `/readyz` and
/// `/api/v1/coordinators` on `metrics.listen`; republishes each coordinator's state on
/// `<prefix>.metrics.<coordinator_id>`. SIGTERM stops it within 5 s, even with the broker gone
/// (a second SIGTERM exits at once). BACKFLOW_* variables override the settings file
/// (e.g. BACKFLOW_NATS__SERVERS, BACKFLOW_METRICS__LISTEN, BACKFLOW_BRIDGE__COORDINATORS).
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: service::ConfigArg,
}

#[tokio::main]
async fn main() {
    service::exit(
        service::main("bridge", Args::parse().config, |settings, shutdown| {
            backflow::bridge::run(settings.bridge_setup(), shutdown)
        })
        .await,
    )
}

//! `backflow-store`: a store node (write coordinator) pulling rows from its JetStream
//! consumer into the database and publishing backpressure feedback.

#[path = "service.rs"]
mod service;

use clap::Parser;

/// Pulls rows from the write stream's consumer `store-<coordinator_id>`, writes them in
/// batches to SQLite or PostgreSQL, acknowledges each row once it is committed, and
/// publishes the queue's backpressure level on `<prefix>.feedback.<coordinator_id>`.
/// SIGTERM drains the queue before exiting, within `store.drain_timeout_ms` + 10 s even with
/// the broker gone; a second SIGTERM exits at once. The final report is printed as one JSON
/// line. MDS_* and BACKFLOW_* variables override the settings file.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: service::ConfigArg,
}

#[tokio::main]
async fn main() {
    service::exit(
        service::main("store", Args::parse().config, |settings, shutdown| {
            backflow::store::run(settings.store_setup(), shutdown)
        })
        .await,
    )
}

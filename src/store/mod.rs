//! The store node: pulls rows from its JetStream consumer into a write coordinator, writes
//! them to the database, acknowledges only what was committed, and publishes feedback.

mod config;
mod node;
mod pending;
mod pull;
pub mod sink;
mod stop;
mod stream;

use crate::bus::http::HttpError;
use crate::bus::nats::NatsError;
use crate::coordinator::StatsSnapshot;
use crate::invalid::InvalidSetting;
use crate::metrics::MetricsError;
use crate::process::StopSummary;

pub use config::{StoreConfig, StoreSetup, WriteStreamConfig};
pub use node::{Store, run};
pub use pending::{AckProbe, AckStats, Pending};
pub use sink::SinkSetupError;
pub use stream::{ensure_write_consumer, ensure_write_stream};

/// Why the store could not start.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A setting is out of range.
    #[error(transparent)]
    Invalid(#[from] InvalidSetting),
    /// NATS could not be set up.
    #[error(transparent)]
    Nats(#[from] NatsError),
    /// The database could not be set up.
    #[error(transparent)]
    Sink(#[from] SinkSetupError),
    /// The HTTP emitter could not be built.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// `/metrics` could not be served.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A shutdown signal came before it finished starting (nothing to drain or report).
    #[error("stopped before it had started")]
    StoppedWhileStarting,
}

/// What a store did, reported when it stops.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoreReport {
    /// Messages received from the consumer.
    pub received: u64,
    /// Rows in those messages.
    pub rows: u64,
    /// Messages that were not bars (dead-lettered and terminated).
    pub poison: u64,
    /// Messages acknowledged after all their rows were committed.
    pub acked: u64,
    /// Messages handed back for redelivery.
    pub redelivered: u64,
    /// Whether the queue drained before the timeout.
    pub drained: bool,
    /// Messages whose rows were all committed during the stop but whose acknowledgement the
    /// server did not confirm in time: it redelivers them, and the upsert absorbs the rows.
    pub acks_unsent: u64,
    /// Whether the last (`leaving`) feedback event left the client. When not, agents forget
    /// this instance once its heartbeats stop.
    pub leaving_event_sent: bool,
    /// The write coordinator's counters.
    pub stats: StatsSnapshot,
    /// Median time rows waited in the store's queue (after the pull, before their batch).
    pub queue_wait_p50: std::time::Duration,
    /// 99th percentile of the same.
    pub queue_wait_p99: std::time::Duration,
    /// How the stop went against its bound.
    pub stop: StopSummary,
}

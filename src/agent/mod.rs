//! The pipeline agent: providers' sources, paced by the rate coordinator, published to the
//! write stream with acknowledgements, and slowed down by feedback; and [`LocalAgent`], the
//! same rate limits and feedback inside one process.

mod announce;
mod config;
pub mod demand;
mod listen;
mod local;
mod node;
mod produce;
mod publisher;
mod stop;
mod tell;

use std::path::PathBuf;

use crate::bus::http::HttpError;
use crate::bus::nats::NatsError;
use crate::invalid::InvalidSetting;
use crate::market::CsvError;
use crate::metrics::MetricsError;
use crate::process::StopSummary;
use crate::rate::RateError;

pub use config::{AgentConfig, AgentSetup, SourceConfig};
pub use local::LocalAgent;
pub use node::{Agent, run};
pub use tell::{LocalDemand, tell_demand};

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A setting is out of range, or settings do not fit together.
    #[error(transparent)]
    Invalid(#[from] InvalidSetting),
    /// NATS could not be set up.
    #[error(transparent)]
    Nats(#[from] NatsError),
    /// A provider could not be registered or found.
    #[error(transparent)]
    Rate(#[from] RateError),
    /// A replay file is unusable.
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// The ack log cannot be opened.
    #[error("cannot open the ack log {}", path.display())]
    AckLog {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `/metrics` could not be served.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A shutdown signal came before it finished starting (nothing to drain or report).
    #[error("stopped before it had started")]
    StoppedWhileStarting,
    /// The HTTP feedback receiver could not start.
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// What an agent did, reported when it stops.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AgentReport {
    /// The agent's name.
    pub name: String,
    /// Rows produced by the sources.
    pub produced: u64,
    /// Rows the write stream acknowledged.
    pub acked: u64,
    /// Messages (batches of rows) published.
    pub messages: u64,
    /// Publish attempts that failed and were retried.
    pub retries: u64,
    /// Rows still unacknowledged when the drain timed out.
    pub unacked: u64,
    /// Lowest scale feedback applied.
    pub min_scale: f64,
    /// Scale changes applied by feedback.
    pub adjustments: u64,
    /// Whether the last (`leaving`) demand event left the client. When not, the demand
    /// expires by itself.
    pub leaving_event_sent: bool,
    /// How the stop went against its bound.
    pub stop: StopSummary,
}

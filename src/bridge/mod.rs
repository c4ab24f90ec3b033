//! The metrics bridge: every coordinator's feedback merged into one fleet view, served to
//! Prometheus (`/metrics`), to KEDA's metrics-api scaler (`/api/v1/coordinators`) and
//! republished on the bus (`<prefix>.metrics.<coordinator_id>`), so one query sees every
//! coordinator, even those that expose no port.
//!
//! Per coordinator it exports the predecessor's names, `coordinator_queue_depth` (the deepest live
//! instance) and `coordinator_backpressure_{ok,soft,hard}` (the most severe level), plus
//! `coordinator_backlog`, which counts the JetStream write consumer's lag when known. See
//! [`CoordinatorView`](crate::fleet::CoordinatorView) for every field.

mod api;
mod config;
mod lag;
mod probe;
mod run;
mod state;
mod stop;

pub use api::API_PREFIX;
pub use config::{BridgeConfig, BridgeSetup};
pub use probe::BridgeProbe;
pub use run::{Bridge, BridgeReport, run};
pub use state::{BridgeStats, FleetState};

use crate::bus::nats::NatsError;
use crate::invalid::InvalidSetting;
use crate::metrics::MetricsError;

/// Why the bridge could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// A setting is out of range.
    #[error(transparent)]
    Invalid(#[from] InvalidSetting),
    /// NATS could not be set up.
    #[error(transparent)]
    Nats(#[from] NatsError),
    /// Metrics could not be set up or served.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A task of the bridge panicked.
    #[error("bridge task failed")]
    Task(#[source] tokio::task::JoinError),
    /// A shutdown signal came before it finished starting (nothing to drain or report).
    #[error("stopped before it had started")]
    StoppedWhileStarting,
}

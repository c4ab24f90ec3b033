//! The pipeline side's rate limits: per-provider token buckets whose rate feedback scales.

mod config;
mod coordinator;
mod error;
mod provider;
mod scaled;
mod snapshot;

pub use config::RateConfig;
pub use coordinator::RateCoordinator;
pub use error::RateError;
pub use provider::{MAX_PAUSE_SEC, ProviderConfig};
pub use snapshot::{ProviderSnapshot, RateProbe};

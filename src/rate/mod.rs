//! The pipeline side's rate limits: per-provider token buckets whose rate feedback scales.

mod coordinator;
mod provider;
mod scaled;

pub use coordinator::{ProviderSnapshot, RateCoordinator, RateError};
pub use provider::{MAX_PAUSE_SEC, ProviderConfig};

//! The pipeline side's reaction to feedback: policies that turn the fleet's merged signal into
//! rate scales (the default, [`ProportionalPolicy`], scales with the store's queue depth;
//! [`FairSharePolicy`] obeys the explicit fair rates stores publish; [`HysteresisPolicy`] and the predecessor's [`StepPolicy`] remain available), and the
//! [`FeedbackHandler`] that applies them to a rate coordinator.

mod config;
mod fair_share;
mod handler;
mod hysteresis;
mod policy;
mod proportional;
mod stats;
mod step;

pub use config::{FeedbackConfig, PolicyKind};
pub use fair_share::{FairShareConfig, FairSharePolicy};
pub use handler::FeedbackHandler;
pub use hysteresis::{HysteresisConfig, HysteresisPolicy};
pub use policy::{Decision, Policy};
pub use proportional::{ProportionalConfig, ProportionalPolicy};
pub use stats::HandlerStats;
pub use step::StepPolicy;
